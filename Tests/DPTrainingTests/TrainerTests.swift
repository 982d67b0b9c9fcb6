import DPAccounting
import DPData
@_spi(Testing) import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPTraining

// MARK: - Fixtures

private func smallData(count: Int = 40, seed: UInt64 = 3) -> Dataset {
    SyntheticData.gaussianMixture(classes: 3, dimensions: 6, examplesPerClass: count / 3 + 1, separation: 2, seed: seed)
}

private func smallModel(seed: UInt64 = 5, specs: [LayerSpec]? = nil) throws -> Sequential {
    try ModelBuilder.build(
        specs: specs ?? [.linear(outputs: 5, bias: true), .tanh, .linear(outputs: 3, bias: true)],
        inputShape: [6], seed: seed)
}

private func parameterValues(_ m: Sequential) -> [[Float]] { m.parameters.map(\.value.scalars) }

/// The reference: per-example gradients by batch-of-one backward passes, clipped, summed.
private func referenceClippedSum(
    model: Sequential, data: Dataset, indices: [Int], clip: (_ norms: [Double]) -> [Double]
) -> [[Double]] {
    let loss = SoftmaxCrossEntropy()
    var perExample: [[[Float]]] = []
    for i in indices {
        var x = Tensor<Float>(zeros: data.batchShape(1))
        var y: [Int] = []
        data.gather(indices: [i], into: &x, labels: &y)
        var ctx = ForwardContext(training: true)
        let logits = model.forward(x, context: &ctx)
        _ = model.backward(loss(logits: logits, labels: y).logitGradient)
        for p in model.parameters { p.gradient.fill(0) }
        model.accumulateGradients(exampleWeights: nil)
        perExample.append(model.parameters.map(\.gradient.scalars))
    }
    let norms = perExample.map { g in g.flatMap { $0 }.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
    let w = clip(norms)
    var sum = model.parameters.map { [Double](repeating: 0, count: $0.scalarCount) }
    for (e, g) in perExample.enumerated() {
        for (p, gp) in g.enumerated() { for j in 0..<gp.count { sum[p][j] += w[e] * Double(gp[j]) } }
    }
    for p in model.parameters { p.gradient.fill(0) }
    return sum
}

private func makeTrainer(
    model: Sequential, data: Dataset, sampling: SamplingScheme = .poisson, batch: Int = 8,
    physical: Int = 1024, privacy: PrivacySettings?, seed: UInt64 = 11,
    optimizer: Optimizer = SGD(learningRate: 1)
) throws -> DPSGDTrainer {
    try DPSGDTrainer(
        model: model, optimizer: optimizer, data: data,
        configuration: TrainerConfiguration(
            sampling: sampling, expectedBatchSize: batch,
            maxPhysicalBatchSize: physical, privacy: privacy, seed: seed))
}

// MARK: - The clipped sum equals the one-example-at-a-time reference

@Test(arguments: [ClippingMode.flat, .automatic(stability: 0.01)], [0.05, 0.5, 100.0])
func clippedSumMatchesBatchOfOneReference(mode: ClippingMode, clippingNorm: Double) throws {
    let data = smallData()
    let model = try smallModel()
    let before = parameterValues(model)
    let privacy = PrivacySettings(noiseMultiplier: 0, clippingNorm: clippingNorm, clipping: mode, delta: 1e-5)
    let trainer = try makeTrainer(model: model, data: data, privacy: privacy)
    let indices = trainer.sampler.nextBatch()
    let reference = referenceClippedSum(model: try smallModel(), data: data, indices: indices) { norms in
        norms.map { n in
            switch mode {
            case .automatic(let s): return clippingNorm / (n + s)
            default: return min(1, clippingNorm / n)
            }
        }
    }
    let report = try trainer.trainStep()
    #expect(report.batchSize == indices.count)
    let after = parameterValues(model)
    // SGD with learning rate 1: the update is minus the averaged clipped sum.
    for p in 0..<before.count {
        for j in 0..<before[p].count {
            let update = Double(before[p][j] - after[p][j])
            let expected = reference[p][j] / 8
            #expect(abs(update - expected) <= 1e-4 * max(1, abs(expected)) + 1e-6)
        }
    }
}

@Test(
    "per-layer clipping equals a per-example, per-layer reference (equal split and given thresholds)",
    arguments: [
        (0.01, nil), (0.3, nil), (10.0, nil), (0.3, [0.1, (0.09 - 0.01).squareRoot()]), (0.05, [0.048, 0.014]),
    ] as [(Double, [Double]?)])
func perLayerClippingMatchesPerExampleReference(_ setting: (Double, [Double]?)) throws {
    let (c, thresholds) = setting
    let data = smallData()
    let model = try smallModel()
    let before = parameterValues(model)
    let trainer = try makeTrainer(
        model: model, data: data,
        privacy: PrivacySettings(
            noiseMultiplier: 0, clippingNorm: c, clipping: .perLayer(thresholds: thresholds), delta: 1e-5))
    let indices = trainer.sampler.nextBatch()
    // Reference: per-example gradients of each layer (batch-validated in DPLayersTests), each
    // layer clipped to C / sqrt(L) separately, summed.
    let ref = try smallModel()
    var x = Tensor<Float>(zeros: data.batchShape(indices.count))
    var y: [Int] = []
    data.gather(indices: indices, into: &x, labels: &y)
    var ctx = ForwardContext(training: true)
    let logits = ref.forward(x, context: &ctx)
    _ = ref.backward(SoftmaxCrossEntropy()(logits: logits, labels: y).logitGradient)
    let layers = ref.trainableLayers
    var expected: [[Double]] = []
    for (l, layer) in layers.enumerated() {
        let perLayerC = thresholds?[l] ?? c / Double(layers.count).squareRoot()
        let grads = layer.perSampleGradients() // one [B] + shape per parameter
        let perExample = grads.map { $0.scalarCount / max(1, indices.count) }
        var sums = grads.map { [Double](repeating: 0, count: $0.scalarCount / max(1, indices.count)) }
        for e in 0..<indices.count {
            var sq = 0.0
            for (g, n) in zip(grads, perExample) {
                for j in 0..<n {
                    let v = Double(g.scalars[e * n + j])
                    sq += v * v
                }
            }
            let w = min(1, perLayerC / sq.squareRoot())
            for (p, (g, n)) in zip(grads, perExample).enumerated() {
                for j in 0..<n { sums[p][j] += w * Double(g.scalars[e * n + j]) }
            }
        }
        expected.append(contentsOf: sums)
    }
    try trainer.trainStep()
    let after = parameterValues(model)
    for p in 0..<before.count {
        for j in 0..<before[p].count {
            let update = Double(before[p][j] - after[p][j])
            let e = expected[p][j] / 8
            #expect(abs(update - e) <= 1e-4 * max(1, abs(e)) + 1e-6)
        }
    }
}

@Test func perLayerClippingBoundsEachLayer() throws {
    let data = smallData()
    let model = try smallModel()
    let before = parameterValues(model)
    let c = 0.01
    let trainer = try makeTrainer(
        model: model, data: data, batch: 8,
        privacy: PrivacySettings(noiseMultiplier: 0, clippingNorm: c, clipping: .perLayer(thresholds: nil), delta: 1e-5)
    )
    let report = try trainer.trainStep()
    // Each example contributes at most C in total, so the summed update is at most |B| C / b.
    let after = parameterValues(model)
    var sq = 0.0
    for p in 0..<before.count {
        for j in 0..<before[p].count {
            let d = Double(before[p][j] - after[p][j])
            sq += d * d
        }
    }
    #expect(sq.squareRoot() <= Double(report.batchSize) * c / 8 + 1e-6)
    #expect(report.clippedCount > 0)
}

// MARK: - Non-private equivalence, empty batches, determinism

@Test func zeroNoiseInfiniteClippingIsNonPrivateSGD() throws {
    let data = smallData()
    let a = try smallModel(), b = try smallModel()
    let t1 = try makeTrainer(
        model: a, data: data, privacy: PrivacySettings(noiseMultiplier: 0, clippingNorm: .infinity, delta: 1e-5))
    let t2 = try makeTrainer(model: b, data: data, privacy: nil)
    for _ in 0..<5 {
        try t1.trainStep()
        try t2.trainStep()
    }
    for (p, q) in zip(a.parameters, b.parameters) {
        #expect(p.value.isApproximatelyEqual(to: q.value, relativeTolerance: 1e-5, absoluteTolerance: 1e-6))
    }
    #expect(t2.ledger.entries.isEmpty, "a non-private run composes nothing")
}

@Test func emptyPoissonBatchIsANoiseOnlyStep() throws {
    let data = smallData(count: 12)
    let model = try smallModel()
    let before = parameterValues(model)
    // q = 1/12: find a seed whose first batch is empty.
    var seed: UInt64 = 0
    while true {
        let s = BatchSampler(
            scheme: .poisson, datasetSize: data.count, expectedBatchSize: 1,
            rng: PhiloxRandom(seed: seed).split(stream: RandomStream.sampling.rawValue))
        if s.nextBatch().isEmpty { break }
        seed += 1
    }
    let trainer = try makeTrainer(
        model: model, data: data, batch: 1,
        privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5), seed: seed)
    let report = try trainer.trainStep()
    #expect(report.batchSize == 0)
    let after = parameterValues(model)
    var changed = 0
    for p in 0..<before.count { for j in 0..<before[p].count where before[p][j] != after[p][j] { changed += 1 } }
    #expect(changed == before.reduce(0) { $0 + $1.count }, "noise moves every parameter")
    #expect(trainer.ledger.totalCount == 1, "the empty step is still composed")
}

@Test func sameSeedSameRun() throws {
    func run(_ seed: UInt64) throws -> [[Float]] {
        let model = try smallModel()
        let t = try makeTrainer(
            model: model, data: smallData(),
            privacy: PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 1, delta: 1e-5), seed: seed)
        for _ in 0..<4 { try t.trainStep() }
        return parameterValues(model)
    }
    #expect(try run(1) == run(1))
    #expect(try run(1) != run(2))
}

@Test func virtualBatchesEqualOneBatchWithOneNoiseDraw() throws {
    let data = smallData()
    let a = try smallModel(), b = try smallModel()
    let privacy = PrivacySettings(noiseMultiplier: 0.7, clippingNorm: 0.3, delta: 1e-5)
    let t1 = try makeTrainer(model: a, data: data, batch: 16, physical: 1024, privacy: privacy)
    let t2 = try makeTrainer(model: b, data: data, batch: 16, physical: 3, privacy: privacy)
    for _ in 0..<3 {
        try t1.trainStep()
        try t2.trainStep()
    }
    for (p, q) in zip(a.parameters, b.parameters) {
        #expect(p.value.isApproximatelyEqual(to: q.value, relativeTolerance: 1e-4, absoluteTolerance: 1e-5))
    }
    #expect(t1.noiseRandom == t2.noiseRandom, "both drew exactly the same amount of noise")
}

// MARK: - Noise has the accounted scale: MechanismTests.swift

// MARK: - Privacy events, ledger and budget

@Test(arguments: SamplingScheme.allCases)
func ledgerRecordsTheSamplersEvent(scheme: SamplingScheme) throws {
    let data = smallData(count: 60)
    let t = try makeTrainer(
        model: try smallModel(), data: data, sampling: scheme, batch: 10,
        privacy: PrivacySettings(noiseMultiplier: 1.3, clippingNorm: 1, delta: 1e-5))
    for _ in 0..<7 { try t.trainStep() }
    let expected: DpEvent
    switch scheme {
    case .poisson:
        expected = .poissonSampled(probability: 10.0 / Double(data.count), event: .gaussian(noiseMultiplier: 1.3))
    case .fixedSize:
        // Replace-one sensitivity is 2C: the same noise is multiplier 1.3 / 2 under that relation.
        expected = .sampledWithoutReplacement(
            sampleSize: 10, datasetSize: data.count, event: .gaussian(noiseMultiplier: 0.65))
    }
    #expect(t.ledger.entries.count == 1)
    #expect(t.ledger.entries.first?.event == expected)
    #expect(t.ledger.totalCount == 7)
}

@Test func fixedSizeRunsAreAccountedUnderReplaceOne() throws {
    let data = smallData(count: 60)
    let t = try makeTrainer(
        model: try smallModel(), data: data, sampling: .fixedSize, batch: 6,
        privacy: PrivacySettings(noiseMultiplier: 2, clippingNorm: 1, delta: 1e-5, targetEpsilon: 4))
    let allowed = try #require(t.stepsRemaining)
    #expect(allowed > 0)
    for _ in 0..<min(allowed, 5) { try t.trainStep() }
    #expect(try t.ledger.neighboringRelation() == .replaceOne)
    var reference = RDPAccountant(neighboringRelation: .replaceOne)
    try reference.compose(
        .sampledWithoutReplacement(sampleSize: 6, datasetSize: data.count, event: .gaussian(noiseMultiplier: 1)),
        count: min(allowed, 5))
    #expect(
        abs(try PrivacyBudget.epsilon(ledger: t.ledger, delta: 1e-5) - (try reference.epsilon(delta: 1e-5).epsilon))
            < 1e-9)
    // PLD does not analyse sampling without replacement: it refuses rather than guess.
    #expect(throws: AccountingError.self) { try PrivacyBudget.epsilon(ledger: t.ledger, delta: 1e-5, accountant: .pld) }
    // A ledger that mixes the two relations has no single epsilon.
    var mixed = t.ledger
    try mixed.record(.poissonSampled(probability: 0.1, event: .gaussian(noiseMultiplier: 1)))
    #expect(throws: AccountingError.self) { try mixed.neighboringRelation() }
}

@Test func fixedSizeBatchesHaveExactlyBDistinctExamples() throws {
    var s = BatchSampler(scheme: .fixedSize, datasetSize: 50, expectedBatchSize: 20, rng: PhiloxRandom(seed: 4))
    var counts = [Int](repeating: 0, count: 50)
    var idx: [Int] = []
    for _ in 0..<500 {
        s.nextBatch(into: &idx)
        #expect(idx.count == 20 && Set(idx).count == 20 && idx.allSatisfy { (0..<50).contains($0) })
        for i in idx { counts[i] += 1 }
    }
    // Each example is chosen with probability 20/50 = 0.4: 200 of 500 on average.
    #expect(counts.allSatisfy { abs($0 - 200) < 60 })
}

@Test func poissonInclusionFrequencyIsQ() throws {
    var s = BatchSampler(scheme: .poisson, datasetSize: 1000, expectedBatchSize: 50, rng: PhiloxRandom(seed: 9))
    var total = 0
    var idx: [Int] = []
    for _ in 0..<400 {
        s.nextBatch(into: &idx)
        #expect(idx == idx.sorted() && Set(idx).count == idx.count)
        total += idx.count
    }
    // Mean batch size 50, standard error of the mean about sqrt(47.5 / 400) = 0.34.
    #expect(abs(Double(total) / 400 - 50) < 1.5)
}

@Test func budgetRefusesTheStepThatWouldExceedIt() throws {
    let data = smallData(count: 60)
    let target = 3.0
    let t = try makeTrainer(
        model: try smallModel(), data: data, batch: 6,
        privacy: PrivacySettings(noiseMultiplier: 1.5, clippingNorm: 1, delta: 1e-5, targetEpsilon: target))
    let allowed = try #require(t.stepsRemaining)
    #expect(allowed > 2 && allowed < 500)
    for _ in 0..<allowed { try t.trainStep() }
    let spent = try PrivacyBudget.epsilon(ledger: t.ledger, delta: 1e-5)
    #expect(spent <= target)
    var oneMore = t.ledger
    try oneMore.record(t.stepEvent)
    #expect(try PrivacyBudget.epsilon(ledger: oneMore, delta: 1e-5) > target)
    let before = parameterValues(t.model)
    #expect(throws: TrainingError.self) { try t.trainStep() }
    #expect(parameterValues(t.model) == before, "the refused step changes nothing")
    #expect(t.ledger.totalCount == allowed)
}

@Test(arguments: [0.01, 0.3])
func initRefusesABudgetThatAllowsNoStep(target: Double) throws {
    // One step at sigma 0.5, q = 0.5 costs far more than these targets.
    let data = smallData(count: 60)
    do {
        _ = try makeTrainer(
            model: try smallModel(), data: data, batch: 30,
            privacy: PrivacySettings(noiseMultiplier: 0.5, clippingNorm: 1, delta: 1e-5, targetEpsilon: target))
        Issue.record("a budget that allows no step must be refused at init")
    } catch let TrainingError.invalidSetting(message) {
        #expect(message.contains("target epsilon \(target) allows no step"))
        #expect(message.contains("raise the target epsilon or the noise multiplier"))
    }
}

@Test func initRefusesALedgerThatAlreadySpentTheBudget() throws {
    let data = smallData(count: 60)
    var ledger = PrivacyLedger()
    try ledger.record(.gaussian(noiseMultiplier: 0.3))
    #expect(throws: TrainingError.self) {
        _ = try DPSGDTrainer(
            model: try smallModel(), optimizer: SGD(learningRate: 1), data: data,
            configuration: TrainerConfiguration(
                expectedBatchSize: 6,
                privacy: PrivacySettings(
                    noiseMultiplier: 2, clippingNorm: 1, delta: 1e-5, targetEpsilon: 1), seed: 1),
            ledger: ledger)
    }
}

@Test(arguments: [LearningRateSchedule.constant, .step(everySteps: 1, factor: 0.5)])
func theOptimizersLearningRateIsTheOneUsed(schedule: LearningRateSchedule) throws {
    let data = smallData()
    let optimizer = SGD(learningRate: 0.25)
    let t = try DPSGDTrainer(
        model: try smallModel(), optimizer: optimizer, schedule: schedule, data: data,
        configuration: TrainerConfiguration(expectedBatchSize: 8, privacy: nil, seed: 1))
    #expect(t.baseLearningRate == 0.25)
    for step in 0..<3 {
        try t.trainStep()
        #expect(optimizer.learningRate == schedule.learningRate(base: 0.25, step: step))
    }
}

@Test func invalidSettingsNameTheValue() throws {
    let data = smallData()
    func message(_ p: PrivacySettings) -> String {
        do {
            _ = try makeTrainer(model: try smallModel(), data: data, privacy: p)
            return ""
        } catch { return "\(error)" }
    }
    #expect(message(PrivacySettings(noiseMultiplier: -1, clippingNorm: 1, delta: 1e-5)).contains("noise multiplier -1"))
    #expect(message(PrivacySettings(noiseMultiplier: 1, clippingNorm: 0, delta: 1e-5)).contains("clipping norm 0"))
    #expect(message(PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 2)).contains("delta 2"))
    #expect(
        message(PrivacySettings(noiseMultiplier: 0, clippingNorm: 1, delta: 1e-5, targetEpsilon: 1)).contains(
            "needs noise"))
    do {
        _ = try makeTrainer(model: try smallModel(), data: data, batch: 1000, privacy: nil)
        Issue.record("a batch larger than the dataset must be refused")
    } catch { #expect("\(error)".contains("expected batch size 1000")) }
}

@Test func nanLossStopsWithAClearError() throws {
    var data = smallData()
    data.mapFeatures { $0.fill(.nan) }
    let model = try smallModel()
    let before = parameterValues(model)
    let t = try makeTrainer(
        model: model, data: data, privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5))
    do {
        try t.trainStep()
        Issue.record("a NaN loss must stop training")
    } catch let e as TrainingError {
        #expect(parameterValues(model) == before, "nothing is updated")
        #expect(t.ledger.entries.isEmpty, "nothing is composed")
        guard case .nonFiniteLoss = e else {
            Issue.record("unexpected \(e)")
            return
        }
        #expect("\(e)".contains("lower the learning rate"))
    }
}

// MARK: - Checkpoints

@Test(arguments: [false, true])
func resumedRunContinuesExactly(adam: Bool) throws {
    let data = smallData()
    let privacy = PrivacySettings(noiseMultiplier: 1.0, clippingNorm: 0.5, delta: 1e-5)
    func optimizer() -> Optimizer { adam ? Adam(learningRate: 0.01) : SGD(learningRate: 0.1, momentum: 0.9) }
    let straight = try makeTrainer(model: try smallModel(), data: data, privacy: privacy, optimizer: optimizer())
    for _ in 0..<6 { try straight.trainStep() }

    let first = try makeTrainer(model: try smallModel(), data: data, privacy: privacy, optimizer: optimizer())
    for _ in 0..<3 { try first.trainStep() }
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-ckpt-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: url) }
    try first.checkpoint().write(to: url)
    // A fresh trainer (different init seed for the model: the checkpoint overwrites it).
    let resumed = try makeTrainer(model: try smallModel(seed: 77), data: data, privacy: privacy, optimizer: optimizer())
    try resumed.restore(try Checkpoint.read(from: url))
    #expect(resumed.ledger.totalCount == 3)
    for _ in 0..<3 { try resumed.trainStep() }
    #expect(resumed.ledger.totalCount == 6, "the ledger is neither reset nor double-counted")
    #expect(resumed.ledger == straight.ledger)
    for (p, q) in zip(resumed.model.parameters, straight.model.parameters) {
        #expect(p.value.isApproximatelyEqual(to: q.value, relativeTolerance: 1e-6, absoluteTolerance: 1e-7))
    }
}

@Test func corruptCheckpointIsAClearError() throws {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-bad-\(UUID().uuidString).json")
    defer { try? FileManager.default.removeItem(at: url) }
    try Data("{\"step\": 3".utf8).write(to: url)
    #expect { try Checkpoint.read(from: url) } throws: { "\($0)".contains("corrupt") }
}

@Test func perLayerThresholdsMustMatchTheModelAndTheClippingNorm() throws {
    let data = smallData()
    #expect(throws: TrainingError.self) {
        _ = try makeTrainer(
            model: try smallModel(), data: data,
            privacy: PrivacySettings(
                noiseMultiplier: 1, clippingNorm: 1, clipping: .perLayer(thresholds: [1]), delta: 1e-5))
    }
    #expect(throws: TrainingError.self) {
        _ = try makeTrainer(
            model: try smallModel(), data: data,
            privacy: PrivacySettings(
                noiseMultiplier: 1, clippingNorm: 1, clipping: .perLayer(thresholds: [0.5, 0.5]), delta: 1e-5))
    }
}

@Test func cosineWarmUpRisesLinearlyThenDecays() {
    let s = LearningRateSchedule.cosine(totalSteps: 110, minimumFactor: 0, warmupSteps: 10)
    #expect(s.learningRate(base: 2, step: 0) == 0.2)
    #expect(s.learningRate(base: 2, step: 9) == 2)
    #expect(s.learningRate(base: 2, step: 10) == 2)
    #expect(abs(s.learningRate(base: 2, step: 60) - 1) < 1e-12)
    #expect(s.learningRate(base: 2, step: 110) < 1e-12)
}

// MARK: - fit

@Test func fitRunsEpochsAndReportsEveryStep() throws {
    let data = smallData(count: 60)
    let t = try makeTrainer(
        model: try smallModel(), data: data, batch: 10,
        privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5))
    var steps: [Int] = []
    var epochs: [EpochReport] = []
    let summary = try t.fit(
        epochs: 2, evaluateOn: data, onStep: { steps.append($0.step) }, onEpoch: { epochs.append($0) })
    #expect(steps == Array(0..<(2 * t.stepsPerEpoch)))
    #expect(epochs.map(\.epoch) == [1, 2])
    #expect(summary.steps == 2 * t.stepsPerEpoch && summary.epochs == 2 && !summary.stoppedByBudget)
    #expect(summary.ledger.totalCount == summary.steps)
    let eps = try #require(summary.epsilon)
    #expect(eps == (try PrivacyBudget.epsilon(ledger: t.ledger, delta: 1e-5)))
    #expect(epochs[1].testAccuracy != nil && epochs[0].epsilon! < eps)
}

@Test func fitStopsAtTheBudgetWithoutError() throws {
    let data = smallData(count: 60)
    let t = try makeTrainer(
        model: try smallModel(), data: data, batch: 6,
        privacy: PrivacySettings(noiseMultiplier: 1.5, clippingNorm: 1, delta: 1e-5, targetEpsilon: 3))
    let allowed = try #require(t.stepsRemaining)
    let summary = try t.fit(epochs: allowed) // far more steps than the budget allows
    #expect(summary.stoppedByBudget)
    #expect(summary.steps == allowed)
    #expect(try #require(summary.epsilon) <= 3)
}
