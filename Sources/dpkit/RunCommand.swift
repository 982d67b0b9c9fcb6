import ArgumentParser
import DPCrypto
import DPExperiments
import DPMPI
import DPTensor
import DPTraining
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract:
            "Run an experiment config: print the plan, train every run, write epochs.csv, runs.csv and manifest.json.",
        discussion: "A `kind: accounting` config writes accounting.csv instead (no training).")

    @Argument(help: "The experiment config (YAML).") var config: String
    @Option(help: "Output directory (default runs/<config name>).") var output: String?
    @Flag(help: "Skip the runs already finished in the output directory and redo only unfinished ones.") var resume =
        false
    @Option(
        name: .customLong("seed"),
        help:
            "Run only the runs with this seed (repeatable); the config's other seeds are left out and the manifest records it."
    )
    var onlySeeds: [Int] = []
    @Option(
        help:
            "The private key (recipient.key.pem) that reads back checkpoints encrypted for output.encrypt_for on --resume (default: a dataset.decryption_key that is that key)."
    )
    var decryptionKey: String?
    @Option(
        help: ArgumentHelp(
            "Run only shard I of N of the plan's runs (I from 0; run k goes to shard k mod N), or `slurm`: the shard of this Slurm array task (SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT). Join the shards' folders with `dpkit merge`.",
            valueName: "I/N|slurm"))
    var shard: String?

    func run() throws {
        // Under `mpirun -np K` (a `make mpi` build): data-parallel training on K ranks.
        let communicator: (any Communicator)?
        do { communicator = try MPIRuntime.start() } catch { throw reportFailure(error) }
        defer { MPIRuntime.finish() }
        if let communicator, communicator.size > 1 {
            try runDataParallel(communicator)
            return
        }
        var experiment: ExperimentConfig
        do { experiment = try ExperimentConfig.load(file: config) } catch {
            throw reportFailure(error)
        }
        // Bad --seed or --shard values are usage errors of `dpkit run` (its usage line, exit 64),
        // found only once the config is read.
        do { try experiment.restrict(toSeeds: onlySeeds, source: config) } catch let error as UnknownSeedsError {
            Self.exitWithUsageError("--seed \(error)")
        }
        do { try restrictToShard(&experiment) } catch let error as ValidationError {
            Self.exitWithUsageError(error.message)
        }
        let out = URL(fileURLWithPath: output ?? "runs/\(experiment.name)")
        print("DPKit \(DPKitVersion.string); \(BLASRuntime.summary)")
        var started = false
        do {
            if experiment.kind == .accounting, let accounting = experiment.accounting {
                _ = try runAccounting(accounting, outputDirectory: out, executor: AccountantExecutor())
                return
            }
            let env = RunEnvironment(
                dpkitVersion: DPKitVersion.string, gitCommit: Self.gitCommit(),
                blasCore: BLASRuntime.coreName, blasThreads: String(BLASRuntime.threadCount))
            let runner = ExperimentRunner(
                config: experiment, outputDirectory: out, executor: TrainingExecutor(),
                resume: resume, environment: env)
            runner.decryptionKey = try decryptionKey.map(DecryptionKey.load)
            // Progress within an epoch: one redrawn line on a terminal, a plain line every 30 s otherwise.
            if isatty(STDERR_FILENO) != 0 {
                runner.status = { FileHandleStderr.write("\r\u{1B}[K" + $0) }
                runner.log = { line in
                    FileHandleStderr.write("\r\u{1B}[K")
                    print(line)
                }
            } else {
                runner.status = { print($0) }
                runner.statusInterval = 30
            }
            Self.installHaltHook(runner)
            started = true
            let report = try runner.run()
            if !report.failed.isEmpty {
                FileHandleStderr.write(
                    "error: \(report.failed.count) run(s) failed (\(report.failed.joined(separator: ", "))); their errors are in \(out.path)/runs.csv, the other results are kept. Fix the cause and rerun with --resume to redo only those.\n"
                )
                throw ExitCode(ExitStatus.failure.rawValue)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            // Rows are appended durably as runs finish: an I/O error loses none of them.
            let keep =
                started && ExitStatus(for: error) == .ioError
                ? "results written before this error are kept in \(out.path); fix the cause and rerun with --resume"
                : nil
            throw reportFailure(error, hint: keep)
        }
    }

    /// For tests of recovery after a kill: with DPKIT_HALT_AFTER_EPOCH=N, the process writes
    /// the file DPKIT_HALT_MARKER once a run's epoch-N checkpoint is on disk and then waits
    /// to be killed, so a test kills it at a known point instead of racing the clock.
    static func installHaltHook(_ runner: ExperimentRunner) {
        let variables = ProcessInfo.processInfo.environment
        if let n = variables["DPKIT_HALT_AFTER_EPOCH"].flatMap(Int.init), let marker = variables["DPKIT_HALT_MARKER"] {
            runner.afterCheckpoint = { _, epoch in
                guard epoch == n else { return }
                _ = FileManager.default.createFile(atPath: marker, contents: Data("\(epoch)\n".utf8))
                while true { pause() }
            }
        }
    }

    /// Keeps the runs of `--shard`.
    func restrictToShard(_ experiment: inout ExperimentConfig) throws {
        guard let shard else { return }
        do {
            let selection =
                shard == "slurm"
                ? try ShardSelection(slurmEnvironment: ProcessInfo.processInfo.environment)
                : try ShardSelection(parsing: shard)
            experiment.restrict(to: selection)
        } catch let error as ShardError {
            throw ValidationError("--shard: \(error)")
        }
    }

    /// `mpirun -np K dpkit run CONFIG`: rank 0 runs the experiment and writes every file, the
    /// other ranks train each run with it (``DataParallelRun``). Any failure ends every rank.
    func runDataParallel(_ communicator: any Communicator) throws {
        let rank = communicator.rank
        func fail(_ error: Error) -> Never {
            _ = reportFailure(error, hint: "rank \(rank) of \(communicator.size); stopping every rank")
            communicator.abort(code: ExitStatus(for: error).rawValue)
        }
        var experiment: ExperimentConfig
        do {
            experiment = try ExperimentConfig.load(file: config)
            do { try experiment.restrict(toSeeds: onlySeeds, source: config) } catch let error as UnknownSeedsError {
                throw ValidationError("--seed \(error)")
            }
            try restrictToShard(&experiment)
            guard experiment.kind == .training else {
                throw OutputError(
                    "\(config) is a `kind: \(experiment.kind.rawValue)` config: nothing to train on \(communicator.size) ranks; run it without mpirun",
                    kind: .usage)
            }
            let unsupported = DataParallelRun.unsupportedSettings(experiment)
            guard unsupported.isEmpty else {
                throw OutputError(
                    "data-parallel training on \(communicator.size) ranks does not support "
                        + unsupported.joined(separator: "; ")
                        + "; run this config on one process (without mpirun), or leave those runs out",
                    kind: .usage)
            }
        } catch { fail(error) }
        let out = URL(fileURLWithPath: output ?? "runs/\(experiment.name)")
        var executor = TrainingExecutor()
        executor.communicator = communicator
        let key: DecryptionKey?
        do { key = try decryptionKey.map(DecryptionKey.load) } catch { fail(error) }
        guard rank == 0 else {
            DataParallelRun.follow(
                config: experiment, outputDirectory: out, executor: executor, decryptionKey: key,
                communicator: communicator)
            return
        }
        print(
            "DPKit \(DPKitVersion.string); \(BLASRuntime.summary); data-parallel on \(communicator.size) MPI ranks (\(MPIRuntime.libraryVersion ?? "MPI"))"
        )
        let leader = DataParallelRun.Leader(base: executor, communicator: communicator)
        let env = RunEnvironment(
            dpkitVersion: DPKitVersion.string, gitCommit: Self.gitCommit(), blasCore: BLASRuntime.coreName,
            blasThreads: String(BLASRuntime.threadCount), ranks: communicator.size)
        let runner = ExperimentRunner(
            config: experiment, outputDirectory: out, executor: leader, resume: resume, environment: env)
        runner.decryptionKey = key
        runner.status = { print($0) }
        runner.statusInterval = 30
        Self.installHaltHook(runner)
        let report: ExperimentReport
        do {
            report = try runner.run()
            try leader.finish()
        } catch { fail(error) }
        if !report.failed.isEmpty {
            FileHandleStderr.write("error: \(report.failed.count) run(s) failed; see \(out.path)/runs.csv\n")
            throw ExitCode(ExitStatus.failure.rawValue)
        }
    }

    /// The commit of the source tree, when it is a git checkout (nil otherwise).
    static func gitCommit() -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git", "rev-parse", "HEAD"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let s = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return s.isEmpty ? nil : s
    }
}
