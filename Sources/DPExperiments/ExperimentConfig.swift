import Foundation

/// What a config file describes.
public enum ExperimentKind: String, Hashable, Sendable, CaseIterable {
    /// Training runs (the default): `dataset`, `model`, `optimizer`, `privacy`, `training`, `seeds`, `sweep`, `include`, `labels`.
    case training
    /// Privacy accounting only, no training: an `accounting` section.
    case accounting
}

/// A key path and a value, in a fixed order (a sweep assignment or a CSV column).
public struct KeyValue: Hashable, Sendable {
    public var key: String
    public var value: ConfigValue

    public init(_ key: String, _ value: ConfigValue) {
        self.key = key
        self.value = value
    }
}

/// One axis of a sweep: a key path and the values it takes.
public struct SweepAxis: Hashable, Sendable {
    /// A dotted key path (`privacy.target_epsilon`) or `seed`.
    public var path: String
    public var values: [ConfigValue]
}

/// One run of an experiment: a validated `RunConfig` plus where it sits in the sweep.
public struct ResolvedRun: Hashable, Sendable {
    /// Position in the plan, from 0.
    public var index: Int
    public var config: RunConfig
    /// `config.runID`: stable across invocations, used by `--resume`.
    public var runID: String
    /// `config.configHash`: shared by runs that differ only in the seed.
    public var configHash: String
    public var seed: Int
    /// The resolved value of every key that varies across the experiment
    /// (`ExperimentConfig.varyingKeys`), in that order; `.null` where the run does not use the key
    /// (such as `privacy.target_epsilon` of a non-private run).
    public var varyingValues: [KeyValue]
    /// `grid` or `include[i]`.
    public var origin: String

    public var kind: RunKind { config.kind }

    /// `privacy.target_epsilon=1 model.name=mlp seed=0`.
    public var label: String {
        (varyingValues.map { "\($0.key)=\($0.value.displayText.isEmpty ? "-" : $0.value.displayText)" } + [
            "seed=\(seed)"
        ])
        .joined(separator: " ")
    }
}

/// A whole experiment file, validated and expanded into runs.
public struct ExperimentConfig: Sendable {
    /// The file as given (used in error messages and the manifest).
    public var file: String
    public var name: String
    public var description: String
    public var kind: ExperimentKind
    /// The parsed file, before sweeps.
    public var raw: ConfigValue
    /// The seeds each grid point and include entry runs with (`seeds:` or `sweep.seed`).
    public var seeds: [Int]
    public var sweep: [SweepAxis]
    /// Extra runs: key paths set on top of the base config (`null` removes a key).
    public var include: [[KeyValue]]
    /// Key paths that vary across runs (swept or set by an include entry), `seed` excluded; each
    /// becomes a CSV column.
    public var varyingKeys: [String]
    /// The runs in execution order (empty for `kind: accounting`).
    public var runs: [ResolvedRun]
    /// The accounting section (only for `kind: accounting`).
    public var accounting: AccountingConfig?
    /// Privacy-relevant notes to print with the plan (never silent).
    public var warnings: [String]
    /// Display names of keys and values for tables and figures (`labels:`).
    public var labels = DisplayLabels()
    /// How the results are protected (`output:`): encrypted checkpoints and models, a signature.
    public var output = OutputConfig()
    /// The part of the sweep this invocation runs (`dpkit run --shard I/N`); nil: all of it.
    public var shard: ShardSelection?

    /// FNV-1a of the canonical JSON of the whole file.
    public var experimentHash: String { fnv1a64Hex(raw.canonicalJSON) }

    /// Reads and validates a config file.
    /// - Throws: `ConfigError` naming the file, key path, value and what is allowed; for a file
    ///   that cannot be read, the reason in words (`no such file or folder`, `is a folder, not a
    ///   file`, `permission denied`, `not UTF-8 text: byte 0xE9 at line 3, column 12`).
    public static func load(file: String, registries: PluginRegistries = .standard) throws -> ExperimentConfig {
        let text: String
        do {
            guard let read = try FileIO.readText(file, action: .readConfig) else {
                throw FileError(.readConfig, path: file, reason: .notFound)
            }
            text = read
        } catch let error as FileError {
            throw ConfigError(
                file: file, path: "",
                message: "cannot be read: " + error.reason.text + (error.hint.map { "; \($0)" } ?? ""))
        }
        return try parse(yaml: text, file: file, registries: registries)
    }

    /// Validates config text; `file` is only used in messages.
    public static func parse(
        yaml: String, file: String = "<string>", registries: PluginRegistries = .standard
    ) throws -> ExperimentConfig {
        let (tree, lines) = try ConfigValue.parseYAML(yaml, file: file)
        let context = ParseContext(file: file, lines: lines, registries: registries)
        let top = try MapReader(tree, path: "", context: context)
        let kind = try top.requiredCase("kind", default: ExperimentKind.training)
        let name = try top.requiredString("name")
        let description = try top.requiredString("description", default: "")
        var config = ExperimentConfig(
            file: file, name: name, description: description, kind: kind, raw: tree, seeds: [], sweep: [],
            include: [], varyingKeys: [], runs: [], accounting: nil, warnings: [])
        switch kind {
        case .accounting:
            let section = try top.section("accounting")
            config.accounting = try AccountingConfig.parse(section)
            try top.finish()
        case .training:
            // Unknown top-level keys first: a misspelt section would otherwise read as a missing one.
            for key in RunConfig.sectionKeys + ["seeds", "sweep", "include", "labels", "output"] { _ = top.raw(key) }
            try top.finish()
            try config.expandRuns(top: top, tree: tree, context: context)
            try config.readLabels(top.raw("labels"), context: context)
            config.output = try OutputConfig.parse(top.section("output"))
        }
        return config
    }
}

// MARK: - Seed selection

/// Seeds asked for that the config does not run.
public struct UnknownSeedsError: Error, Equatable, CustomStringConvertible {
    public var unknown: [Int]
    public var configSeeds: [Int]
    public var description: String {
        "\(unknown.map(String.init).joined(separator: ", ")): not among the config's seeds \(configSeeds)"
    }
}

extension ExperimentConfig {
    /// Keeps only the runs of `selected` seeds (renumbered from 0), records them as the
    /// experiment's seeds, and adds a warning naming them and `source` so the manifest says
    /// that the other seeds were left out.
    /// - Throws: ``UnknownSeedsError`` for a seed the config does not run.
    public mutating func restrict(toSeeds selected: [Int], source: String) throws {
        guard !selected.isEmpty else { return }
        let unknown = selected.filter { !seeds.contains($0) }
        guard unknown.isEmpty else { throw UnknownSeedsError(unknown: unknown, configSeeds: seeds) }
        runs = runs.filter { selected.contains($0.seed) }
        for i in runs.indices { runs[i].index = i }
        seeds = selected
        warnings.append(
            "--seed \(selected.map(String.init).joined(separator: ", ")): only these seeds of \(source) were run")
    }
}

// MARK: - Shards

/// One of `count` disjoint parts of an experiment's runs (`dpkit run --shard I/N`, a Slurm array
/// task): run `k` of the plan (from 0, in plan order) belongs to shard `k mod count`. The parts
/// are deterministic (plan order is the config's), disjoint, cover the plan, and balanced to
/// within one run; `dpkit merge` puts their folders back together.
public struct ShardSelection: Hashable, Sendable {
    /// From 0.
    public var index: Int
    public var count: Int
    /// Every run id of the whole plan, in plan order (recorded in each shard's manifest, so a
    /// merge can name the runs of a shard that is missing).
    public var planRunIDs: [String] = []

    /// - Throws: ``ShardError`` unless `0 <= index < count`.
    public init(index: Int, count: Int) throws {
        guard count >= 1 else { throw ShardError("the shard count \(count) must be at least 1 (`--shard 0/4`)") }
        guard index >= 0, index < count else {
            throw ShardError(
                "shard index \(index) is out of range for \(count) shards: it must be in 0...\(count - 1) (`--shard I/N` counts from 0, like SLURM_ARRAY_TASK_ID of `--array=0-\(count - 1)`)"
            )
        }
        self.index = index
        self.count = count
    }

    /// `I/N`, as `--shard` takes it.
    /// - Throws: ``ShardError`` naming the text when it is not `I/N` with `0 <= I < N`.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError(
                "`\(text)` is not a shard: write I/N, the I-th of N parts counted from 0 (`--shard 0/4` ... `--shard 3/4`), or `slurm`"
            )
        }
        try self.init(index: i, count: n)
    }

    /// The shard of a Slurm array task: `(SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) /
    /// SLURM_ARRAY_TASK_STEP` of `SLURM_ARRAY_TASK_COUNT` (`--array=0-3` gives shards 0/4 ...
    /// 3/4, `--array=0-6:2` gives 0/4 ... 3/4 too). It holds only when the whole array was
    /// submitted at once: a task resubmitted alone (`sbatch --array=3`) sees a count of 1, so the
    /// scripts of `dpkit slurm` pass `--shard "$SLURM_ARRAY_TASK_ID/N"` with N written in instead.
    /// - Throws: ``ShardError`` when the variables are missing (not inside a job array), not
    ///   numbers, or the task is not on the array's step.
    public init(slurmEnvironment env: [String: String]) throws {
        guard let id = env["SLURM_ARRAY_TASK_ID"], let count = env["SLURM_ARRAY_TASK_COUNT"] else {
            throw ShardError(
                "--shard slurm needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, which Slurm sets only inside a job array (`sbatch --array=0-3`; `dpkit slurm` writes such a script); outside Slurm give --shard I/N"
            )
        }
        let minimum = env["SLURM_ARRAY_TASK_MIN"] ?? "0"
        let stepText = env["SLURM_ARRAY_TASK_STEP"] ?? "1"
        let from =
            "SLURM_ARRAY_TASK_ID=\(id), SLURM_ARRAY_TASK_MIN=\(minimum), SLURM_ARRAY_TASK_STEP=\(stepText), SLURM_ARRAY_TASK_COUNT=\(count)"
        guard let i = Int(id), let n = Int(count), let lo = Int(minimum), let step = Int(stepText), step >= 1 else {
            throw ShardError("\(from) are not whole numbers (a step of at least 1)")
        }
        guard (i - lo) % step == 0 else {
            throw ShardError(
                "\(from): the task is not on the array's step (an array such as --array=0,3,7 has no step); give --shard I/N instead"
            )
        }
        do { try self.init(index: (i - lo) / step, count: n) } catch let error as ShardError {
            throw ShardError(
                "\(error.description) (from \(from); the array must be evenly spaced, such as --array=0-\(n - 1), and submitted whole: for one task resubmitted alone give --shard I/N)"
            )
        }
    }

    /// Whether run `k` of the plan (from 0) belongs to this shard.
    public func contains(planIndex k: Int) -> Bool { k % count == index }

    /// `2/4`.
    public var text: String { "\(index)/\(count)" }
}

/// A shard that cannot be selected (bad `--shard`, no Slurm array variables).
public struct ShardError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ExperimentConfig {
    /// Keeps only the runs of `shard` (renumbered from 0) and records the shard, with the run
    /// ids of the whole plan, for the manifest. A shard may be empty (more shards than runs).
    public mutating func restrict(to shard: ShardSelection) {
        var shard = shard
        shard.planRunIDs = runs.map(\.runID)
        runs = runs.enumerated().filter { shard.contains(planIndex: $0.offset) }.map(\.element)
        for i in runs.indices { runs[i].index = i }
        self.shard = shard
    }
}

// MARK: - Sweep expansion

extension ExperimentConfig {
    private mutating func expandRuns(top: MapReader, tree: ConfigValue, context: ParseContext) throws {
        try readSweep(top: top, context: context)
        try readSeeds(top: top)
        try readInclude(top: top)
        // Columns: swept and included key paths, seed excluded.
        for key in sweep.map(\.path) + include.flatMap({ $0.map(\.key) })
        where key != "seed" && !varyingKeys.contains(key) {
            varyingKeys.append(key)
        }
        // The base tree: the run sections only.
        var base = ConfigValue.map([])
        for key in RunConfig.sectionKeys { if let v = tree[key] { base.setValue(v, atPath: key) } }
        try resolveRuns(points: runPoints(), base: base, top: top, context: context)
        addPrivacyWarnings()
    }

    /// `sweep:`: the axes, in file order.
    private mutating func readSweep(top: MapReader, context: ParseContext) throws {
        if let sweepValue = top.raw("sweep") {
            guard case .map(let pairs) = sweepValue else {
                throw top.error("sweep", "must be a map from key paths to lists of values, got \(sweepValue.typeName)")
            }
            for (path, values) in pairs {
                let sweepPath = "sweep.\(path)"
                let first = path.split(separator: ".").first.map(String.init) ?? path
                guard path == "seed" || RunConfig.sectionKeys.contains(first) else {
                    let valid = ["seed"] + RunConfig.sectionKeys.map { "\($0).<key>" }
                    var message = "sweeps over unknown key path `\(path)`"
                    if let guess = closestMatch(to: first, in: RunConfig.sectionKeys + ["seed"]) {
                        message += " (did you mean `\(guess)`?)"
                    }
                    throw ConfigError(
                        file: file, path: sweepPath, line: context.lines[sweepPath],
                        message: message + "; allowed: \(valid.joined(separator: ", "))")
                }
                guard case .list(let list) = values, !list.isEmpty else {
                    throw ConfigError(
                        file: file, path: sweepPath, line: context.lines[sweepPath],
                        message: "must be a non-empty list of values, got \(values.typeName) `\(values.displayText)`")
                }
                if Set(list).count != list.count {
                    throw ConfigError(
                        file: file, path: sweepPath, line: context.lines[sweepPath],
                        message: "lists a value twice: \(values.displayText)")
                }
                sweep.append(SweepAxis(path: path, values: list))
            }
        }

    }

    /// `seeds:` or `sweep.seed`; seeds become UInt64 Philox keys, so they are non-negative.
    private mutating func readSeeds(top: MapReader) throws {
        let seedsSpec = ParameterSpec("seeds", .intList, range: .nonNegative, default: .list([.int(0)]))
        if let axis = sweep.first(where: { $0.path == "seed" }) {
            if top.has("seeds") {
                throw top.error("seeds", "conflicts with `sweep.seed`; give the seeds in one place")
            }
            seeds = try axis.values.map { value in
                guard
                    case .int(let s) = try top.check(
                        value, spec: ParameterSpec("seed", .int, range: .nonNegative), path: "sweep.seed")
                else { return 0 }
                return s
            }
        } else {
            guard case .list(let list)? = try top.read(seedsSpec) else { return }
            seeds = list.compactMap { if case .int(let s) = $0 { return s } else { return nil } }
        }

    }

    /// `include:`: extra runs as flattened key paths.
    private mutating func readInclude(top: MapReader) throws {
        if let includeValue = top.raw("include") {
            guard case .list(let entries) = includeValue else {
                throw top.error(
                    "include", "must be a list of maps from key paths to values, got \(includeValue.typeName)")
            }
            for (i, entry) in entries.enumerated() {
                guard case .map = entry else {
                    throw top.error(
                        "include", "entry \(i) must be a map such as `{privacy.enabled: false}`, got \(entry.typeName)")
                }
                include.append(Self.flatten(entry, prefix: ""))
            }
        }

    }

    /// Grid points (first axis outermost), then include entries; seeds innermost unless swept.
    private func runPoints() -> [(assignments: [KeyValue], origin: String)] {
        var points: [(assignments: [KeyValue], origin: String)] = [([], "grid")]
        for axis in sweep {
            points = points.flatMap { point in
                axis.values.map { (point.assignments + [KeyValue(axis.path, $0)], point.origin) }
            }
        }
        if !sweep.contains(where: { $0.path == "seed" }) {
            points = points.flatMap { point in
                seeds.map { (point.assignments + [KeyValue("seed", .int($0))], point.origin) }
            }
        }
        for (i, entry) in include.enumerated() {
            if entry.contains(where: { $0.key == "seed" }) {
                points.append((entry, "include[\(i)]"))
            } else {
                points += seeds.map { (entry + [KeyValue("seed", .int($0))], "include[\(i)]") }
            }
        }

        return points
    }

    /// Validates each point's run config and appends the runs, once per run id.
    private mutating func resolveRuns(
        points: [(assignments: [KeyValue], origin: String)], base: ConfigValue,
        top: MapReader, context: ParseContext
    ) throws {
        var seen = Set<String>()
        for point in points {
            var run = base
            var runContext = context
            var seed = 0
            for assignment in point.assignments {
                let originNote = point.origin == "grid" ? "sweep" : point.origin
                if assignment.key == "seed" {
                    guard
                        case .int(let s) = try top.check(
                            assignment.value, spec: ParameterSpec("seed", .int, range: .nonNegative),
                            path: "\(originNote).seed")
                    else { continue }
                    seed = s
                    continue
                }
                guard run.setValue(assignment.value, atPath: assignment.key) else {
                    throw ConfigError(
                        file: file,
                        path: point.origin == "grid" ? "sweep.\(assignment.key)" : "\(point.origin).\(assignment.key)",
                        line: context.lines[point.origin == "grid" ? "sweep.\(assignment.key)" : "include"],
                        message: "cannot be set: a key on the way to it holds a value, not a map")
                }
                runContext.origins[assignment.key] = originNote
            }
            let config: RunConfig
            do {
                config = try RunConfig.parse(run, seed: seed, context: runContext)
            } catch var error as ConfigError where error.isUnknownKey {
                // An unknown key that a sweep or include entry introduced: point at the entry.
                if let assigned = point.assignments.first(where: {
                    $0.key == error.path || $0.key.hasPrefix(error.path + ".")
                }) {
                    let entryPath = point.origin == "grid" ? "sweep.\(assigned.key)" : "\(point.origin).\(assigned.key)"
                    error.message = "sets unknown key path `\(assigned.key)`: " + error.message
                    error.path = entryPath
                    error.line = context.lines[point.origin == "grid" ? entryPath : "include"]
                }
                throw error
            }
            // Values as resolved: defaults filled in, and unused privacy keys of a non-private run empty.
            let values = varyingKeys.map { KeyValue($0, config.resolved.value(atPath: $0) ?? .null) }
            let resolved = ResolvedRun(
                index: runs.count, config: config, runID: config.runID, configHash: config.configHash, seed: seed,
                varyingValues: values, origin: point.origin)
            if seen.contains(resolved.runID) {
                warnings.append(
                    "\(resolved.label) (\(point.origin)) duplicates an earlier run with the same resolved config and seed; it runs once"
                )
                continue
            }
            seen.insert(resolved.runID)
            runs.append(resolved)
        }
    }

    /// Privacy-relevant notes, printed with the plan (never silent).
    private mutating func addPrivacyWarnings() {
        if runs.contains(where: {
            $0.config.privacy.enabled && $0.config.privacy.sampling == .fixedSize
                && $0.config.privacy.accountants != [.rdp]
        }) {
            warnings.append(
                "privacy.sampling: fixed-size: fixed-size batches are accounted with the RDP sampling-without-replacement bound (replace-one neighbouring); an accountant that cannot account for them reports no epsilon"
            )
        }
        for run in runs where run.kind == .clipOnly {
            warnings.append(
                "\(run.runID) (\(run.label)): noise_multiplier 0 is the clip-only control; it has no privacy guarantee (epsilon is infinite)"
            )
        }
        if runs.contains(where: { $0.config.privacy.enabled && $0.config.privacy.clipping.name == "adaptive" }) {
            warnings.append(
                "privacy.clipping: adaptive: the private quantile estimate spends budget; the executor must account for it"
            )
        }
    }

    /// Reads `labels:` once every run is parsed: a label may name any key path that the readers
    /// of the runs accepted (in the run sections), `seed`, or an output column.
    private mutating func readLabels(_ value: ConfigValue?, context: ParseContext) throws {
        let sections = Set(RunConfig.sectionKeys)
        var known = Set(
            context.keyPaths.paths.filter { path in
                path.contains(".") && sections.contains(String(path.prefix { $0 != "." }))
            })
        known.insert("seed")
        let runs = self.runs, seeds = self.seeds
        labels = try DisplayLabels.parse(
            value, knownPaths: known,
            runValues: { key in
                if key == "seed" { return Set(seeds.map(String.init)) }
                guard known.contains(key) else { return nil }
                return Set(
                    runs.compactMap { run in
                        run.config.resolved.value(atPath: key).map(\.displayText).flatMap {
                            $0.isEmpty ? nil : DisplayLabels.normalized($0)
                        }
                    })
            }, file: file, lines: context.lines)
    }

    /// Flattens nested maps into dotted key paths.
    static func flatten(_ value: ConfigValue, prefix: String) -> [KeyValue] {
        guard case .map(let pairs) = value, !(pairs.isEmpty && !prefix.isEmpty) else {
            return [KeyValue(prefix, value)]
        }
        return pairs.flatMap { pair in flatten(pair.value, prefix: prefix.isEmpty ? pair.key : "\(prefix).\(pair.key)")
        }
    }
}
