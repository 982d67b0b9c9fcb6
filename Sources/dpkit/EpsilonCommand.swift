import ArgumentParser
import DPAccounting
import Foundation

/// Which accountant a command uses.
enum AccountantChoice: String, ExpressibleByArgument, CaseIterable {
    case rdp, pld
}

/// How each training batch was drawn.
enum SamplingChoice: String, ExpressibleByArgument, CaseIterable {
    case poisson
    case withoutReplacement = "without-replacement"
}

/// The training schedule shared by `epsilon` and `calibrate`.
struct ScheduleOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Sampling probability q in (0, 1] (batch size / dataset size).")
    var samplingProbability: Double

    @Option(parsing: .unconditional, help: "Number of training steps T >= 0.")
    var steps: Int

    @Option(parsing: .unconditional, help: "Target delta in (0, 1).")
    var delta: Double

    @Option(help: "Batch sampler: poisson (add/remove-one) or without-replacement (fixed batches of round(q N), replace-one, where the clipped sum's sensitivity is 2C; needs --dataset-size).")
    var sampling: SamplingChoice = .poisson

    @Option(parsing: .unconditional, help: "Dataset size N >= 1 (only with --sampling without-replacement).")
    var datasetSize: Int?

    func validate() throws {
        guard samplingProbability > 0, samplingProbability <= 1 else {
            throw ValidationError("--sampling-probability must be in (0, 1], got \(samplingProbability)")
        }
        guard steps >= 0 else { throw ValidationError("--steps must be >= 0, got \(steps)") }
        guard delta > 0, delta < 1 else {
            throw ValidationError("--delta must be in (0, 1), got \(delta)")
        }
        switch sampling {
        case .poisson:
            if datasetSize != nil {
                throw ValidationError("--dataset-size is only used with --sampling without-replacement")
            }
        case .withoutReplacement:
            guard let n = datasetSize else {
                throw ValidationError("--sampling without-replacement needs --dataset-size N (N >= 1)")
            }
            guard n >= 1 else { throw ValidationError("--dataset-size must be >= 1, got \(n)") }
            guard sampleSize >= 1 else {
                throw ValidationError("--sampling-probability x --dataset-size must round to a batch of at least 1 record, got \(samplingProbability * Double(n))")
            }
        }
    }

    /// The fixed batch size `round(q N)` for sampling without replacement.
    var sampleSize: Int { Int((samplingProbability * Double(datasetSize ?? 0)).rounded()) }

    var relation: NeighboringRelation { sampling == .poisson ? .addOrRemoveOne : .replaceOne }

    /// The composed event for training noise multiplier `sigma` (noise standard deviation over
    /// the clipping norm C, as everywhere in DPKit). Under replace-one the sensitivity of the
    /// clipped sum is 2C, so the same noise is the Gaussian mechanism of multiplier sigma / 2
    /// there (the trainer's `BatchSampler.stepEvent` composes exactly this event).
    func event(noiseMultiplier sigma: Double) -> DpEvent {
        switch sampling {
        case .poisson:
            return .selfComposed(event: .poissonSampled(probability: samplingProbability,
                                                        event: .gaussian(noiseMultiplier: sigma)),
                                 count: steps)
        case .withoutReplacement:
            return .selfComposed(event: .sampledWithoutReplacement(sampleSize: sampleSize,
                                                                   datasetSize: datasetSize ?? 0,
                                                                   event: .gaussian(noiseMultiplier: sigma / 2)),
                                 count: steps)
        }
    }

    func accountant(_ choice: AccountantChoice) -> any PrivacyAccountant {
        switch choice {
        case .rdp: return RDPAccountant(neighboringRelation: relation)
        case .pld: return PLDAccountant(neighboringRelation: relation)
        }
    }

    /// JSON fields describing the schedule.
    var jsonFields: [String: Any] {
        var f: [String: Any] = [
            "sampling_probability": samplingProbability, "steps": steps, "delta": delta,
            "sampling": sampling.rawValue, "neighboring_relation": relation.rawValue,
        ]
        if sampling == .withoutReplacement {
            f["dataset_size"] = datasetSize ?? 0
            f["sample_size"] = sampleSize
        }
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

    @Option(parsing: .unconditional, help: "Noise multiplier sigma > 0: noise std / clipping norm C, as in training (accounted as sigma / 2 under without-replacement, where the sensitivity is 2C).")
    var noiseMultiplier: Double

    @Option(help: "Accountant: rdp or pld (default: both in text output, rdp in JSON).")
    var accountant: AccountantChoice?

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard noiseMultiplier > 0, noiseMultiplier.isFinite else {
            throw ValidationError("--noise-multiplier must be finite and > 0, got \(noiseMultiplier)")
        }
        if accountant == .pld, schedule.sampling == .withoutReplacement {
            throw ValidationError("--accountant pld does not support --sampling without-replacement (replace-one); use --accountant rdp")
        }
    }

    func report(_ choice: AccountantChoice) throws -> EpsilonReport {
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
            let choices: [AccountantChoice] = accountant.map { [$0] }
                ?? (schedule.sampling == .poisson ? [.rdp, .pld] : [.rdp])
            print("q = \(schedule.samplingProbability), sigma = \(noiseMultiplier), T = \(schedule.steps), delta = \(schedule.delta), \(schedule.sampling.rawValue) sampling (\(schedule.relation.rawValue))")
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
