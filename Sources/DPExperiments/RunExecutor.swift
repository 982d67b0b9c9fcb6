import DPAccounting
import DPCrypto
import DPData
import DPLayers
import DPTraining
import Foundation

/// What an epsilon is about: every reported epsilon carries these.
public struct PrivacyStatement: Hashable, Sendable {
    /// `add-remove` or `replace-one` (its ``DPAccounting/NeighboringRelation/name`` in results
    /// files): epsilons of different relations are not comparable.
    public var neighboringRelation: NeighboringRelation
    /// What one neighbouring step changes: `example` (record-level DP) today.
    public var privacyUnit: String
    /// `seeded` or `secure`.
    public var randomness: RandomnessSource

    public init(neighboringRelation: NeighboringRelation, privacyUnit: String, randomness: RandomnessSource) {
        self.neighboringRelation = neighboringRelation
        self.privacyUnit = privacyUnit
        self.randomness = randomness
    }

    /// The sentence that says what the randomness means for the guarantee.
    public var randomnessStatement: String { randomness.statement }
}

/// What an executor predicts for a run before training: printed with the plan.
public struct RunPlan: Hashable, Sendable {
    /// What the run's epsilon is about; nil when no epsilon is reported.
    public var privacy: PrivacyStatement?
    /// sigma the run will use (calibrated from `target_epsilon` when that was given); nil when non-private.
    public var noiseMultiplier: Double?
    /// q = expected_batch_size / training-set size; nil when non-private.
    public var samplingProbability: Double?
    /// Optimizer steps the run will take.
    public var steps: Int
    public var stepsPerEpoch: Int
    /// epsilon at the end of the run, per accountant; nil when not computed or non-private.
    public var epsilonRDP: Double?
    public var epsilonPLDLower: Double?
    public var epsilonPLDUpper: Double?
    /// Anything the user should read before the run starts.
    public var notes: [String]
    /// Settings that make the run's epsilon misleading (``PrivacyHygiene``): printed as
    /// warnings with the plan and recorded in the manifest.
    public var warnings: [String]

    public init(
        noiseMultiplier: Double? = nil, samplingProbability: Double? = nil, steps: Int, stepsPerEpoch: Int,
        epsilonRDP: Double? = nil, epsilonPLDLower: Double? = nil, epsilonPLDUpper: Double? = nil, notes: [String] = [],
        warnings: [String] = []
    ) {
        self.noiseMultiplier = noiseMultiplier
        self.samplingProbability = samplingProbability
        self.steps = steps
        self.stepsPerEpoch = stepsPerEpoch
        self.epsilonRDP = epsilonRDP
        self.epsilonPLDLower = epsilonPLDLower
        self.epsilonPLDUpper = epsilonPLDUpper
        self.notes = notes
        self.warnings = warnings
    }
}

/// The figures of one epoch, reported by the executor through `progress`; one `epochs.csv` row.
public struct EpochRecord: Hashable, Sendable {
    /// From 1.
    public var epoch: Int
    /// Optimizer steps taken so far.
    public var step: Int
    public var trainLoss: Double?
    public var trainAccuracy: Double?
    /// nil in epochs without evaluation (`training.eval_every`).
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// epsilon spent so far, per accountant (nil when not computed; `.infinity` for sigma = 0).
    public var epsilonRDP: Double?
    public var epsilonPLDLower: Double?
    public var epsilonPLDUpper: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var samplingProbability: Double?
    /// The clipping norm in use (changes under adaptive clipping).
    public var clippingNorm: Double?
    /// Fraction of per-example gradients whose norm exceeded the clipping norm in this epoch.
    public var clippedFraction: Double?
    /// Seconds since the run started; nil lets the runner measure it.
    public var wallSeconds: Double?

    public init(
        epoch: Int, step: Int, trainLoss: Double? = nil, trainAccuracy: Double? = nil, testLoss: Double? = nil,
        testAccuracy: Double? = nil, epsilonRDP: Double? = nil, epsilonPLDLower: Double? = nil,
        epsilonPLDUpper: Double? = nil, delta: Double? = nil, noiseMultiplier: Double? = nil,
        samplingProbability: Double? = nil, clippingNorm: Double? = nil, clippedFraction: Double? = nil,
        wallSeconds: Double? = nil
    ) {
        self.epoch = epoch
        self.step = step
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
        self.epsilonRDP = epsilonRDP
        self.epsilonPLDLower = epsilonPLDLower
        self.epsilonPLDUpper = epsilonPLDUpper
        self.delta = delta
        self.noiseMultiplier = noiseMultiplier
        self.samplingProbability = samplingProbability
        self.clippingNorm = clippingNorm
        self.clippedFraction = clippedFraction
        self.wallSeconds = wallSeconds
    }

    /// The epsilon to report: PLD upper bound when present, else RDP.
    public var epsilon: Double? { epsilonPLDUpper ?? epsilonRDP }
}

/// The final figures of a finished run; one `runs.csv` row.
public struct RunSummary: Hashable, Sendable {
    /// What the run's epsilon is about; nil when no epsilon is reported.
    public var privacy: PrivacyStatement?
    public var epochs: Int
    public var steps: Int
    public var trainLoss: Double?
    public var trainAccuracy: Double?
    public var testLoss: Double?
    public var testAccuracy: Double?
    public var epsilonRDP: Double?
    public var epsilonPLDLower: Double?
    public var epsilonPLDUpper: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var samplingProbability: Double?
    public var clippingNorm: Double?
    /// The run's privacy ledger (the composed privacy events), stored as is in the manifest.
    public var privacyLedger: ConfigValue?
    /// The audit of an audited run (`audit:`).
    public var audit: AuditSummary?
    /// A federated run's partition (`federated:`): scheme, client sizes, label histograms and
    /// the malicious clients; stored as is in the manifest.
    public var partition: ConfigValue?
    /// What was public in a run with a `public` part (kind, sizes, classes, seed, a hash of the
    /// public indices, the pretraining, and the statement that the epsilon covers only the
    /// private part); stored as is in the manifest (`public`).
    public var publicPart: ConfigValue?
    /// Figures of the `evaluation:` and `poisoning:` sections, by runs.csv column
    /// (``OutputSchema/derivedColumns(_:)``).
    public var derivedMetrics: [String: Double] = [:]
    /// Pictures the run drew, by name (`backdoor`: triggered test examples), SVG; written to
    /// `pictures/<run_id>-<name>.svg`.
    public var pictures: [String: String] = [:]

    public init(
        epochs: Int, steps: Int, trainLoss: Double? = nil, trainAccuracy: Double? = nil, testLoss: Double? = nil,
        testAccuracy: Double? = nil, epsilonRDP: Double? = nil, epsilonPLDLower: Double? = nil,
        epsilonPLDUpper: Double? = nil, delta: Double? = nil, noiseMultiplier: Double? = nil,
        samplingProbability: Double? = nil, clippingNorm: Double? = nil, privacyLedger: ConfigValue? = nil
    ) {
        self.epochs = epochs
        self.steps = steps
        self.trainLoss = trainLoss
        self.trainAccuracy = trainAccuracy
        self.testLoss = testLoss
        self.testAccuracy = testAccuracy
        self.epsilonRDP = epsilonRDP
        self.epsilonPLDLower = epsilonPLDLower
        self.epsilonPLDUpper = epsilonPLDUpper
        self.delta = delta
        self.noiseMultiplier = noiseMultiplier
        self.samplingProbability = samplingProbability
        self.clippingNorm = clippingNorm
        self.privacyLedger = privacyLedger
    }

    /// The epsilon to report: PLD upper bound when present, else RDP.
    public var epsilon: Double? { epsilonPLDUpper ?? epsilonRDP }
}

/// Trains one run; implemented over DPTraining by the lead, and by a fake in the tests.
public protocol RunExecutor {
    /// Predicts sigma, q, steps and the final epsilon without training (for the printed plan).
    func plan(_ run: ResolvedRun) throws -> RunPlan

    /// Trains `run`, calling `progress` after every epoch (in order; the call throws when the
    /// record cannot be written, and the executor must then stop by rethrowing).
    /// - Throws: any error: the run is recorded as failed and the experiment goes on.
    func execute(_ run: ResolvedRun, progress: (EpochRecord) throws -> Void) throws -> RunSummary

    /// As ``execute(_:progress:)``, with a checkpoint to continue from and save to, and a place
    /// for the trained model (see ``RunContext``). Defaults to ignoring the context.
    func execute(_ run: ResolvedRun, context: RunContext, progress: (EpochRecord) throws -> Void) throws -> RunSummary
}

/// Where an executor keeps a run's state, writes its model and per-step metrics, and reports
/// progress within an epoch (all optional).
public struct RunContext {
    /// The run's checkpoint file: written atomically after every epoch; read to continue.
    public var checkpoint: URL?
    /// Where the trained model goes (safetensors).
    public var model: URL?
    /// The run's `metrics.jsonl`: one JSON object per step (see ``StepMetrics``), synced at the
    /// end of every epoch; on resume, lines after the checkpoint's step are dropped.
    public var metrics: URL?
    /// Called after every step (progress lines).
    public var onStep: ((StepMetrics) -> Void)?
    /// Called after the checkpoint of each epoch is on disk, with the epoch.
    public var onCheckpoint: ((Int) -> Void)?
    /// Edits the loaded data before anything is fitted or planned from it (shadow models of a
    /// membership-inference attack train on a subset; `dpkit audit`).
    var prepareData: ((inout TrainTestSplit) throws -> Void)?
    /// The canaries an `audit:` plants (multi-run audits: `[true]` or `[false]`); nil: random halves.
    var canaryInclusion: [Bool]?
    /// The seed that picks the canaries (a multi-run audit keeps them fixed across its runs).
    var canarySeed: UInt64?
    /// Called with the trained model and the data as it was scaled for training.
    var onTrained: ((Sequential, TrainTestSplit) throws -> Void)?
    /// Checkpoints and the model are written as envelopes for this key (`output.encrypt_for`).
    public var encryptFor: RecipientPublicKey?
    /// Opens an encrypted checkpoint to continue from.
    public var checkpointKey: DecryptionKey?
    /// False on data-parallel ranks other than 0: the checkpoint is only read (to continue
    /// from), nothing is written.
    var writesFiles = true

    public init(checkpoint: URL? = nil, model: URL? = nil, metrics: URL? = nil, onStep: ((StepMetrics) -> Void)? = nil)
    {
        self.checkpoint = checkpoint
        self.model = model
        self.metrics = metrics
        self.onStep = onStep
    }
}

/// One optimizer step's figures: a line of `metrics.jsonl` and the in-epoch progress.
public struct StepMetrics: Hashable, Sendable {
    /// Steps taken so far (1 after the first step).
    public var step: Int
    public var totalSteps: Int
    public var epoch: Int
    /// The realised batch size (non-private diagnostic).
    public var batchSize: Int
    /// Mean training loss over the batch (non-private diagnostic).
    public var loss: Double
    /// Fraction of the batch whose gradient was clipped; nil for non-private runs.
    public var clippedFraction: Double?
    /// The clipping norm after the step (changes under adaptive clipping); nil for non-private runs.
    public var clippingNorm: Double?
    /// Epsilon spent so far by the RDP accountant at the run's delta; nil when not private.
    public var epsilonRDP: Double?

    /// The `metrics.jsonl` line (keys sorted, no spaces). `secure`: the realised batch size is
    /// written as null, since in secure mode nothing about the sampling is recorded.
    public func jsonLine(secure: Bool = false) -> String {
        func number(_ x: Double?) -> String {
            guard let x else { return "null" }
            return x.isFinite ? csvNumber(x) : "\"\(csvNumber(x))\""
        }
        return
            "{\"batch_size\":\(secure ? "null" : String(batchSize)),\"clipped_fraction\":\(number(clippedFraction)),\"clipping_norm\":\(number(clippingNorm)),"
            + "\"epoch\":\(epoch),\"epsilon_rdp\":\(number(epsilonRDP)),\"loss\":\(number(loss)),\"step\":\(step)}"
    }
}

extension RunExecutor {
    /// Executors without checkpoints or model export ignore the context.
    public func execute(
        _ run: ResolvedRun, context: RunContext, progress: (EpochRecord) throws -> Void
    ) throws -> RunSummary {
        try execute(run, progress: progress)
    }
}
