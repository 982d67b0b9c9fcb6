import DPAuditing
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// What an audited run reports: the empirical lower bound of its one-run audit and the
/// membership-inference figures of its trained model (runs.csv, the manifest's `audit`).
public struct AuditSummary: Hashable, Sendable {
    public var empirical: EmpiricalEpsilon?
    public var canaryKind: String?
    public var miaAUC: Double?
    public var miaTPRAtFPR001: Double?
    public var miaTPRAtFPR0001: Double?
    public var miaBalancedAccuracy: Double?
    public var miaExamples: Int?
    /// `fpr,tpr` of the loss attack (written to `audits/<run_id>-mia-roc.csv`).
    public var rocCSV: String?
    /// The raw canary scores (higher: more likely planted), for multi-run audits.
    public var canaryScores: [Double] = []

    /// The manifest entry.
    var manifestValue: ConfigValue {
        func num(_ d: Double?) -> ConfigValue { d.map(ConfigValue.double) ?? .null }
        var entries: [(key: String, value: ConfigValue)] = []
        if let e = empirical {
            entries += [
                ("canaries", .string(canaryKind ?? "")), ("epsilon_lower_empirical", .double(e.epsilon)),
                ("delta", .double(e.delta)), ("confidence", .double(e.confidence)), ("method", .string(e.method)),
                ("trials", .int(e.trials)), ("selection", .string(e.selection)),
                ("counts", .map(e.counts.sorted { $0.key < $1.key }.map { ($0.key, .int($0.value)) })),
                ("statement", .string(e.statement)),
            ]
        }
        if let auc = miaAUC {
            entries.append(
                (
                    "membership_inference",
                    .map([
                        ("attack", .string("loss-threshold (Yeom et al. 2018)")),
                        ("members", .string("training examples (not canaries)")),
                        ("non_members", .string("test examples")), ("examples_each", .int(miaExamples ?? 0)),
                        ("auc", .double(auc)), ("tpr_at_fpr_0.01", num(miaTPRAtFPR001)),
                        ("tpr_at_fpr_0.001", num(miaTPRAtFPR0001)), ("balanced_accuracy", num(miaBalancedAccuracy)),
                    ])
                ))
        }
        return .map(entries)
    }
}

/// The audit of one run: canaries planted before training, scores read after it.
struct RunAudit {
    let config: AuditConfig
    let seed: UInt64
    private(set) var mislabelled: MislabelledCanaries?
    private(set) var dirac: DiracCanaries?
    /// Training examples `0..<nonCanaryCount` are not canaries (mislabelled canaries come last).
    private(set) var nonCanaryCount: Int

    /// Which canaries are planted; nil: each with probability 1/2 (a one-run audit).
    let inclusion: [Bool]?
    /// The run's own seed (the canaries' sampling in a multi-run audit).
    let runSeed: UInt64

    /// Plants mislabelled canaries in `train` (the audit's own random stream, from the seed).
    init(
        _ config: AuditConfig, train: inout Dataset, seed: UInt64, inclusion: [Bool]? = nil, runSeed: UInt64? = nil
    )
        throws
    {
        self.config = config
        self.seed = seed
        self.runSeed = runSeed ?? seed
        self.inclusion = inclusion
        nonCanaryCount = train.count
        if config.canaries == .mislabelled {
            let m = try MislabelledCanaries(count: config.count, from: train, seed: seed, included: inclusion)
            train = m.training
            nonCanaryCount = m.nonCanaryCount
            mislabelled = m
        }
    }

    /// Scales the canaries' inputs as the training inputs are scaled.
    mutating func apply(_ transform: InputTransform) {
        if var m = mislabelled {
            transform.apply(to: &m.canaries)
            mislabelled = m
        }
    }

    /// The training examples statistics may be fitted on: all but the left-out canaries.
    func trainedOn(_ train: Dataset) -> Dataset { mislabelled?.includedTraining ?? train }

    /// Leaves the excluded mislabelled canaries out of training, or attaches Dirac canaries.
    mutating func attach(to trainer: DPSGDTrainer, samplingProbability q: Double) throws {
        if let m = mislabelled { trainer.excludedExamples = m.excluded }
        guard config.canaries == .diracGradient else { return }
        var sigma = 0.0
        if let p = trainer.configuration.privacy, p.noiseMultiplier > 0 {
            sigma = try p.clipping.gradientNoiseMultiplier(accounted: p.noiseMultiplier)
        }
        let d = try DiracCanaries(
            count: config.count, parameterCounts: trainer.model.parameters.map(\.scalarCount), samplingProbability: q,
            seed: seed, unclippedNorm: config.unclippedCanaryNorm, included: inclusion,
            samplingSeed: inclusion == nil ? nil : runSeed, noiseMultiplier: sigma)
        trainer.auditor = d
        dirac = d
    }

    /// The bound and the attack on the trained model. `delta`: the run's (1e-5 for a run
    /// without one, so that non-private controls are audited at the same delta).
    func finish(model: Sequential, train: Dataset, test: Dataset, delta: Double?) throws -> AuditSummary {
        var s = AuditSummary()
        let d = delta ?? 1e-5
        var scores: [Double]?
        var included: [Bool] = []
        if let m = mislabelled {
            scores = m.scores(model: model)
            included = m.included
        } else if let g = dirac {
            scores = g.scores
            included = g.included
        }
        if let scores {
            s.canaryKind = config.canaries?.rawValue
            s.canaryScores = scores
            // One canary is one trial of a multi-run audit, bounded over many runs by the caller.
            if inclusion == nil {
                s.empirical = try OneRunAudit.audit(
                    scores: scores, included: included, delta: d, confidence: config.confidence)
            }
        }
        if config.membershipInference {
            let k = min(config.miaExamples, nonCanaryCount, test.count)
            var rng = PhiloxRandom(seed: seed, stream: 0xa0d19)
            func pick(_ n: Int) -> [Int] {
                var all = Array(0..<n)
                for i in 0..<k { all.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
                return Array(all.prefix(k))
            }
            let members = train.subset(pick(nonCanaryCount))
            let others = test.subset(pick(test.count))
            let roc = ROCCurve(
                memberScores: MembershipScore.loss(Evaluation.perExampleLosses(model: model, dataset: members)),
                nonMemberScores: MembershipScore.loss(Evaluation.perExampleLosses(model: model, dataset: others)))
            s.miaAUC = roc.auc
            s.miaTPRAtFPR001 = roc.tpr(atFPR: 0.01)
            s.miaTPRAtFPR0001 = roc.tpr(atFPR: 0.001)
            s.miaBalancedAccuracy = roc.balancedAccuracy
            s.miaExamples = k
            s.rocCSV = roc.csv
        }
        return s
    }
}
