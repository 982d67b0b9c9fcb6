import ArgumentParser
import DPExperiments
import DPTensor
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an experiment config: print the plan, train every run, write epochs.csv, runs.csv and manifest.json.",
        discussion: "A `kind: accounting` config writes accounting.csv instead (no training).")

    @Argument(help: "The experiment config (YAML).") var config: String
    @Option(help: "Output directory (default runs/<config name>).") var output: String?
    @Flag(help: "Skip the runs already finished in the output directory and redo only unfinished ones.") var resume = false

    func run() throws {
        let experiment: ExperimentConfig
        do { experiment = try ExperimentConfig.load(file: config) } catch {
            FileHandleStderr.write("error: \(error)\n")
            throw ExitCode.failure
        }
        let out = URL(fileURLWithPath: output ?? "runs/\(experiment.name)")
        print("DPKit \(DPKitVersion.string); \(BLASRuntime.summary)")
        do {
            if experiment.kind == .accounting, let accounting = experiment.accounting {
                _ = try runAccounting(accounting, outputDirectory: out, executor: AccountantExecutor())
                return
            }
            let env = RunEnvironment(dpkitVersion: DPKitVersion.string, gitCommit: Self.gitCommit(),
                                     blasCore: BLASRuntime.coreName, blasThreads: String(BLASRuntime.threadCount))
            let runner = ExperimentRunner(config: experiment, outputDirectory: out, executor: TrainingExecutor(),
                                          resume: resume, environment: env)
            _ = try runner.run()
        } catch {
            FileHandleStderr.write("error: \(error)\n")
            throw ExitCode.failure
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
