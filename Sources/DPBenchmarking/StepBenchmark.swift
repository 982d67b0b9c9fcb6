import DPData
import DPLayers
import DPSchema
import DPTensor
import DPTraining
import Foundation

/// `dpkit bench`: times DP-SGD (or ordinary) steps of a named workload on synthetic data of its
/// shape, with no harness build. Fixed-size batches are used so that every timed step
/// processes exactly the batch size (Poisson batch sizes vary from step to step).
///
/// The benchmark suites (`Benchmarks/DPSGD`) build their trainers with
/// ``makeTrainer(workload:private:batchSize:seed:)`` too, so both time the same step.
public enum StepBenchmark {
    public enum Workload: String, CaseIterable, Sendable {
        case logreg, mlp
        case cnnTanh = "cnn-tanh"

        public var modelName: String {
            switch self {
            case .logreg: return "logistic-regression"
            case .mlp: return "mlp"
            case .cnnTanh: return "cnn-tanh"
            }
        }

        /// The model's parameters, given in full so that the timed model stays fixed whatever
        /// the registry's defaults are: the `mlp` workload is one ReLU layer of 1000 units.
        public var modelParameters: [String: ConfigValue] {
            self == .mlp ? ["hidden_sizes": .list([.int(1000)]), "activation": .string("relu")] : [:]
        }

        /// One example's shape.
        public var exampleShape: Shape { self == .cnnTanh ? [1, 28, 28] : [784] }

        /// Multiply-adds of one example's forward pass, per layer with parameters, in order.
        public var layerMultiplyAdds: [Int] {
            switch self {
            case .logreg: return [784 * 10]
            case .mlp: return [784 * 1000, 1000 * 10]
            // conv1: 14x14 outputs x (1x8x8) x 16; conv2: 5x5 x (16x4x4) x 32; fc 512x32 and 32x10.
            case .cnnTanh: return [196 * 64 * 16, 25 * 256 * 32, 512 * 32, 32 * 10]
            }
        }

        /// Floating-point operations of one example's training step: forward (2 per
        /// multiply-add) and weight gradient (2) for every layer, input gradient (2) for all but
        /// the first layer with parameters, whose input gradient the trainer skips.
        public var trainingFlopsPerExample: Double {
            layerMultiplyAdds.enumerated().reduce(0) { $0 + Double($1.element) * ($1.offset == 0 ? 4 : 6) }
        }
    }

    public struct Result: Codable, Sendable {
        public var workload: String
        public var mode: String
        public var batchSize: Int
        public var steps: Int
        public var threads: Int
        public var blasCore: String
        public var msPerStep: Double
        public var samplesPerSecond: Double
        /// Training FLOPs (``Workload/trainingFlopsPerExample``) per second achieved.
        public var achievedGflops: Double
        /// sgemm GFLOP/s measured on the spot (1024^3) at the same thread count.
        public var gemmPeakGflops: Double
        public var fractionOfGemmPeak: Double
        public var peakRssMB: Double
        /// Data-parallel ranks (`mpirun -np K dpkit bench`) and the physical chunk size.
        public var ranks = 1
        public var physicalBatchSize: Int
        /// The examples per chunk the trainer processes (``DPTraining/DPSGDTrainer/chunkSize``):
        /// the physical batch size, or fewer so that a chunk stays in cache.
        public var chunkSize = 0
        /// Mean milliseconds per timed step in each phase (``DPTraining/DataParallelTimings``):
        /// this rank's chunks; waiting for the slowest rank (ranks > 1); the exchange of the
        /// chunks' sums (all-to-all by segment, then all-gather of the summed segments); the
        /// ordered sum, noise, broadcast and optimizer step.
        public var computeMs = 0.0
        public var waitingMs = 0.0
        public var exchangeMs = 0.0
        public var reduceAndUpdateMs = 0.0

        enum CodingKeys: String, CodingKey {
            case ranks
            case physicalBatchSize = "physical_batch_size"
            case chunkSize = "chunk_size"
            case computeMs = "compute_ms"
            case waitingMs = "waiting_ms"
            case exchangeMs = "exchange_ms"
            case reduceAndUpdateMs = "reduce_and_update_ms"
            case workload, mode, steps, threads
            case batchSize = "batch_size"
            case blasCore = "blas_core"
            case msPerStep = "ms_per_step"
            case samplesPerSecond = "samples_per_second"
            case achievedGflops = "achieved_gflops"
            case gemmPeakGflops = "gemm_peak_gflops"
            case fractionOfGemmPeak = "fraction_of_gemm_peak"
            case peakRssMB = "peak_rss_mb"
        }
    }

    /// Runs `warmup` untimed steps, then `steps` timed ones; reports the median.
    /// `physicalBatchSize`: the chunk size (default: the batch size, one chunk); `communicator`:
    /// the ranks that share each step (data parallelism), which then also time their waiting.
    public static func run(
        workload: Workload, private isPrivate: Bool, batchSize: Int, steps: Int,
        warmup: Int = 3, seed: UInt64 = 1, physicalBatchSize: Int? = nil, communicator: (any Communicator)? = nil
    ) throws -> Result {
        let trainer = try makeTrainer(
            workload: workload, private: isPrivate, batchSize: batchSize, seed: seed,
            physicalBatchSize: physicalBatchSize)
        if let communicator {
            trainer.communicator = communicator
            trainer.measuresWaiting = communicator.size > 1
        }
        for _ in 0..<warmup { try trainer.trainStep() }
        let before = trainer.timings
        var times: [Double] = []
        for _ in 0..<steps {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try trainer.trainStep()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        times.sort()
        let median = times.isEmpty ? .nan : times[times.count / 2]
        let flops = workload.trainingFlopsPerExample * Double(batchSize)
        let achieved = flops / (median * 1e6)
        let after = trainer.timings
        let peak = gemmPeak()
        var result = Result(
            workload: workload.rawValue, mode: isPrivate ? "private" : "nonprivate",
            batchSize: batchSize, steps: steps, threads: BLASRuntime.threadCount,
            blasCore: BLASRuntime.coreName, msPerStep: median,
            samplesPerSecond: Double(batchSize) / (median / 1000),
            achievedGflops: achieved, gemmPeakGflops: peak, fractionOfGemmPeak: achieved / peak,
            peakRssMB: peakResidentMegabytes(), physicalBatchSize: physicalBatchSize ?? batchSize)
        result.ranks = communicator?.size ?? 1
        result.chunkSize = trainer.chunkSize
        let perStep = 1000 / Double(max(1, steps))
        result.computeMs = (after.compute - before.compute) * perStep
        result.waitingMs = (after.waiting - before.waiting) * perStep
        result.exchangeMs = (after.exchange - before.exchange) * perStep
        result.reduceAndUpdateMs = (after.reduceAndUpdate - before.reduceAndUpdate) * perStep
        return result
    }

    /// The trainer that ``run(workload:private:batchSize:steps:warmup:seed:)`` times: the
    /// workload's model on `max(4 * batchSize, 1024)` synthetic examples of its shape, SGD
    /// (learning rate 0.01), fixed-size batches of `batchSize`, and, if `isPrivate`, noise
    /// multiplier 1, clipping norm 1 (flat clipping), delta 1e-5.
    public static func makeTrainer(
        workload: Workload, private isPrivate: Bool, batchSize: Int,
        seed: UInt64 = 1, physicalBatchSize: Int? = nil
    ) throws -> DPSGDTrainer {
        let n = max(batchSize * 4, 1024)
        var rng = PhiloxRandom(seed: seed, stream: 99)
        let x = Tensor<Float>(uniform: workload.exampleShape.prepending(n), in: 0...1, using: &rng)
        let labels = (0..<n).map { _ in Int(rng.next32() % 10) }
        let data = Dataset(name: "bench-\(workload.rawValue)", features: x, labels: labels, classCount: 10)
        let model = try makeModel(workload: workload, seed: seed)
        let privacy =
            isPrivate
            ? PrivacySettings(noiseMultiplier: 1.0, clippingNorm: 1.0, delta: 1e-5) : nil
        return try DPSGDTrainer(
            model: model, optimizer: SGD(learningRate: 0.01), data: data,
            configuration: TrainerConfiguration(
                sampling: .fixedSize, expectedBatchSize: batchSize,
                maxPhysicalBatchSize: physicalBatchSize ?? batchSize, privacy: privacy, seed: seed))
    }

    /// The workload's model, from the model registry with ``Workload/modelParameters``, for 10 classes.
    public static func makeModel(workload: Workload, seed: UInt64 = 1) throws -> Sequential {
        try ModelBuilder.build(
            model: workload.modelName, input: ModelInput(exampleShape: workload.exampleShape, classes: 10),
            parameters: workload.modelParameters, seed: seed)
    }

    /// sgemm GFLOP/s on 1024^3, best of 5 (``KernelSelfCheck/sgemmGFLOPS(size:repetitions:)``).
    public static func gemmPeak(size s: Int = 1024) -> Double { KernelSelfCheck.sgemmGFLOPS(size: s) }

    /// The process's peak resident set size (getrusage), in MiB.
    public static func peakResidentMegabytes() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
