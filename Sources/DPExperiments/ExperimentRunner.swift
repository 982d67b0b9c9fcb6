import DPCrypto
import Foundation

/// What a call of `ExperimentRunner.run()` did.
public struct ExperimentReport: Hashable, Sendable {
    public var finished: [String] = []
    public var failed: [String] = []
    /// Runs skipped because `runs.csv` already held them as finished (`--resume`).
    public var skipped: [String] = []
    /// Rows of unfinished runs removed from `epochs.csv` and `runs.csv` on resume.
    public var removedEpochRows = 0
    public var removedRunRows = 0
    /// Unfinished runs that continue from a checkpoint, with the epoch they continue after.
    public var resumedFromCheckpoint: [String: Int] = [:]
}

/// Runs every run of an experiment through an executor and writes `epochs.csv`, `runs.csv` and
/// `manifest.json` into the output directory.
///
/// Rows are appended as they finish (one `write` per complete line, then `fsync`), so a kill
/// leaves at most one partial line, which the next start cuts off. With `resume`, runs already
/// finished in `runs.csv` are skipped; rows of the runs this plan redoes are removed (atomic
/// rewrite) and the runs are redone.
///
/// A run is its resolved config and seed (`run_id`), so after an edit of the config the changed
/// runs are new runs: the rows of the old ones stay as they are, beside the new ones, and the
/// manifest keeps their config and ledger (`config_history`, runs with `in_current_plan: false`).
/// No run id is ever written twice to `runs.csv`, and the folder is locked (``OutputLock``)
/// while the runner writes into it.
public final class ExperimentRunner {
    public let config: ExperimentConfig
    public let outputDirectory: URL
    public let executor: RunExecutor
    public let resume: Bool
    public var environment: RunEnvironment
    /// Seconds from an arbitrary origin; injected so tests need no clock.
    public var clock: () -> Double
    /// Where the plan and progress lines go.
    public var log: (String) -> Void
    /// Progress within an epoch (step, samples/s, ETA), called at most every
    /// ``statusInterval`` seconds; nil: none. `dpkit run` redraws one line on a terminal and
    /// prints plain lines otherwise.
    public var status: ((String) -> Void)?
    public var statusInterval = 0.5
    /// Called with the run id and the epoch each time a run's checkpoint is on disk.
    public var afterCheckpoint: ((String, Int) -> Void)?
    /// The command line recorded in the output folder's lock (named to a second process).
    public var command: String = CommandLine.arguments.joined(separator: " ")
    /// Opens encrypted checkpoints on resume (`dpkit run --decryption-key`); without it, a
    /// run's `dataset.decryption_key` that is the private key of `output.encrypt_for`.
    public var decryptionKey: DecryptionKey?

    private var files: OutputFiles {
        OutputFiles(directory: outputDirectory, encrypted: config.output.encryptFor != nil)
    }
    /// The keys of `output:`, loaded when ``run()`` starts.
    private var protection = OutputProtection()
    private var ledgers: [String: ConfigValue] = [:]
    /// The audit of each audited run (manifest `audit`).
    private var audits: [String: ConfigValue] = [:]
    /// Each federated run's partition (`partition` in the manifest), kept like the audits.
    private var partitions: [String: ConfigValue] = [:]
    /// The public part of each run with one (`public` in the manifest), kept like the audits.
    private var publicParts: [String: ConfigValue] = [:]
    private var statuses: [String: String] = [:]
    private var plans: [String: RunPlan] = [:]
    /// Errors of runs that cannot be planned, with their run ids.
    private var planErrors: [String: [String]] = [:]
    /// Runs and experiment configs recorded by earlier invocations (`--resume`).
    private var history = ManifestHistory()

    public init(
        config: ExperimentConfig, outputDirectory: URL, executor: RunExecutor, resume: Bool = false,
        environment: RunEnvironment = RunEnvironment(),
        clock: @escaping () -> Double = { Date().timeIntervalSinceReferenceDate },
        log: @escaping (String) -> Void = { print($0) }
    ) {
        self.config = config
        self.outputDirectory = outputDirectory
        self.executor = executor
        self.resume = resume
        self.environment = environment
        self.clock = clock
        self.log = log
    }

    /// Prints the plan, runs every run not yet finished and writes the output files.
    /// - Throws: `OutputError` when the directory holds results and `resume` is false, or holds
    ///   files with other columns, or another process holds its lock; `FileError` when a file
    ///   cannot be created, read or written; errors of `executor.plan`. Errors of `execute` are
    ///   recorded as failed runs and do not stop the experiment.
    @discardableResult
    public func run() throws -> ExperimentReport {
        guard config.kind == .training else {
            throw OutputError(
                "\(config.file) is a `kind: \(config.kind.rawValue)` config; it has no training runs", kind: .usage)
        }
        var report = ExperimentReport()
        // Keys first: a missing or open key file stops the experiment before anything is written.
        protection = try OutputProtection(config: config, decryptionKey: decryptionKey)
        try FileIO.createDirectory(outputDirectory)
        let lock = try OutputLock(directory: outputDirectory, holder: .current(command: command))
        defer { lock.release() }
        let epochsHeader = OutputSchema.epochsHeader(varyingKeys: config.varyingKeys)
        let derived = OutputSchema.derivedColumns(config.runs)
        let runsHeader = OutputSchema.runsHeader(varyingKeys: config.varyingKeys, derived: derived)

        // Existing results.
        if !resume, try !files.rows(files.runs).isEmpty || !files.rows(files.epochs).isEmpty {
            throw OutputError(
                "\(outputDirectory.path) already holds results; pass --resume to continue them, or choose another output directory",
                kind: .cannotCreateOutput)
        }
        try files.prepare(files.runs, header: runsHeader)
        try files.prepare(files.epochs, header: epochsHeader)
        var done = Set<String>()
        if resume {
            let statusIndex = runsHeader.firstIndex(of: "status")!
            done = Set(
                try files.rows(files.runs).filter { $0.count == runsHeader.count && $0[statusIndex] == "finished" }.map
                { $0[0] })
            // Only the rows of runs this plan redoes go; runs of an earlier config stay as recorded.
            let redo = Set(config.runs.map(\.runID)).subtracting(done)
            // A private run in secure mode that cannot checkpoint (federated, or DP-PCA, whose
            // projection is fitted again) cannot restart: a restart draws fresh noise while the
            // rows it already wrote (models evaluated on the earlier noise) stay released and
            // unaccounted. Refused before anything is removed. (Seeded runs redraw the same noise,
            // so restarting them releases nothing new.)
            let epochRows = try files.rows(files.epochs)
            for run in config.runs where redo.contains(run.runID) {
                let c = run.config
                let kind: String
                if c.federated != nil {
                    kind = "federated run"
                } else if case .privatePCA = c.dataset.projection {
                    kind = "DP-PCA run"
                } else {
                    continue
                }
                guard c.privacy.enabled, c.privacy.secureRNG, epochRows.contains(where: { $0.first == run.runID })
                else { continue }
                throw OutputError(
                    "run \(run.runID) is a private \(kind) with privacy.secure_rng that was interrupted after writing epochs.csv rows: restarting it would draw fresh noise and release a second, unaccounted model; its earlier rows stay as recorded. Start it in a new output folder (the earlier rows' privacy cost stays spent)",
                    kind: .cannotCreateOutput)
            }
            // A run to redo continues from its checkpoint when it has one: keep its rows up to that
            // epoch. Read first: an encrypted checkpoint without its key stops here, folder untouched.
            var resumeEpoch: [String: Int] = [:]
            for id in redo {
                if let e = try RunCheckpoint.epoch(at: files.checkpoint(id), key: protection.checkpointKey) {
                    resumeEpoch[id] = e
                }
            }
            report.removedRunRows = try files.filter(files.runs, header: runsHeader) {
                !redo.contains($0["run_id"] ?? "")
            }
            report.removedEpochRows = try files.filter(files.epochs, header: epochsHeader) { row in
                let id = row["run_id"] ?? ""
                if !redo.contains(id) { return true }
                guard let last = resumeEpoch[id], let e = Int(row["epoch"] ?? "") else { return false }
                return e <= last
            }
            report.resumedFromCheckpoint = resumeEpoch
            try loadPreviousManifest()
            for id in done { statuses[id] = "finished" }
        }

        // Plan.
        let runs = config.runs
        log(
            "Experiment \(config.name): \(runs.count) runs (\(Set(runs.map(\.configHash)).count) configs x seeds) -> \(outputDirectory.path)"
        )
        if let shard = config.shard {
            log(
                "shard \(shard.text): \(runs.count) of the plan's \(shard.planRunIDs.count) runs (runs \(shard.index + 1), \(shard.index + 1 + shard.count), ... in steps of \(shard.count)); `dpkit merge` joins the shards' folders"
            )
        }
        for warning in config.warnings { log("note: \(warning)") }
        // Every run is planned before the first trains; one that cannot be planned (a target
        // epsilon no noise reaches) is named with the others, and nothing trains.
        var unplanned: [String] = []
        for run in runs {
            let plan: RunPlan
            do {
                plan = try executor.plan(run)
            } catch {
                let message = plainDescription(of: error)
                log(
                    "  \(run.index + 1)/\(runs.count) \(run.runID) [\(run.kind.rawValue)] \(run.label): CANNOT BE PLANNED: \(message)"
                )
                planErrors[message, default: []].append(run.runID)
                unplanned.append(run.runID)
                continue
            }
            plans[run.runID] = plan
            var line =
                "  \(run.index + 1)/\(runs.count) \(run.runID) [\(run.kind.rawValue)] \(run.label): \(plan.steps) steps"
            if let sigma = plan.noiseMultiplier { line += ", sigma \(format(sigma))" }
            if let q = plan.samplingProbability { line += ", q \(format(q))" }
            if let e = plan.epsilonRDP { line += ", eps_rdp \(format(e))" }
            if let lo = plan.epsilonPLDLower, let hi = plan.epsilonPLDUpper {
                line += ", eps_pld [\(format(lo)), \(format(hi))]"
            }
            if let delta = run.config.privacy.targetDelta { line += " at delta \(format(delta))" }
            if let st = plan.privacy {
                line += " (\(st.neighboringRelation.name), per \(st.privacyUnit), \(st.randomness.rawValue))"
            }
            if done.contains(run.runID) { line += "  (finished: skipped)" }
            log(line)
            for note in plan.notes { log("    note: \(note)") }
            for warning in plan.warnings { log("    warning: \(warning)") }
        }
        for (id, epoch) in report.resumedFromCheckpoint.sorted(by: { $0.key < $1.key }) {
            log("resume: \(id) continues from its checkpoint after epoch \(epoch)")
        }
        if report.removedEpochRows + report.removedRunRows > 0 {
            log(
                "resume: removed \(report.removedEpochRows) epochs.csv and \(report.removedRunRows) runs.csv rows of unfinished runs"
            )
        }
        if !unplanned.isEmpty {
            try writeManifest()
            throw ConfigError(
                file: config.file, path: "",
                message: "\(unplanned.count) of \(runs.count) runs cannot be planned, so no run was trained: "
                    + planErrors.map { "\($0.key) (runs \($0.value.joined(separator: ", ")))" }.sorted().joined(
                        separator: "; "))
        }
        let planned = Set(runs.map(\.runID))
        let earlier = history.runs.filter { !planned.contains($0.id) }
        if !earlier.isEmpty {
            log(
                "resume: \(earlier.count) runs recorded earlier are not in this plan (an earlier config, or seeds left out with --seed); they stay in \(outputDirectory.path) as recorded, and the manifest keeps their configs and ledgers"
            )
        }
        try writeManifest()

        // Runs.
        let todo = runs.filter { !done.contains($0.runID) }
        report.skipped = runs.filter { done.contains($0.runID) }.map(\.runID)
        let totalSteps = todo.reduce(0) { $0 + (plans[$1.runID]?.steps ?? 0) }
        var stepsDone = 0
        let experimentStart = clock()
        for run in todo {
            let runStart = clock()
            let plan = plans[run.runID]!
            let totalEpochs =
                run.config.federated?.rounds ?? run.config.training.epochs
                ?? max(1, (plan.steps + plan.stepsPerEpoch - 1) / max(1, plan.stepsPerEpoch))
            statuses[run.runID] = "running"
            var lastStep = 0
            try files.checkNoRows(of: run.runID, epochsThrough: report.resumedFromCheckpoint[run.runID] ?? 0)
            do {
                try FileManager.default.createDirectory(at: files.checkpoints, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: files.models, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: files.metrics, withIntermediateDirectories: true)
                var lastStatus = clock(), samples = 0, samplesSince = clock()
                let totalRuns = runs.count
                var context = RunContext(
                    checkpoint: files.checkpoint(run.runID), model: files.model(run.runID),
                    metrics: files.metrics(run.runID),
                    onStep: { [self] m in
                        samples += m.batchSize
                        guard let status = self.status else { return }
                        let now = self.clock()
                        guard now - lastStatus >= self.statusInterval else { return }
                        let rate = Double(samples) / max(1e-9, now - samplesSince)
                        let elapsed = now - experimentStart
                        let doneSteps = stepsDone + m.step
                        var line =
                            "run \(run.index + 1)/\(totalRuns) \(run.runID) epoch \(m.epoch) step \(m.step)/\(m.totalSteps)"
                            + String(format: " loss %.4g, %.0f samples/s", m.loss, rate)
                        if let e = m.epsilonRDP { line += String(format: ", eps_rdp %.4g", e) }
                        if doneSteps > 0, elapsed > 0, totalSteps > doneSteps {
                            line +=
                                " ETA \(Self.duration(elapsed / Double(doneSteps) * Double(totalSteps - doneSteps)))"
                        }
                        status(line)
                        lastStatus = now
                        samples = 0
                        samplesSince = now
                    })
                context.onCheckpoint = afterCheckpoint.map { hook in { epoch in hook(run.runID, epoch) } }
                context.encryptFor = protection.recipient
                context.checkpointKey = protection.checkpointKey
                let summary = try executor.execute(run, context: context) { record in
                    var record = record
                    if record.wallSeconds == nil { record.wallSeconds = self.clock() - runStart }
                    try DurableFile.append(CSV.line(OutputSchema.epochRow(run, record)), to: self.files.epochs)
                    lastStep = record.step
                    let elapsed = self.clock() - experimentStart
                    let done = stepsDone + record.step
                    var line =
                        "run \(run.index + 1)/\(runs.count) \(run.runID) epoch \(record.epoch)/\(totalEpochs) step \(record.step)"
                    if let loss = record.trainLoss { line += " loss \(self.format(loss))" }
                    if let acc = record.testAccuracy { line += " test_acc \(self.format(acc))" }
                    if let eps = record.epsilon { line += " eps \(self.format(eps))" }
                    if done > 0, elapsed > 0, totalSteps > done {
                        line += " ETA \(Self.duration(elapsed / Double(done) * Double(totalSteps - done)))"
                    }
                    self.log(line)
                }
                let row = OutputSchema.runRow(
                    run, status: "finished", summary: summary, wallSeconds: clock() - runStart, error: nil,
                    derived: derived)
                try files.appendRunRow(row)
                if let ledger = summary.privacyLedger { ledgers[run.runID] = ledger }
                if let partition = summary.partition { partitions[run.runID] = partition }
                if let part = summary.publicPart { publicParts[run.runID] = part }
                if let audit = summary.audit {
                    audits[run.runID] = audit.manifestValue
                    if let roc = audit.rocCSV {
                        try FileManager.default.createDirectory(at: files.audits, withIntermediateDirectories: true)
                        try DurableFile.writeAtomically(roc, to: files.roc(run.runID))
                    }
                }
                if !summary.pictures.isEmpty {
                    try FileManager.default.createDirectory(at: files.pictures, withIntermediateDirectories: true)
                    for (name, svg) in summary.pictures.sorted(by: { $0.key < $1.key }) {
                        try DurableFile.writeAtomically(svg, to: files.picture(run.runID, name))
                    }
                }
                for url in files.checkpointVariants(run.runID) { try? FileManager.default.removeItem(at: url) }
                statuses[run.runID] = "finished"
                report.finished.append(run.runID)
                log(
                    "run \(run.index + 1)/\(runs.count) \(run.runID) finished: test_acc \(summary.testAccuracy.map(format) ?? "-") eps \(summary.epsilon.map(format) ?? "-")"
                )
            } catch let error as OutputError {
                throw error
            } catch let error as FileError {
                throw error
            } catch {
                let message = plainDescription(of: error)
                let row = OutputSchema.runRow(
                    run, status: "failed", summary: nil, wallSeconds: clock() - runStart, error: message,
                    derived: derived)
                try files.appendRunRow(row)
                statuses[run.runID] = "failed"
                report.failed.append(run.runID)
                log("run \(run.index + 1)/\(runs.count) \(run.runID) FAILED: \(message)")
            }
            stepsDone += max(lastStep, plan.steps)
            try writeManifest()
        }
        log("done: \(report.finished.count) finished, \(report.failed.count) failed, \(report.skipped.count) skipped")
        if let key = protection.signingKey {
            let doc = try FolderSignature.sign(directory: outputDirectory, key: key)
            log(
                "signed: \(doc.files.count) files in \(outputDirectory.appendingPathComponent(FolderSignature.fileName).path) (Ed25519 key \(doc.keyID.prefix(16)))"
            )
        }
        return report
    }

    // MARK: - Manifest

    /// The manifest as a value (also written to `manifest.json`).
    ///
    /// `runs` lists the runs of this plan, then every run an earlier invocation recorded that
    /// this plan does not hold (`in_current_plan: false`, status as recorded, `running` turned
    /// into `interrupted`), each with its resolved config and privacy ledger. `config_history`
    /// lists every experiment config that has written into the folder, oldest first; each run
    /// names the one that planned it (`experiment_hash`). `warnings` holds the config's
    /// privacy notes and every plan warning, naming its runs.
    public func manifest() -> ConfigValue {
        func opt(_ s: String?) -> ConfigValue { s.map(ConfigValue.string) ?? .null }
        func num(_ d: Double?) -> ConfigValue {
            guard let d else { return .null }
            return d.isFinite ? .double(d) : .string(csvNumber(d))
        }
        let runs: [ConfigValue] = config.runs.map { run in
            let plan = plans[run.runID]
            return .map([
                ("run_id", .string(run.runID)), ("config_hash", .string(run.configHash)), ("seed", .int(run.seed)),
                ("kind", .string(run.kind.rawValue)), ("origin", .string(run.origin)),
                ("experiment_hash", .string(config.experimentHash)), ("in_current_plan", .bool(true)),
                ("varying", .map(run.varyingValues.map { ($0.key, $0.value) })),
                ("status", .string(statuses[run.runID] ?? "pending")),
                (
                    "plan",
                    plan.map { p in
                        .map([
                            ("noise_multiplier", num(p.noiseMultiplier)),
                            ("sampling_probability", num(p.samplingProbability)),
                            ("steps", .int(p.steps)), ("epsilon_rdp", num(p.epsilonRDP)),
                            ("epsilon_pld_lower", num(p.epsilonPLDLower)),
                            ("epsilon_pld_upper", num(p.epsilonPLDUpper)),
                            ("warnings", .list(p.warnings.map(ConfigValue.string))),
                        ])
                    } ?? .null
                ),
                ("config", run.config.resolved),
                (
                    "privacy",
                    plan?.privacy.map { st in
                        .map([
                            ("neighboring_relation", .string(st.neighboringRelation.name)),
                            ("privacy_unit", .string(st.privacyUnit)),
                            ("randomness", .string(st.randomness.rawValue)),
                            ("randomness_statement", .string(st.randomnessStatement)),
                        ])
                    } ?? .null
                ),
                ("privacy_ledger", ledgers[run.runID] ?? .null),
                ("audit", audits[run.runID] ?? .null),
                ("partition", partitions[run.runID] ?? .null),
                ("public", publicParts[run.runID] ?? .null),
            ])
        }
        let planned = Set(config.runs.map(\.runID))
        let earlier: [ConfigValue] = history.runs.filter { !planned.contains($0.id) }.map { id, entry in
            var entry = entry
            _ = entry.setValue(.bool(false), atPath: "in_current_plan")
            if entry["status"] == .string("running") { _ = entry.setValue(.string("interrupted"), atPath: "status") }
            if let ledger = ledgers[id] { _ = entry.setValue(ledger, atPath: "privacy_ledger") }
            if let audit = audits[id] { _ = entry.setValue(audit, atPath: "audit") }
            if let partition = partitions[id] { _ = entry.setValue(partition, atPath: "partition") }
            if let part = publicParts[id] { _ = entry.setValue(part, atPath: "public") }
            return entry
        }
        var configs = history.configs
        if !configs.contains(where: { $0["experiment_hash"] == .string(config.experimentHash) }) {
            configs.append(
                .map([
                    ("experiment_hash", .string(config.experimentHash)), ("config_file", .string(config.file)),
                    ("seeds", .list(config.seeds.map(ConfigValue.int))), ("config", config.raw),
                ]))
        }
        return .map(
            [
                ("experiment", .string(config.name)), ("description", .string(config.description)),
                ("config_file", .string(config.file)), ("experiment_hash", .string(config.experimentHash)),
                ("dpkit_version", .string(environment.dpkitVersion)), ("git_commit", opt(environment.gitCommit)),
                ("blas_core", opt(environment.blasCore)), ("blas_threads", opt(environment.blasThreads)),
            ] + (environment.ranks > 1 ? [("mpi_ranks", ConfigValue.int(environment.ranks))] : []) + [
                ("seeds", .list(config.seeds.map(ConfigValue.int))),
                ("sweep", .map(config.sweep.map { ($0.path, .list($0.values)) })),
                ("varying_keys", .list(config.varyingKeys.map(ConfigValue.string))),
                ("labels", config.labels.manifestValue),
                ("warnings", .list((config.warnings + planWarnings()).map(ConfigValue.string))),
                ("config", config.raw),
            ] + outputEntry + shardEntry + [
                ("config_history", .list(configs)),
                ("runs", .list(runs + earlier)),
            ])
    }

    /// `output`: the key ids of `output.encrypt_for` and `output.sign_with`, when set.
    private var outputEntry: [(key: String, value: ConfigValue)] {
        guard protection.recipient != nil || protection.signingKey != nil else { return [] }
        return [
            (
                "output",
                .map([
                    ("encrypted_for_key_id", protection.recipient.map { .string($0.keyID) } ?? .null),
                    ("signed_by_key_id", protection.signingKey.map { .string($0.verificationKey.keyID) } ?? .null),
                ])
            )
        ]
    }

    /// `shard`: which part of the plan this folder holds (`dpkit run --shard I/N`), with every
    /// run id of the whole plan, so that `dpkit merge` can name the runs of a missing shard.
    private var shardEntry: [(key: String, value: ConfigValue)] {
        guard let shard = config.shard else { return [] }
        return [
            (
                "shard",
                .map([
                    ("index", .int(shard.index)), ("count", .int(shard.count)),
                    ("plan_run_ids", .list(shard.planRunIDs.map(ConfigValue.string))),
                ])
            )
        ]
    }

    /// Each distinct plan warning once, with the runs it concerns.
    private func planWarnings() -> [String] {
        var order: [String] = []
        var runIDs: [String: [String]] = [:]
        for run in config.runs {
            for warning in plans[run.runID]?.warnings ?? [] {
                if runIDs[warning] == nil { order.append(warning) }
                runIDs[warning, default: []].append(run.runID)
            }
        }
        return order.map { "\($0) (runs \(runIDs[$0]!.joined(separator: ", ")))" }
            + planErrors.keys.sorted().map {
                "cannot be planned: \($0) (runs \(planErrors[$0]!.joined(separator: ", ")))"
            }
    }

    private func writeManifest() throws {
        try DurableFile.writeAtomically(manifest().jsonText(), to: files.manifest)
    }

    /// Keeps what an earlier invocation recorded: the ledgers of its runs, its run entries and
    /// its experiment configs (also those of configs since edited).
    /// - Throws: `OutputError` when `manifest.json` is not JSON (it is only ever replaced
    ///   atomically, so that is not a kill's doing): resuming would lose its history.
    private func loadPreviousManifest() throws {
        guard let text = try FileIO.readText(files.manifest.path) else { return }
        let manifest: ConfigValue
        do {
            manifest = try ConfigValue(jsonData: Data(text.utf8))
        } catch {
            throw OutputError(
                "\(files.manifest.path) is not a JSON manifest (\(error)); resuming would lose the configs and ledgers it records. Move it aside to resume without them, or choose another output folder"
            )
        }
        if case .list(let configs)? = manifest["config_history"] {
            history.configs = configs
        } else if let hash = manifest["experiment_hash"], let raw = manifest["config"] {
            // A manifest written before the history existed: its one config.
            history.configs = [
                .map([
                    ("experiment_hash", hash), ("config_file", manifest["config_file"] ?? .null),
                    ("seeds", manifest["seeds"] ?? .null), ("config", raw),
                ])
            ]
        }
        // The folder of one shard continues that shard only: another shard's runs mixed in would
        // be merged twice or not at all.
        let recorded = manifest["shard"].flatMap { $0 == .null ? nil : $0 }
        let current = shardEntry.first?.value
        if (recorded != nil || current != nil) && recorded != current {
            func describe(_ v: ConfigValue?) -> String {
                guard case .int(let i)? = v?["index"], case .int(let n)? = v?["count"] else { return "the whole plan" }
                guard case .list(let ids)? = v?["plan_run_ids"] else { return "shard \(i)/\(n)" }
                return "shard \(i)/\(n) of a plan of \(ids.count) runs"
            }
            throw OutputError(
                "\(outputDirectory.path) holds \(describe(recorded)), not \(describe(current))\(recorded?["count"] == current?["count"] && recorded?["index"] == current?["index"] ? " (the plan's run ids differ: the config or --seed changed)" : ""); resume it with the same --shard, config and --seed, or choose another output folder",
                kind: .usage)
        }
        guard case .list(let runs)? = manifest["runs"] else { return }
        for run in runs {
            guard case .string(let id)? = run["run_id"] else { continue }
            if let ledger = run["privacy_ledger"], ledger != .null { ledgers[id] = ledger }
            if let audit = run["audit"], audit != .null { audits[id] = audit }
            if let partition = run["partition"], partition != .null { partitions[id] = partition }
            if let part = run["public"], part != .null { publicParts[id] = part }
            var entry = run
            if entry["experiment_hash"] == nil, let hash = manifest["experiment_hash"] {
                _ = entry.setValue(hash, atPath: "experiment_hash")
            }
            history.runs.removeAll { $0.id == id }
            history.runs.append((id, entry))
        }
    }

    // MARK: - Formatting

    private func format(_ x: Double) -> String {
        if !x.isFinite { return x > 0 ? "inf" : x < 0 ? "-inf" : "nan" }
        if x != 0 && (abs(x) < 1e-3 || abs(x) >= 1e5) { return String(format: "%.3g", x) }
        return String(format: "%.4g", x)
    }

    /// `1h02m`, `3m05s`, `42s`.
    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }
}

/// What earlier invocations recorded in an output folder's manifest.
struct ManifestHistory {
    /// Run entries as recorded, by run id.
    var runs: [(id: String, entry: ConfigValue)] = []
    /// `config_history` entries, oldest first.
    var configs: [ConfigValue] = []
}
