import ArgumentParser
import DPAccounting
import DPTraining
import Foundation

/// `dpkit calibrate`: the smallest noise multiplier (to 1%) that meets an epsilon budget.
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Find the noise multiplier whose epsilon is <= the target (and within 1%).")

    @OptionGroup var schedule: ScheduleOptions

    @Option(parsing: .unconditional, help: "Target epsilon > 0.")
    var epsilon: Double

    @Option(help: "Accountant: rdp or pld.")
    var accountant: AccountantKind = .rdp

    @Flag(help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard epsilon > 0, epsilon.isFinite else {
            throw ValidationError("--epsilon must be finite and > 0, got \(epsilon)")
        }
        guard schedule.stepCount >= 1 else {
            throw ValidationError("--steps must be >= 1 to calibrate, got \(schedule.stepCount)")
        }
        if accountant == .pld, schedule.sampling == .fixedSize {
            throw ValidationError(
                "--accountant pld does not support --sampling fixed-size (replace-one); use --accountant rdp")
        }
    }

    func run() throws {
        do {
            let prototype = schedule.accountant(accountant)
            let sigma = try calibrate(prototype)
            var a = prototype
            try a.compose(schedule.event(noiseMultiplier: sigma), count: 1)
            let r = try a.epsilon(delta: schedule.delta)
            if json {
                var f = schedule.jsonFields
                f.merge(EpsilonCommand.jsonFields(r)) { $1 }
                f["noise_multiplier"] = sigma
                f["target_epsilon"] = epsilon
                try printJSON(f)
            } else {
                print(String(format: "noise multiplier = %.6g", sigma))
                print(EpsilonCommand.describe(r))
            }
        } catch let e as AccountingError {
            throw ValidationError(e.description)
        }
    }

    private func calibrate<A: PrivacyAccountant>(_ prototype: A) throws -> Double {
        try noiseMultiplier(targetEpsilon: epsilon, delta: schedule.delta, accountant: prototype) {
            schedule.event(noiseMultiplier: $0)
        }
    }
}
