import ArgumentParser
import DPBenchmarking
import DPData
import DPMPI
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
            fraction_of_gemm_peak, peak_rss_mb, ranks, physical_batch_size, compute_ms, waiting_ms, \
            exchange_ms, reduce_and_update_ms. Under `mpirun -np K` (a `make mpi` build) the step is \
            shared by K data-parallel ranks (chunks of --physical-batch-size) and rank 0 prints, with \
            the time per phase.
            """)

    enum Mode: String, ExpressibleByArgument, CaseIterable { case `private`, nonprivate }

    @Option(help: "logreg, mlp or cnn-tanh.") var workload: StepBenchmark.Workload = .mlp
    @Option(help: "private or nonprivate.") var mode: Mode = .private
    @Option(help: "Examples per step.") var batchSize = 256
    @Option(help: "Timed steps.") var steps = 20
    @Option(help: "Untimed warm-up steps.") var warmup = 3
    @Option(help: "BLAS threads (default: OpenBLAS's own choice, which respects OPENBLAS_NUM_THREADS).")
    var threads: Int?
    @Option(help: "Examples per physical chunk (default: the batch size); data-parallel ranks share the chunks.")
    var physicalBatchSize: Int?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        if let p = physicalBatchSize, p < 1 { throw ValidationError("--physical-batch-size \(p): must be >= 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be >= 1") }
        guard steps >= 1 else { throw ValidationError("--steps \(steps): must be >= 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup \(warmup): must be >= 0") }
        if let t = threads, t < 1 { throw ValidationError("--threads \(t): must be >= 1") }
    }

    func run() throws {
        if let t = threads { BLASRuntime.setThreadCount(t) }
        let communicator: (any Communicator)?
        do { communicator = try MPIRuntime.start() } catch { throw reportFailure(error) }
        defer { MPIRuntime.finish() }
        let r = try StepBenchmark.run(
            workload: workload, private: mode == .private, batchSize: batchSize,
            steps: steps, warmup: warmup, physicalBatchSize: physicalBatchSize, communicator: communicator)
        if let communicator, communicator.rank != 0 { return }
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
            print(
                String(
                    format:
                        "%d rank(s), chunks of %d (physical batch %d): per step %.3f ms compute, %.3f ms waiting, %.3f ms exchange, %.3f ms reduce+update",
                    r.ranks, r.chunkSize, r.physicalBatchSize, r.computeMs, r.waitingMs, r.exchangeMs,
                    r.reduceAndUpdateMs))
        }
    }
}

/// `dpkit bench-encryption`: envelope throughput and the cost of an encrypted Fashion-MNIST.
struct BenchEncryptionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-encryption",
        abstract: "Time envelope encryption and decryption of a large file, and loading an encrypted Fashion-MNIST.",
        discussion: """
            Writes a file of random bytes, encrypts and decrypts it as a stream from memory into a \
            sink that drops the bytes (the envelope code and the cipher alone), memory to memory, file to file (fsync included, so bounded by the disk) and file to memory (how \
            training reads a dataset), with 64 KiB chunks and one RSA-3072 recipient, and prints plaintext MB/s (10^6 \
            bytes) of wall time, the median of --repeats runs, warm page cache. The code is \
            single-threaded; pin it to one core with `taskset -c 0` for a 1-core figure. With the \
            Fashion-MNIST files present (`make data`), also times loading them plain and encrypted. \
            JSON keys: size_bytes, chunk_bytes, repeats, encrypt_stream_mb_per_s, \
            decrypt_stream_mb_per_s, encrypt_memory_mb_per_s, \
            decrypt_memory_mb_per_s, encrypt_memory_mb_per_cpu_s, decrypt_memory_mb_per_cpu_s, \
            encrypt_file_mb_per_s, \
            decrypt_file_mb_per_s, decrypt_to_memory_mb_per_s, fashion_mnist_plain_seconds, \
            fashion_mnist_encrypted_seconds.
            """)

    @Option(help: "Size of the test file in MB (10^6 bytes).") var sizeMb = 512
    @Option(help: "Timed runs of each measurement (the median is reported).") var repeats = 3
    @Option(help: "Folder for the temporary files (default: the system's temporary folder).") var directory: String?
    @Option(help: "Fashion-MNIST folder to time (default: the Debian package's, when installed; `none` to skip).")
    var fashionMnist: String?
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard sizeMb >= 1, sizeMb <= 100_000 else { throw ValidationError("--size-mb \(sizeMb): give 1 to 100000") }
        guard repeats >= 1 else { throw ValidationError("--repeats \(repeats): must be >= 1") }
    }

    func run() throws {
        var fashion = fashionMnist ?? FashionMNIST.defaultDirectory
        if fashion == "none" || (fashionMnist == nil && !FileManager.default.fileExists(atPath: fashion)) {
            fashion = ""
        }
        let r: EncryptionBenchmark.Result
        do {
            r = try EncryptionBenchmark.run(
                sizeBytes: sizeMb * 1_000_000, repeats: repeats,
                directory: directory.map { URL(fileURLWithPath: $0) } ?? FileManager.default.temporaryDirectory,
                fashionMNIST: fashion.isEmpty ? nil : fashion)
        } catch {
            throw reportFailure(error)
        }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
            return
        }
        print(
            "envelope, \(r.sizeBytes / 1_000_000) MB file, \(r.chunkBytes / 1024) KiB chunks, median of \(r.repeats):")
        print(
            String(
                format: "  encrypt stream           %8.0f MB/s (from memory into a sink that drops it)",
                r.encryptStreamMBps))
        print(String(format: "  decrypt stream           %8.0f MB/s", r.decryptStreamMBps))
        print(
            String(
                format: "  encrypt memory -> memory %8.0f MB/s (%.0f MB per CPU second)", r.encryptMemoryMBps,
                r.encryptMemoryMBPerCPUSecond))
        print(
            String(
                format: "  decrypt memory -> memory %8.0f MB/s (%.0f MB per CPU second)", r.decryptMemoryMBps,
                r.decryptMemoryMBPerCPUSecond))
        print(
            String(
                format: "  encrypt file -> file    %8.0f MB/s (fsync included: bounded by the disk)", r.encryptFileMBps)
        )
        print(String(format: "  decrypt file -> file    %8.0f MB/s", r.decryptFileMBps))
        print(String(format: "  decrypt file -> memory  %8.0f MB/s", r.decryptToMemoryMBps))
        if let p = r.fashionMNISTPlainSeconds, let e = r.fashionMNISTEncryptedSeconds {
            print(
                String(
                    format: "Fashion-MNIST load: plain %.3f s, encrypted %.3f s, encryption adds %.3f s", p, e, e - p))
        }
    }
}
