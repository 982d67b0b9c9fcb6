import DPCrypto
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// MARK: - Shards

/// A sweep of 3 budgets x 2 seeds plus a control: 8 runs.
private let shardYAML =
    baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "")
    .replacingOccurrences(of: "seeds: [0]\n", with: "") + """
        seeds: [0, 1]
        sweep:
          privacy.target_epsilon: [1, 3, 8]
        include:
          - privacy.enabled: false

        """

@Test(arguments: [1, 2, 3, 5, 8, 11])
func shardsAreDisjointCoverThePlanAndAreBalanced(_ n: Int) throws {
    let whole = try parse(shardYAML)
    var seen: [String] = []
    var sizes: [Int] = []
    for i in 0..<n {
        var part = whole
        part.restrict(to: try ShardSelection(index: i, count: n))
        sizes.append(part.runs.count)
        seen += part.runs.map(\.runID)
        #expect(part.runs.map(\.index) == Array(0..<part.runs.count))
        #expect(part.shard?.planRunIDs == whole.runs.map(\.runID))
        // Run k of the plan is in shard k mod n: the slow reading of the rule.
        let expected = whole.runs.enumerated().filter { $0.offset % n == i }.map(\.element.runID)
        #expect(part.runs.map(\.runID) == expected)
    }
    #expect(seen.sorted() == whole.runs.map(\.runID).sorted(), "every run once")
    #expect(sizes.max()! - sizes.min()! <= 1, "balanced: \(sizes)")
}

@Test(arguments: [
    ("2/2", "out of range"), ("-1/2", "out of range"), ("0/0", "at least 1"), ("1", "not a shard"),
    ("a/b", "not a shard"), ("1/2/3", "not a shard"),
])
func badShardsAreRefusedByName(_ text: String, _ fragment: String) {
    do {
        _ = try ShardSelection(parsing: text)
        Issue.record("\(text) accepted")
    } catch {
        #expect("\(error)".contains(fragment), "\(error)")
    }
}

@Test func slurmArrayVariablesSelectTheShard() throws {
    let s = try ShardSelection(slurmEnvironment: [
        "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "3",
    ])
    #expect(s.index == 2 && s.count == 3)
    // --array=1-7:3 (tasks 1, 4, 7): task 7 is shard 2 of 3.
    let stepped = try ShardSelection(slurmEnvironment: [
        "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "3",
        "SLURM_ARRAY_TASK_COUNT": "3",
    ])
    #expect(stepped.index == 2 && stepped.count == 3)
    do {
        _ = try ShardSelection(slurmEnvironment: [
            "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "3",
            "SLURM_ARRAY_TASK_COUNT": "3",
        ])
        Issue.record("a task off the array's step accepted")
    } catch {
        #expect("\(error)".contains("not on the array's step"))
    }
    #expect(throws: ShardError.self) { try ShardSelection(slurmEnvironment: [:]) }
    do {
        _ = try ShardSelection(slurmEnvironment: ["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "3"])
        Issue.record("task 4 of 3 accepted")
    } catch {
        #expect("\(error)".contains("out of range") && "\(error)".contains("SLURM_ARRAY_TASK_ID=4"))
    }
}

// MARK: - Merge

/// Runs `config` (optionally one shard of it) with the fake executor into a new folder.
private func runFake(_ config: ExperimentConfig, shard: ShardSelection? = nil, name: String = #function) throws -> URL {
    var config = config
    if let shard { config.restrict(to: shard) }
    let dir = try temporaryDirectory(name)
    let clock = FakeClock()
    try ExperimentRunner(
        config: config, outputDirectory: dir, executor: FakeExecutor(), clock: clock.read, log: { _ in }
    ).run()
    return dir
}

private func text(_ dir: URL, _ file: String) throws -> String {
    try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
}

@Test(arguments: [2, 3])
func shardedThenMergedEqualsTheUnshardedSweep(_ n: Int) throws {
    let config = try parse(shardYAML)
    let whole = try runFake(config)
    // Shards given in reverse order: the merge puts rows in plan order.
    let shards = try (0..<n).reversed().map { try runFake(config, shard: ShardSelection(index: $0, count: n)) }
    let merged = try temporaryDirectory().appendingPathComponent("merged")
    let report = try ResultMerge.merge(shards, into: merged, command: "test")
    #expect(report.runs == config.runs.count && report.finished == config.runs.count && report.missing.isEmpty)
    #expect(try text(merged, "runs.csv") == text(whole, "runs.csv"))
    #expect(try text(merged, "epochs.csv") == text(whole, "epochs.csv"))
    let a = try readManifest(whole), b = try readManifest(merged)
    // Every run entry, its privacy ledger included, as one process recorded it.
    #expect(a["runs"] == b["runs"])
    #expect(
        b["runs"]?.listValue?.allSatisfy { $0["privacy_ledger"] != nil && $0["status"] == .string("finished") } == true)
    #expect(a["config_history"] == b["config_history"] && a["experiment_hash"] == b["experiment_hash"])
    #expect(b["shard"] == nil)
    #expect(b["merged_from"]?.listValue?.count == n)
    // The inputs are unchanged and unlocked: a second merge works.
    let again = try temporaryDirectory().appendingPathComponent("again")
    try ResultMerge.merge(shards, into: again, command: "test")
    #expect(try text(again, "runs.csv") == text(whole, "runs.csv"))
}

@Test func seedSubsetsMergeLikeShards() throws {
    let config = try parse(shardYAML)
    let whole = try runFake(config)
    var seed0 = config, seed1 = config
    try seed0.restrict(toSeeds: [0], source: "test")
    try seed1.restrict(toSeeds: [1], source: "test")
    let merged = try temporaryDirectory().appendingPathComponent("merged")
    try ResultMerge.merge([runFake(seed0), runFake(seed1)], into: merged, command: "test")
    let rows = { (d: URL) in try CSV.parse(text(d, "runs.csv")).filter { $0 != [""] }.map { $0[0] }.sorted() }
    #expect(try rows(merged) == rows(whole))
    // The merged manifest's seeds are the union; the subsets' `only these seeds` warnings went.
    let manifest = try readManifest(merged)
    #expect(manifest["seeds"] == .list([.int(0), .int(1)]))
    #expect(manifest["warnings"]?.listValue?.contains { $0.stringValue?.contains("only these seeds") == true } == false)
}

/// Merging `--seed` subsets without one of the config's seeds names it and refuses (each subset
/// plans only its own seeds' runs, so the missing seed's runs are in no input's plan).
@Test func mergeOfSeedSubsetsNamesAMissingSeed() throws {
    let config = try parse(shardYAML)
    var seed0 = config
    try seed0.restrict(toSeeds: [0], source: "test")
    let only0 = try runFake(seed0)
    do {
        try ResultMerge.merge([only0], into: try temporaryDirectory().appendingPathComponent("m"), command: "test")
        Issue.record("merged seed 0 alone as the whole experiment")
    } catch {
        #expect("\(error)".contains("seed(s) 1 of the config are in no input folder"), "\(error)")
    }
    let merged = try temporaryDirectory().appendingPathComponent("allowed")
    let report = try ResultMerge.merge([only0], into: merged, allowMissing: true, command: "test")
    #expect(report.notes.contains { $0.contains("seed(s) 1") })
    #expect(try readManifest(merged)["seeds"] == .list([.int(0)]))
}

/// Shards signed as their manifests record: the merge verifies them, refuses a removed
/// signature, a signer other than the recorded one and inputs signed by different keys, and
/// records the key it signed the merged folder with.
@Test func mergeChecksTheInputsSignersAndRecordsItsOwn() throws {
    let config = try parse(shardYAML)
    let shardKey = SigningKey.generate(), otherKey = SigningKey.generate(), mergeKey = SigningKey.generate()
    func shards() throws -> [URL] {
        try (0..<2).map {
            try runFake(config, shard: ShardSelection(index: $0, count: 2), name: "signed\($0)-\(UUID())")
        }
    }
    /// Records `recorded` as output.sign_with in the manifest, then signs with `key`.
    func sign(_ dir: URL, recorded: SigningKey, with key: SigningKey) throws {
        var m = try readManifest(dir)
        _ = m.setValue(
            .map([("encrypted_for_key_id", .null), ("signed_by_key_id", .string(recorded.verificationKey.keyID))]),
            atPath: "output")
        try m.jsonText().write(to: dir.appendingPathComponent("manifest.json"), atomically: true, encoding: .utf8)
        try FolderSignature.sign(directory: dir, key: key)
    }
    func mergeError(_ inputs: [URL]) -> String {
        do {
            try ResultMerge.merge(inputs, into: try temporaryDirectory().appendingPathComponent("m"), command: "test")
            return "merged"
        } catch { return "\(error)" }
    }
    // Both signed by the recorded key: merged, and the merged manifest names the merge's key.
    let good = try shards()
    for d in good { try sign(d, recorded: shardKey, with: shardKey) }
    let merged = try temporaryDirectory().appendingPathComponent("merged")
    try ResultMerge.merge(good, into: merged, signWith: mergeKey, command: "test")
    #expect(try readManifest(merged)["output"]?["signed_by_key_id"] == .string(mergeKey.verificationKey.keyID))
    #expect(try FolderSignature.verify(directory: merged, expected: mergeKey.verificationKey).verifies)
    let unsigned = try temporaryDirectory().appendingPathComponent("unsigned")
    try ResultMerge.merge(good, into: unsigned, command: "test")
    #expect(try readManifest(unsigned)["output"] == nil || readManifest(unsigned)["output"] == .null)
    // The signature of a folder whose manifest records one was removed.
    let removed = try shards()
    for d in removed { try sign(d, recorded: shardKey, with: shardKey) }
    try FileManager.default.removeItem(at: removed[1].appendingPathComponent(FolderSignature.fileName))
    #expect(mergeError(removed).contains("signature was removed"), "\(mergeError(removed))")
    // Re-signed by another key than the recorded one.
    let resigned = try shards()
    try sign(resigned[0], recorded: shardKey, with: shardKey)
    try sign(resigned[1], recorded: shardKey, with: otherKey)
    #expect(mergeError(resigned).contains("re-signed"), "\(mergeError(resigned))")
    // Each as recorded, but by different keys.
    let mixed = try shards()
    try sign(mixed[0], recorded: shardKey, with: shardKey)
    try sign(mixed[1], recorded: otherKey, with: otherKey)
    #expect(mergeError(mixed).contains("different keys"), "\(mergeError(mixed))")
}

@Test func mergeNamesAMissingShardsRuns() throws {
    let config = try parse(shardYAML)
    let first = try runFake(config, shard: ShardSelection(index: 0, count: 3))
    let second = try runFake(config, shard: ShardSelection(index: 2, count: 3))
    let out = try temporaryDirectory().appendingPathComponent("merged")
    let missing = config.runs.enumerated().filter { $0.offset % 3 == 1 }.map(\.element.runID)
    do {
        try ResultMerge.merge([first, second], into: out, command: "test")
        Issue.record("merged without shard 1/3")
    } catch let error as OutputError {
        #expect(error.description.contains("shard 1/3, whose folder was not given"), "\(error)")
        for id in missing { #expect(error.description.contains(id)) }
        #expect(error.description.contains("--allow-missing"))
    }
    #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("runs.csv").path))
    let report = try ResultMerge.merge([first, second], into: out, allowMissing: true, command: "test")
    #expect(report.missing == missing)
    #expect("\(try readManifest(out)["warnings"]!)".contains(missing[0]))
}

@Test func mergeRefusesOverlappingRuns() throws {
    let config = try parse(shardYAML)
    let shard = try runFake(config, shard: ShardSelection(index: 0, count: 2))
    let copy = try temporaryDirectory().appendingPathComponent("copy")
    try FileManager.default.copyItem(at: shard, to: copy)
    let out = try temporaryDirectory().appendingPathComponent("merged")
    #expect {
        try ResultMerge.merge([shard, copy], into: out, command: "test")
    } throws: { "\($0)".contains("both shard 0/2") }
    // Whole folders: the same runs twice.
    let a = try runFake(config), b = try runFake(config)
    #expect {
        try ResultMerge.merge([a, b], into: out, command: "test")
    } throws: { "\($0)".contains("in more than one input folder") && "\($0)".contains(config.runs[0].runID) }
    #expect {
        try ResultMerge.merge([a, a], into: out, command: "test")
    } throws: { "\($0)".contains("given twice") }
}

@Test func mergeRefusesFoldersOfDifferentExperiments() throws {
    let config = try parse(shardYAML)
    let other = try parse(shardYAML.replacingOccurrences(of: "learning_rate: 0.1", with: "learning_rate: 0.2"))
    let a = try runFake(config, shard: ShardSelection(index: 0, count: 2))
    let b = try runFake(other, shard: ShardSelection(index: 1, count: 2))
    let out = try temporaryDirectory().appendingPathComponent("merged")
    #expect {
        try ResultMerge.merge([a, b], into: out, command: "test")
    } throws: { "\($0)".contains("different experiment configs") && "\($0)".contains(config.experimentHash) }
    // Shards of different splits.
    let c = try runFake(config, shard: ShardSelection(index: 1, count: 3))
    #expect {
        try ResultMerge.merge([a, c], into: out, command: "test")
    } throws: { "\($0)".contains("another split") }
}

@Test func mergeRefusesALockedInputANonFolderAndAnUsedOutput() throws {
    let config = try parse(shardYAML)
    let a = try runFake(config, shard: ShardSelection(index: 0, count: 2))
    let b = try runFake(config, shard: ShardSelection(index: 1, count: 2))
    let out = try temporaryDirectory().appendingPathComponent("merged")
    // A shard still being written (its lock held): named, nothing written.
    let lock = try OutputLock(directory: b, holder: .current(command: "dpkit run shard 1/2"))
    #expect {
        try ResultMerge.merge([a, b], into: out, command: "test")
    } throws: { ($0 as? OutputError)?.kind == .locked && "\($0)".contains("dpkit run shard 1/2") }
    lock.release()
    let empty = try temporaryDirectory()
    #expect {
        try ResultMerge.merge([a, empty], into: out, command: "test")
    } throws: { "\($0)".contains("no manifest.json") }
    try ResultMerge.merge([a, b], into: out, command: "test")
    #expect {
        try ResultMerge.merge([a, b], into: out, command: "test")
    } throws: { "\($0)".contains("already holds results") }
    #expect {
        try ResultMerge.merge([a, b], into: a.appendingPathComponent("inside"), command: "test")
    } throws: { "\($0)".contains("overlap") }
}

/// Real training: the shards' models and rows equal those of one process, byte for byte
/// (wall time aside).
@Test func shardedRealTrainingMergesToTheSameModelsAndRows() throws {
    let config = try ExperimentConfig.parse(yaml: try fixture("tiny.yaml"), file: "tiny.yaml")
    #expect(config.runs.count == 2)
    let whole = try trainInTemporaryFolder(config).folder
    var parts: [URL] = []
    for i in 0..<2 {
        var part = config
        part.restrict(to: try ShardSelection(index: i, count: 2))
        parts.append(try trainInTemporaryFolder(part, name: "shard\(i)").folder)
    }
    let merged = try temporaryDirectory().appendingPathComponent("merged")
    try ResultMerge.merge(parts, into: merged, command: "test")
    func withoutWallTime(_ dir: URL, _ file: String) throws -> [[String]] {
        let rows = CSV.parse(try text(dir, file)).filter { $0 != [""] }
        let c = rows[0].firstIndex(of: "wall_seconds")!
        return rows.map { r in r.enumerated().filter { $0.offset != c }.map(\.element) }
    }
    #expect(try withoutWallTime(merged, "runs.csv") == withoutWallTime(whole, "runs.csv"))
    #expect(try withoutWallTime(merged, "epochs.csv") == withoutWallTime(whole, "epochs.csv"))
    for run in config.runs {
        let name = "models/\(run.runID).safetensors"
        let a = FileManager.default.contents(atPath: whole.appendingPathComponent(name).path)
        #expect(a != nil && a == FileManager.default.contents(atPath: merged.appendingPathComponent(name).path))
        let m = "metrics/\(run.runID).jsonl"
        #expect(
            FileManager.default.contents(atPath: whole.appendingPathComponent(m).path)
                == FileManager.default.contents(atPath: merged.appendingPathComponent(m).path))
    }
}

// MARK: - Slurm scripts

@Test func slurmScriptsRunEachShardAndMergeAfterTheArray() throws {
    let job = SlurmJob(
        dpkit: "/opt/dpkit/bin/dpkit", config: "/home/a/sweep.yaml", output: "/scratch/a/sweep",
        experimentName: "sweep", tasks: 4, partition: "cpu", time: "01:00:00", cpus: 2, seeds: [0])
    let array = job.arrayScript
    #expect(array.hasPrefix("#!/bin/bash\n"))
    for line in [
        "#SBATCH --array=0-3", "#SBATCH --cpus-per-task=2", "#SBATCH --partition=\"cpu\"",
        "#SBATCH --time=\"01:00:00\"",
        "'/opt/dpkit/bin/dpkit' run '/home/a/sweep.yaml' --seed 0 --shard \"$SLURM_ARRAY_TASK_ID/4\" --resume",
        "--output '/scratch/a/sweep/shards'/\"$SLURM_ARRAY_TASK_ID\"",
    ] {
        #expect(array.contains(line), "\(line)\n\(array)")
    }
    #expect(
        job.mergeScript.contains(
            "merge '/scratch/a/sweep/shards/0' '/scratch/a/sweep/shards/1' '/scratch/a/sweep/shards/2' '/scratch/a/sweep/shards/3' --output '/scratch/a/sweep/results'"
        ))
    #expect(job.submitScript.contains("--dependency=afterok:\"$array\""))
    // The #SBATCH lines come before the first command (sbatch stops reading them there).
    for script in [array, job.mergeScript] {
        let lines = script.split(separator: "\n")
        let firstCommand = lines.firstIndex { !$0.hasPrefix("#") }!
        #expect(!lines[firstCommand...].contains { $0.hasPrefix("#SBATCH") })
    }
}

// MARK: - Data parallelism

@Test func dataParallelRunsNameWhatTheyCannotTrainBeforeAnyRunStarts() throws {
    #expect(DataParallelRun.unsupportedSettings(try parse(baseYAML)).isEmpty)
    let secure = try parse(
        baseYAML.replacingOccurrences(of: "  clipping_norm: 1.0\n", with: "  clipping_norm: 1.0\n  secure_rng: true\n"))
    let problems = DataParallelRun.unsupportedSettings(secure)
    #expect(problems == ["privacy.secure_rng: true (runs \(secure.runs[0].runID))"], "\(problems)")
}

/// Paths with a space or a `%`, an experiment name with odd characters: every directive value
/// double-quoted, `%` doubled outside Slurm's own patterns, the job name cleaned, `--chdir` set.
@Test func slurmDirectivesQuotePathsWithSpacesAndPercentSigns() throws {
    let job = SlurmJob(
        dpkit: "/opt/dpkit/bin/dpkit", config: "/home/a b/sweep.yaml", output: "/scratch/my runs/100% sweep",
        experimentName: "sweep 1/α", tasks: 2, partition: "cpu long", workingDirectory: "/home/a b",
        signWith: "/home/a b/signing.key.pem")
    let array = job.arrayScript, merge = job.mergeScript
    for line in [
        "#SBATCH --job-name=\"dpkit-sweep_1__\"", "#SBATCH --output=\"/scratch/my runs/100%% sweep/logs/shard-%a.out\"",
        "#SBATCH --chdir=\"/home/a b\"", "#SBATCH --partition=\"cpu long\"",
    ] {
        #expect(array.contains(line + "\n"), "\(line)\n\(array)")
    }
    for line in [
        "#SBATCH --job-name=\"dpkit-sweep_1__-merge\"",
        "#SBATCH --output=\"/scratch/my runs/100%% sweep/logs/merge.out\"",
        "#SBATCH --chdir=\"/home/a b\"",
    ] {
        #expect(merge.contains(line + "\n"), "\(line)\n\(merge)")
    }
    #expect(merge.contains("--output '/scratch/my runs/100% sweep/results' --sign-with '/home/a b/signing.key.pem'"))
    // Every #SBATCH value is one quoted word (no unquoted space).
    for line in (array + merge).split(separator: "\n") where line.hasPrefix("#SBATCH") && line.contains(" ") {
        let value = line.split(separator: "=", maxSplits: 1).last!
        #expect(value.hasPrefix("\"") && value.hasSuffix("\"") || !value.contains(" "), "\(line)")
    }
    var bad = job
    bad.output = "/scratch/a\"b"
    #expect(throws: ShardError.self) { try bad.validate() }
}

/// `--resume` of a shard's folder with another shard (or the whole plan) is refused.
@Test func resumingAShardFolderWithAnotherShardIsRefused() throws {
    let config = try parse(shardYAML)
    let dir = try runFake(config, shard: try ShardSelection(index: 0, count: 2))
    for other in [try ShardSelection(index: 1, count: 2), try ShardSelection(index: 0, count: 3), nil] {
        var c = config
        if let other { c.restrict(to: other) }
        do {
            try ExperimentRunner(config: c, outputDirectory: dir, executor: FakeExecutor(), resume: true, log: { _ in })
                .run()
            Issue.record("resumed shard 0/2 as \(other?.text ?? "the whole plan")")
        } catch {
            #expect("\(error)".contains("holds shard 0/2"), "\(error)")
        }
    }
    // The same shard resumes.
    var same = config
    same.restrict(to: try ShardSelection(index: 0, count: 2))
    try ExperimentRunner(config: same, outputDirectory: dir, executor: FakeExecutor(), resume: true, log: { _ in })
        .run()
}
