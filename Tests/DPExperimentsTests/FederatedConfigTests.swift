import DPAccounting
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// The `federated:` section end to end: a tiny private run (user-level epsilon in runs.csv, one
// epochs.csv row per round, the partition in the manifest) and the refusals.

private let tinyFederated = """
    name: tiny-federated
    dataset: {name: gaussian-mixture, train_size: 300, test_size: 90, options: {classes: 3, dimensions: 8}}
    model: {name: mlp, options: {hidden_sizes: [8]}}
    optimizer: {name: sgd, learning_rate: 0.1}
    privacy: {noise_multiplier: 1.0, delta: 1e-3, clipping_norm: 1, sampling: poisson}
    training: {expected_batch_size: 10, epochs: 1}
    federated: {clients: 30, partition: label-shards, shards_per_client: 2, rounds: 3, clients_per_round: 6}

    """

@Test func federatedRunReportsUserLevelEpsilonPerRound() throws {
    let (report, _, folder) = try trainInTemporaryFolder(parse(tinyFederated))
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(report.finished.count == 1)
    let runs = CSV.parse(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    let r = Dictionary(uniqueKeysWithValues: zip(runs[0], runs[1]))
    #expect(r["privacy_unit"] == "user")
    #expect(r["neighboring_relation"] == "add-remove")
    #expect(r["rounds"] == "3" && r["clients"] == "30")
    // Metrics, not varying keys: tables and plots do not sweep over them.
    for column in ["client_accuracy_p50", "backdoor_success_rate", "rounds_per_second"] {
        #expect(OutputSchema.isMetricColumn(column))
    }
    // The accountant's epsilon for 3 rounds of poissonSampled(q = 6/30, gaussian(1)).
    var ledger = PrivacyLedger()
    try ledger.record(.poissonSampled(probability: 0.2, event: .gaussian(noiseMultiplier: 1)), count: 3)
    let expected = try PrivacyBudget.epsilon(ledger: ledger, delta: 1e-3, accountant: .rdp)
    #expect(abs(Double(r["epsilon_rdp"]!)! - expected) < 1e-9 * expected)
    let epochs = CSV.parse(try String(contentsOf: folder.appendingPathComponent("epochs.csv"), encoding: .utf8))
    #expect(epochs.count == 1 + 3)
    // metrics/<run_id>.jsonl: the attack and fairness figures of each evaluation round (eval_every 1).
    let lines = try String(
        contentsOf: folder.appendingPathComponent("metrics/\(report.finished[0]).jsonl"), encoding: .utf8
    ).split(separator: "\n")
    #expect(lines.count == 3)
    #expect(lines.last?.hasSuffix("\"round\":3}") == true)
    // A private run releases nothing per user beside the user-level epsilon: no label
    // histograms, no statistics of them, no accuracy percentiles over the clients' own data.
    #expect(lines.allSatisfy { $0.contains("\"client_accuracy_p50\":null") })
    for column in ["client_classes_mean", "client_accuracy_p10", "client_accuracy_p50", "client_accuracy_p90"] {
        #expect(r[column] == "", "\(column) = \(r[column] ?? "nil") in a private run")
    }
    let manifest = try readManifest(folder)
    guard case .list(let entries)? = manifest["runs"], let partition = entries.first?["partition"] else {
        Issue.record("no partition in the manifest")
        return
    }
    #expect(partition["label_histograms"] == nil)
    #expect(partition["scheme"] != nil && partition["malicious_clients"] != nil)
    #expect(partition["size_min"]?.intValue == 10 && partition["size_max"]?.intValue == 10)
}

@Test func nonPrivateFederatedRunRecordsThePartitionsHistograms() throws {
    let yaml = tinyFederated.replacingOccurrences(
        of: "privacy: {noise_multiplier: 1.0, delta: 1e-3, clipping_norm: 1, sampling: poisson}",
        with: "privacy: {enabled: false}")
    let (report, _, folder) = try trainInTemporaryFolder(parse(yaml))
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(report.finished.count == 1)
    let runs = CSV.parse(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    let r = Dictionary(uniqueKeysWithValues: zip(runs[0], runs[1]))
    #expect(Double(r["client_classes_mean"] ?? "") != nil && Double(r["client_accuracy_p50"] ?? "") != nil)
    let manifest = try readManifest(folder)
    guard case .list(let entries)? = manifest["runs"], let partition = entries.first?["partition"],
        case .list(let histograms)? = partition["label_histograms"]
    else {
        Issue.record("no label histograms in the non-private run's manifest")
        return
    }
    // 30 clients x 2 label shards of 5 examples: 10 examples each, at most 2 classes.
    #expect(histograms.count == 30)
    let counts = histograms.compactMap(\.stringValue).map { $0.split(separator: ",").compactMap { Int($0) } }
    #expect(counts.map { $0.reduce(0, +) } == Array(repeating: 10, count: 30))
    #expect(counts.allSatisfy { $0.count == 3 && $0.filter { $0 > 0 }.count <= 2 })
    #expect(partition["size_min"]?.intValue == 10 && partition["size_max"]?.intValue == 10)
}

@Test func adaptiveClippingCountNoiseDefaultsToClientsPerRoundOver20() throws {
    // Andrew et al.: sigma_b = (expected count) / 20, the count being of clients per round in a
    // federated run (20 here), not the local batch B (10).
    let yaml = tinyFederated.replacingOccurrences(
        of: "clipping_norm: 1, sampling: poisson}", with: "clipping_norm: 1, sampling: poisson, clipping: adaptive}"
    ).replacingOccurrences(of: "clients_per_round: 6", with: "clients_per_round: 20")
    let c = try parse(yaml).runs[0].config
    #expect(c.privacy.clipping == .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 1))
    // An explicit value wins.
    let explicit = yaml.replacingOccurrences(
        of: "clipping: adaptive}", with: "clipping: adaptive, clipping_options: {count_noise_multiplier: 3}}")
    #expect(
        try parse(explicit).runs[0].config.privacy.clipping
            == .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 3))
}

@Test func secureModeFederatedRunIsNotRestartedAfterWritingRows() throws {
    // An interrupted secure-mode private federated run (rows in epochs.csv, no finished row in
    // runs.csv) would restart from round 1 with fresh noise: --resume refuses it.
    let yaml = tinyFederated.replacingOccurrences(
        of: "sampling: poisson}", with: "sampling: poisson, secure_rng: true}")
    let config = try parse(yaml)
    let (_, _, folder) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: folder) }
    // Simulate the interruption: drop the finished row, keep the epochs rows.
    let runsURL = folder.appendingPathComponent("runs.csv")
    let header = try String(contentsOf: runsURL, encoding: .utf8).split(separator: "\n")[0]
    try (header + "\n").write(to: runsURL, atomically: true, encoding: .utf8)
    do {
        _ = try ExperimentRunner(
            config: config, outputDirectory: folder, executor: TrainingExecutor(), resume: true, log: { _ in }
        ).run()
        Issue.record("resume restarted a secure-mode federated run")
    } catch let e as OutputError {
        #expect(e.description.contains("secure_rng") && e.description.contains("new output folder"))
    }
    // The earlier rows are kept.
    let epochs = CSV.parse(try String(contentsOf: folder.appendingPathComponent("epochs.csv"), encoding: .utf8))
    #expect(epochs.count == 1 + 3)
}

@Test func federatedConfigRefusals() throws {
    let cases: [(String, String, String)] = [
        ("federated.clients_per_round: 31", "federated.clients_per_round", "more than the 30 clients"),
        ("federated.partition: dirichlet\n    federated.alpha: 0", "federated.alpha", ""),
        ("optimizer: {name: adam, learning_rate: 0.1}", "optimizer.name", "local optimizer"),
        ("privacy: {target_epsilon: 1, delta: 1e-3, clipping_norm: 1}", "privacy.target_epsilon", "noise_multiplier"),
        ("federated.weighting: examples", "federated", "uniform"),
        ("federated.aggregator: median", "federated", "sensitivity"),
        // (A private run refuses `standardize` before the federated check: the non-private control here.)
        (
            "dataset.normalize: standardize\n    privacy.enabled: false", "dataset.normalize",
            "federated server never holds"
        ),
    ]
    for (override, path, phrase) in cases {
        var yaml = tinyFederated
        // Overrides go through an include entry (the sweep syntax), except whole sections.
        if override.hasPrefix("optimizer:") || override.hasPrefix("privacy:") {
            let key = String(override.prefix { $0 != ":" })
            yaml = yaml.split(separator: "\n").map { $0.hasPrefix(key + ":") ? Substring(override) : $0 }.joined(
                separator: "\n")
        } else {
            yaml += "include:\n  - {" + override.replacingOccurrences(of: "\n    ", with: ", ") + "}\n"
        }
        let error = configError(yaml)
        #expect(error != nil, "\(override) was accepted")
        if let error {
            #expect(error.path.hasPrefix(path), "\(override): \(error)")
            #expect(phrase.isEmpty || error.message.contains(phrase), "\(override): \(error)")
        }
    }
}
