import DPAccounting
import DPTensor
import Foundation

/// How each step's batch is drawn. The accounted privacy event follows from the scheme, so the
/// trainer can only compose the event its sampler really implements.
public enum SamplingScheme: String, Codable, Sendable, CaseIterable {
    /// Each example joins each step's batch independently with probability q (Poisson
    /// sampling, add/remove-one neighbouring). The batch size varies; it may be empty.
    case poisson
    /// Each step draws a fresh uniformly random batch of exactly b distinct examples (sampling
    /// without replacement, replace-one neighbouring; Wang, Balle and Kasiviswanathan 2019).
    ///
    /// Deliberately not offered: "shuffle the data and cut it into consecutive batches", whose
    /// epsilon no accountant here can justify (each example appears exactly once per epoch,
    /// which the subsampling bounds do not model; Chua et al. 2024 show the gap is real).
    case fixedSize = "fixed-size"

    /// The neighbouring relation this scheme's privacy events are analysed under: the one rule,
    /// used by the trainer, the plan, the CLI and results files.
    public var neighboringRelation: NeighboringRelation {
        self == .poisson ? .addOrRemoveOne : .replaceOne
    }

    /// The privacy event of one step: the one rule, used by the trainer's sampler, the
    /// experiment plan and the CLI.
    ///
    /// A noise multiplier is the noise standard deviation over the sensitivity under the
    /// neighbouring relation of the analysis. Under add/remove-one (Poisson, probability `q`)
    /// the clipped sum's sensitivity is C; under replace-one (fixed-size batches of `b` of `n`)
    /// it is 2C, so the same noise is the Gaussian mechanism with multiplier
    /// `noiseMultiplier / 2` (as dp-accounting and the accountants here define it).
    public func stepEvent(
        samplingProbability q: Double, batchSize b: Int, datasetSize n: Int,
        noiseMultiplier sigma: Double
    ) -> DpEvent {
        switch self {
        case .poisson:
            return .poissonSampled(probability: q, event: .gaussian(noiseMultiplier: sigma))
        case .fixedSize:
            return .sampledWithoutReplacement(
                sampleSize: b, datasetSize: n, event: .gaussian(noiseMultiplier: sigma / 2))
        }
    }

    /// Steps in one epoch of `n` examples in batches of (expected) size `b`: n / b rounded, at least 1.
    public static func stepsPerEpoch(datasetSize n: Int, batchSize b: Int) -> Int {
        max(1, Int((Double(n) / Double(b)).rounded()))
    }
}

/// Draws the indices of each step's batch from its own random stream.
public struct BatchSampler: Sendable {
    public let scheme: SamplingScheme
    public let datasetSize: Int
    /// For Poisson sampling: q. For fixed size: b / n.
    public let samplingProbability: Double
    /// For fixed size: b. For Poisson: the expected batch size q n (not an integer in general).
    public let batchSize: Int
    /// The seeded stream (unused in secure mode).
    public var rng: PhiloxRandom
    /// `.secure`: every draw comes from the OS CSPRNG, and ``rng`` is never used, so batches
    /// cannot be reproduced from the seed (amplification by sampling needs the batches secret).
    public let randomness: RandomnessSource

    /// - Parameters:
    ///   - expectedBatchSize: q n for Poisson, b for fixed-size batches; 1 <= it <= n.
    public init(
        scheme: SamplingScheme, datasetSize: Int, expectedBatchSize: Int, rng: PhiloxRandom,
        randomness: RandomnessSource = .seeded
    ) {
        precondition(
            datasetSize > 0 && expectedBatchSize >= 1 && expectedBatchSize <= datasetSize,
            "BatchSampler: batch size \(expectedBatchSize) must be in 1...\(datasetSize) (the dataset size)")
        self.scheme = scheme
        self.datasetSize = datasetSize
        self.batchSize = expectedBatchSize
        self.samplingProbability = Double(expectedBatchSize) / Double(datasetSize)
        self.rng = rng
        self.randomness = randomness
    }

    /// A uniform Double in (0, 1) from the seeded stream or, in secure mode, the OS CSPRNG.
    private mutating func nextUniform() -> Double {
        if randomness == .secure {
            var system = SystemRandom()
            return system.nextOpenUnitDouble()
        }
        return rng.nextOpenUnitDouble()
    }

    /// The expected batch size: the denominator of the averaged noisy gradient. Never the
    /// realised batch size, which would depend on the data of one example.
    public var expectedBatchSize: Double { Double(batchSize) }

    /// Steps in one epoch: n / b rounded, at least 1.
    public var stepsPerEpoch: Int { SamplingScheme.stepsPerEpoch(datasetSize: datasetSize, batchSize: batchSize) }

    /// The privacy event of one step whose noise has standard deviation `noiseMultiplier * C`
    /// on the sum of gradients clipped to C (``SamplingScheme/stepEvent(samplingProbability:batchSize:datasetSize:noiseMultiplier:)``).
    public func stepEvent(noiseMultiplier: Double) -> DpEvent {
        scheme.stepEvent(
            samplingProbability: samplingProbability, batchSize: batchSize, datasetSize: datasetSize,
            noiseMultiplier: noiseMultiplier)
    }

    /// The neighbouring relation under which this sampler's events are accounted.
    public var neighboringRelation: NeighboringRelation { scheme.neighboringRelation }

    /// The indices of the next batch, ascending, written into `indices` (reused storage).
    public mutating func nextBatch(into indices: inout [Int]) {
        indices.removeAll(keepingCapacity: true)
        switch scheme {
        case .poisson:
            let q = samplingProbability
            if q >= 1 {
                indices.append(contentsOf: 0..<datasetSize)
                return
            }
            // Geometric skips: the gap to the next included index is Geometric(q),
            // floor(log U / log(1 - q)), which gives exactly independent Bernoulli(q) inclusions.
            let logOneMinusQ = Foundation.log1p(-q)
            var i = -1
            while true {
                let u = nextUniform()
                let skip = Foundation.floor(Foundation.log(u) / logOneMinusQ)
                if skip >= Double(datasetSize) { break }
                i += Int(skip) + 1
                if i >= datasetSize { break }
                indices.append(i)
            }
        case .fixedSize:
            // Floyd's algorithm: b distinct uniform indices in O(b) expected time.
            var chosen = Set<Int>(minimumCapacity: batchSize)
            for j in (datasetSize - batchSize)..<datasetSize {
                let t = Int(nextUniform() * Double(j + 1))
                let pick = chosen.contains(t) ? j : min(t, j)
                chosen.insert(pick)
            }
            indices.append(contentsOf: chosen.sorted())
        }
    }

    public func nextBatch() -> [Int] {
        var copy = self
        var out: [Int] = []
        copy.nextBatch(into: &out)
        return out
    }
}
