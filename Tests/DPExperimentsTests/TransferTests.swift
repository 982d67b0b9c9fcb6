import DPAccounting
import DPData
@_spi(Testing) import DPLayers
import DPSchema
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Public pretraining and private fine-tuning (`public:`, `training.fine_tune`): the split, the
// ledger of the private part alone, the linear probe's clipping, and what pretraining buys.

/// A transfer run on generated data: 3 classes of 10-dimensional points, 1000 training examples
/// of which 300 are a public subset.
private let transferYAML = """
    name: transfer
    dataset:
      name: gaussian-mixture
      train_size: 1000
      test_size: 300
      options: {dimensions: 10, classes: 2, separation: 2.0}
    public:
      subset: {size: 300}
      epochs: 3
      batch_size: 50
      optimizer: {name: sgd, learning_rate: 0.2}
    model:
      name: mlp
      options: {hidden_sizes: [8], activation: tanh}
    optimizer:
      name: sgd
      learning_rate: 0.5
    privacy:
      target_epsilon: 2
      delta: 1.0e-4
      clipping_norm: 1.0
    training:
      expected_batch_size: 70
      epochs: 2
    seeds: [3]

    """

/// Examples that name themselves: feature 0 of example i is i.
private func numbered(_ n: Int, classes: Int) -> Dataset {
    Dataset(
        name: "numbered", features: Tensor((0..<n).flatMap { [Float($0), 0] }, shape: [n, 2]),
        labels: (0..<n).map { $0 % classes }, classCount: classes)
}

private func ids(_ d: Dataset) -> [Int] { (0..<d.count).map { Int(d.features[row: $0].scalars[0]) } }

private func run(
    _ yaml: String, onTrained: ((Sequential, TrainTestSplit) throws -> Void)? = nil
) throws -> (
    RunSummary, RunConfig, RunPlan
) {
    let config = try ExperimentConfig.parse(yaml: yaml, file: "transfer.yaml")
    let resolved = try #require(config.runs.first)
    var context = RunContext()
    context.onTrained = onTrained
    let executor = TrainingExecutor()
    let plan = try executor.plan(resolved)
    return (try executor.execute(resolved, context: context, progress: { _ in }), resolved.config, plan)
}

private func ledger(_ summary: RunSummary) throws -> PrivacyLedger {
    try JSONDecoder().decode(PrivacyLedger.self, from: Data(try #require(summary.privacyLedger).jsonText().utf8))
}

@Test("public subset: disjoint from the private part, together the training set, seeded on its own stream")
func publicSubsetSplitsTheTrainingSet() throws {
    let data = TrainTestSplit(train: numbered(500, classes: 5), test: numbered(50, classes: 5))
    let s = try PublicSplit(data, part: .subset(size: 120), seed: 9)
    let pub = ids(s.publicData), priv = ids(s.privateSplit.train)
    #expect(pub.count == 120 && priv.count == 380)
    #expect(Set(pub).isDisjoint(with: priv))
    #expect(Set(pub).union(priv) == Set(0..<500))
    #expect(pub == s.publicIndices && s.privateSplit.test.count == 50)
    // Seeded: the same seed draws the same part, another seed another one.
    #expect(try PublicSplit(data, part: .subset(size: 120), seed: 9).publicIndices == s.publicIndices)
    #expect(try PublicSplit(data, part: .subset(size: 120), seed: 10).publicIndices != s.publicIndices)
    // Its own stream: the same draw whatever the other streams of the seed have produced, and
    // unrelated to the sampling stream's first numbers.
    #expect(PublicSplit.randomSubset(size: 120, of: 500, seed: 9) == s.publicIndices)
    var sampling = PhiloxRandom(seed: 9, stream: RandomStream.sampling.rawValue)
    var order = Array(0..<500)
    for i in 0..<120 { order.swapAt(i, i + Int(sampling.next() % UInt64(500 - i))) }
    #expect(order[0..<120].sorted() != s.publicIndices)
    // Roughly uniform: each fifth of the indices holds about a fifth of the part (24 +- 12).
    for k in 0..<5 { #expect(abs(pub.filter { $0 / 100 == k }.count - 24) < 12) }
    #expect(throws: TrainingError.self) { try PublicSplit(data, part: .subset(size: 500), seed: 9) }
    // `public.subset.seed`: the same public part whatever the run's seed.
    let fixed = try PublicSplit(data, part: .subset(size: 120, seed: 9), seed: 10)
    #expect(fixed.publicIndices == s.publicIndices)
    #expect(fixed.record(pretraining: .null)["seed_from"] == .string("public.subset.seed"))
    #expect(!fixed.statement.contains("drawn from the run's seed"))
    #expect(s.record(pretraining: .null)["seed_from"] == .string("the run's seed"))
    #expect(s.statement.contains("the public subset is drawn from the run's seed"))
}

@Test("public classes: the private task keeps the other classes (train and test), relabelled 0..<k")
func publicClassesSplitsByLabel() throws {
    let data = TrainTestSplit(train: numbered(100, classes: 5), test: numbered(40, classes: 5))
    let s = try PublicSplit(data, part: .classes([3, 1]), seed: 0)
    #expect(s.privateClasses == [0, 2, 4])
    let pub = ids(s.publicData), priv = ids(s.privateSplit.train)
    #expect(Set(pub).isDisjoint(with: priv) && Set(pub).union(priv) == Set(0..<100))
    #expect(pub.allSatisfy { [1, 3].contains($0 % 5) })
    // Public labels by sorted public class (1 -> 0, 3 -> 1); private ones 0, 2, 4 -> 0, 1, 2.
    #expect(zip(pub, s.publicData.labels).allSatisfy { [1: 0, 3: 1][$0 % 5] == $1 })
    #expect(zip(priv, s.privateSplit.train.labels).allSatisfy { [0: 0, 2: 1, 4: 2][$0 % 5] == $1 })
    #expect(s.publicData.classCount == 2 && s.privateSplit.train.classCount == 3)
    #expect(s.privateSplit.test.count == 24 && s.privateSplit.test.classCount == 3)
    #expect(ids(s.privateSplit.test).allSatisfy { [0, 2, 4].contains($0 % 5) })
    #expect(throws: TrainingError.self) { try PublicSplit(data, part: .classes([0, 1, 2, 3, 4]), seed: 0) }
    // One private class is a trivial task; one public class a no-op pretraining (held out, fine).
    #expect(throws: TrainingError.self) { try PublicSplit(data, part: .classes([0, 1, 2, 3]), seed: 0) }
    #expect(throws: TrainingError.self) { try PublicSplit(data, part: .classes([2]), seed: 0) }
    #expect(try PublicSplit(data, part: .classes([2]), seed: 0, pretrains: false).privateClasses == [0, 1, 3, 4])
}

@Test(
    "the ledger of a transfer run is the ledger of plain DP-SGD on the private part alone (same q, steps, sigma); the manifest records the public part"
)
func transferLedgerIsThePrivatePartsLedger() throws {
    let (transfer, _, plan) = try run(transferYAML)
    let plain = transferYAML.replacingOccurrences(of: "train_size: 1000", with: "train_size: 700")
        .replacingOccurrences(
            of:
                "public:\n  subset: {size: 300}\n  epochs: 3\n  batch_size: 50\n  optimizer: {name: sgd, learning_rate: 0.2}\n",
            with: "")
    let (alone, aloneConfig, alonePlan) = try run(plain)
    #expect(aloneConfig.public == nil)
    #expect(try ledger(transfer) == ledger(alone))
    #expect(try ledger(transfer).entries.count == 1)
    #expect(transfer.noiseMultiplier == alone.noiseMultiplier && transfer.samplingProbability == 0.1)
    #expect(transfer.steps == alone.steps && transfer.steps == 20)
    #expect(transfer.epsilonRDP == alone.epsilonRDP)
    // The printed plan (dpkit run --dry-run) says the same before any data is split.
    #expect(plan.samplingProbability == 0.1 && plan.steps == 20 && plan.epsilonRDP == alonePlan.epsilonRDP)
    #expect(plan.notes.contains { $0.contains("the private part is the other 700 training examples") })

    let record = try #require(transfer.publicPart)
    #expect(record["kind"] == .string("subset") && record["size"] == .int(300) && record["private_size"] == .int(700))
    #expect(record["seed"] == .int(3))
    #expect(record["statement"]?.stringValue?.contains("the epsilon covers only the private part (700") == true)
    #expect(record["pretraining"]?["steps"] == .int(18))
    // The public indices do not depend on other settings (another sigma, batch size and model).
    let other = transferYAML.replacingOccurrences(of: "expected_batch_size: 70", with: "expected_batch_size: 35")
        .replacingOccurrences(of: "hidden_sizes: [8]", with: "hidden_sizes: [4]")
    let (otherRun, _, _) = try run(other)
    #expect(otherRun.publicPart?["indices_fnv1a64"] == record["indices_fnv1a64"])
}

@Test(
    "`standardize` with a public part is fitted on the public part and costs nothing; private-standardize stays in the ledger"
)
func standardisationOfATransferRun() throws {
    let yaml = transferYAML.replacingOccurrences(
        of: "  options: {dimensions: 10", with: "  normalize: standardize\n  options: {dimensions: 10")
    var scaledPoint: Float?
    let (summary, _, _) = try run(yaml) { _, split in scaledPoint = split.train.features.scalars[0] }
    #expect(try ledger(summary).entries.count == 1)
    // The reference: statistics of the public part only.
    let config = try ExperimentConfig.parse(yaml: yaml, file: "t.yaml").runs[0].config
    let data = try TrainingExecutor().loadData(config)
    let s = try PublicSplit(data, part: .subset(size: 300), seed: 3)
    var expected = s.privateSplit.train
    InputTransform.standardization(Standardization.fit(to: s.publicData, perChannel: false)).apply(to: &expected)
    #expect(scaledPoint == expected.features.scalars[0])
    #expect(
        configError(
            baseYAML.replacingOccurrences(
                of: "  name: gaussian-mixture", with: "  name: gaussian-mixture\n  normalize: standardize"))?.path
            == "dataset.normalize")
    // private-standardize still fits on the private part, and its event stays in the ledger first.
    let accounted = transferYAML.replacingOccurrences(
        of: "  options: {dimensions: 10",
        with:
            "  normalize: private-standardize\n  normalize_options: {noise_multiplier: 3, lower: -6, upper: 6}\n  options: {dimensions: 10"
    )
    let (paid, _, _) = try run(accounted)
    let entries = try ledger(paid).entries
    #expect(entries.count == 2 && entries.first?.event == .gaussian(noiseMultiplier: 3))
    #expect(try PrivacyBudget.epsilon(ledger: ledger(paid), delta: 1e-4) <= 2)
}

@Test(
    "linear probe: only the last layer changes (the others bit-identical) and its clip is over the last layer's parameters only"
)
func linearProbeTrainsTheLastLayerOnly() throws {
    let n = 24, classes = 3
    var random = PhiloxRandom(seed: 5)
    let x = Tensor<Float>(normal: [n, 6], standardDeviation: 2, using: &random)
    let labels = (0..<n).map { $0 % classes }
    let data = Dataset(name: "d", features: x, labels: labels, classCount: classes)
    let model = try ModelBuilder.build(
        specs: [.linear(outputs: 5), .tanh, .linear(outputs: classes)], inputShape: [6], seed: 1)
    let before = model.parameters.map(\.value)
    let probe = try LinearProbe(model)
    let clippingNorm = 0.05, learningRate: Float = 1
    let trainer = try DPSGDTrainer(
        model: probe.head, optimizer: OptimizerKind.sgd.make(learningRate: Double(learningRate), parameters: [:]),
        data: probe.features(data),
        configuration: TrainerConfiguration(
            sampling: .fixedSize, expectedBatchSize: n, maxPhysicalBatchSize: n,
            privacy: PrivacySettings(
                noiseMultiplier: 0, clippingNorm: clippingNorm, clipping: .flat, delta: 1e-5, targetEpsilon: nil,
                randomness: .seeded),
            seed: 2))
    _ = try trainer.trainStep()
    let after = model.parameters.map(\.value)
    // The first layer (weight, bias) is untouched, bit for bit; the last one moved.
    #expect(after[0] == before[0] && after[1] == before[1])
    #expect(after[2] != before[2])

    // Slow reference: each example alone through the whole model (with the pretrained values),
    // its last-layer gradient clipped to C over the last layer's parameters, summed, / n.
    let reference = try ModelBuilder.build(
        specs: [.linear(outputs: 5), .tanh, .linear(outputs: classes)], inputShape: [6], seed: 1)
    for (p, v) in zip(reference.parameters, before) { p.value = v }
    var sum = [Tensor<Float>(zeros: before[2].shape), Tensor<Float>(zeros: before[3].shape)]
    for i in 0..<n {
        reference.zeroGradients()
        let logits = reference(x.rows(i..<(i + 1)))
        let (_, dy) = SoftmaxCrossEntropy()(logits: logits, labels: [labels[i]])
        _ = reference.backward(dy)
        reference.accumulateGradients(exampleWeights: nil)
        let last = reference.parameters[2...].map(\.gradient)
        let norm = last.reduce(0.0) { $0 + $1.scalars.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        let scale = Float(min(1, clippingNorm / norm))
        for k in 0..<2 {
            sum[k] = Tensor(zip(sum[k].scalars, last[k].scalars).map { $0 + scale * $1 }, shape: sum[k].shape)
        }
    }
    for k in 0..<2 {
        let expected = zip(before[2 + k].scalars, sum[k].scalars).map { $0 - learningRate * $1 / Float(n) }
        for (a, b) in zip(after[2 + k].scalars, expected) {
            #expect(abs(a - b) <= 1e-6 + 1e-4 * abs(b), "parameter \(2 + k): \(a) vs reference \(b)")
        }
    }
}

@Test("pretraining on a public subset beats training from scratch on the same private part at the same epsilon")
func pretrainingImprovesAccuracy() throws {
    // Six classes in 30 dimensions: 400 private examples at epsilon 0.5 leave DP-SGD from
    // scratch near chance (0.245 seeded), 2000 public examples teach it without noise (0.6).
    let yaml = """
        name: transfer-gain
        dataset:
          name: gaussian-mixture
          train_size: 2400
          test_size: 600
          options: {dimensions: 30, classes: 6, separation: 2.5}
        public:
          subset: {size: 2000}
          epochs: 8
          batch_size: 50
          optimizer: {name: sgd, learning_rate: 0.3, momentum: 0.9}
        model:
          name: mlp
          options: {hidden_sizes: [32], activation: tanh}
        optimizer:
          name: sgd
          learning_rate: 0.1
        privacy:
          target_epsilon: 0.5
          delta: 1.0e-4
          clipping_norm: 1.0
        training:
          expected_batch_size: 100
          epochs: 4
        seeds: [0]

        """
    let (scratch, _, _) = try run(yaml.replacingOccurrences(of: "epochs: 8", with: "epochs: 0"))
    let (full, _, _) = try run(yaml)
    let (probe, _, _) = try run(yaml.replacingOccurrences(of: "epochs: 4", with: "epochs: 4\n  fine_tune: last-layer"))
    let a0 = try #require(scratch.testAccuracy), a1 = try #require(full.testAccuracy)
    let a2 = try #require(probe.testAccuracy)
    #expect(scratch.epsilonRDP == full.epsilonRDP && full.epsilonRDP == probe.epsilonRDP)
    #expect(scratch.publicPart?["pretraining"]?["last_layer"] == .string("held out: no pretraining"))
    #expect(a1 >= a0 + 0.2, "pretrained + full fine-tuning \(a1) vs from scratch \(a0)")
    #expect(a2 >= a0 + 0.2, "pretrained + linear probe \(a2) vs from scratch \(a0)")
}

@Test("public classes end to end: a 5-class private task, the head re-initialised, the manifest names the classes")
func publicClassesRun() throws {
    let yaml = transferYAML.replacingOccurrences(of: "classes: 2,", with: "classes: 5,")
        .replacingOccurrences(of: "subset: {size: 300}", with: "classes: [3, 4]")
    var testClasses = 0
    let (summary, _, _) = try run(
        yaml.replacingOccurrences(of: "epochs: 2", with: "epochs: 2\n  fine_tune: last-layer")
    ) {
        model, split in
        testClasses = split.test.classCount
        #expect(model(split.test.features).shape == [split.test.count, 3])
    }
    #expect(testClasses == 3)
    let record = try #require(summary.publicPart)
    #expect(
        record["classes"] == .list([.int(3), .int(4)])
            && record["private_classes"] == .list([.int(0), .int(1), .int(2)]))
    #expect(record["size"] == .int(400) && record["private_size"] == .int(600))
    #expect(record["pretraining"]?["last_layer"] == .string("reinitialised for the private classes"))
    #expect(summary.samplingProbability == 70.0 / 600)
}

@Test(
    "a public-classes run through the runner: the manifest's `public`, the model evaluates on the private classes, and as an initial model of the same data it is refused"
)
func transferRunThroughTheRunner() throws {
    let yaml = transferYAML.replacingOccurrences(of: "classes: 2,", with: "classes: 5,")
        .replacingOccurrences(of: "subset: {size: 300}", with: "classes: [0, 1]")
    let (report, _, dir) = try trainInTemporaryFolder(try ExperimentConfig.parse(yaml: yaml, file: "t.yaml"))
    defer { try? FileManager.default.removeItem(at: dir) }
    #expect(report.finished.count == 1, "\(report)")
    let manifest = try readManifest(dir)
    let entry = try #require(manifest["runs"]?.listValue?.first)
    #expect(entry["public"]?["kind"] == .string("classes"))
    #expect(entry["public"]?["private_classes"] == .list([.int(2), .int(3), .int(4)]))
    let (_, rows) = CSV.table(try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8))
    let id = try #require(rows.first?["run_id"])
    let file = dir.appendingPathComponent("models/\(id).safetensors")
    let result = try ModelEvaluation.evaluate(file: file)
    #expect(result.accuracy == Double(rows.first?["test_accuracy"] ?? ""))
    #expect(result.examples == 180, "the 3 private classes of the 300 test examples")
    // The model's metadata says what its epsilon covers (`dpkit evaluate` prints it beside it).
    #expect(result.publicKind == "classes")
    #expect(
        result.publicStatement?.hasPrefix("the epsilon covers only the private part (600 training examples)") == true)

    // The audits after the fact would attack the whole training set, public part included:
    // refused, naming why.
    for audit in [
        { _ = try MembershipAudit(folder: dir, options: MembershipAudit.Options()).run() },
        { _ = try MultiRunCanaryAudit(folder: dir, canary: .diracGradient, trials: 2).run() },
    ] {
        #expect {
            try audit()
        } throws: { error in
            "\(error)".contains("has a `public` part (`public.classes`)")
                && "\(error)".contains("the epsilon covers only the private part")
        }
    }

    // The file was trained on gaussian-mixture: as the start of another run on it, refused.
    let again = yaml.replacingOccurrences(of: "  epochs: 2", with: "  epochs: 2\n  initial_model: \(file.path)")
    #expect {
        _ = try run(again)
    } throws: { error in
        "\(error)".contains("training.initial_model") && "\(error)".contains("training set of `gaussian-mixture`")
    }
}

@Test(
    "a transfer run interrupted after an epoch resumes to the uninterrupted result (the linear probe pretrains again)",
    arguments: ["all", "last-layer"])
func transferRunResumes(_ fineTune: String) throws {
    let yaml = transferYAML.replacingOccurrences(of: "  epochs: 2", with: "  epochs: 3\n  fine_tune: \(fineTune)")
    let run = try #require(try ExperimentConfig.parse(yaml: yaml, file: "t.yaml").runs.first)
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let r = try trainInterruptedAndResumed(run, stopAt: 2, in: dir)
    let records = r.beforeStop + r.afterResume
    #expect(records.map(\.epoch) == [1, 2, 3])
    #expect(records.map(\.testAccuracy) == r.full.map(\.testAccuracy))
    #expect(records.map(\.trainLoss) == r.full.map(\.trainLoss))
    #expect(r.summary.privacyLedger == r.fullSummary.privacyLedger)
    #expect(r.resumedModel == r.fullModel)
}

@Test(
    "training.initial_model as the pretrained start: a linear probe of it keeps its other layers; in a public run it is loaded before pretraining, and one that does not fit is refused"
)
func initialModelAsThePretrainedStart() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let executor = TrainingExecutor()
    let config = try ExperimentConfig.parse(yaml: transferYAML, file: "t.yaml").runs[0].config
    let other = ConfigValue.map([("name", .string("public-data"))]).jsonText(sortKeys: true, pretty: false)
    func file(_ name: String, inputs: Int) throws -> (URL, Sequential) {
        let model = try executor.buildModel(config.model, inputShape: [inputs], classes: 2, seed: 77)
        let url = dir.appendingPathComponent(name)
        try model.safetensors(metadata: [ModelEvaluation.datasetKey: other]).write(to: url)
        return (url, model)
    }
    let (good, source) = try file("good.safetensors", inputs: 10)
    let withoutPublic = transferYAML.replacingOccurrences(
        of:
            "public:\n  subset: {size: 300}\n  epochs: 3\n  batch_size: 50\n  optimizer: {name: sgd, learning_rate: 0.2}\n",
        with: "")
    let probe = withoutPublic.replacingOccurrences(
        of: "  epochs: 2", with: "  epochs: 2\n  fine_tune: last-layer\n  initial_model: \(good.path)")
    var trained: [Tensor<Float>] = []
    _ = try run(probe) { model, _ in trained = model.parameters.map(\.value) }
    #expect(trained.count == 4)
    #expect(trained[0] == source.parameters[0].value && trained[1] == source.parameters[1].value)
    #expect(trained[2] != source.parameters[2].value)

    // Public classes 0 and 1 of four: the pretraining model has 2 outputs, as the file.
    let publicClasses = transferYAML.replacingOccurrences(of: "classes: 2,", with: "classes: 4,")
        .replacingOccurrences(of: "subset: {size: 300}", with: "classes: [0, 1]")
    let (summary, _, _) = try run(
        publicClasses.replacingOccurrences(of: "  epochs: 2", with: "  epochs: 2\n  initial_model: \(good.path)"))
    #expect(summary.publicPart?["pretraining"]?["steps"] == .int(30))
    let (wide, _) = try file("wide.safetensors", inputs: 7)
    #expect {
        _ = try run(
            publicClasses.replacingOccurrences(of: "  epochs: 2", with: "  epochs: 2\n  initial_model: \(wide.path)"))
    } throws: { error in
        "\(error)".contains("training.initial_model") && "\(error)".contains("does not fit")
    }
}

@Test(
    "public.dataset: pretrained on another dataset's training set, the private part is the whole training set, the lineage names both"
)
func publicDatasetRun() throws {
    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    // 400 rows of 10 features in 3 classes (a csv file is another dataset of the same shape).
    var random = PhiloxRandom(seed: 11)
    var text = (0..<10).map { "x\($0)" }.joined(separator: ",") + ",label\n"
    for i in 0..<400 {
        let label = i % 3
        text += (0..<10).map { j in String(Float(j == label ? 2 : 0) + random.nextOpenUnitFloat()) }.joined(
            separator: ",")
        text += ",\(label)\n"
    }
    let csv = dir.appendingPathComponent("public.csv")
    try text.write(to: csv, atomically: true, encoding: .utf8)
    let yaml = transferYAML.replacingOccurrences(
        of: "subset: {size: 300}", with: "dataset: {name: csv, path: \(csv.path), test_size: 50}")
    let (report, _, folder) = try trainInTemporaryFolder(try ExperimentConfig.parse(yaml: yaml, file: "t.yaml"))
    defer { try? FileManager.default.removeItem(at: folder) }
    #expect(report.finished.count == 1, "\(report)")
    let entry = try #require(try readManifest(folder)["runs"]?.listValue?.first)
    let record = try #require(entry["public"])
    #expect(record["kind"] == .string("dataset") && record["dataset"]?["name"] == .string("csv"))
    #expect(record["size"] == .int(350) && record["private_size"] == .int(1000))
    #expect(record["pretraining"]?["last_layer"] == .string("reinitialised for the private classes"))
    #expect(entry["plan"]?["sampling_probability"] == .double(0.07))
    let (_, rows) = CSV.table(try String(contentsOf: folder.appendingPathComponent("runs.csv"), encoding: .utf8))
    let id = try #require(rows.first?["run_id"])
    let (_, metadata) = try Safetensors.decode(
        try Data(contentsOf: folder.appendingPathComponent("models/\(id).safetensors")))
    #expect(TrainingExecutor.modelLineage(metadata) == ["gaussian-mixture", "csv"])

    // This run's own dataset, or other shapes, as the public dataset: refused.
    let same = transferYAML.replacingOccurrences(
        of: "subset: {size: 300}", with: "dataset: {name: gaussian-mixture, options: {dimensions: 10}}")
    #expect(configError(same)?.path == "public.dataset.name")
    #expect(configError(same)?.message.contains("is this run's dataset") == true)
    let shapes = transferYAML.replacingOccurrences(
        of: "subset: {size: 300}", with: "dataset: {name: synthetic-shapes, options: {image_size: 8}}")
    #expect(configError(shapes)?.path == "public.dataset")
    #expect(configError(shapes)?.message.contains("the pretrained model must take the same input") == true)
}

@Test("the manifest's private size is the n of q: the private part after examples were added to it")
func privateSizeIsTheAnalysedN() throws {
    let config = try ExperimentConfig.parse(yaml: transferYAML, file: "transfer.yaml")
    let resolved = try #require(config.runs.first)
    var context = RunContext()
    // 10 more private examples, as poisoning or canaries add them after the split.
    context.prepareData = { split in split.train = split.train.appending(split.train.subset(Array(0..<10))) }
    let summary = try TrainingExecutor().execute(resolved, context: context, progress: { _ in })
    #expect(summary.samplingProbability == 70.0 / 710)
    let record = try #require(summary.publicPart)
    #expect(record["private_size"] == .int(710) && record["size"] == .int(300))
    #expect(record["statement"]?.stringValue?.contains("the private part (710 training examples)") == true)
}

@Test(
    "poisoning lands in the private part only: the public part is split off the clean training set first, and the flipped labels are all private"
)
func poisoningActsOnThePrivatePart() throws {
    let yaml = transferYAML.replacingOccurrences(
        of: "seeds: [3]", with: "poisoning: {label_flipping: {fraction: 0.1, target: 1}}\nseeds: [3]")
    var trained: Dataset?
    let (summary, config, _) = try run(yaml) { _, split in trained = split.train }
    let poisoned = try #require(trained)
    // The reference: the split of the clean training set (no input scaling in this config).
    let clean = try PublicSplit(TrainingExecutor().loadData(config), part: .subset(size: 300), seed: 3).privateSplit
        .train
    #expect(poisoned.features == clean.features, "the private part is the clean split's private part")
    let flipped = zip(poisoned.labels, clean.labels).filter { $0 != $1 }.count
    #expect(flipped > 0 && Double(flipped) == summary.derivedMetrics["poisoned_examples"])
}

@Test("private-standardize's statistics are of the private part (the public part is not in them)")
func privateStandardizeFitsThePrivatePart() throws {
    let yaml = transferYAML.replacingOccurrences(
        of: "  options: {dimensions: 10",
        with:
            "  normalize: private-standardize\n  normalize_options: {noise_multiplier: 3, lower: -6, upper: 6}\n  options: {dimensions: 10"
    )
    var scaled: Dataset?
    let (_, config, _) = try run(yaml) { _, split in scaled = split.train }
    let s = try PublicSplit(TrainingExecutor().loadData(config), part: .subset(size: 300), seed: 3)
    // The reference: the mechanism on the private part, with the run's statistics stream.
    func fitted(_ d: Dataset) throws -> Dataset {
        var seeded = PhiloxRandom(seed: 3).split(stream: RandomStream.statistics.rawValue)
        let (statistics, _) = PrivateStandardization(noiseMultiplier: 3, lower: -6, upper: 6, perChannel: false).fit(
            to: d, relation: try PrivacyPlan(config: config, trainingSetSize: 700).relation
        ) { seeded.nextNormalDouble() }
        var out = s.privateSplit.train
        InputTransform.standardization(statistics).apply(to: &out)
        return out
    }
    let result = try #require(scaled)
    #expect(result.features == (try fitted(s.privateSplit.train)).features)
    // Fitted on the whole training set instead, the scaling differs.
    #expect(result.features != (try fitted(TrainingExecutor().loadData(config).train)).features)
}

@Test(
    "public.subset.seed is read into the part; absent, it enters no resolved config (existing config hashes unchanged)")
func publicSubsetSeedKey() throws {
    let twoSeeds = transferYAML.replacingOccurrences(of: "seeds: [3]", with: "seeds: [3, 4]")
    let plain = try ExperimentConfig.parse(yaml: twoSeeds, file: "t.yaml").runs
    #expect(plain.count == 2)
    for r in plain {
        #expect(r.config.public?.part == .subset(size: 300))
        #expect(r.config.resolved["public"]?["subset"] == .map([("size", .int(300))]))
    }
    let fixed = try ExperimentConfig.parse(
        yaml: twoSeeds.replacingOccurrences(of: "subset: {size: 300}", with: "subset: {size: 300, seed: 7}"),
        file: "t.yaml"
    ).runs
    #expect(fixed.allSatisfy { $0.config.public?.part == .subset(size: 300, seed: 7) })
    #expect(fixed[0].configHash != plain[0].configHash)
}
