import ArgumentParser
import DPTensor
import Foundation

/// Writes to standard error.
enum FileHandleStderr {
    static func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}

struct DPKitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpkit",
        abstract: "DPKit: differentially private training, accounting and experiments.",
        version: "DPKit \(DPKitVersion.string)",
        subcommands: [InfoCommand.self, RunCommand.self, TableCommand.self, PlotCommand.self, EvaluateCommand.self,
                      EpsilonCommand.self, CalibrateCommand.self, BenchCommand.self])
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
            print("Kernel self-check: \(check.passed ? "passed" : "FAILED") (max relative error \(check.maxRelativeError) against a naive matmul)")
            print(String(format: "sgemm 512x512x512: %.1f GFLOP/s", check.gflops))
        }
        if !check.passed { throw ExitCode.failure }
    }
}
