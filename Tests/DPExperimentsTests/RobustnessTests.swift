import DPAuditing
import DPData
import Foundation
import Testing

@testable import DPExperiments

private let tinyConfig = """
    name: tiny-robustness
    dataset: {name: synthetic-shapes, train_size: 600, test_size: 200, options: {image_size: 12}}
    model: {name: mlp, options: {hidden_sizes: [32]}}
    optimizer: {name: sgd, learning_rate: 0.5}
    privacy: {noise_multiplier: 1.0, delta: 1e-5, clipping_norm: 1}
    training: {expected_batch_size: 60, epochs: 1}
    include:
      - {training.adversarial: {epsilon: 0.1, steps: 3}}
      - {training.adversarial: {enabled: false, epsilon: 0.1}, privacy.noise_multiplier: 2}
    evaluation:
      examples: 50
      attacks:
        - {method: fgsm, norm: linf, epsilons: [0.05, 0.1]}
        - {method: pgd, norm: l2, epsilons: [1], steps: 3}
        - {method: square, epsilons: [0.1], steps: 20}
    poisoning:
      backdoor: {count: 20, target: 0, patch_size: 3}

    """

@Test func thePlanOfABackdoorRunCountsTheAddedExamples() throws {
    // 600 training examples and 60 appended backdoor copies: the plan printed before training
    // has q = 60 / 660 and the 11 steps of 660, as the run itself (it used to print q = 60 / 600
    // and 10 steps, and the run made a second plan).
    let config = try parse(tinyConfig.replacingOccurrences(of: "count: 20", with: "count: 60"))
    let run = try #require(config.runs.first { $0.config.training.adversarial == nil })
    let plan = try TrainingExecutor().plan(run)
    #expect(plan.samplingProbability == 60.0 / 660.0)
    #expect(plan.steps == 11)
    let (_, _, folder) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: folder) }
    let rows = CSV.parse(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    let header = rows[0]
    let finished = rows.dropFirst().filter { $0.count == header.count }
    let q = try #require(header.firstIndex(of: "sampling_probability"))
    let steps = try #require(header.firstIndex(of: "steps"))
    #expect(finished.count == 3)
    #expect(finished.allSatisfy { Double($0[q]) == 60.0 / 660.0 && $0[steps] == "11" })
}

@Test func evaluationAndPoisoningColumnsEndToEnd() throws {
    let (report, _, folder) = try trainInTemporaryFolder(parse(tinyConfig))
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(report.finished.count == 3)
    let rows = CSV.parse(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    let header = rows[0]
    let derived = [
        "robust_accuracy_fgsm_linf_0.05", "robust_accuracy_fgsm_linf_0.1", "robust_accuracy_pgd3_l2_1",
        "robust_accuracy_square20_linf_0.1", "poisoned_examples", "poisoning_distance", "attack_success_rate",
        "group_epsilon", "group_delta",
    ]
    #expect(Array(header.suffix(derived.count + 2)) == derived + ["wall_seconds", "error"])
    for row in rows.dropFirst() where row.count == header.count {
        let r = Dictionary(uniqueKeysWithValues: zip(header, row))
        for column in derived { #expect(!(r[column] ?? "").isEmpty, "\(column) is empty in \(row)") }
        #expect(r["poisoned_examples"] == "20")
        // k = 20 added examples at the run's epsilon: 20 eps.
        let eps = Double(r["epsilon"]!)!, groupEps = Double(r["group_epsilon"]!)!
        #expect(abs(groupEps - 20 * eps) < 1e-9 * groupEps)
        for column in derived where column.hasPrefix("robust_accuracy") {
            let v = Double(r[column]!)!
            #expect(v >= 0 && v <= Double(r["test_accuracy"]!)! + 0.2)
        }
    }
    // The columns are metrics, not varying keys: the table and plot do not sweep over them.
    #expect(OutputSchema.isMetricColumn("robust_accuracy_fgsm_linf_0.1"))
    #expect(!OutputSchema.isMetricColumn("privacy.target_epsilon"))
    #expect(MetricDirection(metric: "robust_accuracy_pgd40_linf_0.1") == .higherIsBetter)

    // The backdoor's picture: triggered test examples with the predictions.
    for id in report.finished {
        let svg = try String(
            contentsOf: folder.appendingPathComponent("pictures/\(id)-backdoor.svg"), encoding: .utf8)
        #expect(svg.contains("triggered"))
    }

    // dpkit plot: robust accuracy against the budget, one line per config and attack.
    let figure = try ExperimentPlots.figure(forDirectory: folder)
    let panel = try #require(figure.panels.first { $0.name == "robustness" })
    #expect(panel.svg.contains("PGD-3 L2") && panel.svg.contains("FGSM L∞"))

    // After the fact, on the exported models.
    let attack = try AdversarialAttack(method: .fgsm, norm: .linf, epsilon: 0.1)
    let results = try AdversarialEvaluation(attack: attack, count: 50).run(folder: folder)
    #expect(results.count == 3) // the manifest's resolved configs read back (`enabled: false` too)
    for r in results {
        #expect(r.outcome.perturbationNorms.allSatisfy { $0 <= 0.1 + 1e-6 })
        #expect(r.picture.hasPrefix("<svg"))
    }
}

@Test func configsWithoutTheSectionsKeepTheirColumns() throws {
    let plain = try parse(
        tinyConfig.components(separatedBy: "include:")[0])
    #expect(OutputSchema.derivedColumns(plain.runs).isEmpty)
    #expect(
        OutputSchema.runsHeader(varyingKeys: [], derived: OutputSchema.derivedColumns(plain.runs))
            == OutputSchema.leadingColumns + OutputSchema.runColumns)
}

@Test func badRobustnessConfigsNameTheFix() throws {
    let base = tinyConfig.components(separatedBy: "include:")[0]
    let cases: [(String, String)] = [
        ("evaluation: {attacks: [{method: fgsm, epsilons: [-0.1]}]}", "each >= 0"),
        ("evaluation: {attacks: [{method: pgd, norm: l1, epsilons: [0.1]}]}", "one of linf, l2"),
        ("poisoning: {backdoor: {count: 5, patch_size: 12}}", "use patch_size <= 11"),
        ("poisoning: {backdoor: {count: 5, target: 10}}", "not a class"),
        ("poisoning: {}", "give `backdoor`, `label_flipping` or both"),
        ("evaluation: {attacks: [{method: square, norm: l2, epsilons: [1]}]}", "supports only the linf norm"),
        ("evaluation: {attacks: [{method: square, epsilons: [0.1], step_size: 0.01}]}", "step_size"),
        ("include: [{training.adversarial: {method: square, epsilon: 0.1}}]", "adversarial training needs pgd or fgsm"),
    ]
    for (yaml, message) in cases {
        let error = configError(base + yaml + "\n")
        #expect(error?.description.contains(message) == true, "\(yaml): \(String(describing: error))")
    }
}

@Test func attackOnAFolderWithoutSavedModelsSaysSo() throws {
    let (_, _, folder) = try trainInTemporaryFolder(parse(tinyConfig.components(separatedBy: "include:")[0]))
    defer { try? FileManager.default.removeItem(at: folder) }
    try FileManager.default.removeItem(at: folder.appendingPathComponent("models"))
    let attack = try AdversarialAttack(method: .fgsm, norm: .linf, epsilon: 0.1)
    do {
        _ = try AdversarialEvaluation(attack: attack).run(folder: folder)
        Issue.record("attacked a run without a model")
    } catch {
        #expect("\(error)".contains("saved no model"))
        #expect("\(error)".contains("an adversarial attack needs the trained model"))
    }
}
