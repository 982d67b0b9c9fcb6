import DPData
import DPLayers
import DPTensor
import Testing

@testable import DPTraining

// A batch is cut into chunks sized for the cache, processed on every thread with model replicas;
// the clipped sum must still be the batch-of-one reference, whatever the thread count.

private func tanhCNN(seed: UInt64 = 7) throws -> Sequential {
    try ModelBuilder.build(
        model: "cnn-tanh", input: ModelInput(exampleShape: [1, 28, 28], classes: 10), parameters: [:], seed: seed)
}

private func images(_ n: Int, seed: UInt64 = 5) -> Dataset {
    var rng = PhiloxRandom(seed: seed, stream: 3)
    let x = Tensor<Float>(uniform: [n, 1, 28, 28], in: 0...1, using: &rng)
    let labels = (0..<n).map { _ in Int(rng.next32() % 10) }
    return Dataset(name: "chunks", features: x, labels: labels, classCount: 10)
}

@Test("a chunk holds as many examples as keep its cached tensors within 8 MiB, capped by the physical batch")
func chunkSizeFollowsTheCachedTensors() throws {
    let cnn = try tanhCNN()
    // conv1 (16 + 64) x 196, tanh 16 x 196, max-pool 16 x 13 x 13, conv2 (32 + 256) x 25, tanh 800,
    // max-pool and flatten 512 each, dense 32, tanh 32, dense 10.
    #expect(
        cnn.cachedScalars(forExampleShape: [1, 28, 28]) == 15_680 + 3_136 + 2_704 + 7_200 + 800 + 512 + 512 + 32 + 32
            + 10)
    // 8 MiB / (8 bytes x (784 + 30,618)) = 33.4: 32.
    #expect(DPSGDTrainer.chunkSize(model: cnn, exampleShape: [1, 28, 28], maxPhysicalBatchSize: 512) == 32)
    #expect(DPSGDTrainer.chunkSize(model: cnn, exampleShape: [1, 28, 28], maxPhysicalBatchSize: 20) == 20)
    let mlp = try ModelBuilder.build(
        specs: [.linear(outputs: 1000, bias: true), .relu, .linear(outputs: 10, bias: true)], inputShape: [784], seed: 1
    )
    #expect(DPSGDTrainer.chunkSize(model: mlp, exampleShape: [784], maxPhysicalBatchSize: 256) == 256)
    // 64 channels of 64 x 64: 2 MiB per example, fewer than 8 fit: the floor, 8.
    let wide = try ModelBuilder.build(
        specs: [
            .conv2d(outChannels: 64, kernel: 3, stride: 1, padding: 1, bias: true), .flatten,
            .linear(outputs: 10, bias: true),
        ],
        inputShape: [3, 64, 64], seed: 1)
    #expect(DPSGDTrainer.chunkSize(model: wide, exampleShape: [3, 64, 64], maxPhysicalBatchSize: 256) == 8)
}

@Test("chunks on 1, 2 and 3 threads give the batch-of-one clipped sum", arguments: [1, 2, 3])
func chunkedStepMatchesTheBatchOfOneReference(threads: Int) throws {
    let n = 80, c = 0.05
    let data = images(n)
    let model = try tanhCNN()
    let before = model.parameters.map(\.value.scalars)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: SGD(learningRate: 1), data: data,
        configuration: TrainerConfiguration(
            sampling: .fixedSize, expectedBatchSize: 60, maxPhysicalBatchSize: 60,
            privacy: PrivacySettings(noiseMultiplier: 0, clippingNorm: c, delta: 1e-5), seed: 9))
    #expect(trainer.chunkSize == 32) // 60 examples: chunks of 32 and 28
    let indices = trainer.sampler.nextBatch()
    try BLASRuntime.withThreadCount(threads) { _ = try trainer.trainStep() }
    #expect(trainer.lastChunkWorkers == min(threads, 2))

    // Reference: each example's gradient from a batch-of-one pass, clipped to c, summed in Double.
    let reference = try tanhCNN()
    let loss = SoftmaxCrossEntropy()
    var sum = reference.parameters.map { [Double](repeating: 0, count: $0.scalarCount) }
    for i in indices {
        var x = Tensor<Float>(zeros: data.batchShape(1))
        var y: [Int] = []
        data.gather(indices: [i], into: &x, labels: &y)
        var context = ForwardContext(training: true)
        _ = reference.backward(loss(logits: reference.forward(x, context: &context), labels: y).logitGradient)
        reference.zeroGradients()
        reference.accumulateGradients(exampleWeights: nil)
        let g = reference.parameters.map(\.gradient.scalars)
        let norm = g.joined().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let w = min(1, c / norm)
        for (p, gp) in g.enumerated() { for j in gp.indices { sum[p][j] += w * Double(gp[j]) } }
    }
    let after = model.parameters.map(\.value.scalars)
    var worst = 0.0
    for p in sum.indices {
        for j in sum[p].indices {
            let update = Double(before[p][j] - after[p][j]), expected = sum[p][j] / 60
            worst = max(worst, abs(update - expected) / (1e-4 * max(1e-2, abs(expected)) + 1e-7))
        }
    }
    // Clipped per-example gradients of norm <= 0.05, averaged over 60: entries of order 1e-3.
    #expect(worst <= 1, "largest error / tolerance \(worst)")
}

@Test("dropout keeps the chunks on one thread, in order")
func dropoutKeepsChunksSequential() throws {
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 16, bias: true), .dropout(rate: 0.5), .linear(outputs: 10, bias: true)],
        inputShape: [1, 28, 28], seed: 1)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: SGD(learningRate: 0.1), data: images(80),
        configuration: TrainerConfiguration(
            sampling: .fixedSize, expectedBatchSize: 80, maxPhysicalBatchSize: 16,
            privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5), seed: 9))
    try BLASRuntime.withThreadCount(2) { _ = try trainer.trainStep() }
    #expect(trainer.lastChunkWorkers == 1)
    #expect(trainer.refusalOfParallelChunks()?.contains("dropout") == true)
}

@Test("Poisson batches of about five chunks give the same bits on 1 and 2 threads, step after step")
func poissonChunksAreIndependentOfTheThreadCount() throws {
    func train(threads: Int) throws -> (parameters: [[Float]], workers: Int, batches: [Int]) {
        let model = try tanhCNN()
        let trainer = try DPSGDTrainer(
            model: model, optimizer: SGD(learningRate: 0.5, momentum: 0.9), data: images(400),
            configuration: TrainerConfiguration(
                sampling: .poisson, expectedBatchSize: 150, maxPhysicalBatchSize: 1024,
                privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 0.1, delta: 1e-5), seed: 4))
        var batches: [Int] = []
        try BLASRuntime.withThreadCount(threads) {
            for _ in 0..<3 { batches.append(try trainer.trainStep().batchSize) }
        }
        return (model.parameters.map(\.value.scalars), trainer.lastChunkWorkers, batches)
    }
    let one = try train(threads: 1), two = try train(threads: 2)
    #expect(one.workers == 1 && two.workers == 2)
    #expect(one.batches == two.batches && one.batches.allSatisfy { $0 > 3 * 32 }) // more chunks than threads
    for (p, (a, b)) in zip(one.parameters, two.parameters).enumerated() {
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "parameter \(p): \(differing) of \(a.count) scalars differ between 1 and 2 threads")
    }
}

@Test("evaluation in chunks on 1 and 2 threads gives each example's loss of a batch-of-one pass, in order")
func evaluationInChunksMatchesBatchOfOnePasses() throws {
    let model = try tanhCNN()
    let data = images(100)
    let one = BLASRuntime.withThreadCount(1) { Evaluation.perExampleLosses(model: model, dataset: data) }
    let two = BLASRuntime.withThreadCount(2) { Evaluation.perExampleLosses(model: model, dataset: data) }
    #expect(one.map(\.bitPattern) == two.map(\.bitPattern))
    let loss = SoftmaxCrossEntropy()
    var reference: [Double] = []
    var correct = 0
    for i in 0..<data.count {
        var x = Tensor<Float>(zeros: data.batchShape(1))
        var y: [Int] = []
        data.gather(indices: [i], into: &x, labels: &y)
        let logits = model(x)
        reference.append(Double(loss.losses(logits: logits, labels: y).scalars[0]))
        correct += Evaluation.correctCount(logits: logits, labels: y)
    }
    #expect(two.count == reference.count)
    let worst = zip(two, reference).map { abs($0 - $1) / (1e-5 * max(1, abs($1))) }.max() ?? .infinity
    #expect(worst <= 1, "largest error / tolerance \(worst)")
    let (meanLoss, accuracy) = BLASRuntime.withThreadCount(2) { Evaluation.evaluate(model: model, dataset: data) }
    #expect(abs(meanLoss - reference.reduce(0, +) / 100) <= 1e-5)
    #expect(accuracy == Double(correct) / 100)
}

@Test("a NaN image in a later chunk stops the step on 1 and 2 threads alike, with nothing updated")
func nonFiniteChunkStopsTheStepAtAnyThreadCount() throws {
    for threads in [1, 2] {
        var rng = PhiloxRandom(seed: 5, stream: 3)
        var x = Tensor<Float>(uniform: [80, 1, 28, 28], in: 0...1, using: &rng)
        x.withUnsafeMutableBufferPointer { $0[70 * 784 + 5] = .nan } // example 70: the third chunk
        let data = Dataset(name: "nan", features: x, labels: (0..<80).map { $0 % 10 }, classCount: 10)
        let model = try tanhCNN()
        let before = model.parameters.map(\.value.scalars)
        let trainer = try DPSGDTrainer(
            model: model, optimizer: SGD(learningRate: 0.1), data: data,
            configuration: TrainerConfiguration(
                sampling: .fixedSize, expectedBatchSize: 80, maxPhysicalBatchSize: 80,
                privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5), seed: 9))
        #expect(throws: TrainingError.self) {
            try BLASRuntime.withThreadCount(threads) { _ = try trainer.trainStep() }
        }
        #expect(trainer.lastChunkWorkers == threads, "\(threads) threads")
        #expect(model.parameters.map(\.value.scalars) == before, "\(threads) threads: parameters changed")
        #expect(trainer.ledger.entries.isEmpty, "\(threads) threads: a step was composed")
    }
}
