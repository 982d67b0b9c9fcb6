import DPTensor
import Foundation

/// How per-example gradients are bounded before they are summed. Every mode bounds each
/// example's contribution to the sum by the clipping norm C (the L2 sensitivity), so the noise
/// `N(0, (sigma C)^2)` gives the accounted Gaussian mechanism.
public enum ClippingMode: Codable, Hashable, Sendable {
    /// `g_i * min(1, C / ||g_i||)` over all parameters (Abadi et al. 2016). The default.
    case flat
    /// Each of the L layers clipped to `C / sqrt(L)`, so the whole gradient is within C.
    case perLayer
    /// Automatic (normalised) clipping, Bu et al. 2023: `g_i * C / (||g_i|| + stability)`;
    /// every example has norm below C.
    case automatic(stability: Double)
    /// Adaptive quantile clipping, Andrew et al. 2021: C follows the `targetQuantile` of the
    /// gradient norms, `C <- C * exp(-learningRate * (noisyFractionClipped... - quantile))`. The
    /// fraction comes from a noisy count with noise `countNoiseMultiplier`, whose privacy cost
    /// is folded into the gradient noise so that the step is one Gaussian mechanism of the
    /// accounted noise multiplier (their Theorem 1).
    case adaptive(targetQuantile: Double, learningRate: Double, countNoiseMultiplier: Double)

    public var name: String {
        switch self {
        case .flat: return "flat"
        case .perLayer: return "per-layer"
        case .automatic: return "automatic"
        case .adaptive: return "adaptive"
        }
    }

    /// The noise multiplier for the summed gradient, given the accounted one `sigma`.
    /// Adaptive clipping spends part of the budget on the count: Andrew et al. 2021 give
    /// `sigma_grad = (sigma^-2 - (2 sigma_count)^-2)^-1/2`.
    /// - Throws: if the count's noise is too small for `sigma` (the formula has no solution).
    public func gradientNoiseMultiplier(accounted sigma: Double) throws -> Double {
        guard case .adaptive(_, _, let sb) = self, sigma > 0 else { return sigma }
        let rest = 1 / (sigma * sigma) - 1 / (4 * sb * sb)
        guard rest > 0 else {
            throw TrainingError.invalidSetting(
                "adaptive clipping: count noise multiplier \(sb) is too small for noise multiplier \(sigma); "
                + "it must exceed sigma / 2 = \(sigma / 2) (Andrew et al. 2021 use about 0.05 * expected batch size)")
        }
        return 1 / rest.squareRoot()
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

    /// Automatic: w_i = C / (||g_i|| + stability).
    static func automatic(squaredNorms: Tensor<Float>, clippingNorm: Float, stability: Float, into weights: inout Tensor<Float>) {
        squaredNorms.withUnsafeBufferPointer { n in
            weights.withUnsafeMutableBufferPointer { w in
                for i in 0..<n.count { w[i] = clippingNorm / (n[i].squareRoot() + stability) }
            }
        }
    }
}
