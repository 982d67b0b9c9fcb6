import Foundation

/// An empirical lower bound on epsilon with everything needed to judge it.
///
/// Sound means: if the audited algorithm is (epsilon, delta)-DP for the stated relation, the
/// reported `epsilon` exceeds the true epsilon with probability at most `1 - confidence` over
/// the audit's own randomness (canary inclusion, trials). The number is 0 when the evidence
/// shows nothing.
public struct EmpiricalEpsilon: Hashable, Sendable, Codable {
    /// The lower bound on epsilon (0 when nothing is shown).
    public var epsilon: Double
    /// The delta the bound is stated at (the same delta as the theoretical epsilon).
    public var delta: Double
    /// The probability that the bound holds (e.g. 0.95).
    public var confidence: Double
    /// "multi-run" or "one-run".
    public var method: String
    /// Trials (multi-run: models trained or mechanism runs; one-run: canaries).
    public var trials: Int
    /// How the threshold or the number of guesses was chosen, and the correction applied.
    public var selection: String
    /// The counts behind the bound (multi-run: false positives/negatives; one-run: guesses, correct).
    public var counts: [String: Int]

    /// One sentence for reports and manifests.
    public var statement: String {
        let c = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return String(
            format: "empirical epsilon >= %.4g at delta %g with confidence %g (%@, %d trials; %@; %@)", epsilon,
            delta, confidence, method, trials, c, selection)
    }
}

func checkConfidence(_ confidence: Double) throws {
    guard confidence > 0, confidence < 1 else {
        throw AuditError("confidence \(confidence) is outside (0, 1): give the probability the bound holds, e.g. 0.95")
    }
}

func checkDelta(_ delta: Double) throws {
    guard delta >= 0, delta < 1 else {
        throw AuditError("delta \(delta) is outside [0, 1): use the delta of the theoretical epsilon, e.g. 1e-5")
    }
}

// MARK: - Multi-run audits

/// The classical audit (Jagielski, Ullman and Oprea 2020; Nasr et al. 2021): run the mechanism
/// many times on a dataset with the canary (positives) and without it (negatives), score each
/// output, and call "canary present" when the score is at least a threshold `t`.
///
/// (epsilon, delta)-DP implies, for every test, `FPR + e^eps FNR >= 1 - delta` and
/// `FNR + e^eps FPR >= 1 - delta`. With Clopper-Pearson upper bounds `FPR_U`, `FNR_U` that hold
/// together with probability `1 - alpha`,
/// `eps >= max(log((1 - delta - FPR_U) / FNR_U), log((1 - delta - FNR_U) / FPR_U))`.
///
/// Threshold choice on held-out trials: the trials are i.i.d., so the first half of each side
/// chooses the threshold (the candidate with the largest bound there, among every distinct
/// score of that half or, when there are more, `thresholdCount` of its quantiles evenly spaced
/// in log-odds from 0.001 to 0.999 plus the median) and the second half alone gives the counts
/// and the bound at the full `1 - confidence` (each rate at `alpha / 2`). The threshold is then
/// fixed before the counted trials are looked at, so the bound needs no correction for the
/// choice. (Choosing on the counted trials themselves would not be sound.)
public enum MultiRunAudit {
    /// The bound for one fixed test from its error counts, both rates at `alpha / 2`.
    public static func epsilonLowerBound(
        falsePositives: Int, negatives: Int, falseNegatives: Int, positives: Int, delta: Double, alpha: Double
    ) -> Double {
        let fprU = ClopperPearson.upperBound(successes: falsePositives, trials: negatives, alpha: alpha / 2)
        let fnrU = ClopperPearson.upperBound(successes: falseNegatives, trials: positives, alpha: alpha / 2)
        func side(_ a: Double, _ b: Double) -> Double {
            let num = 1 - delta - a
            guard num > 0, b > 0 else { return b == 0 && num > 0 ? .infinity : 0 }
            return log(num / b)
        }
        return max(0, side(fprU, fnrU), side(fnrU, fprU))
    }

    /// The bound from the scores of runs with the canary (`positives`) and without it
    /// (`negatives`), over `thresholdCount` candidate thresholds with the Bonferroni correction.
    /// - Throws: ``AuditError`` for a confidence outside (0, 1), a delta outside [0, 1), or
    ///   fewer than one score on either side.
    public static func audit(
        positives: [Double], negatives: [Double], delta: Double, confidence: Double, thresholdCount: Int = 32
    ) throws -> EmpiricalEpsilon {
        try checkConfidence(confidence)
        try checkDelta(delta)
        guard !positives.isEmpty, !negatives.isEmpty else {
            throw AuditError(
                "a multi-run audit needs runs with and without the canary (got \(positives.count) and \(negatives.count)); raise the number of trials"
            )
        }
        guard positives.count >= 2, negatives.count >= 2 else {
            throw AuditError(
                "a multi-run audit needs at least 2 runs with and 2 without the canary (half choose the threshold, half bound); got \(positives.count) and \(negatives.count)"
            )
        }
        guard thresholdCount >= 1 else { throw AuditError("threshold count \(thresholdCount) must be at least 1") }
        let alpha = 1 - confidence
        let (choosePos, countPos) = (
            Array(positives[..<(positives.count / 2)]), Array(positives[(positives.count / 2)...])
        )
        let (chooseNeg, countNeg) = (
            Array(negatives[..<(negatives.count / 2)]), Array(negatives[(negatives.count / 2)...])
        )
        let candidates = thresholdCandidates((choosePos + chooseNeg).sorted(), count: thresholdCount)
        let sortedPos = choosePos.sorted()
        let sortedNeg = chooseNeg.sorted()
        var threshold = candidates[0]
        var best = -1.0
        for t in candidates {
            let fp = sortedNeg.count - firstIndex(atLeast: t, in: sortedNeg)
            let fn = firstIndex(atLeast: t, in: sortedPos)
            let e = epsilonLowerBound(
                falsePositives: fp, negatives: sortedNeg.count, falseNegatives: fn, positives: sortedPos.count,
                delta: delta, alpha: alpha)
            if e > best {
                best = e
                threshold = t
            }
        }
        let fp = countNeg.lazy.filter { $0 >= threshold }.count
        let fn = countPos.lazy.filter { $0 < threshold }.count
        let bound = epsilonLowerBound(
            falsePositives: fp, negatives: countNeg.count, falseNegatives: fn, positives: countPos.count, delta: delta,
            alpha: alpha)
        return EmpiricalEpsilon(
            epsilon: bound, delta: delta, confidence: confidence, method: "multi-run",
            trials: positives.count + negatives.count,
            selection:
                "threshold chosen on the first half of the trials (best of \(candidates.count) candidates), bound from the other \(countPos.count) + \(countNeg.count) trials, Clopper-Pearson at alpha/2 per rate",
            counts: [
                "false_positives": fp, "false_negatives": fn, "positives": countPos.count, "negatives": countNeg.count,
            ])
    }

    /// Every distinct score of `sorted` when there are at most `count`, else `count` quantiles
    /// evenly spaced in log-odds from 0.001 to 0.999 and the median (the strongest tests of a
    /// tight mechanism sit in the tails; a separating threshold of a balanced audit, at the
    /// median).
    static func thresholdCandidates(_ sorted: [Double], count: Int) -> [Double] {
        var out: [Double] = []
        if sorted.count <= count {
            for t in sorted where out.last != t { out.append(t) }
            return out
        }
        var qs = (0..<count).map { i in
            1 / (1 + exp(-(count == 1 ? 0 : -6.9 + 13.8 * Double(i) / Double(count - 1))))
        }
        qs.append(0.5)
        for q in qs.sorted() {
            let t = sorted[min(sorted.count - 1, Int(q * Double(sorted.count)))]
            if out.last != t { out.append(t) }
        }
        return out
    }

    /// The first index of ascending `sorted` whose value is at least `t` (binary search).
    static func firstIndex(atLeast t: Double, in sorted: [Double]) -> Int {
        var lo = 0
        var hi = sorted.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sorted[mid] < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

// MARK: - One-run audits

/// Auditing with one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).
///
/// `m` canaries are each included independently with probability 1/2; after one run the auditor
/// guesses "in" or "out" for `r` of them (abstaining on the rest) and `v` guesses are right. If
/// the algorithm is epsilon-DP for adding or removing one canary, the number of correct guesses
/// is stochastically dominated by `Bin(r, e^eps / (1 + e^eps))`; with delta > 0 their
/// Theorem 5.2 adds `2 m delta max_{1<=i<=v} P[v - i <= Bin(r, q) < v] / i` to the p-value. The
/// bound is the largest epsilon that this p-value rejects at `1 - confidence`.
public enum OneRunAudit {
    /// The p-value of `v` correct out of `r` guesses (of `m` canaries) under (epsilon, delta)-DP.
    public static func pValue(canaries m: Int, guesses r: Int, correct v: Int, epsilon: Double, delta: Double) -> Double
    {
        precondition(0 <= v && v <= r && r <= m, "need 0 <= correct <= guesses <= canaries (\(v), \(r), \(m))")
        let q = 1 / (1 + exp(-epsilon))
        let b = Binomial(trials: r, probability: q)
        let tail = b.upperTail(atLeast: v)
        guard delta > 0, v > 0 else { return min(1, tail) }
        var worst = 0.0
        var running = 0.0
        for i in 1...v {
            running += exp(b.logProbability(v - i))
            worst = max(worst, running / Double(i))
        }
        return min(1, tail + 2 * Double(m) * delta * worst)
    }

    /// The epsilon lower bound for `v` correct of `r` guesses at `1 - alpha` (0 if even
    /// epsilon = 0 is not rejected).
    public static func epsilonLowerBound(
        canaries m: Int, guesses r: Int, correct v: Int, delta: Double, alpha: Double
    )
        -> Double
    {
        guard r > 0, pValue(canaries: m, guesses: r, correct: v, epsilon: 0, delta: delta) < alpha else { return 0 }
        var lo = 0.0
        var hi = 1.0
        while pValue(canaries: m, guesses: r, correct: v, epsilon: hi, delta: delta) < alpha, hi < 100 { hi *= 2 }
        for _ in 0..<50 {
            let mid = (lo + hi) / 2
            if pValue(canaries: m, guesses: r, correct: v, epsilon: mid, delta: delta) < alpha {
                lo = mid
            } else {
                hi = mid
            }
        }
        return lo
    }

    /// Guesses from scores (higher: more likely included): "in" for the `k` highest, "out" for
    /// the `k` lowest, abstain on the rest; `k` runs over `guessCounts` (each at most m/2) and
    /// the best bound is reported with the confidence split over them (Bonferroni), so the
    /// choice of `k` after seeing the outcome stays sound.
    /// - Throws: ``AuditError`` for mismatched inputs, no canaries, a confidence outside (0, 1).
    public static func audit(
        scores: [Double], included: [Bool], delta: Double, confidence: Double, guessCounts: [Int]? = nil
    ) throws -> EmpiricalEpsilon {
        try checkConfidence(confidence)
        try checkDelta(delta)
        let m = scores.count
        guard m == included.count else {
            throw AuditError("\(m) canary scores for \(included.count) inclusion bits: one score per canary")
        }
        guard m >= 2 else { throw AuditError("a one-run audit needs at least 2 canaries, got \(m)") }
        guard scores.allSatisfy({ $0.isFinite }) else {
            throw AuditError("a canary score is not finite: the audited model diverged; audit a run that trained")
        }
        let ks = (guessCounts ?? defaultGuessCounts(canaries: m)).filter { $0 >= 1 && 2 * $0 <= m }
        guard !ks.isEmpty else {
            throw AuditError("no usable guess count for \(m) canaries (each k needs 1 <= k <= m/2)")
        }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let alpha = (1 - confidence) / Double(ks.count)
        var best = 0.0
        var bestK = ks[0]
        var bestCorrect = 0
        for k in ks {
            let top = order.prefix(k).filter { included[$0] }.count
            let bottom = order.suffix(k).filter { !included[$0] }.count
            let v = top + bottom
            let e = epsilonLowerBound(canaries: m, guesses: 2 * k, correct: v, delta: delta, alpha: alpha)
            if e > best || (e == best && k == ks[0]) {
                best = e
                bestK = k
                bestCorrect = v
            }
        }
        return EmpiricalEpsilon(
            epsilon: best, delta: delta, confidence: confidence, method: "one-run", trials: m,
            selection:
                "guesses on the k most and k least confident canaries, best of k in \(ks) with Bonferroni correction (alpha/\(ks.count) each)",
            counts: ["canaries": m, "guesses": 2 * bestK, "correct": bestCorrect])
    }

    /// k in {m/100, m/50, m/20, m/10, m/5, m/2}, rounded, at least 1.
    static func defaultGuessCounts(canaries m: Int) -> [Int] {
        let fractions = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]
        var out: [Int] = []
        for f in fractions {
            let k = max(1, Int((f * Double(m)).rounded()))
            if 2 * k <= m, out.last != k { out.append(min(k, m / 2)) }
        }
        return out
    }
}
