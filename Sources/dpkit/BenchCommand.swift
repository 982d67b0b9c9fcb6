import ArgumentParser
import DPBenchmarking
import DPTensor
import DPTraining
import Foundation

extension StepBenchmark.Workload: ExpressibleByArgument {}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time DP-SGD or ordinary training steps of a workload on synthetic data.",
        discussion: """
            Runs warm-up steps, then N timed steps, and prints the median milliseconds per step, \
            samples per second, the model GFLOP/s against the sgemm peak measured on the spot, \
            peak resident memory, the BLAS core and thread count. Batches have exactly the given \
            size (fixed-size sampling). JSON keys: workload, mode, batch_size, steps, threads, \
            blas_core, ms_per_step, samples_per_second, achieved_gflops, gemm_peak_gflops, \
            fraction_of_gemm_peak, peak_rss_mb.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable { case `private`, nonprivate }

    @Option(help: "logreg, mlp or cnn-tanh.") var workload: StepBenchmark.Workload = .mlp
    @Option(help: "private or nonprivate.") var mode: Mode = .private
    @Option(help: "Examples per step.") var batchSize = 256
    @Option(help: "Timed steps.") var steps = 20
    @Option(help: "Untimed warm-up steps.") var warmup = 3
    @Option(help: "BLAS threads (default: OpenBLAS's own choice, which respects OPENBLAS_NUM_THREADS).")
    var threads: Int?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be >= 1") }
        guard steps >= 1 else { throw ValidationError("--steps \(steps): must be >= 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup \(warmup): must be >= 0") }
        if let t = threads, t < 1 { throw ValidationError("--threads \(t): must be >= 1") }
    }

    func run() throws {
        if let t = threads { BLASRuntime.setThreadCount(t) }
        let r = try StepBenchmark.run(
            workload: workload, private: mode == .private, batchSize: batchSize,
            steps: steps, warmup: warmup)
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print("workload \(r.workload), \(r.mode), batch \(r.batchSize), \(r.steps) steps; \(BLASRuntime.summary)")
            print(String(format: "median %.3f ms/step, %.0f samples/s", r.msPerStep, r.samplesPerSecond))
            print(
                String(
                    format: "model %.1f GFLOP/s = %.0f%% of the sgemm peak %.1f GFLOP/s (1024^3, %d thread(s))",
                    r.achievedGflops, 100 * r.fractionOfGemmPeak, r.gemmPeakGflops, r.threads))
            print(String(format: "peak resident memory %.1f MiB", r.peakRssMB))
        }
    }
}
