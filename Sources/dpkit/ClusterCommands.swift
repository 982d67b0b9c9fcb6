import ArgumentParser
import DPCrypto
import DPExperiments
import Foundation

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the result folders of one experiment run in parts (--shard I/N, Slurm array tasks, --seed).",
        discussion: """
            The folders must come from the same config file (same experiment hash, hence the same run \
            ids and config hashes); no run may be in two folders, and every run of the plan must be \
            in one (a missing shard's runs are named), unless --allow-missing. The output is a new \
            folder with runs.csv and epochs.csv in plan order, one manifest.json with every run's \
            privacy ledger, config and the folders it came from, and the runs' models and metrics. \
            The inputs are not changed.
            """)

    @Argument(help: "The result folders to merge (the --output folders of the shards).") var directories: [String]
    @Option(help: "The merged folder (new).") var output: String
    @Flag(help: "Merge even when runs of the plan are in no folder (they are named in the manifest's warnings).")
    var allowMissing = false
    @Option(help: "Sign the merged folder with this Ed25519 key (signing.key.pem), as output.sign_with does.")
    var signWith: String?

    func run() throws {
        let report = try reportingFailure {
            try ResultMerge.merge(
                directories.map { URL(fileURLWithPath: $0) }, into: URL(fileURLWithPath: output),
                allowMissing: allowMissing, signWith: try signWith.map(SigningKey.load))
        }
        print(
            "merged \(directories.count) folders into \(output): \(report.runs) runs (\(report.finished) finished"
                + (report.failed.isEmpty ? "" : ", failed: \(report.failed.joined(separator: ", "))") + ")")
        for note in report.notes { print("note: \(note)") }
    }
}

struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Write an sbatch job array that runs a config's sweep in shards, and a merge job that waits for it.",
        discussion: """
            Writes OUTPUT/array.sbatch (task I runs `dpkit run CONFIG --shard slurm --resume` into \
            OUTPUT/shards/I), OUTPUT/merge.sbatch (`dpkit merge` of the shards into OUTPUT/results, \
            submitted with --dependency=afterok on the array) and OUTPUT/submit.sh, which submits both. \
            Nothing is submitted unless --submit is given.
            """)

    @Argument(help: "The experiment config (YAML).") var config: String
    @Option(help: "Folder for the scripts, the shards' folders, the logs and the merged results.") var output: String
    @Option(help: "Array tasks (default: one per run).") var tasks: Int?
    @Option(help: "Slurm partition (sbatch --partition).") var partition: String?
    @Option(help: "Time limit of each task (sbatch --time, such as 02:00:00).") var time: String?
    @Option(help: "CPUs per task; OpenBLAS uses as many threads.") var cpus = 1
    @Option(name: .customLong("seed"), help: "Run only the runs with this seed (repeatable), as `dpkit run --seed`.")
    var onlySeeds: [Int] = []
    @Option(help: "The dpkit binary the jobs run (default: this one).") var dpkit: String?
    @Flag(help: "Submit the jobs (runs submit.sh) after writing them.") var submit = false

    func validate() throws {
        if let tasks, tasks < 1 { throw ValidationError("--tasks \(tasks) must be at least 1") }
        if cpus < 1 { throw ValidationError("--cpus \(cpus) must be at least 1") }
    }

    func run() throws {
        var experiment = try reportingFailure { try ExperimentConfig.load(file: config) }
        do { try experiment.restrict(toSeeds: onlySeeds, source: config) } catch let error as UnknownSeedsError {
            throw ValidationError("--seed \(error)")
        }
        guard experiment.kind == .training, !experiment.runs.isEmpty else {
            throw ValidationError("\(config) has no training runs to spread over a job array")
        }
        let runs = experiment.runs.count
        if let tasks, tasks > runs {
            throw ValidationError(
                "--tasks \(tasks) is more than the \(runs) runs of \(config): \(tasks - runs) tasks would have nothing to do; use at most \(runs)"
            )
        }
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ path: String) -> String {
            URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: cwd + "/")).standardizedFileURL.path
        }
        let binary =
            dpkit.map(absolute)
            ?? absolute(
                Bundle.main.executableURL?.path ?? CommandLine.arguments[0])
        let job = SlurmJob(
            dpkit: binary, config: absolute(config), output: absolute(output), experimentName: experiment.name,
            tasks: tasks ?? runs, partition: partition, time: time, cpus: cpus, seeds: onlySeeds,
            workingDirectory: cwd, signWith: experiment.output.signWith.map(absolute))
        try reportingFailure { try job.write() }
        print("wrote \(job.output)/array.sbatch (\(job.tasks) tasks for \(runs) runs), merge.sbatch and submit.sh")
        print("submit: \(job.output)/submit.sh   (merged results: \(job.resultsFolder))")
        if submit {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/bash")
            p.arguments = [job.output + "/submit.sh"]
            do { try p.run() } catch {
                throw reportFailure(
                    OutputError("cannot run \(job.output)/submit.sh: \(plainDescription(of: error))", kind: .usage))
            }
            p.waitUntilExit()
            if p.terminationStatus != 0 {
                FileHandleStderr.write(
                    "error: submit.sh failed (status \(p.terminationStatus)); is sbatch on PATH and slurmctld up (`sinfo`)?\n"
                )
                throw ExitCode(ExitStatus.failure.rawValue)
            }
        }
    }
}
