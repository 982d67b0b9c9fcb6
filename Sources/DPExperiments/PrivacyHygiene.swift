import DPTraining
import Foundation

/// Settings under which a run's reported epsilon misleads: checked for every private run when
/// its plan is made, printed as warnings with the plan and recorded in the manifest's
/// `warnings`. The run still runs: these are judgements a researcher may overrule (an
/// epsilon of 50 on purpose, in a membership-inference study), never silent.
///
/// The thresholds and why:
/// - delta >= 1/n: the mechanism "publish one uniformly chosen example in full" is
///   (0, 1/n)-DP, so a delta of 1/n or more permits losing an example outright (Dwork and Roth
///   2014, sec. 2.3). Usual choices are well below 1/n (1e-5 for n = 60 000, or 1/n^1.1).
/// - epsilon > 10: the likelihood ratio bound e^epsilon exceeds 22 000: the guarantee bounds
///   next to nothing. epsilon < 0.01: so tight a budget needs noise that leaves little to learn;
///   usually a typo.
/// - sigma < 0.3: at so little noise the RDP and PLD bounds grow steeply (epsilon per step in
///   the tens), so the number reported reflects the bound's looseness more than any attack.
/// - q = 1 (full batch) with sigma < 1: no amplification by sampling; every step is the plain
///   Gaussian mechanism, whose epsilon over T steps at sigma < 1 is large.
/// - calibration by one accountant, report by another: `accountant: both` calibrates sigma with
///   RDP but runs.csv, tables and plots report the PLD upper bound (tighter), so the reported
///   epsilon is below the target, and runs calibrated differently are not comparable.
public enum PrivacyHygiene {
    public static let maximumSensibleEpsilon = 10.0
    public static let minimumSensibleEpsilon = 0.01
    public static let minimumNoiseMultiplier = 0.3

    /// What the checks need to know about one private run.
    public struct Facts: Hashable, Sendable {
        public var trainingSetSize: Int
        public var delta: Double
        public var samplingProbability: Double
        public var noiseMultiplier: Double
        public var steps: Int
        public var targetEpsilon: Double?
        /// The accountant sigma was calibrated with; nil when sigma was given.
        public var calibratedWith: AccountantKind?
        /// The accountant of the reported `epsilon` (PLD upper bound when computed, else RDP).
        public var reportedBy: AccountantKind
        /// The epsilon the run will report at its end; nil when not computed.
        public var reportedEpsilon: Double?

        public init(
            trainingSetSize: Int, delta: Double, samplingProbability: Double, noiseMultiplier: Double, steps: Int,
            targetEpsilon: Double? = nil, calibratedWith: AccountantKind? = nil, reportedBy: AccountantKind = .rdp,
            reportedEpsilon: Double? = nil
        ) {
            self.trainingSetSize = trainingSetSize
            self.delta = delta
            self.samplingProbability = samplingProbability
            self.noiseMultiplier = noiseMultiplier
            self.steps = steps
            self.targetEpsilon = targetEpsilon
            self.calibratedWith = calibratedWith
            self.reportedBy = reportedBy
            self.reportedEpsilon = reportedEpsilon
        }
    }

    /// The warnings for one private run (sigma > 0); empty when nothing is wrong.
    public static func warnings(_ f: Facts) -> [String] {
        var out: [String] = []
        let n = Double(f.trainingSetSize)
        if f.delta >= 1 / n {
            out.append(
                "delta \(number(f.delta)) >= 1/n = \(number(1 / n)) (n = \(f.trainingSetSize) training examples): publishing one example in full is (0, 1/n)-DP, so this delta permits losing an example outright; use delta well below 1/n, e.g. \(number(pow(n, -1.1))) (1/n^1.1)"
            )
        }
        let epsilon = f.targetEpsilon ?? f.reportedEpsilon
        let what = f.targetEpsilon != nil ? "target epsilon" : "the planned epsilon"
        if let e = epsilon, e > maximumSensibleEpsilon {
            out.append(
                "\(what) \(number(e)) > \(number(maximumSensibleEpsilon)): the guarantee bounds the likelihood ratio by e^\(number(e)), which says next to nothing; report it as a weak or empirical-only guarantee, or lower it"
            )
        }
        if let e = f.targetEpsilon, e < minimumSensibleEpsilon {
            out.append(
                "target epsilon \(number(e)) < \(number(minimumSensibleEpsilon)): it needs noise multiplier \(number(f.noiseMultiplier)), which leaves little to learn; check the value"
            )
        }
        if f.noiseMultiplier < minimumNoiseMultiplier {
            out.append(
                "noise multiplier \(number(f.noiseMultiplier)) < \(number(minimumNoiseMultiplier)): the accountants' bounds grow steeply at so little noise\(f.reportedEpsilon.map { " (epsilon \(number($0)))" } ?? ""), so the reported epsilon reflects the bound more than any attack; treat the run as a clip-only control or raise sigma"
            )
        }
        if f.samplingProbability >= 1, f.noiseMultiplier < 1 {
            out.append(
                "sampling probability 1 (full batch) with noise multiplier \(number(f.noiseMultiplier)) < 1: no amplification by sampling, each of the \(f.steps) steps is the plain Gaussian mechanism\(f.reportedEpsilon.map { ", epsilon \(number($0))" } ?? ""); use smaller batches or more noise"
            )
        }
        if let calibrated = f.calibratedWith, calibrated != f.reportedBy, let target = f.targetEpsilon {
            out.append(
                "sigma was calibrated with \(calibrated.rawValue.uppercased()) to epsilon \(number(target)), but runs.csv, tables and plots report the \(f.reportedBy.rawValue.uppercased()) epsilon\(f.reportedEpsilon.map { " (\(number($0)))" } ?? ""), which differs from the target; runs calibrated with different accountants are not comparable. Set privacy.accountant: \(f.reportedBy.rawValue) to calibrate with the reported accountant"
            )
        }
        return out
    }

    /// The error of a target no noise multiplier reaches.
    public static func unreachableTarget(
        _ target: Double, delta: Double, steps: Int, accountant: AccountantKind,
        preprocessing: Bool
    ) -> String {
        "privacy.target_epsilon: \(number(target)) cannot be reached at delta \(number(delta)) over \(steps) steps (\(accountant.rawValue)): no noise multiplier up to 1e6 gets there"
            + (preprocessing ? ", and the private input statistics alone may already cost more" : "")
            + "; raise the target, train fewer steps or use smaller batches"
    }

    /// Four significant digits: `0.0025`, `62.33`, `1e-05`.
    static func number(_ x: Double) -> String { String(format: "%.4g", x) }
}

// MARK: - The plan's warnings

extension PrivacyPlan {
    /// ``PrivacyHygiene`` warnings of this plan, given the epsilons it predicts (empty for a
    /// non-private run or a clip-only control).
    func warnings(epsilonRDP: Double?, epsilonPLDUpper: Double?) -> [String] {
        guard let sigma = noiseMultiplier, sigma > 0, let delta, stepEvent != nil else { return [] }
        return PrivacyHygiene.warnings(
            PrivacyHygiene.Facts(
                trainingSetSize: trainingSetSize, delta: delta, samplingProbability: samplingProbability,
                noiseMultiplier: sigma,
                steps: steps, targetEpsilon: privacySettings?.targetEpsilon, calibratedWith: calibratedWith,
                reportedBy: epsilonPLDUpper != nil ? .pld : .rdp, reportedEpsilon: epsilonPLDUpper ?? epsilonRDP))
    }
}
