import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

// Gradient inversion: "gradients leak data" (issue 12, item 4).
//
// A server that sees one step's gradient of a model it knows can often rebuild the examples
// that produced it. Two attacks:
// - analytic (GradientInversion+Analytic.swift): from the gradient of a first dense layer with
//   bias, the input is a ratio of gradient rows, exactly, for one example;
// - gradient matching (GradientInversion+Matching.swift): optimise dummy inputs until their
//   gradient matches the observed one (Zhu et al. 2019; Geiping et al. 2020), with the
//   second derivative it needs from GradientInversion+SecondOrder.swift.
// The defence is DP-SGD's own (GradientObservation below runs DPSGDTrainer's step), and
// GradientInversion+Experiment.swift sweeps it and writes the table and the image grid.

// MARK: - Methods

/// The attacks ``GradientInversionExperiment`` runs.
public enum InversionMethod: String, CaseIterable, Sendable {
    /// The input of the first dense layer as a ratio of its weight and bias gradients (``AnalyticInversion``).
    case analytic
    /// Dummy inputs optimised until their gradient matches the observed one (``GradientMatching``).
    case matching
}

// MARK: - The defence

/// What stands between the examples and the observed gradient: DP-SGD's per-example clipping
/// at norm C and Gaussian noise of standard deviation `sigma C` on the clipped sum (Abadi et
/// al. 2016), the whole divided by the batch size.
///
/// `clippingNorm == .infinity` with `noiseMultiplier == 0` is no defence (the plain mean
/// gradient); a finite C with sigma = 0 is clipping alone (DPKit's clip-only control).
public struct GradientDefence: Hashable, Sendable, CustomStringConvertible {
    /// C, the bound on each example's gradient norm over all parameters; `.infinity` for none.
    public var clippingNorm: Double
    /// sigma: the noise standard deviation over C.
    public var noiseMultiplier: Double

    /// The plain mean gradient.
    public static let none = GradientDefence(clippingNorm: .infinity, noiseMultiplier: 0)

    public init(clippingNorm: Double, noiseMultiplier: Double) {
        self.clippingNorm = clippingNorm
        self.noiseMultiplier = noiseMultiplier
    }

    /// True for the plain mean gradient (no clipping, no noise).
    public var isNone: Bool { clippingNorm == .infinity && noiseMultiplier == 0 }

    /// - Throws: ``AuditError`` naming the value and the fix.
    public func validate() throws {
        guard clippingNorm > 0, !clippingNorm.isNaN else {
            throw AuditError("clipping norm \(clippingNorm) must be > 0 (infinity for no clipping)")
        }
        guard noiseMultiplier >= 0, noiseMultiplier.isFinite else {
            throw AuditError("noise multiplier \(noiseMultiplier) must be a finite number >= 0")
        }
        if noiseMultiplier > 0 && clippingNorm == .infinity {
            throw AuditError(
                "noise multiplier \(noiseMultiplier) without clipping: the noise is sigma * C, so it needs a finite clipping norm"
            )
        }
    }

    /// `C = 0.1, sigma = 1`, `C = none, sigma = 0`.
    public var description: String {
        "C = \(clippingNorm == .infinity ? "none" : Self.number(clippingNorm)), sigma = \(Self.number(noiseMultiplier))"
    }

    /// A number as short as Swift prints it (`0.1`, `1e-05`, `inf`), integers without `.0`.
    static func number(_ x: Double) -> String {
        if x.isFinite && x == x.rounded() && abs(x) < 1e15 { return String(Int(x)) }
        return "\(x)"
    }
}

// MARK: - The observed gradient

/// One DP-SGD step's gradient as an attacker (the server) sees it.
public struct ObservedGradient {
    /// `(sum_i clip_C(g_i) + N(0, (sigma C)^2 I)) / B`, one tensor per parameter, aligned with
    /// the model's ``Sequential/parameters``.
    public var parameters: [Tensor<Float>]
    /// B, the number of examples in the step.
    public var batchSize: Int
    public var defence: GradientDefence
    /// How many of the B examples had a gradient norm above C (and were scaled down).
    public var clippedCount: Int
}

/// The gradient of one batch exactly as DP-SGD releases it: ``DPSGDTrainer``'s own step, not
/// a second implementation of clipping and noise.
public enum GradientObservation {
    /// Runs one ``DPSGDTrainer`` step on exactly the `B` examples of `inputs` and returns the
    /// gradient the optimizer received.
    ///
    /// The trainer samples fixed-size batches of `B` from a dataset of these `B` examples, so
    /// the batch is all of them; it computes per-example gradient norms, clips each example's
    /// gradient to `C` (flat clipping over all parameters, ``ClippingMode/flat``), sums, adds
    /// `N(0, (sigma C)^2)` to every coordinate and divides by `B`. With ``GradientDefence/none``
    /// the trainer runs without privacy settings (plain summed gradient over `B`). The
    /// optimizer is SGD with learning rate 0, so the model is unchanged.
    ///
    /// The noise comes from the trainer's Philox noise stream of `seed`: the same seed gives the
    /// same standard normal draws at every (C, sigma), scaled by `sigma C` (common random
    /// numbers, so settings differ only by the defence).
    ///
    /// - Parameters:
    ///   - inputs: `[B] + exampleShape`.
    ///   - labels: B class indices in `0..<classCount`.
    /// - Throws: ``AuditError`` for an invalid defence or an empty batch, ``TrainingError``
    ///   if the trainer refuses the setting.
    public static func observe(
        model: Sequential, inputs: Tensor<Float>, labels: [Int], classCount: Int, defence: GradientDefence,
        seed: UInt64
    ) throws -> ObservedGradient {
        try defence.validate()
        let batch = labels.count
        guard batch >= 1, inputs.rank >= 2, inputs.shape[0] == batch else {
            throw AuditError(
                "a gradient needs at least one example with one label each; got \(inputs.shape) inputs and \(batch) labels"
            )
        }
        let data = Dataset(name: "observed batch", features: inputs, labels: labels, classCount: classCount)
        let privacy =
            defence.isNone
            ? nil
            : PrivacySettings(
                noiseMultiplier: defence.noiseMultiplier, clippingNorm: defence.clippingNorm, clipping: .flat,
                delta: 1e-5)
        let needsInputGradient = model.needsInputGradient
        defer { model.needsInputGradient = needsInputGradient }
        let trainer = try DPSGDTrainer(
            model: model, optimizer: SGD(learningRate: 0), data: data,
            configuration: TrainerConfiguration(
                sampling: .fixedSize, expectedBatchSize: batch, maxPhysicalBatchSize: batch, privacy: privacy,
                seed: seed))
        let step = try trainer.trainStep()
        return ObservedGradient(
            parameters: model.parameters.map(\.gradient), batchSize: batch, defence: defence,
            clippedCount: step.clippedCount)
    }
}

// MARK: - Reconstruction quality

/// How close reconstructions are to the originals, per image and for the batch.
///
/// Pixels are compared in the data's range `[lower, upper]` (`[0, 1]` for DPKit's images):
/// `MSE = mean (x_hat - x)^2` over the pixels of the batch (the mean of the per-image MSEs),
/// and `PSNR = 10 log10((upper - lower)^2 / MSE)` in decibels, from that batch MSE. (Geiping et
/// al. 2020 average per-image PSNRs instead; that mean is dominated by any one exact image,
/// whose PSNR is unbounded, so a batch with one image recovered and seven lost would score
/// high.) Around 30 dB and above the image is recognisable at a glance; the dataset's mean
/// image, which uses nothing from the gradient, scores about 10 dB on Fashion-MNIST.
public struct ReconstructionQuality: Sendable, Equatable {
    public var meanSquaredError: Double
    /// `10 log10(peak^2 / meanSquaredError)`; `+infinity` for an exact batch.
    public var peakSignalToNoiseRatio: Double
    public var perImageMeanSquaredError: [Double]

    /// `reconstructions[i]` compared with `originals[i]` (equal sizes).
    public init(originals: [[Float]], reconstructions: [[Float]], range: ClosedRange<Double> = 0...1) {
        precondition(
            originals.count == reconstructions.count && !originals.isEmpty,
            "ReconstructionQuality: \(originals.count) originals for \(reconstructions.count) reconstructions")
        perImageMeanSquaredError = zip(originals, reconstructions).map { Self.meanSquaredError($0, $1) }
        meanSquaredError = perImageMeanSquaredError.reduce(0, +) / Double(originals.count)
        let peak = (range.upperBound - range.lowerBound) * (range.upperBound - range.lowerBound)
        peakSignalToNoiseRatio = 10 * Foundation.log10(peak / meanSquaredError)
    }

    static func meanSquaredError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty, "meanSquaredError: \(a.count) vs \(b.count) pixels")
        var s = 0.0
        for i in 0..<a.count {
            let d = Double(a[i]) - Double(b[i])
            s += d * d
        }
        return s / Double(a.count)
    }

    /// The order of `reconstructions` that matches `originals` best: `order[i]` is the
    /// reconstruction assigned to original `i`, minimising the summed MSE (a reconstructed
    /// batch comes in no particular order). Exact: the Hungarian algorithm (Kuhn 1955; the
    /// O(n^3) form with potentials).
    public static func bestAssignment(originals: [[Float]], reconstructions: [[Float]]) -> [Int] {
        let n = originals.count
        precondition(
            n == reconstructions.count, "bestAssignment: \(n) originals for \(reconstructions.count) reconstructions")
        if n == 0 { return [] }
        let cost = originals.map { o in reconstructions.map { meanSquaredError(o, $0) } }
        // Rows are originals, columns reconstructions; 1-based with a virtual column 0.
        var u = [Double](repeating: 0, count: n + 1), v = [Double](repeating: 0, count: n + 1)
        var match = [Int](repeating: 0, count: n + 1) // match[column] = row
        var way = [Int](repeating: 0, count: n + 1)
        for row in 1...n {
            match[0] = row
            var column0 = 0
            var minimum = [Double](repeating: .infinity, count: n + 1)
            var used = [Bool](repeating: false, count: n + 1)
            repeat {
                used[column0] = true
                let row0 = match[column0]
                var delta = Double.infinity, column1 = 0
                for j in 1...n where !used[j] {
                    let reduced = cost[row0 - 1][j - 1] - u[row0] - v[j]
                    if reduced < minimum[j] {
                        minimum[j] = reduced
                        way[j] = column0
                    }
                    if minimum[j] < delta {
                        delta = minimum[j]
                        column1 = j
                    }
                }
                for j in 0...n {
                    if used[j] {
                        u[match[j]] += delta
                        v[j] -= delta
                    } else {
                        minimum[j] -= delta
                    }
                }
                column0 = column1
            } while match[column0] != 0
            repeat {
                let column1 = way[column0]
                match[column0] = match[column1]
                column0 = column1
            } while column0 != 0
        }
        var order = [Int](repeating: 0, count: n)
        for j in 1...n { order[match[j] - 1] = j - 1 }
        return order
    }
}

// MARK: - Helpers

extension Tensor where Scalar == Float {
    /// Example `i` of a batch as a flat array.
    func example(_ i: Int) -> [Float] { self[row: i].scalars }
}

/// `x` clamped into `range`.
@inline(__always)
func clamp(_ x: Double, _ range: ClosedRange<Double>) -> Double {
    min(max(x, range.lowerBound), range.upperBound)
}
