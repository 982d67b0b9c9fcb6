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
/// finished in `runs.csv` are skipped; rows of the others are removed (atomic rewrite) and the
/// runs are redone.
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

    private var files: OutputFiles { OutputFiles(directory: outputDirectory) }
    private var ledgers: [String: ConfigValue] = [:]
    private var statuses: [String: String] = [:]
    private var plans: [String: RunPlan] = [:]

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
    ///   files with other columns; errors of `executor.plan`. Errors of `execute` are recorded as
    ///   failed runs and do not stop the experiment.
    @discardableResult
    public func run() throws -> ExperimentReport {
        guard config.kind == .training else {
            throw OutputError("\(config.file) is a `kind: \(config.kind.rawValue)` config; it has no training runs")
        }
        var report = ExperimentReport()
        try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true)
        let epochsHeader = OutputSchema.epochsHeader(varyingKeys: config.varyingKeys)
        let runsHeader = OutputSchema.runsHeader(varyingKeys: config.varyingKeys)

        // Existing results.
        if !resume, !files.rows(files.runs).isEmpty || !files.rows(files.epochs).isEmpty {
            throw OutputError(
                "\(outputDirectory.path) already holds results; pass --resume to continue them, or choose another output directory")
        }
        try files.prepare(files.runs, header: runsHeader)
        try files.prepare(files.epochs, header: epochsHeader)
        var done = Set<String>()
        if resume {
            let statusIndex = runsHeader.firstIndex(of: "status")!
            done = Set(files.rows(files.runs).filter { $0.count == runsHeader.count && $0[statusIndex] == "finished" }.map { $0[0] })
            report.removedRunRows = try files.filter(files.runs, header: runsHeader) { done.contains($0["run_id"] ?? "") }
            // An unfinished run continues from its checkpoint: keep its rows up to that epoch.
            var resumeEpoch: [String: Int] = [:]
            for run in config.runs where !done.contains(run.runID) {
                if let e = RunCheckpoint.epoch(at: files.checkpoint(run.runID)) { resumeEpoch[run.runID] = e }
            }
            report.removedEpochRows = try files.filter(files.epochs, header: epochsHeader) { row in
                let id = row["run_id"] ?? ""
                if done.contains(id) { return true }
                guard let last = resumeEpoch[id], let e = Int(row["epoch"] ?? "") else { return false }
                return e <= last
            }
            report.resumedFromCheckpoint = resumeEpoch
            loadPreviousManifest()
            for id in done { statuses[id] = "finished" }
        }

        // Plan.
        let runs = config.runs
        log("Experiment \(config.name): \(runs.count) runs (\(Set(runs.map(\.configHash)).count) configs x seeds) -> \(outputDirectory.path)")
        for warning in config.warnings { log("note: \(warning)") }
        for run in runs {
            let plan = try executor.plan(run)
            plans[run.runID] = plan
            var line = "  \(run.index + 1)/\(runs.count) \(run.runID) [\(run.kind.rawValue)] \(run.label): \(plan.steps) steps"
            if let sigma = plan.noiseMultiplier { line += ", sigma \(format(sigma))" }
            if let q = plan.samplingProbability { line += ", q \(format(q))" }
            if let e = plan.epsilonRDP { line += ", eps_rdp \(format(e))" }
            if let lo = plan.epsilonPLDLower, let hi = plan.epsilonPLDUpper { line += ", eps_pld [\(format(lo)), \(format(hi))]" }
            if let delta = run.config.privacy.targetDelta { line += " at delta \(format(delta))" }
            if let st = plan.privacy { line += " (\(st.neighboringRelation), per \(st.privacyUnit), \(st.randomness))" }
            if done.contains(run.runID) { line += "  (finished: skipped)" }
            log(line)
            for note in plan.notes { log("    note: \(note)") }
        }
        for (id, epoch) in report.resumedFromCheckpoint.sorted(by: { $0.key < $1.key }) {
            log("resume: \(id) continues from its checkpoint after epoch \(epoch)")
        }
        if report.removedEpochRows + report.removedRunRows > 0 {
            log("resume: removed \(report.removedEpochRows) epochs.csv and \(report.removedRunRows) runs.csv rows of unfinished runs")
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
            let totalEpochs = run.config.training.epochs ?? max(1, (plan.steps + plan.stepsPerEpoch - 1) / max(1, plan.stepsPerEpoch))
            statuses[run.runID] = "running"
            var lastStep = 0
            do {
                try FileManager.default.createDirectory(at: files.checkpoints, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: files.models, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: files.metrics, withIntermediateDirectories: true)
                var lastStatus = clock(), samples = 0, samplesSince = clock()
                let totalRuns = runs.count
                let context = RunContext(
                    checkpoint: files.checkpoint(run.runID), model: files.model(run.runID), metrics: files.metrics(run.runID),
                    onStep: { [self] m in
                        samples += m.batchSize
                        guard let status = self.status else { return }
                        let now = self.clock()
                        guard now - lastStatus >= self.statusInterval else { return }
                        let rate = Double(samples) / max(1e-9, now - samplesSince)
                        let elapsed = now - experimentStart
                        let doneSteps = stepsDone + m.step
                        var line = "run \(run.index + 1)/\(totalRuns) \(run.runID) epoch \(m.epoch) step \(m.step)/\(m.totalSteps)"
                            + String(format: " loss %.4g, %.0f samples/s", m.loss, rate)
                        if let e = m.epsilonRDP { line += String(format: ", eps_rdp %.4g", e) }
                        if doneSteps > 0, elapsed > 0, totalSteps > doneSteps {
                            line += " ETA \(Self.duration(elapsed / Double(doneSteps) * Double(totalSteps - doneSteps)))"
                        }
                        status(line)
                        lastStatus = now
                        samples = 0
                        samplesSince = now
                    })
                let summary = try executor.execute(run, context: context) { record in
                    var record = record
                    if record.wallSeconds == nil { record.wallSeconds = self.clock() - runStart }
                    try DurableFile.append(CSV.line(OutputSchema.epochRow(run, record)), to: self.files.epochs)
                    lastStep = record.step
                    let elapsed = self.clock() - experimentStart
                    let done = stepsDone + record.step
                    var line = "run \(run.index + 1)/\(runs.count) \(run.runID) epoch \(record.epoch)/\(totalEpochs) step \(record.step)"
                    if let loss = record.trainLoss { line += " loss \(self.format(loss))" }
                    if let acc = record.testAccuracy { line += " test_acc \(self.format(acc))" }
                    if let eps = record.epsilon { line += " eps \(self.format(eps))" }
                    if done > 0, elapsed > 0, totalSteps > done {
                        line += " ETA \(Self.duration(elapsed / Double(done) * Double(totalSteps - done)))"
                    }
                    self.log(line)
                }
                let row = OutputSchema.runRow(run, status: "finished", summary: summary, wallSeconds: clock() - runStart, error: nil)
                try DurableFile.append(CSV.line(row), to: files.runs)
                if let ledger = summary.privacyLedger { ledgers[run.runID] = ledger }
                try? FileManager.default.removeItem(at: files.checkpoint(run.runID))
                statuses[run.runID] = "finished"
                report.finished.append(run.runID)
                log("run \(run.index + 1)/\(runs.count) \(run.runID) finished: test_acc \(summary.testAccuracy.map(format) ?? "-") eps \(summary.epsilon.map(format) ?? "-")")
            } catch let error as OutputError {
                throw error
            } catch {
                let message = "\(error)"
                let row = OutputSchema.runRow(run, status: "failed", summary: nil, wallSeconds: clock() - runStart, error: message)
                try DurableFile.append(CSV.line(row), to: files.runs)
                statuses[run.runID] = "failed"
                report.failed.append(run.runID)
                log("run \(run.index + 1)/\(runs.count) \(run.runID) FAILED: \(message)")
            }
            stepsDone += max(lastStep, plan.steps)
            try writeManifest()
        }
        log("done: \(report.finished.count) finished, \(report.failed.count) failed, \(report.skipped.count) skipped")
        return report
    }

    // MARK: - Manifest

    /// The manifest as a value (also written to `manifest.json`).
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
                ("varying", .map(run.varyingValues.map { ($0.key, $0.value) })),
                ("status", .string(statuses[run.runID] ?? "pending")),
                ("plan", plan.map { p in
                    .map([
                        ("noise_multiplier", num(p.noiseMultiplier)), ("sampling_probability", num(p.samplingProbability)),
                        ("steps", .int(p.steps)), ("epsilon_rdp", num(p.epsilonRDP)),
                        ("epsilon_pld_lower", num(p.epsilonPLDLower)), ("epsilon_pld_upper", num(p.epsilonPLDUpper)),
                    ])
                } ?? .null),
                ("config", run.config.resolved),
                ("privacy", plan?.privacy.map { st in
                    .map([
                        ("neighboring_relation", .string(st.neighboringRelation)), ("privacy_unit", .string(st.privacyUnit)),
                        ("randomness", .string(st.randomness)), ("randomness_statement", .string(st.randomnessStatement)),
                    ])
                } ?? .null),
                ("privacy_ledger", ledgers[run.runID] ?? .null),
            ])
        }
        return .map([
            ("experiment", .string(config.name)), ("description", .string(config.description)),
            ("config_file", .string(config.file)), ("experiment_hash", .string(config.experimentHash)),
            ("dpkit_version", .string(environment.dpkitVersion)), ("git_commit", opt(environment.gitCommit)),
            ("blas_core", opt(environment.blasCore)), ("blas_threads", opt(environment.blasThreads)),
            ("seeds", .list(config.seeds.map(ConfigValue.int))),
            ("sweep", .map(config.sweep.map { ($0.path, .list($0.values)) })),
            ("varying_keys", .list(config.varyingKeys.map(ConfigValue.string))),
            ("warnings", .list(config.warnings.map(ConfigValue.string))),
            ("config", config.raw),
            ("runs", .list(runs)),
        ])
    }

    private func writeManifest() throws {
        try DurableFile.writeAtomically(manifest().jsonText(), to: files.manifest)
    }

    /// Keeps the ledgers of runs finished by an earlier invocation.
    private func loadPreviousManifest() {
        guard let data = FileManager.default.contents(atPath: files.manifest.path),
              let manifest = try? ConfigValue(jsonData: data), case .list(let runs)? = manifest["runs"]
        else { return }
        for run in runs {
            if case .string(let id)? = run["run_id"], let ledger = run["privacy_ledger"], ledger != .null {
                ledgers[id] = ledger
            }
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
