import DPAccounting
import DPData
import DPLayers
import DPTensor
import Foundation

/// The privacy side of a training run.
public struct PrivacySettings: Codable, Hashable, Sendable {
    /// sigma: the accounted noise multiplier (noise standard deviation over the clipping norm).
    /// 0 gives a clip-only control run, which has no privacy guarantee.
    public var noiseMultiplier: Double
    /// C: the bound on each example's gradient norm.
    public var clippingNorm: Double
    public var clipping: ClippingMode
    public var delta: Double
    /// The budget: a step that would take epsilon (by the budget accountant) above it is refused.
    public var targetEpsilon: Double?
    /// Where batch sampling, the noise and dropout draw their randomness from.
    public var randomness: RandomnessSource

    public init(
        noiseMultiplier: Double, clippingNorm: Double, clipping: ClippingMode = .flat,
        delta: Double, targetEpsilon: Double? = nil, randomness: RandomnessSource = .seeded
    ) {
        self.noiseMultiplier = noiseMultiplier
        self.clippingNorm = clippingNorm
        self.clipping = clipping
        self.delta = delta
        self.targetEpsilon = targetEpsilon
        self.randomness = randomness
    }

    /// Checks the values; each error names the value and the valid range.
    public func validate() throws {
        guard noiseMultiplier >= 0, noiseMultiplier.isFinite else {
            throw TrainingError.invalidSetting(
                "noise multiplier \(noiseMultiplier) must be a finite number >= 0 (0 = clip-only control, no privacy)")
        }
        guard clippingNorm > 0 else {
            throw TrainingError.invalidSetting(
                "clipping norm \(clippingNorm) must be > 0 (use .infinity to disable clipping)")
        }
        guard delta > 0, delta < 1 else {
            throw TrainingError.invalidSetting("delta \(delta) must be in (0, 1); 1e-5 or 1/n^1.1 are usual")
        }
        if let e = targetEpsilon, !(e > 0) {
            throw TrainingError.invalidSetting("target epsilon \(e) must be > 0")
        }
        if case .automatic(let s) = clipping, !(s > 0) {
            throw TrainingError.invalidSetting("automatic clipping stability \(s) must be > 0 (Bu et al. use 0.01)")
        }
        if case .perLayer(let thresholds?) = clipping {
            let l2 = thresholds.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard thresholds.allSatisfy({ $0 > 0 && $0.isFinite }), abs(l2 - clippingNorm) <= 1e-9 * clippingNorm else {
                throw TrainingError.invalidSetting(
                    "per-layer thresholds \(thresholds) must be positive with l2 norm equal to the clipping norm \(clippingNorm) (it is \(l2)): the noise is calibrated to the clipping norm"
                )
            }
        }
        if case .adaptive(let quantile, let lr, let sb) = clipping {
            guard quantile > 0, quantile < 1, lr > 0, sb > 0 else {
                throw TrainingError.invalidSetting(
                    "adaptive clipping: target quantile \(quantile) must be in (0, 1), learning rate \(lr) > 0, count noise multiplier \(sb) > 0"
                )
            }
        }
    }
}

/// Everything a trainer needs besides model, data and optimizer.
public struct TrainerConfiguration: Sendable {
    public var sampling: SamplingScheme
    /// Poisson: q n. Fixed size: b.
    public var expectedBatchSize: Int
    /// The largest chunk processed at once (virtual batches): memory stays bounded while one
    /// logical batch still gets exactly one noise draw.
    public var maxPhysicalBatchSize: Int
    /// nil: ordinary (non-private) SGD with the same sampler and denominator.
    public var privacy: PrivacySettings?
    public var seed: UInt64

    public init(
        sampling: SamplingScheme = .poisson, expectedBatchSize: Int, maxPhysicalBatchSize: Int = 1024,
        privacy: PrivacySettings?, seed: UInt64
    ) {
        self.sampling = sampling
        self.expectedBatchSize = expectedBatchSize
        self.maxPhysicalBatchSize = maxPhysicalBatchSize
        self.privacy = privacy
        self.seed = seed
    }
}

/// What one logical step did (diagnostics; the loss and clipped fraction are not private).
public struct StepReport: Sendable {
    public var step: Int
    public var batchSize: Int
    public var lossSum: Double
    public var correct: Int
    /// Examples whose gradient was scaled down: under per-layer clipping, those with any layer
    /// clipped, so `clippedCount <= batchSize` in every mode.
    public var clippedCount: Int
    public var clippingNorm: Double
}

/// The random streams of a run, all derived from one seed (Philox streams).
public enum RandomStream: UInt64 {
    case initialisation = 0, sampling = 1, noise = 2, dropout = 3, data = 4
    /// Noise of differentially private input statistics (``PrivateStandardization``).
    case statistics = 5
    /// Noise of the differentially private PCA projection (``PrivatePCA``).
    case projection = 6
    /// The random public subset of the training set (`public.subset`).
    case publicSplit = 7
    /// The seed of the non-private pretraining on the public part.
    case pretraining = 8
}

/// Where the random choices that a privacy guarantee rests on come from: batch sampling (the
/// amplification by subsampling), the Gaussian noise (on gradients, on the adaptive-clipping
/// count, on input statistics) and dropout masks.
public enum RandomnessSource: String, Codable, Hashable, Sendable, CaseIterable {
    /// Philox streams derived from the run's seed: reproducible, for research. The guarantee
    /// holds only against an adversary who does not know the seed: the seed determines every
    /// batch and every noise draw, so publishing the seed (runs.csv, manifest.json) publishes
    /// the noise and the batches, and the reported epsilon no longer describes the release.
    case seeded
    /// The operating system's cryptographic generator (`getrandom`) for every one of those
    /// choices; nothing about them is derived from the seed or written anywhere. Runs are not
    /// reproducible. The seed still fixes initialisation and generated data, which the
    /// guarantee does not depend on.
    case secure

    /// One sentence for plans, manifests and tables.
    public var statement: String {
        switch self {
        case .seeded:
            return
                "seeded: batches and noise are a deterministic function of the recorded seed; for research and reproducibility only: the guarantee holds only against someone who does not know the seed, and publishing the manifest publishes the noise"
        case .secure:
            return
                "secure: batch sampling, noise and dropout come from the operating system's cryptographic generator and are recorded nowhere; the seed fixes only initialisation and generated data"
        }
    }
}

/// DP-SGD (Abadi et al. 2016) as named phases: sample, forward, one backward pass, per-example
/// norms, clip and accumulate, add noise, scale by the expected batch size, optimizer step,
/// and composition of the step's privacy event into the ledger.
public final class DPSGDTrainer {
    public let model: Sequential
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    /// The optimizer's learning rate when the trainer was made: the one authoritative rate.
    /// Step t uses `schedule.learningRate(base: baseLearningRate, step: t)`, which the trainer
    /// writes into `optimizer.learningRate` before each update.
    public let baseLearningRate: Double
    public let data: Dataset
    public let configuration: TrainerConfiguration
    public private(set) var sampler: BatchSampler
    public private(set) var noiseRandom: PhiloxRandom
    public private(set) var dropoutRandom: PhiloxRandom
    public private(set) var step = 0
    /// The current clipping norm (changes under adaptive clipping).
    public private(set) var clippingNorm: Double
    /// Every privacy event this run composed, in order. Never reset.
    public private(set) var ledger: PrivacyLedger

    let loss = SoftmaxCrossEntropy()
    var indices: [Int] = []
    /// Examples per chunk: the physical batch cap, or fewer so that a chunk's tensors stay in
    /// cache (``chunkSize(model:exampleShape:maxPhysicalBatchSize:)``).
    public let chunkSize: Int
    /// The trainer's own model and chunk buffers.
    let mainWorker: ChunkWorker
    /// Replicas of the model for chunks processed on other threads (built on first use).
    var replicaWorkers: [ChunkWorker] = []
    /// The threads that processed the last step's chunks (tests).
    var lastChunkWorkers = 0
    /// Why the model cannot be replicated for parallel chunks (nil: not tried, or it can).
    var replicaFailure: String?
    private var secureRandom: SystemRandom?
    /// Steps the budget still allows (nil: no budget).
    public private(set) var stepsRemaining: Int?
    /// A white-box audit that adds canary gradients to each step and reads what the step
    /// releases (``GradientAuditor``); nil in ordinary training.
    public var auditor: GradientAuditor?
    /// Examples of `data` this run leaves out (`true`: never trained on). The sampler still
    /// draws every index with probability q = B / data.count and the step drops the left-out
    /// ones, which is exactly Poisson sampling of the remaining examples at that q: q, the steps
    /// and the accounting do not depend on which examples are left out. A one-run audit leaves
    /// out its excluded canaries this way, so that nothing but the trained model carries their
    /// inclusion bits. Poisson sampling only.
    public var excludedExamples: [Bool]? {
        didSet {
            precondition(
                excludedExamples == nil
                    || (excludedExamples!.count == data.count && configuration.sampling == .poisson),
                "excludedExamples needs one flag per example and Poisson sampling")
        }
    }
    /// Adversarial training: replaces each example of a batch by an adversarial copy before the
    /// gradient is taken (``InputPerturbation``); nil in ordinary training.
    public var inputPerturbation: InputPerturbation?
    /// The accountant that enforces the budget.
    public let budgetAccountant: AccountantKind
    /// The ranks this trainer shares each step with (data parallelism; see ``trainStep()``).
    /// Every rank builds the same trainer (same model, data and seed); set before the first step.
    public var communicator: any Communicator = SingleProcess() { didSet { ranksAgreed = false } }
    /// The ranks compared their state (``verifyRanksAgree()``) since the communicator was set
    /// or a checkpoint restored.
    var ranksAgreed = false
    /// Seconds per phase of the steps taken so far (data parallelism and benchmarks).
    public private(set) var timings = DataParallelTimings()
    /// Put a barrier before each step's gather, so that ``timings`` tells waiting for the
    /// slowest rank from the exchange itself (one more collective per step; benchmarks only).
    public var measuresWaiting = false
    /// Each chunk's clipped sum (parameters flattened, cut into one segment per rank) as sent
    /// and received, this rank's segment of the step's sum, the whole sum, and the chunks' figures.
    var chunkSums: [Float] = []
    private var receivedSums: [Float] = []
    private var flatGradient: [Float] = []
    private var segmentSum: [Float] = []
    private var stepSum: [Float] = []
    var chunkFigures: [Double] = []
    private var gatheredFigures: [Double] = []

    /// Makes a trainer. The learning rate is the optimizer's (`SGD(learningRate:)`,
    /// `Adam(learningRate:)`); `schedule` scales it step by step.
    ///
    /// On a generic (slow) OpenBLAS kernel, the first trainer of the process prints a one-time
    /// warning with the fix (see `BLASRuntime.check()` in DPTensor).
    /// - Throws: ``TrainingError/invalidSetting(_:)`` for invalid settings, or if the privacy
    ///   budget (`targetEpsilon`) allows no step at all given `ledger`.
    public init(
        model: Sequential, optimizer: Optimizer,
        schedule: LearningRateSchedule = .constant, data: Dataset,
        configuration: TrainerConfiguration, ledger: PrivacyLedger = PrivacyLedger(),
        budgetAccountant: AccountantKind = .rdp
    ) throws {
        guard data.count > 0 else { throw TrainingError.invalidSetting("the training set is empty") }
        guard configuration.expectedBatchSize >= 1, configuration.expectedBatchSize <= data.count else {
            throw TrainingError.invalidSetting(
                "expected batch size \(configuration.expectedBatchSize) must be in 1...\(data.count) (the training set size)"
            )
        }
        guard configuration.maxPhysicalBatchSize >= 1 else {
            throw TrainingError.invalidSetting(
                "max physical batch size \(configuration.maxPhysicalBatchSize) must be >= 1")
        }
        try configuration.privacy?.validate()
        if case .perLayer(let thresholds?)? = configuration.privacy?.clipping,
            thresholds.count != model.trainableLayers.count
        {
            throw TrainingError.invalidSetting(
                "\(thresholds.count) per-layer thresholds for a model with \(model.trainableLayers.count) trainable layers; give one per layer with parameters"
            )
        }
        let outputs = model.outputShape(forExampleShape: data.exampleShape)
        guard outputs.array == [data.classCount] else {
            throw TrainingError.invalidSetting(
                "the model gives \(outputs.array) outputs per example, but the data has \(data.classCount) classes: the last layer must be linear with \(data.classCount) outputs"
            )
        }
        self.model = model
        // The step discards the gradient w.r.t. the data: let the first layer skip it.
        model.needsInputGradient = false
        self.optimizer = optimizer
        self.baseLearningRate = optimizer.learningRate
        self.schedule = schedule
        self.data = data
        self.configuration = configuration
        let root = PhiloxRandom(seed: configuration.seed)
        let secure = configuration.privacy?.randomness == .secure
        self.sampler = BatchSampler(
            scheme: configuration.sampling, datasetSize: data.count,
            expectedBatchSize: configuration.expectedBatchSize,
            rng: root.split(stream: RandomStream.sampling.rawValue),
            randomness: secure ? .secure : .seeded)
        self.noiseRandom = root.split(stream: RandomStream.noise.rawValue)
        self.dropoutRandom = root.split(stream: RandomStream.dropout.rawValue)
        self.clippingNorm = configuration.privacy?.clippingNorm ?? .infinity
        self.ledger = ledger
        self.chunkSize = Self.chunkSize(
            model: model, exampleShape: data.exampleShape, maxPhysicalBatchSize: configuration.maxPhysicalBatchSize)
        self.mainWorker = ChunkWorker(model: model, batchShape: data.batchShape(0))
        self.secureRandom = secure ? SystemRandom() : nil
        self.budgetAccountant = budgetAccountant
        try recomputeBudget()
        if stepsRemaining == 0, let p = configuration.privacy, let target = p.targetEpsilon {
            let spent = try PrivacyBudget.epsilon(ledger: ledger, delta: p.delta, accountant: budgetAccountant)
            var oneStep = ledger
            try oneStep.record(stepEvent)
            let next = try PrivacyBudget.epsilon(ledger: oneStep, delta: p.delta, accountant: budgetAccountant)
            throw TrainingError.invalidSetting(
                "target epsilon \(target) allows no step: the ledger is at epsilon \(spent) and one step (noise multiplier \(p.noiseMultiplier), sampling probability \(sampler.samplingProbability)) takes it to \(next) (\(budgetAccountant.rawValue), delta \(p.delta)); raise the target epsilon or the noise multiplier, or lower the batch size"
            )
        }
        BLASRuntime.warnOnceIfSlowKernel()
    }

    /// The learning rate used to be given twice (here and to the optimizer) and the trainer's
    /// silently won. It is now the optimizer's alone.
    @available(
        *, unavailable,
        message: "pass the learning rate to the optimizer only, e.g. SGD(learningRate:); the schedule scales it"
    )
    public convenience init(
        model: Sequential, optimizer: Optimizer, learningRate: Double,
        schedule: LearningRateSchedule = .constant, data: Dataset,
        configuration: TrainerConfiguration, ledger: PrivacyLedger = PrivacyLedger(),
        budgetAccountant: AccountantKind = .rdp
    ) throws {
        fatalError("unavailable")
    }

    /// The steps left before `targetEpsilon` (by ``budgetAccountant``), given the ledger.
    func recomputeBudget() throws {
        guard let p = configuration.privacy, let target = p.targetEpsilon else {
            stepsRemaining = nil
            return
        }
        guard p.noiseMultiplier > 0 else {
            throw TrainingError.invalidSetting(
                "a target epsilon of \(target) needs noise: noise multiplier 0 (clip-only) gives no privacy guarantee")
        }
        stepsRemaining = try PrivacyBudget.maximumAdditionalSteps(
            ledger: ledger, step: stepEvent, targetEpsilon: target, delta: p.delta, accountant: budgetAccountant)
    }

    /// The accounted noise multiplier (0 when non-private).
    public var noiseMultiplier: Double { configuration.privacy?.noiseMultiplier ?? 0 }

    /// True if the trainer adds noise and the ledger describes a DP guarantee.
    public var isPrivate: Bool { (configuration.privacy?.noiseMultiplier ?? 0) > 0 }

    /// The privacy event of one step of this trainer's sampler and noise.
    public var stepEvent: DpEvent { sampler.stepEvent(noiseMultiplier: noiseMultiplier) }

    /// The event each step composes into the ledger; nil when the trainer is not private.
    public var stepEventIfPrivate: DpEvent? { isPrivate ? stepEvent : nil }

    /// Takes one logical step.
    /// - Throws: ``TrainingError/budgetExhausted(step:epsilon:)`` before a step that would exceed
    ///   the budget (nothing changes), ``TrainingError/nonFiniteLoss(step:loss:)`` if the loss is NaN.
    @discardableResult
    public func trainStep() throws -> StepReport {
        if let remaining = stepsRemaining, remaining <= 0 {
            let eps = try PrivacyBudget.epsilon(
                ledger: ledger, delta: configuration.privacy!.delta,
                accountant: budgetAccountant)
            throw TrainingError.budgetExhausted(step: step, epsilon: eps)
        }
        if communicator.size > 1 {
            try checkDataParallelSupport()
            if !ranksAgreed {
                try verifyRanksAgree()
                ranksAgreed = true
            }
        }
        var clock = Date()
        func lap(_ phase: WritableKeyPath<DataParallelTimings, Double>) {
            let now = Date()
            timings[keyPath: phase] += now.timeIntervalSince(clock)
            clock = now
        }
        sampler.nextBatch(into: &indices)
        if let excluded = excludedExamples { indices.removeAll { excluded[$0] } }

        var report = StepReport(
            step: step, batchSize: indices.count, lossSum: 0, correct: 0,
            clippedCount: 0, clippingNorm: clippingNorm)
        // The logical batch is cut into chunks of `chunkSize` (at most `maxPhysicalBatchSize`);
        // chunk j is processed by rank j mod K (in its slot j / K), and its clipped sum S_j is
        // computed from zero (on one rank, chunks may run on several threads, each with a model
        // replica: see `processChunksInParallel`). The flattened parameters are cut into K segments of L; rank r receives segment r
        // of every chunk's sum (all-to-all) and adds them in chunk order, ((S_0 + S_1) + S_2) + ...,
        // then the segments are gathered: a reduce-scatter and an all-gather, as an allreduce,
        // but in a fixed order. One process does exactly the same (K = 1: one segment), so K ranks
        // give the same sum bit for bit, given the same BLAS kernel and thread count per process.
        let chunk = chunkSize
        let chunkCount = (indices.count + chunk - 1) / chunk
        let ranks = communicator.size, rank = communicator.rank
        let slots = (chunkCount + ranks - 1) / ranks
        let parameters = model.parameters
        let width = parameters.reduce(0) { $0 + $1.gradient.scalarCount }
        let segment = (width + ranks - 1) / ranks
        // Each chunk's figures end with the step, the batch size and the batch's checksum.
        let figuresWidth = ChunkStats.width + 3
        let batchIdentity = [Double(step), Double(indices.count), ranks > 1 ? batchChecksum(indices) : 0]
        if chunkSums.count != ranks * slots * segment {
            chunkSums = [Float](repeating: 0, count: ranks * slots * segment)
            receivedSums = [Float](repeating: 0, count: ranks * slots * segment)
        }
        if chunkFigures.count != slots * figuresWidth {
            chunkFigures = [Double](repeating: 0, count: slots * figuresWidth)
            gatheredFigures = [Double](repeating: 0, count: slots * figuresWidth * ranks)
        }
        // One process and one chunk: the gradients are the sum already (nothing to move).
        let direct = ranks == 1 && chunkCount <= 1
        let workerCount = ranks == 1 ? parallelChunkWorkers(chunkCount: chunkCount) : 1
        lastChunkWorkers = workerCount
        if workerCount > 1 {
            try processChunksInParallel(
                workers: workerCount, chunkCount: chunkCount, chunk: chunk, width: width,
                figuresWidth: figuresWidth, batchIdentity: batchIdentity)
        } else {
            for slot in 0..<slots {
                let j = slot * ranks + rank
                var stats = ChunkStats(lossSum: 0, correct: 0, clipped: 0, unclipped: 0)
                if j < chunkCount {
                    for p in parameters { p.gradient.fill(0) }
                    let start = j * chunk, end = min(indices.count, start + chunk)
                    mainWorker.start = start
                    mainWorker.indices.removeAll(keepingCapacity: true)
                    mainWorker.indices.append(contentsOf: indices[start..<end])
                    // Secure mode: each forward pass keys its dropout masks with fresh OS randomness.
                    let dropoutKey = secureRandom != nil ? PhiloxRandom(seed: secureRandom!.next()) : dropoutRandom
                    var context = ForwardContext(training: true, rng: dropoutKey)
                    do {
                        stats = try processChunk(mainWorker, context: &context)
                    } catch let error as TrainingError { stats.error = error }
                    if secureRandom == nil { dropoutRandom = context.rng }
                    if !direct { packSegments(parameters, slot: slot, slots: slots, segment: segment) }
                }
                chunkFigures.withUnsafeMutableBufferPointer { figures in
                    stats.write(into: figures, at: slot * figuresWidth, identity: batchIdentity)
                }
            }
        }
        if chunkCount == 0 { for p in parameters { p.gradient.fill(0) } }
        lap(\.compute)
        if ranks > 1 {
            if measuresWaiting {
                try communicator.barrier()
                lap(\.waiting)
            }
            try communicator.allToAll(chunkSums, into: &receivedSums)
            try communicator.allGather(chunkFigures, into: &gatheredFigures)
            lap(\.exchange)
        } else {
            swap(&chunkSums, &receivedSums)
            swap(&chunkFigures, &gatheredFigures)
        }
        // Every rank drew the same batch at the same step, or the sum would mix batches.
        for o in stride(from: ChunkStats.width, to: gatheredFigures.count, by: figuresWidth)
        where Array(gatheredFigures[o..<o + 3]) != batchIdentity {
            let r = o / (slots * figuresWidth)
            throw CommunicatorError(
                "rank \(r) of \(ranks) drew another batch than rank \(rank) at step \(step) (step \(Int(gatheredFigures[o])), \(Int(gatheredFigures[o + 1])) examples, checksum \(gatheredFigures[o + 2]) against step \(step), \(indices.count) examples, checksum \(batchIdentity[2])): the ranks hold different data or sampling state; nothing of this step was released"
            )
        }
        // Chunk j sits in rank j mod K's slot j / K.
        func slotIndex(_ j: Int) -> Int { (j % ranks) * slots + j / ranks }
        var unclippedCount = 0
        var layerClippedCount = 0
        for j in 0..<chunkCount {
            let stats = ChunkStats(gatheredFigures, at: slotIndex(j) * figuresWidth)
            // The first chunk's error, as one process would have stopped at it.
            if let error = stats.error { throw error }
            report.lossSum += stats.lossSum
            report.correct += stats.correct
            report.clippedCount += stats.clipped
            unclippedCount += stats.unclipped
            layerClippedCount += stats.layerClipped
        }
        if !direct && chunkCount > 0 {
            // This rank's segment: chunk j's piece came from rank j mod K, slot j / K.
            if segmentSum.count != segment { segmentSum = [Float](repeating: 0, count: segment) }
            if stepSum.count != ranks * segment { stepSum = [Float](repeating: 0, count: ranks * segment) }
            receivedSums.withUnsafeBufferPointer { all in
                segmentSum.withUnsafeMutableBufferPointer { sum in
                    let first = slotIndex(0) * segment
                    for i in 0..<segment { sum[i] = all[first + i] }
                    for j in 1..<max(1, chunkCount) {
                        let o = slotIndex(j) * segment
                        for i in 0..<segment { sum[i] += all[o + i] }
                    }
                }
            }
            if ranks > 1 {
                lap(\.reduceAndUpdate)
                try communicator.allGather(segmentSum, into: &stepSum)
                lap(\.exchange)
            } else {
                swap(&segmentSum, &stepSum)
            }
            unpack(stepSum, into: parameters)
        }

        // A NaN or infinite loss stops before anything is updated or composed.
        if !report.lossSum.isFinite {
            throw TrainingError.nonFiniteLoss(step: step, loss: report.lossSum / Double(max(1, report.batchSize)))
        }
        auditor?.addCanaryGradients(step: step, clippingNorm: clippingNorm, parameters: model.parameters)
        // The noise is drawn once, by rank 0, and the noised sum (with the next clipping norm)
        // goes to every rank: all ranks then take the same optimizer step.
        if let privacy = configuration.privacy, rank == 0 {
            if privacy.noiseMultiplier > 0 {
                let sigmaGrad = try privacy.clipping.gradientNoiseMultiplier(accounted: privacy.noiseMultiplier)
                addNoise(standardDeviation: Float(sigmaGrad * clippingNorm))
            }
            if case .adaptive(let quantile, let lr, let sb) = privacy.clipping {
                var noise: Double = 0
                if privacy.noiseMultiplier > 0 { noise = sb * normalSample() }
                clippingNorm = AdaptiveClipping.nextClippingNorm(
                    clippingNorm, unclipped: unclippedCount, batchSize: report.batchSize, noise: noise,
                    expectedBatchSize: sampler.expectedBatchSize, targetQuantile: quantile, learningRate: lr)
            }
        }
        if ranks > 1 {
            if stepSum.count < width { stepSum = [Float](repeating: 0, count: width) }
            if rank == 0 { pack(parameters, into: &stepSum, at: 0) }
            try communicator.broadcast(&stepSum, root: 0)
            if rank != 0 { unpack(stepSum, into: parameters) }
            if case .adaptive? = configuration.privacy?.clipping {
                var norm = [clippingNorm]
                try communicator.broadcast(&norm, root: 0)
                clippingNorm = norm[0]
            }
        }
        auditor?.observeReleasedGradient(step: step, parameters: model.parameters)
        let scale = Float(1 / sampler.expectedBatchSize)
        for p in model.parameters { p.gradient.scale(by: scale) }
        optimizer.learningRate = schedule.learningRate(base: baseLearningRate, step: step)
        optimizer.step(model.parameters)

        if isPrivate {
            try ledger.record(stepEvent)
            if let r = stepsRemaining { stepsRemaining = r - 1 }
        }
        step += 1
        lap(\.reduceAndUpdate)
        timings.steps += 1
        return report
    }

    /// What data parallelism does not support yet, refused by name (it would make the ranks
    /// disagree or change the result against one process).
    private func checkDataParallelSupport() throws {
        var refused: [String] = []
        if configuration.privacy?.randomness == .secure {
            refused.append(
                "secure randomness (each rank would draw its own batches from the OS generator; use randomness: seeded, or one process)"
            )
        }
        if model.layers.contains(where: { $0 is Dropout }) {
            refused.append("dropout (its mask stream runs through the chunks in order)")
        }
        if auditor != nil { refused.append("a white-box gradient audit") }
        if inputPerturbation != nil { refused.append("adversarial training") }
        guard refused.isEmpty else {
            throw TrainingError.invalidSetting(
                "data-parallel training on \(communicator.size) ranks does not support "
                    + refused.joined(separator: ", ") + "; run this config on one process")
        }
    }

    /// Copies the gradients into `chunkSums` for the all-to-all: segment q of the flattened
    /// gradient goes to `[q][slot]` (segments of `segment` floats, the last one padded).
    private func packSegments(_ parameters: [Parameter], slot: Int, slots: Int, segment: Int) {
        if communicator.size == 1 {
            // One segment: the flattened gradient is the slot.
            pack(parameters, into: &chunkSums, at: slot * segment)
            return
        }
        let width = parameters.reduce(0) { $0 + $1.gradient.scalarCount }
        if flatGradient.count != width { flatGradient = [Float](repeating: 0, count: width) }
        pack(parameters, into: &flatGradient, at: 0)
        let ranks = communicator.size
        flatGradient.withUnsafeBufferPointer { flat in
            chunkSums.withUnsafeMutableBufferPointer { out in
                for q in 0..<ranks {
                    let start = q * segment, end = min(width, start + segment)
                    let o = (q * slots + slot) * segment
                    if start < end { for i in start..<end { out[o + i - start] = flat[i] } }
                }
            }
        }
    }

    /// Copies every parameter's gradient into `buffer` from `offset`, in parameter order.
    private func pack(_ parameters: [Parameter], into buffer: inout [Float], at offset: Int) {
        var o = offset
        buffer.withUnsafeMutableBufferPointer { out in
            for p in parameters {
                p.gradient.withUnsafeBufferPointer { g in
                    (out.baseAddress! + o).update(from: g.baseAddress!, count: g.count)
                    o += g.count
                }
            }
        }
    }

    /// The inverse of ``pack(_:into:at:)`` from offset 0.
    private func unpack(_ buffer: [Float], into parameters: [Parameter]) {
        var o = 0
        buffer.withUnsafeBufferPointer { src in
            for p in parameters {
                p.gradient.withUnsafeMutableBufferPointer { g in
                    g.baseAddress!.update(from: src.baseAddress! + o, count: g.count)
                    o += g.count
                }
            }
        }
    }

    struct ChunkStats {
        var lossSum: Double, correct: Int
        /// Examples scaled down (per-layer: any layer), and examples left whole.
        var clipped: Int, unclipped: Int
        /// Per-layer clipping: (example, layer) pairs clipped; 0 otherwise.
        var layerClipped = 0
        /// A non-finite loss or gradient norm met in the chunk.
        var error: TrainingError?

        /// Doubles per chunk when gathered: the five figures, then the error (kind, step, example, value).
        static let width = 9

        init(lossSum: Double, correct: Int, clipped: Int, unclipped: Int, layerClipped: Int = 0) {
            self.lossSum = lossSum
            self.correct = correct
            self.clipped = clipped
            self.unclipped = unclipped
            self.layerClipped = layerClipped
        }

        /// Writes the figures at `o`, then the batch's identity (step, size, checksum).
        func write(into buffer: UnsafeMutableBufferPointer<Double>, at o: Int, identity: [Double]) {
            for (i, v) in identity.enumerated() { buffer[o + Self.width + i] = v }
            buffer[o] = lossSum
            buffer[o + 1] = Double(correct)
            buffer[o + 2] = Double(clipped)
            buffer[o + 3] = Double(unclipped)
            buffer[o + 4] = Double(layerClipped)
            switch error {
            case .nonFiniteLoss(let step, let loss)?:
                (buffer[o + 5], buffer[o + 6], buffer[o + 7], buffer[o + 8]) = (1, Double(step), 0, loss)
            case .nonFiniteGradientNorm(let step, let example, let norm)?:
                (buffer[o + 5], buffer[o + 6], buffer[o + 7], buffer[o + 8]) = (2, Double(step), Double(example), norm)
            case nil:
                (buffer[o + 5], buffer[o + 6], buffer[o + 7], buffer[o + 8]) = (0, 0, 0, 0)
            case let other?:
                // Only the two kinds above travel with their figures; any other error is named
                // here, on the rank that met it, and stops every rank (kind 3).
                FileHandle.standardError.write(Data("error in a chunk of this rank: \(other)\n".utf8))
                (buffer[o + 5], buffer[o + 6], buffer[o + 7], buffer[o + 8]) = (3, 0, 0, 0)
            }
        }

        init(_ buffer: [Double], at o: Int) {
            self.init(
                lossSum: buffer[o], correct: Int(buffer[o + 1]), clipped: Int(buffer[o + 2]),
                unclipped: Int(buffer[o + 3]), layerClipped: Int(buffer[o + 4]))
            let step = Int(buffer[o + 6]), example = Int(buffer[o + 7])
            switch buffer[o + 5] {
            case 1: error = .nonFiniteLoss(step: step, loss: buffer[o + 8])
            case 2: error = .nonFiniteGradientNorm(step: step, exampleInBatch: example, squaredNorm: buffer[o + 8])
            case 3:
                error = .invalidSetting(
                    "a chunk failed with an error that is neither a non-finite loss nor a non-finite gradient norm; the rank that met it printed it"
                )
            default: error = nil
            }
        }
    }

    /// Forward, backward, per-example norms, clipping and the clipped sum of the chunk
    /// `worker.indices`, on `worker`'s model, whose parameter gradients must be zero. Reads
    /// only the trainer's settings and state of this step, so workers may run it concurrently.
    func processChunk(_ worker: ChunkWorker, context: inout ForwardContext) throws -> ChunkStats {
        let m = worker.indices.count
        let model = worker.model
        swap(&worker.batch, &worker.spareBatch)
        if worker.batch.leadingCount != m { worker.batch = Tensor(zeros: data.batchShape(m)) }
        data.gather(indices: worker.indices, into: &worker.batch, labels: &worker.labels)
        // Adversarial training: each example replaced by its adversarial copy (a function of that
        // example and the current parameters only, so its clipped gradient is still its own).
        inputPerturbation?.perturb(&worker.batch, labels: worker.labels, model: model, step: step)
        let logits = model.forward(worker.batch, context: &context)
        let (losses, dLogits) = loss(logits: logits, labels: worker.labels)
        let lossSum = Double(losses.sum())
        let correct = Evaluation.correctCount(logits: logits, labels: worker.labels)
        _ = model.backward(dLogits)

        guard let privacy = configuration.privacy else {
            model.accumulateGradients(exampleWeights: nil)
            return ChunkStats(lossSum: lossSum, correct: correct, clipped: 0, unclipped: m)
        }
        if worker.norms.scalarCount != m {
            worker.norms = Tensor(zeros: [m])
            worker.weights = Tensor(zeros: [m])
        }
        if !lossSum.isFinite { throw TrainingError.nonFiniteLoss(step: step, loss: lossSum) }
        var clipped = 0, layerClipped = 0
        let c = Float(clippingNorm)
        switch privacy.clipping {
        case .flat, .adaptive:
            worker.norms.fill(0)
            model.addPerSampleGradientSquaredNorms(into: &worker.norms)
            try checkFinite(worker.norms, firstExample: worker.start)
            clipped = ClipFactors.flat(squaredNorms: worker.norms, clippingNorm: c, into: &worker.weights)
            model.accumulateGradients(exampleWeights: worker.weights)
        case .automatic(let stability):
            worker.norms.fill(0)
            model.addPerSampleGradientSquaredNorms(into: &worker.norms)
            try checkFinite(worker.norms, firstExample: worker.start)
            ClipFactors.automatic(
                squaredNorms: worker.norms, clippingNorm: c, stability: Float(stability), into: &worker.weights)
            clipped = m
            model.accumulateGradients(exampleWeights: worker.weights)
        case .perLayer(let thresholds):
            let layerNorms = model.perLayerSquaredNorms()
            let equalC = c / Float(layerNorms.count).squareRoot()
            if worker.perLayerWeights.count != layerNorms.count || worker.perLayerWeights.first?.scalarCount != m {
                worker.perLayerWeights = layerNorms.map { _ in Tensor<Float>(zeros: [m]) }
            }
            for (l, n) in layerNorms.enumerated() {
                try checkFinite(n, firstExample: worker.start)
                let perLayerC = thresholds.map { Float($0[l]) } ?? equalC
                layerClipped += ClipFactors.flat(
                    squaredNorms: n, clippingNorm: perLayerC, into: &worker.perLayerWeights[l])
            }
            clipped = ClipFactors.countAnyClipped(worker.perLayerWeights)
            model.accumulateGradients(perLayerWeights: worker.perLayerWeights)
        }
        return ChunkStats(
            lossSum: lossSum, correct: correct, clipped: clipped, unclipped: m - clipped,
            layerClipped: layerClipped)
    }

    /// A NaN or infinite per-example norm would get clip weight 1 (NaN) or poison the sum (inf):
    /// stop before anything is accumulated, updated or composed.
    /// `firstExample`: the chunk's first position in the batch (the error names the batch position).
    private func checkFinite(_ squaredNorms: Tensor<Float>, firstExample: Int) throws {
        let bad = squaredNorms.withUnsafeBufferPointer { n in n.firstIndex { !$0.isFinite } }
        if let i = bad {
            let value = squaredNorms.withUnsafeBufferPointer { Double($0[i]) }
            throw TrainingError.nonFiniteGradientNorm(step: step, exampleInBatch: firstExample + i, squaredNorm: value)
        }
    }

    private func addNoise(standardDeviation: Float) {
        for p in model.parameters {
            if secureRandom != nil {
                p.gradient.addGaussianNoise(standardDeviation: standardDeviation, using: &secureRandom!)
            } else {
                p.gradient.addGaussianNoise(standardDeviation: standardDeviation, using: &noiseRandom)
            }
        }
    }

    private func normalSample() -> Double {
        if secureRandom != nil { return secureRandom!.nextNormal() }
        return noiseRandom.nextNormalDouble()
    }

    func restoreState(
        step: Int, clippingNorm: Double, sampler rng: PhiloxRandom, noise: PhiloxRandom,
        dropout: PhiloxRandom, ledger: PrivacyLedger
    ) {
        self.step = step
        self.clippingNorm = clippingNorm
        self.sampler.rng = rng
        self.noiseRandom = noise
        self.dropoutRandom = dropout
        self.ledger = ledger
        ranksAgreed = false
    }

    // MARK: - Evaluation

    /// Mean loss and accuracy on `dataset`, in evaluation mode (no dropout), in chunks.
    public func evaluate(_ dataset: Dataset, batchSize: Int = 1024) -> (loss: Double, accuracy: Double) {
        Evaluation.evaluate(model: model, dataset: dataset, batchSize: batchSize)
    }
}

/// Loss and accuracy of a model on a dataset.
public enum Evaluation {
    public static func evaluate(
        model: Sequential, dataset: Dataset, batchSize: Int = 1024
    ) -> (loss: Double, accuracy: Double) {
        let n = dataset.count
        guard n > 0 else { return (.nan, .nan) }
        let loss = SoftmaxCrossEntropy()
        let perChunk = mapChunks(model: model, dataset: dataset, batchSize: batchSize) { logits, labels in
            (Double(loss.losses(logits: logits, labels: labels).sum()), correctCount(logits: logits, labels: labels))
        }
        var total = 0.0, correct = 0
        for (l, c) in perChunk {
            total += l
            correct += c
        }
        return (total / Double(n), Double(correct) / Double(n))
    }

    /// The cross-entropy loss of each example, in evaluation mode (the membership-inference
    /// attacks' raw signal).
    public static func perExampleLosses(model: Sequential, dataset: Dataset, batchSize: Int = 1024) -> [Double] {
        let loss = SoftmaxCrossEntropy()
        let perChunk = mapChunks(model: model, dataset: dataset, batchSize: batchSize) { logits, labels in
            loss.losses(logits: logits, labels: labels).withUnsafeBufferPointer { $0.map(Double.init) }
        }
        return Array(perChunk.joined())
    }

    /// Runs the model over `dataset` in order, in evaluation mode, in chunks of at most
    /// `batchSize` examples sized for the cache (``DPSGDTrainer/chunkSize(model:exampleShape:maxPhysicalBatchSize:)``),
    /// and returns `body(logits, labels)` of each chunk in chunk order. On several threads the
    /// chunks run in parallel on replicas of the model (rebuilt from its architecture, sharing
    /// its parameter values); `body` must then be safe to call
    /// concurrently. The split depends on the model and `batchSize` only, so the results have the
    /// same bits at every thread count.
    static func mapChunks<T>(
        model: Sequential, dataset: Dataset, batchSize: Int, _ body: (Tensor<Float>, [Int]) -> T
    ) -> [T] {
        let n = dataset.count
        if n == 0 { return [] }
        let chunk = DPSGDTrainer.chunkSize(
            model: model, exampleShape: dataset.exampleShape, maxPhysicalBatchSize: max(1, batchSize))
        let chunkCount = (n + chunk - 1) / chunk
        func run(_ m: Sequential, chunk j: Int, input x: inout Tensor<Float>, labels: inout [Int]) -> T {
            let start = j * chunk, end = min(n, start + chunk)
            if x.leadingCount != end - start { x = Tensor(zeros: dataset.batchShape(end - start)) }
            dataset.gather(indices: Array(start..<end), into: &x, labels: &labels)
            var context = ForwardContext(training: false)
            return body(m.forward(x, context: &context), labels)
        }
        let replicas = evaluationReplicas(of: model, count: min(BLASRuntime.threadCount, chunkCount) - 1)
        if replicas.isEmpty {
            var x = Tensor<Float>(zeros: dataset.batchShape(0))
            var labels: [Int] = []
            return (0..<chunkCount).map { run(model, chunk: $0, input: &x, labels: &labels) }
        }
        let models = [model] + replicas
        return ParallelBatch.map(chunkCount, workers: models.count) { w, j in
            var x = Tensor<Float>(zeros: dataset.batchShape(0))
            var labels: [Int] = []
            return run(models[w], chunk: j, input: &x, labels: &labels)
        }
    }

    /// `count` replicas of `model` sharing its parameter values (``Sequential/replica()``), or
    /// none if it cannot be replicated (then evaluation runs on one model).
    static func evaluationReplicas(of model: Sequential, count: Int) -> [Sequential] {
        var replicas: [Sequential] = []
        for _ in 0..<max(0, count) {
            guard let replica = model.replica() else { return [] }
            replicas.append(replica)
        }
        return replicas
    }

    /// How many rows of `logits` have their largest entry at the label.
    public static func correctCount(logits: Tensor<Float>, labels: [Int]) -> Int {
        var c = 0
        for (i, p) in logits.argmaxRows().enumerated() where p == labels[i] { c += 1 }
        return c
    }
}

extension Shape {
    /// This shape with `n` in front (a batch of examples of this shape).
    public func prepending(_ n: Int) -> Shape { Shape([n] + array) }
}
