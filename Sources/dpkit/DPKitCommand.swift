import ArgumentParser
import DPExperiments
import DPTensor
import Foundation

/// Writes to standard error.
enum FileHandleStderr {
    static func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}

/// Prints an error in words (the path and the reason for file errors) to standard error and
/// returns the exit status documented in `dpkit --help`.
func reportFailure(_ error: Error, hint: String? = nil) -> ExitCode {
    let status = ExitStatus(for: error)
    // "Nothing to show yet" is a state, not a fault: said plainly.
    let prefix = (error as? OutputError)?.kind == .nothingToShow ? "" : "error: "
    FileHandleStderr.write(prefix + plainDescription(of: error) + (hint.map { "; \($0)" } ?? "") + "\n")
    return ExitCode(status.rawValue)
}

extension ParsableCommand {
    /// Ends the process with a usage error found after parsing (a `--seed` or `--shard` that the
    /// config read later does not allow): the message and this subcommand's usage line, as
    /// ArgumentParser prints its own, and exit status 64. (A `ValidationError` thrown from
    /// `run()` would print the root command's usage instead.)
    static func exitWithUsageError(_ message: String) -> Never {
        let usage = DPKitCommand.usageString(for: Self.self)
        let name = usage.split(separator: " ").prefix { !$0.hasPrefix("<") && !$0.hasPrefix("[") }
            .joined(separator: " ")
        FileHandleStderr.write("Error: \(message)\nUsage: \(usage)\n  See '\(name) --help' for more information.\n")
        Foundation.exit(ExitCode.validationFailure.rawValue)
    }
}

/// Runs `body`; a failure is reported as ``reportFailure(_:hint:)`` does and becomes its exit code.
func reportingFailure<T>(hint: String? = nil, _ body: () throws -> T) throws -> T {
    do { return try body() } catch { throw reportFailure(error, hint: hint) }
}

struct DPKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpkit",
        abstract: "DPKit: differentially private training, accounting and experiments.",
        discussion: ExitStatus.documentation,
        version: "DPKit \(DPKitVersion.string)",
        subcommands: [
            InfoCommand.self, RunCommand.self, MergeCommand.self, SlurmCommand.self, TableCommand.self,
            PlotCommand.self, EvaluateCommand.self,
            EpsilonCommand.self, CalibrateCommand.self, BenchCommand.self, AuditCommand.self,
            InvertCommand.self,
            KeysCommand.self, EncryptCommand.self,
            DecryptCommand.self, SignCommand.self, VerifyCommand.self, BenchEncryptionCommand.self,
            AttackCommand.self, FeaturesCommand.self, FederatedCommand.self,
        ])
}

struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Show the BLAS kernel, threads and a kernel self-check.")

    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let check = KernelSelfCheck.run()
        if json {
            let obj: [String: Any] = [
                "blas_core": BLASRuntime.coreName, "threads": BLASRuntime.threadCount,
                "kernel_chosen_by_dpkit": BLASRuntime.kernelChosenByDPKit ?? NSNull(),
                "self_check_passed": check.passed, "sgemm_gflops": check.gflops,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("DPKit \(DPKitVersion.string)")
            print("BLAS: \(BLASRuntime.summary)")
            print(
                "Kernel self-check: \(check.passed ? "passed" : "FAILED") (max relative error \(check.maxRelativeError) against a naive matmul)"
            )
            print(String(format: "sgemm 512x512x512: %.1f GFLOP/s", check.gflops))
        }
        if !check.passed { throw ExitCode.failure }
    }
}
