import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// The kinds of canary a one-run audit plants.
public enum CanaryKind: String, Sendable, CaseIterable, Codable {
    /// White-box: gradients that are zero but for one coordinate (a Dirac vector), of norm equal
    /// to the clipping norm, added to the step as examples would be; the auditor reads the
    /// released noisy gradient of every step. The strongest canary for DP-SGD (Nasr et al. 2023;
    /// Steinke et al. 2023).
    case diracGradient = "dirac-gradient"
    /// Black-box: training examples given a wrong label; the auditor sees only the final model
    /// and scores each canary by its loss.
    case mislabelled
}

/// Which canaries a one-run audit plants: each of `count` canaries is included independently
/// with probability 1/2, from its own random stream (Philox stream `0xa0d17`), independent of
/// the training streams, so the inclusion bits are independent of everything but the seed.
struct CanaryDraw {
    var rng: PhiloxRandom
    init(seed: UInt64) { rng = PhiloxRandom(seed: seed, stream: 0xa0d17) }

    mutating func inclusion(count: Int) -> [Bool] { (0..<count).map { _ in rng.next() & 1 == 1 } }

    /// `count` distinct integers of `0..<range`, in random order (rejection; count <= range).
    mutating func distinct(_ count: Int, of range: Int) -> [Int] {
        precondition(count <= range, "cannot draw \(count) distinct values of \(range)")
        if 2 * count > range {
            var all = Array(0..<range)
            for i in 0..<count { all.swapAt(i, i + Int(rng.next() % UInt64(range - i))) }
            return Array(all.prefix(count))
        }
        var seen = Set<Int>()
        var out: [Int] = []
        while out.count < count {
            let v = Int(rng.next() % UInt64(range))
            if seen.insert(v).inserted { out.append(v) }
        }
        return out
    }
}

/// White-box Dirac gradient canaries for a one-run audit of DP-SGD.
///
/// Canary k is the vector `s_k C e_(j_k)` (a random coordinate `j_k` of the flattened
/// parameters, a random sign `s_k`, the current clipping norm `C`: exactly at the clipping
/// bound). An included canary joins each step with probability q, the step's sampling
/// probability, like any training example under Poisson sampling, so the accounted
/// add/remove-one guarantee covers each canary. The auditor reads `y_t = s_k g_t[j_k]`, the
/// signed value of the canary's coordinate in the released (noisy, clipped, summed) gradient of
/// every step. With noise (standard deviation `sigma C`), the score is the log-likelihood ratio
/// of "included" against "not included" for a coordinate that holds only the canary and the
/// noise, `sum_t log(1 - q + q exp((C y_t - C^2/2) / (sigma C)^2))`: the Neyman-Pearson test of
/// the sampled Gaussian mechanism, step by step (the real gradients on the coordinate are
/// unmodelled and only cost power). Without noise it is `max_t y_t` (the steps that sample an
/// included canary lift its coordinate by C). The score is fixed before training, so choosing
/// it costs no confidence.
public final class DiracCanaries: GradientAuditor {
    public let included: [Bool]
    public let samplingProbability: Double
    /// The canary norm when the run does not clip (non-private controls): there is no bound, so
    /// a fixed norm stands in.
    public let unclippedNorm: Double
    public private(set) var scores: [Double]
    private let coordinates: [(parameter: Int, index: Int)]
    private let signs: [Float]
    private var stepRandom: PhiloxRandom
    /// The gradient noise multiplier (0: no noise, score by the maximum).
    public let noiseMultiplier: Double
    private var lastNorm = 1.0

    /// - Parameters:
    ///   - seed: which coordinates, signs and (one-run) inclusion bits.
    ///   - included: which canaries are planted; nil: each with probability 1/2 (a one-run
    ///     audit). A multi-run audit plants one canary or none: `[true]` or `[false]`.
    ///   - samplingSeed: the steps that sample a canary; nil: from `seed`.
    ///   - noiseMultiplier: the noise on the gradient sum over the clipping norm (the trainer's
    ///     gradient sigma, after any adaptive-clipping split); 0 when the run adds none.
    /// - Throws: ``AuditError`` when there are more canaries than parameters, or q is not in (0, 1].
    public init(
        count: Int, parameterCounts: [Int], samplingProbability q: Double, seed: UInt64, unclippedNorm: Double = 1,
        included explicit: [Bool]? = nil, samplingSeed: UInt64? = nil, noiseMultiplier: Double = 0
    ) throws {
        let total = parameterCounts.reduce(0, +)
        guard count >= (explicit == nil ? 2 : 1) else {
            throw AuditError("canary count \(count): a one-run audit needs at least 2 canaries")
        }
        guard explicit == nil || explicit!.count == count else {
            throw AuditError("\(explicit!.count) inclusion bits for \(count) canaries")
        }
        guard count <= total else {
            throw AuditError(
                "\(count) Dirac canaries for a model with \(total) parameters: each canary needs its own coordinate; lower audit.count to at most \(total)"
            )
        }
        guard q > 0, q <= 1 else { throw AuditError("sampling probability \(q) is outside (0, 1]") }
        var draw = CanaryDraw(seed: seed)
        let random = draw.inclusion(count: count)
        included = explicit ?? random
        var offsets: [Int] = []
        var running = 0
        for c in parameterCounts {
            offsets.append(running)
            running += c
        }
        coordinates = draw.distinct(count, of: total).map { flat in
            let p = offsets.lastIndex { $0 <= flat }!
            return (p, flat - offsets[p])
        }
        signs = (0..<count).map { _ in draw.rng.next() & 1 == 1 ? 1 : -1 }
        // Which steps sample a canary: the run's randomness (a multi-run audit keeps the canary
        // fixed across runs, `seed`, and draws each run's sampling afresh, `samplingSeed`).
        stepRandom = samplingSeed.map { PhiloxRandom(seed: $0, stream: 0xa0d18) } ?? draw.rng.split(stream: 0xa0d18)
        samplingProbability = q
        self.unclippedNorm = unclippedNorm
        self.noiseMultiplier = noiseMultiplier
        scores = Array(repeating: noiseMultiplier > 0 ? 0 : -.infinity, count: count)
    }

    public func addCanaryGradients(step: Int, clippingNorm: Double, parameters: [Parameter]) {
        lastNorm = clippingNorm.isFinite ? clippingNorm : unclippedNorm
        let c = Float(lastNorm)
        for k in included.indices where included[k] {
            guard stepRandom.nextOpenUnitDouble() < samplingProbability else { continue }
            let (p, i) = coordinates[k]
            parameters[p].gradient.withUnsafeMutableBufferPointer { $0[i] += signs[k] * c }
        }
    }

    public func observeReleasedGradient(step: Int, parameters: [Parameter]) {
        let c = lastNorm
        let variance = (noiseMultiplier * c) * (noiseMultiplier * c)
        let logQ = log(samplingProbability)
        let logNotQ = log1p(-samplingProbability)
        for k in coordinates.indices {
            let (p, i) = coordinates[k]
            let y = Double(parameters[p].gradient.withUnsafeBufferPointer { $0[i] } * signs[k])
            if noiseMultiplier > 0 {
                // log(1 - q + q e^a), a = (C y - C^2/2) / (sigma C)^2, without overflow.
                let a = logQ + (c * y - c * c / 2) / variance
                let m = max(logNotQ, a)
                scores[k] += samplingProbability == 1 ? a : m + log(exp(logNotQ - m) + exp(a - m))
            } else {
                scores[k] = max(scores[k], y)
            }
        }
    }
}

/// Black-box mislabelled canaries for a one-run audit: `count` training examples get a label
/// other than their own (uniform among the other classes); each is kept in the training set
/// with probability 1/2 and removed otherwise (add/remove-one). The removed ones stay in
/// ``training`` flagged by ``excluded`` and are dropped by the trainer after sampling
/// (`DPSGDTrainer.excludedExamples`), so the dataset size, q and the steps do not depend on
/// the inclusion bits. Scored by minus the loss of the
/// wrong label under the final model: a model that memorised a canary predicts its wrong label.
public struct MislabelledCanaries: Sendable {
    public let included: [Bool]
    /// The canaries with their wrong labels (for scoring); scale them as the training inputs are
    /// scaled before scoring.
    public var canaries: Dataset
    /// The non-canary examples (in their order), then every canary with its wrong label.
    public let training: Dataset
    /// One flag per example of ``training``: `true` for the canaries left out.
    public let excluded: [Bool]
    /// The examples of ``training`` that are not canaries: `0..<nonCanaryCount`.
    public var nonCanaryCount: Int { training.count - included.count }

    /// - Throws: ``AuditError`` when the training set has fewer than `count + 1` examples or
    ///   one class only.
    /// - Parameter included: as for ``DiracCanaries``: nil for random halves.
    public init(count: Int, from train: Dataset, seed: UInt64, included explicit: [Bool]? = nil) throws {
        guard count >= (explicit == nil ? 2 : 1) else {
            throw AuditError("canary count \(count): a one-run audit needs at least 2 canaries")
        }
        guard explicit == nil || explicit!.count == count else {
            throw AuditError("\(explicit!.count) inclusion bits for \(count) canaries")
        }
        guard count < train.count else {
            throw AuditError(
                "\(count) canaries but the training set has \(train.count) examples; lower audit.count below \(train.count)"
            )
        }
        guard train.classCount >= 2 else { throw AuditError("mislabelled canaries need at least two classes") }
        var draw = CanaryDraw(seed: seed)
        let random = draw.inclusion(count: count)
        let bits = explicit ?? random
        included = bits
        let chosen = draw.distinct(count, of: train.count)
        let chosenSet = Set(chosen)
        var canaryData = train.subset(chosen, name: "\(train.name)/canaries")
        let wrong = canaryData.labels.map { y in
            (y + 1 + Int(draw.rng.next() % UInt64(train.classCount - 1))) % train.classCount
        }
        canaryData = Dataset(
            name: canaryData.name, features: canaryData.features, labels: wrong, classCount: train.classCount,
            classNames: train.classNames)
        canaries = canaryData
        // Keep the order of the training set for the others, the canaries at the end.
        let keep = (0..<train.count).filter { !chosenSet.contains($0) }
        let rest = train.subset(keep, name: train.name)
        training = rest.appending(canaryData, name: train.name)
        excluded = Array(repeating: false, count: rest.count) + bits.map { !$0 }
    }

    /// The examples actually trained on (for statistics fitted on the training set).
    public var includedTraining: Dataset {
        training.subset(excluded.indices.filter { !excluded[$0] })
    }

    /// Minus the loss of each canary's wrong label under `model`.
    public func scores(model: Sequential) -> [Double] {
        MembershipScore.loss(Evaluation.perExampleLosses(model: model, dataset: canaries))
    }
}
