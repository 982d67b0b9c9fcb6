import DPData
import DPLayers
import DPTensor
import DPTraining
import Testing

// Results for a fixed seed do not depend on the thread count: the layers split examples across
// ParallelBatch threads, compute each example's values by the same operations whatever the
// split, and reduce across examples in fixed groups.

/// The parameters after `steps` private steps of the tanh CNN with `threads` threads.
private func tanhCNNParameters(threads: Int, clipping: ClippingMode, steps: Int = 2) throws -> [[Float]] {
    try BLASRuntime.withThreadCount(threads) { try tanhCNNParametersNow(clipping: clipping, steps: steps) }
}

private func tanhCNNParametersNow(clipping: ClippingMode, steps: Int) throws -> [[Float]] {
    var rng = PhiloxRandom(seed: 5, stream: 3)
    let n = 160
    let x = Tensor<Float>(uniform: [n, 1, 28, 28], in: 0...1, using: &rng)
    let labels = (0..<n).map { _ in Int(rng.next32() % 10) }
    let data = Dataset(name: "threads", features: x, labels: labels, classCount: 10)
    let model = try ModelBuilder.build(
        model: "cnn-tanh", input: ModelInput(exampleShape: [1, 28, 28], classes: 10), parameters: [:], seed: 7)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: SGD(learningRate: 0.5, momentum: 0.9), data: data,
        configuration: TrainerConfiguration(
            sampling: .fixedSize, expectedBatchSize: 80, maxPhysicalBatchSize: 80,
            privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 0.1, clipping: clipping, delta: 1e-5),
            seed: 9))
    for _ in 0..<steps { try trainer.trainStep() }
    return model.parameters.map { $0.value.scalars }
}

@Test(
    "a private tanh-CNN step gives the same bits on 1 and 2 threads",
    arguments: [ClippingMode.flat, .perLayer(thresholds: nil)])
func tanhCNNStepIsIndependentOfTheThreadCount(_ clipping: ClippingMode) throws {
    let one = try tanhCNNParameters(threads: 1, clipping: clipping)
    let two = try tanhCNNParameters(threads: 2, clipping: clipping)
    #expect(one.count == two.count)
    for (p, (a, b)) in zip(one, two).enumerated() {
        let differing = zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
        #expect(
            a.count == b.count && differing == 0,
            "parameter \(p): \(differing) of \(a.count) scalars differ between 1 and 2 threads")
    }
}
