import DPCrypto
import Foundation

/// What ``ResultMerge/merge(_:into:allowMissing:signWith:command:)`` wrote.
public struct MergeReport: Hashable, Sendable {
    /// Runs in the merged `runs.csv`, and how many of them finished.
    public var runs = 0
    public var finished = 0
    /// Runs recorded as failed in an input (kept, with their error).
    public var failed: [String] = []
    /// Runs of the plan that no input holds (only with `allowMissing`).
    public var missing: [String] = []
    /// Things to read: inputs that ran on different code or BLAS settings.
    public var notes: [String] = []
}

/// Joins result folders of one experiment written by several processes (`dpkit run --shard I/N`,
/// Slurm array tasks, or `--seed` subsets) into one folder, as if one process had run them all.
///
/// What it checks, each failure an ``OutputError`` that names the folders and runs:
/// - every input is a results folder (`manifest.json`, `runs.csv`, `epochs.csv`) that no process
///   is writing (its ``OutputLock`` is taken before it is verified and read); a folder whose
///   manifest records `output.signed_by_key_id` must be signed by that key, every signature
///   must verify, and all signed inputs must share one key;
/// - all inputs come from the same experiment config (`experiment_hash`: the same file contents,
///   hence the same run ids and config hashes) and have the same columns;
/// - no run is in two inputs (two shards with the same index, or a folder given twice);
/// - every run of the plan is there (shards record the plan's run ids; `--seed` subsets count
///   the runs their manifests plan) and every seed of the config was run by some input, unless
///   `allowMissing`.
///
/// What it writes into `output` (a new folder): `runs.csv` and `epochs.csv` with the rows in plan
/// order, `manifest.json` with every run entry and its privacy ledger as recorded, every config
/// of the inputs' `config_history`, the union of their seeds and warnings (less the subsets'
/// `--seed` warnings), `output` as the merge signed it, and `merged_from` (each input's folder,
/// shard, seeds, MPI ranks, commit and BLAS settings); the runs' models, metrics, audits and pictures are
/// copied. Checkpoints are not (a merged folder holds finished work). The inputs are only read
/// (and locked while they are).
public enum ResultMerge {
    /// One input folder, read.
    struct Input {
        var directory: URL
        var manifest: ConfigValue
        var runsHeader: [String]
        var runRows: [[String]]
        var epochsHeader: [String]
        var epochRows: [[String]]
        var shard: (index: Int, count: Int, plan: [String])?
    }

    /// Merges `inputs` into `output`; see the type's documentation.
    /// - Parameters:
    ///   - allowMissing: merge even when runs of the plan are in no input (they are named in the
    ///     report and the manifest's warnings).
    ///   - signWith: signs the merged folder (`signature.json`), as `output.sign_with` does.
    /// - Throws: ``OutputError`` for any failed check, or when `output` already holds results;
    ///   ``FileError`` when a file cannot be read or written.
    @discardableResult
    public static func merge(
        _ inputs: [URL], into output: URL, allowMissing: Bool = false, signWith: SigningKey? = nil,
        command: String = CommandLine.arguments.joined(separator: " ")
    ) throws -> MergeReport {
        guard !inputs.isEmpty else {
            throw OutputError(
                "give the result folders to merge: `dpkit merge DIR1 DIR2 ... --output DIR`", kind: .usage)
        }
        let paths = inputs.map { $0.standardizedFileURL.resolvingSymlinksInPath().path }
        let outPath = output.standardizedFileURL.resolvingSymlinksInPath().path
        var seen: Set<String> = []
        for p in paths {
            guard seen.insert(p).inserted else {
                throw OutputError("\(p) is given twice; give each folder once", kind: .usage)
            }
            if outPath == p || outPath.hasPrefix(p + "/") || p.hasPrefix(outPath + "/") {
                throw OutputError(
                    "the output folder \(outPath) and the input \(p) overlap; merge into a new folder beside them",
                    kind: .usage)
            }
        }
        // The inputs stay locked while they are read: a shard still running is named, not half-read.
        var locks: [OutputLock] = []
        defer { for lock in locks { lock.release() } }
        let holder = OutputLock.Holder.current(command: command)
        var read: [Input] = []
        var signers: [(folder: String, keyID: String)] = []
        for url in inputs {
            // Lock, verify, then read: what is read is what was verified.
            guard FileManager.default.fileExists(atPath: OutputFiles(directory: url).manifest.path) else {
                _ = try readInput(url) // names the missing manifest
                continue
            }
            locks.append(try OutputLock(directory: url, holder: holder))
            let signed = FileManager.default.fileExists(
                atPath: url.appendingPathComponent(FolderSignature.fileName).path)
            var signer: String?
            if signed {
                let verification: FolderSignature.Verification
                do { verification = try FolderSignature.verify(directory: url) } catch {
                    throw OutputError(
                        "\(url.path) is signed but its signature cannot be checked (\(plainDescription(of: error))); merging would pass altered results on. Find out what changed first",
                        kind: .usage)
                }
                guard verification.verifies else {
                    throw OutputError(
                        "\(url.path) is signed but its signature DOES NOT VERIFY (\(verification.report.joined(separator: "; "))); merging would pass altered results on. Find out what changed first",
                        kind: .usage)
                }
                signer = verification.keyID
            }
            let input = try readInput(url)
            let recorded = input.manifest["output"]?["signed_by_key_id"]?.stringValue
            if let recorded {
                guard let signer else {
                    throw OutputError(
                        "\(url.path) records output.sign_with (key \(recorded.prefix(16))) but has no \(FolderSignature.fileName): its signature was removed. Restore it, or rerun the shard",
                        kind: .usage)
                }
                guard signer == recorded else {
                    throw OutputError(
                        "\(url.path) is signed with key \(signer.prefix(16)), but its manifest records key \(recorded.prefix(16)); it was re-signed by someone else. Find out who first",
                        kind: .usage)
                }
            }
            if let signer { signers.append((url.path, signer)) }
            read.append(input)
        }
        if Set(signers.map(\.keyID)).count > 1 {
            throw OutputError(
                "the inputs are signed with different keys: "
                    + signers.map { "\($0.folder) (key \($0.keyID.prefix(16)))" }.joined(separator: ", ")
                    + "; merge only folders signed by one key",
                kind: .usage)
        }
        try checkSameExperiment(read)
        let plan = try planOrder(read)
        var report = MergeReport()

        // Runs: each in one input only.
        var owner: [String: Int] = [:]
        var conflicts: [String: [Int]] = [:]
        for (i, input) in read.enumerated() {
            for row in input.runRows {
                guard let id = row.first else { continue }
                if let first = owner[id] {
                    conflicts[id, default: [first]].append(i)
                } else {
                    owner[id] = i
                }
            }
        }
        if !conflicts.isEmpty {
            let lines = conflicts.keys.sorted().map { id in
                "\(id) in " + conflicts[id]!.map { read[$0].directory.path }.joined(separator: " and ")
            }
            throw OutputError(
                "\(conflicts.count) run(s) are in more than one input folder: \(lines.joined(separator: "; ")). Each run must come from one folder: were two shards run with the same --shard I/N, or a folder given twice?",
                kind: .usage)
        }
        // `--seed` subsets: each plans only its seeds' runs, so a subset never run would not show
        // up as missing runs; compare the seeds they ran with the config's.
        let ranSeeds = Array(
            Set(read.flatMap { $0.manifest["seeds"]?.listValue?.compactMap { $0.doubleValue.map { Int($0) } } ?? [] })
        ).sorted()
        let missingSeeds = configSeeds(read[0]).map { all in all.filter { !ranSeeds.contains($0) } } ?? []
        if !missingSeeds.isEmpty {
            let which = missingSeeds.map(String.init).joined(separator: ", ")
            guard allowMissing else {
                throw OutputError(
                    "seed(s) \(which) of the config are in no input folder (the inputs ran seeds \(ranSeeds.map(String.init).joined(separator: ", "))). Add the folder of `dpkit run CONFIG --seed \(missingSeeds[0]) ...`, or pass --allow-missing to merge what is there",
                    kind: .usage)
            }
            report.notes.append("missing from the merge (--allow-missing): seed(s) \(which)")
        }
        let missing = plan.ids.filter { owner[$0] == nil }
        if !missing.isEmpty {
            let detail = missingDetail(missing, plan: plan, inputs: read)
            guard allowMissing else {
                throw OutputError(
                    "\(missing.count) of the plan's \(plan.ids.count) runs are in no input folder: \(detail). Add the folders that hold them, finish them (`dpkit run CONFIG --shard I/N --resume --output DIR`), or pass --allow-missing to merge what is there",
                    kind: .usage)
            }
            report.missing = missing
            report.notes.append("missing from the merge (--allow-missing): \(detail)")
        }

        // Output folder: new, locked while written.
        try FileIO.createDirectory(output)
        let lock = try OutputLock(directory: output, holder: holder)
        defer { lock.release() }
        let files = OutputFiles(directory: output)
        for url in [files.runs, files.epochs, files.manifest]
        where FileManager.default.fileExists(atPath: url.path) {
            throw OutputError(
                "\(output.path) already holds results (\(url.lastPathComponent)); merge into a new folder",
                kind: .cannotCreateOutput)
        }

        // Rows in plan order (runs of earlier configs after the plan's, in input order).
        let order =
            plan.ids.filter { owner[$0] != nil }
            + read.flatMap { $0.runRows.compactMap(\.first) }
            .filter { !plan.ids.contains($0) }
        let header = read[0].runsHeader
        let statusColumn = header.firstIndex(of: "status")
        var runsText = CSV.line(header)
        var epochsText = CSV.line(read[0].epochsHeader)
        for id in order {
            let input = read[owner[id]!]
            let row = input.runRows.first { $0.first == id }!
            runsText += CSV.line(row)
            report.runs += 1
            if let c = statusColumn, c < row.count {
                if row[c] == "finished" { report.finished += 1 }
                if row[c] == "failed" { report.failed.append(id) }
            }
            // Epoch rows of runs without a runs.csv row (interrupted) are left out: they would be redone.
            for epochRow in input.epochRows where epochRow.first == id { epochsText += CSV.line(epochRow) }
        }
        try DurableFile.writeAtomically(runsText, to: files.runs)
        try DurableFile.writeAtomically(epochsText, to: files.epochs)
        for (i, input) in read.enumerated() {
            let ids = Set(order.filter { owner[$0] == i })
            try copyRunFiles(of: ids, from: input.directory, to: output)
        }
        let manifest = mergedManifest(
            read, order: order, owner: owner, seeds: ranSeeds, signer: signWith?.verificationKey.keyID, report: &report)
        try DurableFile.writeAtomically(manifest.jsonText(), to: files.manifest)
        if let key = signWith { try FolderSignature.sign(directory: output, key: key) }
        return report
    }

    // MARK: - Reading

    static func readInput(_ url: URL) throws -> Input {
        let files = OutputFiles(directory: url)
        guard let text = try FileIO.readText(files.manifest.path) else {
            throw OutputError(
                "\(url.path) is not a dpkit results folder: it has no manifest.json (give the --output folders of `dpkit run`)",
                kind: .usage)
        }
        let manifest: ConfigValue
        do { manifest = try ConfigValue(jsonData: Data(text.utf8)) } catch {
            throw OutputError("\(files.manifest.path) is not a JSON manifest (\(error)); it cannot be merged")
        }
        func table(_ file: URL) throws -> (header: [String], rows: [[String]]) {
            guard let text = try FileIO.readText(file.path) else {
                throw OutputError(
                    "\(url.path) has no \(file.lastPathComponent): did its `dpkit run` start? Run it (or leave the folder out)",
                    kind: .usage)
            }
            let all = CSV.parse(text).filter { $0 != [""] }
            let header = all.first ?? []
            // A kill mid-append leaves a partial last line; it is not a row.
            let rows = all.dropFirst().filter { $0.count == header.count }
            return (header, Array(rows))
        }
        let runs = try table(files.runs)
        let epochs = try table(files.epochs)
        var shard: (Int, Int, [String])?
        if let s = manifest["shard"], let i = s["index"]?.doubleValue, let n = s["count"]?.doubleValue,
            let ids = s["plan_run_ids"]?.listValue?.compactMap(\.stringValue)
        {
            shard = (Int(i), Int(n), ids)
        }
        return Input(
            directory: url, manifest: manifest, runsHeader: runs.header, runRows: runs.rows,
            epochsHeader: epochs.header, epochRows: epochs.rows, shard: shard)
    }

    /// The seeds of the config the input ran (`seeds:` or `seed:` of its config), nil when the
    /// manifest does not say.
    static func configSeeds(_ input: Input) -> [Int]? {
        guard let config = input.manifest["config"] else { return nil }
        if let list = config["seeds"]?.listValue { return list.compactMap { $0.doubleValue.map { Int($0) } } }
        if let seed = config["seed"]?.doubleValue { return [Int(seed)] }
        return nil
    }

    /// Same experiment config, same columns.
    static func checkSameExperiment(_ inputs: [Input]) throws {
        func describe(_ input: Input) -> String {
            "\(input.directory.path) (experiment_hash \(input.manifest["experiment_hash"]?.stringValue ?? "none"), config \(input.manifest["config_file"]?.stringValue ?? "?"))"
        }
        let first = inputs[0]
        let hash = first.manifest["experiment_hash"]
        for other in inputs.dropFirst() where other.manifest["experiment_hash"] != hash {
            throw OutputError(
                "\(describe(first)) and \(describe(other)) come from different experiment configs (another file, or the file edited between the runs), so their runs and config hashes differ; merge only folders of one config, or rerun the shard with the same file",
                kind: .usage)
        }
        for other in inputs.dropFirst() {
            for (name, a, b) in [
                ("runs.csv", first.runsHeader, other.runsHeader),
                ("epochs.csv", first.epochsHeader, other.epochsHeader),
            ] where a != b {
                throw OutputError(
                    "\(name) of \(first.directory.path) and of \(other.directory.path) have different columns; they were written by different dpkit versions. Rerun one with the other's version",
                    kind: .usage)
            }
        }
    }

    /// The runs the merge must hold, in plan order, and the shard each belongs to.
    struct Plan {
        var ids: [String]
        /// Shard count when the inputs are shards.
        var shardCount: Int?
    }

    static func planOrder(_ inputs: [Input]) throws -> Plan {
        let shards = inputs.compactMap(\.shard)
        if shards.isEmpty {
            // `--seed` subsets or whole runs: the runs each manifest planned.
            var ids: [String] = []
            for input in inputs {
                for entry in input.manifest["runs"]?.listValue ?? [] where entry["in_current_plan"] != .bool(false) {
                    if let id = entry["run_id"]?.stringValue, !ids.contains(id) { ids.append(id) }
                }
            }
            return Plan(ids: ids, shardCount: nil)
        }
        guard shards.count == inputs.count else {
            let plain = inputs.filter { $0.shard == nil }.map(\.directory.path)
            throw OutputError(
                "\(plain.joined(separator: ", ")) hold(s) a whole plan while the other inputs are shards (--shard I/N); merge the shards of one sharded run",
                kind: .usage)
        }
        let first = shards[0]
        var byIndex: [Int: String] = [:]
        for input in inputs {
            let s = input.shard!
            guard s.count == first.count, s.plan == first.plan else {
                throw OutputError(
                    "\(inputs[0].directory.path) is shard \(first.index)/\(first.count) and \(input.directory.path) is shard \(s.index)/\(s.count) of another split of the plan; merge the shards of one split (the same N, the same --seed selection)",
                    kind: .usage)
            }
            if let other = byIndex[s.index] {
                throw OutputError(
                    "\(other) and \(input.directory.path) are both shard \(s.index)/\(s.count): their runs overlap; give each shard's folder once",
                    kind: .usage)
            }
            byIndex[s.index] = input.directory.path
        }
        return Plan(ids: first.plan, shardCount: first.count)
    }

    /// `a, b (shard 1/2, no folder given)`: the missing runs, grouped by shard.
    static func missingDetail(_ missing: [String], plan: Plan, inputs: [Input]) -> String {
        guard let n = plan.shardCount else { return missing.joined(separator: ", ") }
        var byShard: [Int: [String]] = [:]
        for id in missing {
            let k = plan.ids.firstIndex(of: id)! % n
            byShard[k, default: []].append(id)
        }
        return byShard.keys.sorted().map { k in
            let folder = inputs.first { $0.shard?.index == k }
            let whose =
                folder.map { "shard \(k)/\(n) in \($0.directory.path), unfinished" }
                ?? "shard \(k)/\(n), whose folder was not given"
            return byShard[k]!.joined(separator: ", ") + " (\(whose))"
        }.joined(separator: "; ")
    }

    // MARK: - Writing

    /// Copies the files of `ids` under models/, metrics/, audits/ and pictures/.
    static func copyRunFiles(of ids: Set<String>, from input: URL, to output: URL) throws {
        let fm = FileManager.default
        for folder in ["models", "metrics", "audits", "pictures"] {
            let source = input.appendingPathComponent(folder)
            guard let names = try? fm.contentsOfDirectory(atPath: source.path) else { continue }
            for name in names.sorted() {
                // `<run_id>.safetensors`, `<run_id>.jsonl`, `<run_id>-mia-roc.csv`, `<run_id>-backdoor.svg`.
                guard ids.contains(where: { name.hasPrefix($0 + ".") || name.hasPrefix($0 + "-") }) else { continue }
                let target = output.appendingPathComponent(folder)
                try FileIO.createDirectory(target)
                guard let bytes = try FileIO.readBytes(source.appendingPathComponent(name).path) else { continue }
                try DurableFile.writeAtomically(Data(bytes), to: target.appendingPathComponent(name))
            }
        }
    }

    /// The first input's manifest with every input's run entries (ledgers as recorded), configs
    /// and warnings, without `shard`, with `merged_from`.
    static func mergedManifest(
        _ inputs: [Input], order: [String], owner: [String: Int], seeds: [Int], signer: String?,
        report: inout MergeReport
    ) -> ConfigValue {
        // Run entries: the one of the folder that holds the run's row; then runs no folder
        // finished (pending, interrupted), once each, as the first folder recorded them.
        var entries: [ConfigValue] = []
        var placed: Set<String> = []
        for id in order {
            let manifest = inputs[owner[id]!].manifest
            if let entry = manifest["runs"]?.listValue?.last(where: { $0["run_id"]?.stringValue == id }) {
                entries.append(entry)
                placed.insert(id)
            }
        }
        for input in inputs {
            for entry in input.manifest["runs"]?.listValue ?? [] {
                guard let id = entry["run_id"]?.stringValue, !placed.contains(id) else { continue }
                entries.append(entry)
                placed.insert(id)
            }
        }
        var configs: [ConfigValue] = []
        var warnings: [ConfigValue] = []
        for input in inputs {
            for c in input.manifest["config_history"]?.listValue ?? []
            where !configs.contains(where: { $0["experiment_hash"] == c["experiment_hash"] }) {
                configs.append(c)
            }
            for w in input.manifest["warnings"]?.listValue ?? [] where !warnings.contains(w) {
                // A subset's `--seed ...: only these seeds ... were run` holds for the merge only
                // when seeds are still missing; the merge's own note says which.
                if let text = w.stringValue, text.hasPrefix("--seed "), text.contains("only these seeds") { continue }
                warnings.append(w)
            }
        }
        for note in report.notes { warnings.append(.string(note)) }
        var sources: [ConfigValue] = []
        for input in inputs {
            let m = input.manifest
            sources.append(
                .map([
                    ("folder", .string(input.directory.standardizedFileURL.path)),
                    (
                        "shard",
                        m["shard"].map { s in .map([("index", s["index"] ?? .null), ("count", s["count"] ?? .null)]) }
                            ?? .null
                    ),
                    ("runs", .int(input.runRows.count)),
                    ("seeds", m["seeds"] ?? .null), ("mpi_ranks", m["mpi_ranks"] ?? .int(1)),
                    ("dpkit_version", m["dpkit_version"] ?? .null), ("git_commit", m["git_commit"] ?? .null),
                    ("blas_core", m["blas_core"] ?? .null), ("blas_threads", m["blas_threads"] ?? .null),
                ]))
        }
        for key in ["git_commit", "dpkit_version", "blas_core", "blas_threads"] {
            let values = Set(inputs.map { $0.manifest[key]?.displayText ?? "" })
            if values.count > 1 {
                let note =
                    "the inputs ran with different \(key) (\(values.sorted().joined(separator: ", "))): see merged_from; results of different code or BLAS settings may differ in the last digits"
                report.notes.append(note)
                warnings.append(.string(note))
            }
        }
        var manifest = inputs[0].manifest
        _ = manifest.setValue(.null, atPath: "shard")
        _ = manifest.setValue(.list(seeds.map(ConfigValue.int)), atPath: "seeds")
        _ = manifest.setValue(.null, atPath: "mpi_ranks")
        // What the merge signed (or not), not what the first input recorded.
        let encryptedFor = inputs[0].manifest["output"]?["encrypted_for_key_id"] ?? .null
        if signer != nil || encryptedFor != .null {
            _ = manifest.setValue(
                .map([
                    ("encrypted_for_key_id", encryptedFor),
                    ("signed_by_key_id", signer.map(ConfigValue.string) ?? .null),
                ]),
                atPath: "output")
        } else {
            _ = manifest.setValue(.null, atPath: "output")
        }
        _ = manifest.setValue(.list(warnings), atPath: "warnings")
        _ = manifest.setValue(.list(configs), atPath: "config_history")
        _ = manifest.setValue(.list(entries), atPath: "runs")
        _ = manifest.setValue(.list(sources), atPath: "merged_from")
        return manifest
    }
}
