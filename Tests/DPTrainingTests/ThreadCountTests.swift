import DPData
import DPLayers
import DPTensor
import DPTraining
import Testing

// Results for a fixed seed do not depend on the thread count. A batch of one chunk runs on
// every thread inside the layers: they split examples across ParallelBatch threads, compute each
// example's values by the same operations whatever the split, and reduce across examples in fixed
// groups, with OpenBLAS on every thread. A batch of several chunks runs them on every thread,
// one model replica per thread and OpenBLAS on one thread (ChunkTests).

/// The parameters after `steps` private steps of the tanh CNN with `threads` threads, on
/// batches of `batch` examples (the tanh CNN's chunks hold 32: 32 is one chunk, 80 three).
private func tanhCNNParameters(threads: Int, clipping: ClippingMode, batch: Int, steps: Int = 2) throws -> [[Float]] {
    try BLASRuntime.withThreadCount(threads) {
        try tanhCNNParametersNow(clipping: clipping, batch: batch, steps: steps)
    }
}

/// `n` uniform 28 x 28 images with uniform labels of 10 classes.
private func randomImages(_ n: Int) -> Dataset {
    var rng = PhiloxRandom(seed: 5, stream: 3)
    let x = Tensor<Float>(uniform: [n, 1, 28, 28], in: 0...1, using: &rng)
    let labels = (0..<n).map { _ in Int(rng.next32() % 10) }
    return Dataset(name: "threads", features: x, labels: labels, classCount: 10)
}

private func tanhCNNParametersNow(clipping: ClippingMode, batch: Int, steps: Int) throws -> [[Float]] {
    let data = randomImages(160)
    let model = try ModelBuilder.build(
        model: "cnn-tanh", input: ModelInput(exampleShape: [1, 28, 28], classes: 10), parameters: [:], seed: 7)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: SGD(learningRate: 0.5, momentum: 0.9), data: data,
        configuration: TrainerConfiguration(
            sampling: .fixedSize, expectedBatchSize: batch, maxPhysicalBatchSize: batch,
            privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 0.1, clipping: clipping, delta: 1e-5),
            seed: 9))
    for _ in 0..<steps { try trainer.trainStep() }
    return model.parameters.map { $0.value.scalars }
}

@Test(
    "a private tanh-CNN step gives the same bits on 1 and 2 threads, in one chunk and in three",
    arguments: [ClippingMode.flat, .perLayer(thresholds: nil)], [32, 80])
func tanhCNNStepIsIndependentOfTheThreadCount(_ clipping: ClippingMode, batch: Int) throws {
    let one = try tanhCNNParameters(threads: 1, clipping: clipping, batch: batch)
    let two = try tanhCNNParameters(threads: 2, clipping: clipping, batch: batch)
    #expect(one.count == two.count)
    for (p, (a, b)) in zip(one, two).enumerated() {
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(
            a.count == b.count && differing == 0,
            "parameter \(p): \(differing) of \(a.count) scalars differ between 1 and 2 threads")
    }
}

@Test(
    "a dense model on Poisson batches gives the same bits on 1 and 2 threads, in one chunk or two, private or not",
    arguments: [true, false])
func denseModelIsIndependentOfTheThreadCount(isPrivate: Bool) throws {
    // Batches of about 40 in chunks of at most 40: steps of one chunk (OpenBLAS once threaded
    // these GEMMs and rounded some shapes, 45 x 784 x 16 among them, differently) and of two
    // (on model replicas).
    func train(threads: Int) throws -> [[Float]] {
        try BLASRuntime.withThreadCount(threads) {
            let data = randomImages(600)
            let model = try ModelBuilder.build(
                specs: [.flatten, .linear(outputs: 16, bias: true), .tanh, .linear(outputs: 10, bias: true)],
                inputShape: [1, 28, 28], seed: 7)
            let trainer = try DPSGDTrainer(
                model: model, optimizer: SGD(learningRate: 0.5), data: data,
                configuration: TrainerConfiguration(
                    sampling: .poisson, expectedBatchSize: 40, maxPhysicalBatchSize: 40,
                    privacy: isPrivate ? PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5) : nil,
                    seed: 9))
            for _ in 0..<20 { try trainer.trainStep() }
            return model.parameters.map { $0.value.scalars }
        }
    }
    let one = try train(threads: 1), two = try train(threads: 2)
    for (p, (a, b)) in zip(one, two).enumerated() {
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "parameter \(p): \(differing) of \(a.count) scalars differ between 1 and 2 threads")
    }
}
