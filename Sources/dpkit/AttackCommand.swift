import ArgumentParser
import DPAuditing
import DPExperiments
import Foundation

/// `dpkit attack`: attacks on the trained models of a results folder.
struct AttackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attack",
        abstract: "Attacks on the trained models of a results folder (adversarial examples).",
        subcommands: [AdversarialCommand.self])
}

/// `dpkit attack adversarial RUN_DIR`: FGSM or PGD on every finished run's exported model.
struct AdversarialCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adversarial",
        abstract: "FGSM or PGD adversarial examples against each finished run's exported model.",
        discussion: """
            The budget EPSILON is in the dataset's raw input units (pixels in [0, 1]), before the \
            model's input scaling, which the attack differentiates through; adversarial images are \
            clipped to [0, 1]. PGD (Madry et al. 2018) takes STEPS steps (default 40) of STEP-SIZE \
            (default 2.5 EPSILON / STEPS) from a random start in the ball, RESTARTS times, keeping per \
            example a restart that misclassifies. The square attack (Andriushchenko et al. 2020, L-inf \
            only) is gradient-free: STEPS queries (default 1000) of random square updates, the check \
            against gradient masking (robust accuracy under PGD far above it is not to be trusted). Prints clean and robust accuracy per run; --output writes \
            one CSV line per example, --figure a grid of clean, perturbation and adversarial images \
            (docs/robustness.md).
            """)

    @Argument(help: "A results folder written by `dpkit run`.")
    var directory: String

    @Option(help: "fgsm, pgd or square.")
    var method: String

    @Option(help: "linf or l2.")
    var norm = "linf"

    // Unconditional: `--epsilon -0.1` reaches validate() and its message instead of being read as a flag.
    @Option(parsing: .unconditional, help: "Perturbation budget in raw input units (>= 0).")
    var epsilon: Double

    @Option(help: "PGD steps (default 40) or square-attack queries (default 1000).")
    var steps: Int?

    @Option(help: "PGD step size (default 2.5 epsilon / steps).")
    var stepSize: Double?

    @Option(help: "PGD or square-attack random restarts.")
    var restarts = 1

    @Option(help: "Attack the first COUNT test examples (default: all).")
    var count: Int?

    @Option(name: .customLong("run"), help: "Only this run (its run_id); repeat for several.")
    var runs: [String] = []

    @Option(help: "Seed of the random starts.")
    var seed: UInt64 = 0

    @Option(help: "Per-example results, CSV.")
    var output: String?

    @Option(
        help: "Picture grid of the first 8 examples of each run, SVG (a run id is added before .svg for several runs).")
    var figure: String?

    @Flag(help: "Print JSON lines instead of text.")
    var json = false

    func validate() throws {
        guard AdversarialMethod(rawValue: method) != nil else {
            throw ValidationError("--method \(method) is not supported: use fgsm, pgd or square")
        }
        guard PerturbationNorm(rawValue: norm) != nil else {
            throw ValidationError("--norm \(norm) is not supported: use linf or l2")
        }
        guard epsilon >= 0, epsilon.isFinite else {
            throw ValidationError(
                "--epsilon \(epsilon) must be >= 0 (raw input units: pixels in [0, 1]), e.g. --epsilon 0.1")
        }
        if let steps, steps < 1 { throw ValidationError("--steps \(steps) must be at least 1") }
        guard restarts >= 1 else { throw ValidationError("--restarts \(restarts) must be at least 1") }
        if let stepSize, !(stepSize > 0) { throw ValidationError("--step-size \(stepSize) must be > 0") }
        if let count, count < 1 { throw ValidationError("--count \(count) must be at least 1") }
    }

    func run() throws {
        do {
            let attack = try AdversarialAttack(
                method: AdversarialMethod(rawValue: method)!, norm: PerturbationNorm(rawValue: norm)!, epsilon: epsilon,
                steps: steps, stepSize: stepSize, restarts: restarts)
            let results = try AdversarialEvaluation(attack: attack, count: count, seed: seed).run(
                folder: URL(fileURLWithPath: directory), runIDs: runs)
            for r in results {
                let o = r.outcome
                if json {
                    print(
                        "{\"run_id\": \"\(r.runID)\", \"attack\": \"\(r.attack.label)\", \"examples\": \(o.labels.count), \"clean_accuracy\": \(o.cleanAccuracy), \"robust_accuracy\": \(o.robustAccuracy)}"
                    )
                } else {
                    print(
                        "\(r.runID) (\(r.dataset), epsilon \(r.privacyEpsilon ?? "inf")): \(o.labels.count) examples, clean accuracy \(String(format: "%.2f", 100 * o.cleanAccuracy))%, robust accuracy under \(r.attack.label) \(String(format: "%.2f", 100 * o.robustAccuracy))%"
                    )
                }
            }
            if let output {
                try DurableFile.writeAtomically(
                    Data(AdversarialEvaluation.csv(results).utf8), to: URL(fileURLWithPath: output))
                if !json { print("wrote \(output)") }
            }
            if let figure {
                for r in results where !r.picture.isEmpty {
                    let path =
                        results.count == 1
                        ? figure : (figure.hasSuffix(".svg") ? String(figure.dropLast(4)) : figure) + "-\(r.runID).svg"
                    try DurableFile.writeAtomically(Data(r.picture.utf8), to: URL(fileURLWithPath: path))
                    if !json { print("wrote \(path)") }
                }
            }
        } catch {
            throw reportFailure(error)
        }
    }
}
