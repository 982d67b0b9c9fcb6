import DPTensor
import Foundation

/// How per-example gradients are bounded before they are summed. Every mode bounds each
/// example's contribution to the sum by the clipping norm C (the L2 sensitivity), so the noise
/// `N(0, (sigma C)^2)` gives the accounted Gaussian mechanism.
public enum ClippingMode: Codable, Hashable, Sendable {
    /// `g_i * min(1, C / ||g_i||)` over all parameters (Abadi et al. 2016). The default.
    case flat
    /// Each of the L trainable layers clipped to its own threshold `C_l`: `thresholds` (one per
    /// layer, with `sqrt(sum C_l^2) = C`), or `C / sqrt(L)` each when nil; either way the whole
    /// gradient is within C (McMahan et al. 2018).
    case perLayer(thresholds: [Double]?)
    /// Automatic (normalised) clipping, Bu et al. 2023: `g_i * C / (||g_i|| + stability)`;
    /// every example has norm below C.
    case automatic(stability: Double)
    /// Adaptive quantile clipping, Andrew et al. 2021: C follows the `targetQuantile` of the
    /// gradient norms, `C <- C * exp(-learningRate * (noisyFractionUnclipped - quantile))`. The
    /// fraction comes from the centred count of unclipped examples with Gaussian noise of
    /// standard deviation `countNoiseMultiplier`, whose privacy cost is folded into the
    /// gradient noise so that the step is one Gaussian mechanism of the accounted noise
    /// multiplier (their Theorem 1). Sensitivities and the split: ``AdaptiveClipping``.
    case adaptive(targetQuantile: Double, learningRate: Double, countNoiseMultiplier: Double)

    public var name: String {
        switch self {
        case .flat: return "flat"
        case .perLayer: return "per-layer"
        case .automatic: return "automatic"
        case .adaptive: return "adaptive"
        }
    }

    /// The noise multiplier for the summed gradient, given the accounted one `sigma`: see
    /// ``AdaptiveClipping/gradientNoiseMultiplier(accounted:countNoiseMultiplier:)``; `sigma`
    /// for every other mode.
    /// - Throws: if the count's noise is too small for `sigma` (the split has no solution).
    public func gradientNoiseMultiplier(accounted sigma: Double) throws -> Double {
        guard case .adaptive(_, _, let sb) = self else { return sigma }
        return try AdaptiveClipping.gradientNoiseMultiplier(accounted: sigma, countNoiseMultiplier: sb)
    }
}

/// Adaptive quantile clipping (Andrew et al. 2021, "Differentially private learning with
/// adaptive clipping", Algorithm 1 and Theorem 1), as one Gaussian mechanism per step.
///
/// Each step releases, from the same sampled batch B, two things:
/// - the clipped gradient sum `sum_i clip_C(g_i) + N(0, (sigma_g C)^2 I)`;
/// - the *centred* count of unclipped examples
///   `b~ = sum_{i in B} (b_i - 1/2) + N(0, sigma_b^2)`, `b_i = 1[||g_i|| <= C]`,
///   from which `C <- C exp(-eta (b~ / m + 1/2 - gamma))` (m the expected batch size, public).
///
/// Sensitivities (the L2 change of the released pair when one example changes):
/// - add/remove-one (Poisson sampling): gradient sum `C`; centred count `1/2` (one term
///   `b_i - 1/2` in {-1/2, +1/2} appears or disappears). The uncentred count `sum b_i` would
///   have sensitivity 1.
/// - replace-one (fixed-size batches): gradient sum `2C`; centred count `1` (a term goes from
///   -1/2 to +1/2); the uncentred count also 1.
///
/// A Gaussian mechanism on a pair with per-block noise is the Gaussian mechanism of noise
/// multiplier `s` with `1/s^2 = (Delta_g / (sigma_g C))^2 + (Delta_b / sigma_b)^2` (its privacy
/// loss depends only on the Mahalanobis length of the shift). Under add/remove this gives
/// `1/s^2 = 1/sigma_g^2 + 1/(2 sigma_b)^2`, and the step is exactly
/// `PoissonSampled(q, Gaussian(s))`. Under replace-one, `1/s^2 = 4/sigma_g^2 + 1/sigma_b^2`
/// `= 4 (1/sigma_g^2 + 1/(2 sigma_b)^2)`: exactly the training sigma `s' = 2 s` that
/// DPKit accounts as `Gaussian(s'/2)` under replace-one (``BatchSampler/stepEvent(noiseMultiplier:)``).
/// So one split serves both relations: with the accounted (training) sigma,
/// `sigma_g = (sigma^-2 - (2 sigma_b)^-2)^(-1/2)`, which needs `sigma_b > sigma / 2`.
/// The split is valid only because the count is centred (TF Privacy's quantile estimator
/// centres it the same way); with the uncentred count under add/remove it would under-account.
public enum AdaptiveClipping {
    /// sigma_g, the gradient's share of the accounted noise multiplier `sigma` (see the type).
    /// - Throws: ``TrainingError/invalidSetting(_:)`` unless `countNoiseMultiplier > sigma / 2`.
    public static func gradientNoiseMultiplier(
        accounted sigma: Double, countNoiseMultiplier sb: Double
    ) throws -> Double {
        guard sigma > 0 else { return sigma }
        let rest = 1 / (sigma * sigma) - 1 / (4 * sb * sb)
        guard rest > 0, sb.isFinite else {
            throw TrainingError.invalidSetting(
                "adaptive clipping: count noise multiplier \(sb) is too small for noise multiplier \(sigma); "
                    + "it must exceed sigma / 2 = \(sigma / 2) (Andrew et al. 2021 use about 0.05 * expected batch size)"
            )
        }
        return 1 / rest.squareRoot()
    }

    /// The next clipping norm from the noisy centred count:
    /// `C exp(-eta (b~ / m + 1/2 - gamma))` with `b~ = unclipped - batchSize / 2 + noise`.
    /// `noise` is the count's Gaussian draw (`sigma_b * z`); the realised batch size enters only
    /// through the centred sum, whose sensitivity is 1/2 (add/remove).
    public static func nextClippingNorm(
        _ c: Double, unclipped: Int, batchSize: Int, noise: Double,
        expectedBatchSize m: Double, targetQuantile gamma: Double,
        learningRate eta: Double
    ) -> Double {
        let centred = Double(unclipped) - Double(batchSize) / 2 + noise
        let fractionUnclipped = centred / m + 0.5
        return c * Foundation.exp(-eta * (fractionUnclipped - gamma))
    }
}

/// Clip factors from squared norms, written into `weights` (`[B]`), no allocation.
enum ClipFactors {
    /// Flat: w_i = min(1, C / ||g_i||). Returns the number of examples clipped (w_i < 1).
    @inline(__always)
    static func flat(squaredNorms: Tensor<Float>, clippingNorm: Float, into weights: inout Tensor<Float>) -> Int {
        var clipped = 0
        let c2 = clippingNorm * clippingNorm
        squaredNorms.withUnsafeBufferPointer { n in
            weights.withUnsafeMutableBufferPointer { w in
                for i in 0..<n.count {
                    if n[i] > c2 {
                        w[i] = clippingNorm / n[i].squareRoot()
                        clipped += 1
                    } else {
                        w[i] = 1
                    }
                }
            }
        }
        return clipped
    }

    /// The number of examples with a weight below 1 in any of `perLayerWeights` (`[B]` each).
    static func countAnyClipped(_ perLayerWeights: [Tensor<Float>]) -> Int {
        guard let first = perLayerWeights.first else { return 0 }
        var count = 0
        for i in 0..<first.scalarCount {
            for w in perLayerWeights where w.withUnsafeBufferPointer({ $0[i] < 1 }) {
                count += 1
                break
            }
        }
        return count
    }

    /// Automatic: w_i = C / (||g_i|| + stability).
    static func automatic(
        squaredNorms: Tensor<Float>, clippingNorm: Float, stability: Float, into weights: inout Tensor<Float>
    ) {
        squaredNorms.withUnsafeBufferPointer { n in
            weights.withUnsafeMutableBufferPointer { w in
                for i in 0..<n.count { w[i] = clippingNorm / (n[i].squareRoot() + stability) }
            }
        }
    }
}
