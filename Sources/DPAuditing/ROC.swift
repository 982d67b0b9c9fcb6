import Foundation

/// The receiver operating characteristic of a membership test: members (positives) and
/// non-members (negatives) are scored, higher meaning "member", and every threshold gives a
/// (false-positive rate, true-positive rate) point.
///
/// Reported as Carlini et al. (2022) ask: the whole curve (for a log-log plot), the AUC, the
/// best balanced accuracy over thresholds, and the TPR at a low FPR (0.1%, 1%). These describe
/// an attack on one evaluation set; they are not bounds and carry no confidence statement.
public struct ROCCurve: Sendable {
    /// (fpr, tpr) from (0, 0) to (1, 1), one point per distinct score, ties taken together.
    public let points: [(fpr: Double, tpr: Double)]
    public let positives: Int
    public let negatives: Int

    /// - Precondition: at least one score on each side, all finite.
    public init(memberScores: [Double], nonMemberScores: [Double]) {
        precondition(!memberScores.isEmpty && !nonMemberScores.isEmpty, "an ROC needs members and non-members")
        precondition(
            (memberScores + nonMemberScores).allSatisfy { $0.isFinite }, "membership scores must be finite")
        positives = memberScores.count
        negatives = nonMemberScores.count
        let scored = (memberScores.map { ($0, true) } + nonMemberScores.map { ($0, false) }).sorted { $0.0 > $1.0 }
        var pts: [(fpr: Double, tpr: Double)] = [(0, 0)]
        var tp = 0
        var fp = 0
        var i = 0
        while i < scored.count {
            let s = scored[i].0
            while i < scored.count, scored[i].0 == s {
                if scored[i].1 { tp += 1 } else { fp += 1 }
                i += 1
            }
            pts.append((Double(fp) / Double(negatives), Double(tp) / Double(positives)))
        }
        points = pts
    }

    /// The area under the curve (trapezoids: ties count one half), equal to
    /// `P[member score > non-member score] + P[tie] / 2`.
    public var auc: Double {
        var a = 0.0
        for (p, q) in zip(points, points.dropFirst()) { a += (q.fpr - p.fpr) * (q.tpr + p.tpr) / 2 }
        return a
    }

    /// The largest TPR among thresholds whose FPR is at most `fpr`.
    public func tpr(atFPR fpr: Double) -> Double {
        points.filter { $0.fpr <= fpr }.map(\.tpr).max() ?? 0
    }

    /// The best balanced accuracy `(TPR + 1 - FPR) / 2` over thresholds (chosen on the
    /// evaluation set itself: an optimistic figure, as in the literature).
    public var balancedAccuracy: Double {
        points.map { ($0.tpr + 1 - $0.fpr) / 2 }.max() ?? 0.5
    }

    /// `fpr,tpr` lines with a header.
    public var csv: String {
        var s = "fpr,tpr\n"
        for p in points { s += "\(p.fpr),\(p.tpr)\n" }
        return s
    }
}
