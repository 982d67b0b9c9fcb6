import ArgumentParser
import DPAccounting
import DPTraining
import Foundation

extension AccountantKind: ExpressibleByArgument {}

extension SamplingScheme: ExpressibleByArgument {}

/// The training schedule shared by `epsilon` and `calibrate`: either q and T directly, or the
/// sizes a user thinks in (dataset size, batch size, epochs), turned into q and T exactly as
/// the trainer does (q = B / N, an epoch is round(N / B) steps).
struct ScheduleOptions: ParsableArguments {
    @Option(
        parsing: .unconditional,
        help: "Sampling probability q in (0, 1] (batch size / dataset size); or give --dataset-size and --batch-size.")
    var samplingProbability: Double?

    @Option(
        parsing: .unconditional,
        help: "Number of training steps T >= 0; or give --epochs with --dataset-size and --batch-size.")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Target delta in (0, 1).")
    var delta: Double

    @Option(
        help:
            "Batch sampler, as `privacy.sampling` in configs: poisson (add/remove-one) or fixed-size (batches of exactly B = round(q N), replace-one, where the clipped sum's sensitivity is 2C; needs --dataset-size)."
    )
    var sampling: SamplingScheme = .poisson

    @Option(parsing: .unconditional, help: "Dataset size N >= 1.")
    var datasetSize: Int?

    @Option(parsing: .unconditional, help: "Expected batch size B in 1...N (with --dataset-size): q = B / N.")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Epochs E >= 1 (with --dataset-size and --batch-size): T = E round(N / B).")
    var epochs: Int?

    func validate() throws {
        guard delta > 0, delta < 1 else { throw ValidationError("--delta must be in (0, 1), got \(delta)") }
        if let n = datasetSize, n < 1 { throw ValidationError("--dataset-size must be >= 1, got \(n)") }
        if let b = batchSize {
            guard let n = datasetSize else { throw ValidationError("--batch-size needs --dataset-size N") }
            guard b >= 1, b <= n else {
                throw ValidationError("--batch-size must be in 1...\(n) (the dataset size), got \(b)")
            }
            if samplingProbability != nil {
                throw ValidationError("give either --sampling-probability or --batch-size, not both")
            }
        } else {
            guard let q = samplingProbability else {
                throw ValidationError("give --sampling-probability q, or --dataset-size N with --batch-size B")
            }
            guard q > 0, q <= 1 else { throw ValidationError("--sampling-probability must be in (0, 1], got \(q)") }
        }
        if let e = epochs {
            guard batchSize != nil else {
                throw ValidationError("--epochs needs --dataset-size and --batch-size (an epoch is round(N / B) steps)")
            }
            guard e >= 1 else { throw ValidationError("--epochs must be >= 1, got \(e)") }
            if steps != nil { throw ValidationError("give either --steps or --epochs, not both") }
        } else {
            guard let t = steps else {
                throw ValidationError("give --steps T, or --epochs E with --dataset-size and --batch-size")
            }
            guard t >= 0 else { throw ValidationError("--steps must be >= 0, got \(t)") }
        }
        if sampling == .fixedSize {
            guard datasetSize != nil else {
                throw ValidationError("--sampling fixed-size needs --dataset-size N (N >= 1)")
            }
            guard sampleSize >= 1 else {
                throw ValidationError(
                    "--sampling-probability x --dataset-size must round to a batch of at least 1 record, got \(q * Double(datasetSize ?? 0))"
                )
            }
        } else if datasetSize != nil, batchSize == nil {
            throw ValidationError("--dataset-size is only used with --batch-size or --sampling fixed-size")
        }
    }

    /// q: given, or B / N.
    var q: Double { samplingProbability ?? Double(batchSize ?? 1) / Double(datasetSize ?? 1) }

    /// T: given, or E epochs of round(N / B) steps.
    var stepCount: Int {
        if let steps { return steps }
        return (epochs ?? 1) * SamplingScheme.stepsPerEpoch(datasetSize: datasetSize ?? 1, batchSize: batchSize ?? 1)
    }

    /// The fixed batch size: B, or round(q N).
    var sampleSize: Int { batchSize ?? Int((q * Double(datasetSize ?? 0)).rounded()) }

    var relation: NeighboringRelation { sampling.neighboringRelation }

    /// The composed event for training noise multiplier `sigma` (noise standard deviation over
    /// the clipping norm C, as everywhere in DPKit): the trainer's rule, ``SamplingScheme/stepEvent``.
    func event(noiseMultiplier sigma: Double) -> DpEvent {
        .selfComposed(
            event: sampling.stepEvent(
                samplingProbability: q, batchSize: sampleSize, datasetSize: datasetSize ?? 0,
                noiseMultiplier: sigma),
            count: stepCount)
    }

    func accountant(_ choice: AccountantKind) -> any PrivacyAccountant { choice.make(relation: relation) }

    /// JSON fields describing the schedule.
    var jsonFields: [String: Any] {
        var f: [String: Any] = [
            "sampling_probability": q, "steps": stepCount, "delta": delta,
            "sampling": sampling.rawValue, "neighboring_relation": relation.name,
        ]
        if let n = datasetSize { f["dataset_size"] = n }
        if sampling == .fixedSize || batchSize != nil { f["batch_size"] = sampleSize }
        if let e = epochs { f["epochs"] = e }
        return f
    }
}

/// Prints one JSON object with sorted keys.
func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// `dpkit epsilon`: the (epsilon, delta) guarantee of a DP-SGD schedule.
struct EpsilonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epsilon",
        abstract: "Compute epsilon for a subsampled-Gaussian training schedule.",
        discussion: """
            Without --accountant, prints both the RDP bound and the PLD interval (PLD only for \
            Poisson sampling); --json then reports RDP. With --accountant, uses that one.
            """)

    @OptionGroup var schedule: ScheduleOptions

    @Option(
        parsing: .unconditional,
        help:
            "Noise multiplier sigma > 0: noise std / clipping norm C, as in training (accounted as sigma / 2 under fixed-size sampling, where the sensitivity is 2C)."
    )
    var noiseMultiplier: Double

    @Option(help: "Accountant: rdp or pld (default: both in text output, rdp in JSON).")
    var accountant: AccountantKind?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard noiseMultiplier > 0, noiseMultiplier.isFinite else {
            throw ValidationError("--noise-multiplier must be finite and > 0, got \(noiseMultiplier)")
        }
        if accountant == .pld, schedule.sampling == .fixedSize {
            throw ValidationError(
                "--accountant pld does not support --sampling fixed-size (replace-one); use --accountant rdp")
        }
    }

    func report(_ choice: AccountantKind) throws -> EpsilonReport {
        var a = schedule.accountant(choice)
        try a.compose(schedule.event(noiseMultiplier: noiseMultiplier), count: 1)
        return try a.epsilon(delta: schedule.delta)
    }

    func run() throws {
        do {
            if json {
                let r = try report(accountant ?? .rdp)
                var f = schedule.jsonFields
                f["noise_multiplier"] = noiseMultiplier
                f.merge(EpsilonCommand.jsonFields(r)) { $1 }
                try printJSON(f)
                return
            }
            let choices: [AccountantKind] =
                accountant.map { [$0] }
                ?? (schedule.sampling == .poisson ? [.rdp, .pld] : [.rdp])
            print(
                "q = \(schedule.q), sigma = \(noiseMultiplier), T = \(schedule.stepCount), delta = \(schedule.delta), \(schedule.sampling.rawValue) sampling (\(schedule.relation.name) neighbouring, per example)"
            )
            for c in choices { print(EpsilonCommand.describe(try report(c))) }
        } catch let e as AccountingError {
            throw ValidationError(e.description)
        }
    }

    static func jsonFields(_ r: EpsilonReport) -> [String: Any] {
        // JSON has no infinity: an unbounded epsilon is written as the string "Infinity".
        func number(_ x: Double) -> Any { x.isFinite ? x : (x > 0 ? "Infinity" : "NaN") }
        var f: [String: Any] = ["epsilon": number(r.epsilon), "accountant": r.accountant, "warnings": r.warnings]
        if let o = r.order { f["order"] = o }
        if let l = r.epsilonLower { f["epsilon_lower"] = number(l) }
        if let u = r.epsilonUpper { f["epsilon_upper"] = number(u) }
        return f
    }

    static func describe(_ r: EpsilonReport) -> String {
        var s: String
        switch r.accountant {
        case "rdp":
            s = String(format: "RDP: epsilon = %.6g (optimal order %g)", r.epsilon, r.order ?? .nan)
        default:
            s = String(format: "PLD: epsilon is between %.6g and %.6g", r.epsilonLower ?? .nan, r.epsilonUpper ?? .nan)
        }
        for w in r.warnings { s += "\n  warning: \(w)" }
        return s
    }
}
