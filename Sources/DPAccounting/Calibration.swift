// Calibrating the noise multiplier and the number of steps to a privacy budget.
import Foundation

/// The noise multiplier sigma whose composed epsilon is at most `targetEpsilon` and within 1%
/// of it, for `steps` Poisson-sampled Gaussian steps (add/remove-one).
///
/// Epsilon decreases in sigma. The search brackets sigma by doubling and halving, then bisects,
/// always returning the upper end of the bracket, whose epsilon is `<= targetEpsilon`
/// (the conservative side), and stops once it is within 0.5% of the target.
///
/// - Parameters:
///   - accountant: an empty accountant used as a prototype (its settings are kept).
/// - Throws: ``AccountingError/invalidParameter(_:)`` for an out-of-range value,
///   ``AccountingError/calibrationFailed(_:)`` if no sigma in [1e-3, 1e6] reaches the target.
public func noiseMultiplier<A: PrivacyAccountant>(
    targetEpsilon: Double, delta: Double, samplingProbability: Double, steps: Int,
    accountant: A = RDPAccountant()
) throws -> Double {
    guard samplingProbability > 0, samplingProbability <= 1 else {
        throw AccountingError.invalidParameter(
            "samplingProbability = \(samplingProbability) is invalid: it must be in (0, 1]")
    }
    try Validate.count(steps)
    return try noiseMultiplier(targetEpsilon: targetEpsilon, delta: delta, accountant: accountant) {
        .selfComposed(
            event: .poissonSampled(
                probability: samplingProbability,
                event: .gaussian(noiseMultiplier: $0)), count: steps)
    }
}

/// The noise multiplier for any event family `event(sigma)` whose epsilon decreases in sigma,
/// for example sampling without replacement under replace-one:
/// `{ .selfComposed(event: .sampledWithoutReplacement(sampleSize: 256, datasetSize: 60000,
/// event: .gaussian(noiseMultiplier: $0)), count: 1000) }` with
/// `RDPAccountant(neighboringRelation: .replaceOne)`.
///
/// Returns the conservative end of the bisection: its epsilon is always `<= targetEpsilon`,
/// and within 1% of it.
public func noiseMultiplier<A: PrivacyAccountant>(
    targetEpsilon: Double, delta: Double, accountant: A = RDPAccountant(),
    event: (Double) -> DpEvent
) throws -> Double {
    guard targetEpsilon > 0, targetEpsilon.isFinite else {
        throw AccountingError.invalidParameter(
            "targetEpsilon = \(targetEpsilon) is invalid: it must be finite and > 0")
    }
    try Validate.delta(delta)
    func eps(_ sigma: Double) throws -> Double {
        var a = accountant
        try a.compose(event(sigma), count: 1)
        return try a.epsilon(delta: delta).epsilon
    }
    var hi = 1.0
    var epsHi = try eps(hi)
    while epsHi > targetEpsilon {
        hi *= 2
        guard hi <= 1e6 else {
            throw AccountingError.calibrationFailed(
                "no noise multiplier up to 1e6 gives epsilon <= \(targetEpsilon) at delta = \(delta)")
        }
        epsHi = try eps(hi)
    }
    var lo = hi / 2
    var epsLo = try eps(lo)
    while epsLo <= targetEpsilon {
        hi = lo
        epsHi = epsLo
        lo /= 2
        if lo < 1e-3 { return hi } // the budget is loose enough for almost no noise
        epsLo = try eps(lo)
    }
    // Invariant: eps(lo) > target >= eps(hi).
    for _ in 0..<100 {
        if epsHi >= 0.995 * targetEpsilon || hi - lo <= 1e-12 * hi { break }
        let mid = 0.5 * (lo + hi)
        let e = try eps(mid)
        if e <= targetEpsilon {
            hi = mid
            epsHi = e
        } else {
            lo = mid
        }
    }
    return hi
}

/// The largest number of steps `T` whose composed epsilon is `<= targetEpsilon`
/// (0 if even one step exceeds it), by doubling then bisection on integers; epsilon increases
/// with `T`. Searches up to `limit` steps.
public func maxSteps<A: PrivacyAccountant>(
    targetEpsilon: Double, delta: Double, samplingProbability: Double, noiseMultiplier: Double,
    accountant: A = RDPAccountant(), limit: Int = 1 << 40
) throws -> Int {
    guard targetEpsilon >= 0, targetEpsilon.isFinite else {
        throw AccountingError.invalidParameter(
            "targetEpsilon = \(targetEpsilon) is invalid: it must be finite and >= 0")
    }
    try Validate.delta(delta)
    let step = DpEvent.poissonSampled(
        probability: samplingProbability,
        event: .gaussian(noiseMultiplier: noiseMultiplier))
    try step.validate()
    func eps(_ t: Int) throws -> Double {
        var a = accountant
        try a.compose(step, count: t)
        return try a.epsilon(delta: delta).epsilon
    }
    if try eps(1) > targetEpsilon { return 0 }
    var good = 1, bad = 2
    while try eps(bad) <= targetEpsilon {
        good = bad
        if bad >= limit { return limit }
        bad = Swift.min(limit, bad * 2)
    }
    while bad - good > 1 {
        let mid = good + (bad - good) / 2
        if try eps(mid) <= targetEpsilon { good = mid } else { bad = mid }
    }
    return good
}
