import Foundation

/// Membership-inference scores: higher means "more likely a training member".
public enum MembershipScore {
    /// The loss-threshold attack (Yeom et al. 2018): a member tends to have a lower loss, so the
    /// score is the negative cross-entropy loss of the true label.
    public static func loss(_ losses: [Double]) -> [Double] { losses.map { -$0 } }

    /// The logit-scaled confidence `phi = log(p / (1 - p))` of the true class that LiRA models
    /// as Gaussian (Carlini et al. 2022, section IV.B), from the log-probability of the true
    /// class, stable for `p` near 0 and 1.
    public static func scaledConfidence(logProbability l: Double) -> Double {
        // log(p) - log(1 - p), with log(1 - p) = log(-expm1(l)).
        let l = min(l, -1e-12)
        return l - log(-expm1(l))
    }
}

/// The likelihood-ratio attack (LiRA; Carlini et al., "Membership Inference Attacks From First
/// Principles", IEEE S&P 2022). For each target example, the shadow models trained with it (IN)
/// and without it (OUT) give samples of its scaled confidence; each side is modelled as a
/// Gaussian.
///
/// - online: score `log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)`;
/// - offline (OUT models only): the one-sided test `(phi - mu_out) / s_out`, which orders
///   examples as the paper's `1 - Pr[Z > phi]` does.
///
/// With few shadow models the per-example variances are noisy; like the paper, a global
/// variance (pooled over examples) is used when a side has fewer than `minimumPerExample`
/// samples of any example.
public struct LiRA: Sendable {
    public enum Variant: String, Sendable, CaseIterable, Codable { case online, offline }
    public var variant: Variant
    public var minimumPerExample = 8

    public init(variant: Variant) { self.variant = variant }

    /// Scores each target example from its confidence on the target model and its shadow
    /// confidences. `shadowIn[i]` and `shadowOut[i]` are the samples for example i.
    /// - Throws: ``AuditError`` when an example has no OUT sample (or no IN sample online).
    public func scores(target: [Double], shadowIn: [[Double]], shadowOut: [[Double]]) throws -> [Double] {
        precondition(target.count == shadowIn.count && target.count == shadowOut.count, "one entry per example")
        if let i = shadowOut.firstIndex(where: { $0.isEmpty }) {
            throw AuditError(
                "LiRA: example \(i) has no shadow model trained without it; train more shadow models (each example is left out of about half)"
            )
        }
        if variant == .online, let i = shadowIn.firstIndex(where: { $0.isEmpty }) {
            throw AuditError(
                "online LiRA: example \(i) has no shadow model trained with it; train more shadow models or use the offline variant"
            )
        }
        let globalOut = pooledStandardDeviation(shadowOut)
        let globalIn = pooledStandardDeviation(shadowIn)
        let useGlobal =
            shadowOut.contains { $0.count < minimumPerExample }
            || (variant == .online && shadowIn.contains { $0.count < minimumPerExample })
        return target.indices.map { i in
            let (muOut, sdOut) = Self.meanAndSD(shadowOut[i])
            let so = max(1e-6, useGlobal ? globalOut : sdOut)
            switch variant {
            case .offline:
                return (target[i] - muOut) / so
            case .online:
                let (muIn, sdIn) = Self.meanAndSD(shadowIn[i])
                let si = max(1e-6, useGlobal ? globalIn : sdIn)
                return Self.logNormal(target[i], muIn, si) - Self.logNormal(target[i], muOut, so)
            }
        }
    }

    static func meanAndSD(_ x: [Double]) -> (Double, Double) {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        guard x.count > 1 else { return (mean, 0) }
        let v = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        return (mean, v.squareRoot())
    }

    /// The root of the mean within-example variance (examples with two or more samples).
    func pooledStandardDeviation(_ groups: [[Double]]) -> Double {
        var sum = 0.0
        var dof = 0.0
        for g in groups where g.count > 1 {
            let (m, _) = Self.meanAndSD(g)
            sum += g.reduce(0) { $0 + ($1 - m) * ($1 - m) }
            dof += Double(g.count - 1)
        }
        return dof > 0 ? (sum / dof).squareRoot() : 1
    }

    static func logNormal(_ x: Double, _ mu: Double, _ sd: Double) -> Double {
        let z = (x - mu) / sd
        return -0.5 * z * z - log(sd)
    }
}
