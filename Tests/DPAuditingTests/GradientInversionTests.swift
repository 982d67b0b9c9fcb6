import DPData
import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPAuditing

// MARK: - Fixtures

/// Shape images (pixels in [0, 1]) of side `size`, 10 classes.
private func shapes(count: Int = 16, size: Int = 28, seed: UInt64 = 1) -> Dataset {
    SyntheticData.shapes(count: count, size: size, seed: seed)
}

private func batch(_ data: Dataset, _ indices: [Int]) -> (Tensor<Float>, [Int]) {
    var x = Tensor<Float>(zeros: data.batchShape(indices.count))
    var y: [Int] = []
    data.gather(indices: indices, into: &x, labels: &y)
    return (x, y)
}

/// `||a - b|| / ||b||`.
private func relativeError<B: BinaryFloatingPoint>(_ a: [Double], _ b: [B]) -> Double {
    var d = 0.0, n = 0.0
    for i in 0..<b.count {
        d += (a[i] - Double(b[i])) * (a[i] - Double(b[i]))
        n += Double(b[i]) * Double(b[i])
    }
    return (d / n).squareRoot()
}

// MARK: - The observed gradient is DP-SGD's

/// `GradientObservation` (DPSGDTrainer's step) against the obvious reference: a loop of
/// batch-of-one gradients, each clipped to C, summed, divided by B.
@Test(arguments: [Double.infinity, 2, 0.05])
func observedGradientIsTheClippedMean(clippingNorm: Double) throws {
    let data = shapes(count: 4, size: 8)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 6), .tanh, .linear(outputs: 10)], inputShape: [1, 8, 8], seed: 2)
    let (x, y) = batch(data, [0, 1, 2])
    let observed = try GradientObservation.observe(
        model: model, inputs: x, labels: y, classCount: 10,
        defence: GradientDefence(clippingNorm: clippingNorm, noiseMultiplier: 0), seed: 0)

    var reference = model.parameters.map { [Double](repeating: 0, count: $0.scalarCount) }
    var clipped = 0
    for i in 0..<3 {
        let (xi, yi) = batch(data, [i])
        var context = ForwardContext(training: false)
        _ = model.backward(
            SoftmaxCrossEntropy()(logits: model.forward(xi, context: &context), labels: yi).logitGradient)
        model.zeroGradients()
        model.accumulateGradients(exampleWeights: nil)
        let g = model.parameters.map { $0.gradient.scalars.map(Double.init) }
        let norm = g.joined().reduce(0) { $0 + $1 * $1 }.squareRoot()
        let factor = min(1, clippingNorm / norm)
        if factor < 1 { clipped += 1 }
        for k in 0..<g.count { for j in 0..<g[k].count { reference[k][j] += factor * g[k][j] / 3 } }
    }
    #expect(observed.clippedCount == clipped)
    if clippingNorm == 0.05 { #expect(clipped == 3) }
    for (o, r) in zip(observed.parameters, reference) {
        #expect(relativeError(r, o.scalars) <= 1e-5)
    }
}

/// With sigma > 0 the observed gradient is the clipped mean plus N(0, (sigma C / B)^2) per
/// coordinate: the empirical standard deviation over 10,000 coordinates is within 3% of
/// sigma C / B (the standard error of a standard deviation estimate is about 1 / sqrt(2 n) = 0.7%).
@Test func observedNoiseHasTheDPSGDScale() throws {
    let data = shapes(count: 4, size: 28)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 16), .tanh, .linear(outputs: 10)], inputShape: [1, 28, 28], seed: 2)
    let (x, y) = batch(data, [0, 1])
    let c = 0.5, sigma = 0.3
    let clean = try GradientObservation.observe(
        model: model, inputs: x, labels: y, classCount: 10,
        defence: GradientDefence(clippingNorm: c, noiseMultiplier: 0), seed: 9)
    let noisy = try GradientObservation.observe(
        model: model, inputs: x, labels: y, classCount: 10,
        defence: GradientDefence(clippingNorm: c, noiseMultiplier: sigma), seed: 9)
    var s = 0.0, n = 0
    for (a, b) in zip(noisy.parameters, clean.parameters) {
        for (u, v) in zip(a.scalars, b.scalars) {
            s += Double(u - v) * Double(u - v)
            n += 1
        }
    }
    let std = (s / Double(n)).squareRoot(), expected = sigma * c / 2
    #expect(n > 10_000)
    #expect(abs(std / expected - 1) < 0.03, "noise std \(std), expected \(expected)")
}

@Test func defenceRefusesNoiseWithoutClipping() {
    #expect(throws: AuditError.self) { try GradientDefence(clippingNorm: .infinity, noiseMultiplier: 1).validate() }
    #expect(throws: AuditError.self) { try GradientDefence(clippingNorm: 0, noiseMultiplier: 0).validate() }
    #expect(throws: AuditError.self) { try GradientDefence(clippingNorm: 1, noiseMultiplier: -1).validate() }
}

// MARK: - Analytic inversion

/// One example, no noise: every row's ratio and the least-squares estimate are the input, to
/// Float rounding (relative error < 1e-4), at every clipping norm: clipping multiplies the
/// weight and bias gradients by the same factor, which cancels (clipping alone does not stop it).
@Test(arguments: [Double.infinity, 100, 1, 0.1, 1e-3])
func analyticInversionIsExactForOneExampleAtAnyClippingNorm(clippingNorm: Double) throws {
    let data = shapes(count: 3)
    let model = try ModelBuilder.build(
        model: "mlp", input: ModelInput(exampleShape: data.exampleShape, classes: 10), seed: 1)
    let target = try AnalyticInversion.target(in: model)
    for i in 0..<3 {
        let (x, y) = batch(data, [i])
        let observed = try GradientObservation.observe(
            model: model, inputs: x, labels: y, classCount: 10,
            defence: GradientDefence(clippingNorm: clippingNorm, noiseMultiplier: 0), seed: 0)
        if clippingNorm <= 0.1 { #expect(observed.clippedCount == 1, "the test must cover a clipped gradient") }
        let w = observed.parameters[target.weightIndex], b = observed.parameters[target.biasIndex]
        let largest = b.scalars.indices.max { abs(b.scalars[$0]) < abs(b.scalars[$1]) }!
        let row = try #require(AnalyticInversion.row(largest, weightGradient: w, biasGradient: b))
        #expect(relativeError(row, x.scalars) < 1e-4)
        let ls = try #require(AnalyticInversion.leastSquares(weightGradient: w, biasGradient: b))
        #expect(relativeError(ls, x.scalars) < 1e-4)
    }
}

/// sigma = 1 with a small C (every example clipped): the reconstruction error is large.
///
/// Threshold reasoning: after clipping, the whole gradient has norm at most C, so the first
/// layer's bias gradient (128 entries) carries a signal of norm s <= C, while the noise on it
/// alone has norm about sigma C sqrt(128) = 11 C. The least-squares estimate
/// `sum_j b_j W_j / sum_j b_j^2` then keeps the image with a weight of about s^2 / (128 sigma^2
/// C^2) <= 1% and adds noise of about 1 / sqrt(128) = 0.09 per pixel: we require the relative
/// error ||x_hat - x|| / ||x|| (after clamping to [0, 1], as the attack does) above 0.5, and
/// no better than half the MSE of the dataset's mean image, for three noise draws. The same
/// images without noise are recovered to below 1e-4 (the test above).
@Test func noiseStopsAnalyticInversion() throws {
    let data = shapes(count: 40)
    let model = try ModelBuilder.build(
        model: "mlp", input: ModelInput(exampleShape: data.exampleShape, classes: 10), seed: 1)
    let target = try AnalyticInversion.target(in: model)
    let mean = data.features.mean(alongAxis: 0).scalars
    for seed: UInt64 in 0..<3 {
        let (x, y) = batch(data, [Int(seed)])
        let observed = try GradientObservation.observe(
            model: model, inputs: x, labels: y, classCount: 10,
            defence: GradientDefence(clippingNorm: 0.01, noiseMultiplier: 1), seed: seed)
        #expect(observed.clippedCount == 1)
        let estimate = try #require(
            AnalyticInversion.leastSquares(
                weightGradient: observed.parameters[target.weightIndex],
                biasGradient: observed.parameters[target.biasIndex]))
        let clamped = estimate.map { min(max($0, 0), 1) }
        #expect(relativeError(clamped, x.scalars) > 0.5)
        let quality = ReconstructionQuality(originals: [x.scalars], reconstructions: [clamped.map(Float.init)])
        let baseline = ReconstructionQuality(originals: [x.scalars], reconstructions: [mean])
        #expect(quality.meanSquaredError > 0.5 * baseline.meanSquaredError)
    }
}

@Test func analyticInversionNamesTheFixForAConvolution() throws {
    let model = try ModelBuilder.build(
        model: "cnn-tanh", input: ModelInput(exampleShape: [1, 28, 28], classes: 10), seed: 0)
    let error = try #require(throws: AuditError.self) { try AnalyticInversion.target(in: model) }
    #expect(error.description.contains("use the matching method"))
}

// MARK: - Scoring

/// The Hungarian assignment against every permutation of 6 reconstructions.
@Test func bestAssignmentIsOptimal() {
    var rng = PhiloxRandom(seed: 11)
    let originals = (0..<6).map { _ in (0..<5).map { _ in Float(rng.nextOpenUnitDouble()) } }
    let reconstructions = (0..<6).map { _ in (0..<5).map { _ in Float(rng.nextOpenUnitDouble()) } }
    let cost = { (order: [Int]) in
        zip(originals, order).reduce(0.0) { $0 + ReconstructionQuality.meanSquaredError($1.0, reconstructions[$1.1]) }
    }
    func permutations(_ a: [Int]) -> [[Int]] {
        a.count <= 1 ? [a] : a.flatMap { x in permutations(a.filter { $0 != x }).map { [x] + $0 } }
    }
    let best = permutations(Array(0..<6)).map(cost).min()!
    let order = ReconstructionQuality.bestAssignment(originals: originals, reconstructions: reconstructions)
    #expect(Set(order).count == 6)
    #expect(abs(cost(order) - best) <= 1e-12)
}

@Test func psnrIsFromTheBatchMSE() {
    let q = ReconstructionQuality(originals: [[0, 0], [0, 0]], reconstructions: [[0.1, 0.1], [0, 0]])
    #expect(abs(q.meanSquaredError - 0.005) < 1e-9)
    #expect(abs(q.peakSignalToNoiseRatio - 10 * log10(1 / 0.005)) < 1e-6)
    #expect(ReconstructionQuality(originals: [[1]], reconstructions: [[1]]).peakSignalToNoiseRatio == .infinity)
}

// MARK: - The second-order replica against DPKit's model and finite differences

/// The tiny models the second-order tests run on: every layer kind the replica supports.
struct TinyModel: CustomTestStringConvertible, Sendable {
    var name: String
    var specs: [LayerSpec]
    var exampleShape: Shape
    var testDescription: String { name }
}

private let tinyModels: [TinyModel] = [
    TinyModel(
        name: "mlp tanh", specs: [.flatten, .linear(outputs: 7), .tanh, .linear(outputs: 4)], exampleShape: [1, 5, 5]),
    TinyModel(
        name: "mlp relu", specs: [.flatten, .linear(outputs: 7), .relu, .linear(outputs: 4)], exampleShape: [1, 5, 5]),
    TinyModel(
        name: "mlp sigmoid", specs: [.flatten, .linear(outputs: 7), .sigmoid, .linear(outputs: 4)],
        exampleShape: [1, 5, 5]),
    TinyModel(
        name: "cnn tanh max-pool",
        specs: [
            .conv2d(outChannels: 3, kernel: 3, stride: 2, padding: 1), .tanh, .maxPool2d(kernel: 2, stride: 1),
            .conv2d(outChannels: 2, kernel: 2, stride: 1, padding: 0), .tanh, .flatten, .linear(outputs: 5), .tanh,
            .linear(outputs: 4),
        ], exampleShape: [2, 6, 6]),
    TinyModel(
        name: "cnn tempered sigmoid",
        specs: [
            .conv2d(outChannels: 2, kernel: 3, stride: 1, padding: 1),
            .temperedSigmoid(scale: 2, temperature: 2, offset: 1), .flatten, .linear(outputs: 4),
        ], exampleShape: [1, 5, 5]),
]

private func randomDouble(_ shape: Shape, seed: UInt64, in range: ClosedRange<Double>) -> Tensor<Double> {
    var rng = PhiloxRandom(seed: seed, stream: 7)
    return Tensor(uniform: shape, in: range, using: &rng)
}

/// The replica's loss, parameter gradient and input gradient equal DPKit's Float model's.
@Test(arguments: tinyModels)
func replicaMatchesTheModel(_ tiny: TinyModel) throws {
    let model = try ModelBuilder.build(specs: tiny.specs, inputShape: tiny.exampleShape, seed: 3)
    let replica = try SecondOrderReplica(model: model, exampleShape: tiny.exampleShape)
    let x = randomDouble(tiny.exampleShape.prepending(3), seed: 1, in: -1...1)
    let labels = [0, 3, 1]
    let pass = replica.evaluate(x, labels: labels)

    let xf = Tensor<Float>(x.scalars.map(Float.init), shape: x.shape)
    var context = ForwardContext(training: false)
    let (losses, dLogits) = SoftmaxCrossEntropy()(logits: model.forward(xf, context: &context), labels: labels)
    let dx = model.backward(dLogits)
    model.zeroGradients()
    model.accumulateGradients(exampleWeights: nil)

    #expect(abs(pass.loss - Double(losses.sum())) <= 1e-5 * abs(pass.loss))
    #expect(relativeError(pass.inputGradient.scalars, dx.scalars) <= 1e-5)
    for (g, p) in zip(pass.gradient, model.parameters) {
        #expect(g.shape == p.gradient.shape)
        #expect(relativeError(g.scalars, p.gradient.scalars) <= 1e-5, "\(tiny.name) \(p.name)")
    }
}

/// What the matching-loss tests share: `tiny`'s replica, labels `[2, 0]`, the gradient of
/// another batch as the target, and inputs `x` in `[0.1, 0.9]`.
private func matchingProblem(
    _ tiny: TinyModel
) throws -> (replica: SecondOrderReplica, labels: [Int], target: [Tensor<Float>], x: Tensor<Double>) {
    let model = try ModelBuilder.build(specs: tiny.specs, inputShape: tiny.exampleShape, seed: 4)
    let replica = try SecondOrderReplica(model: model, exampleShape: tiny.exampleShape)
    let other = replica.evaluate(randomDouble(tiny.exampleShape.prepending(2), seed: 2, in: 0...1), labels: [1, 0])
    let target = other.gradient.map { Tensor<Float>($0.scalars.map(Float.init), shape: $0.shape) }
    let x = randomDouble(tiny.exampleShape.prepending(2), seed: 3, in: 0.1...0.9)
    return (replica, [2, 0], target, x)
}

/// Central differences `(f(x + h e_i) - f(x - h e_i)) / 2h` over every coordinate of `x`.
private func centralDifferences(
    _ x: Tensor<Double>, h: Double = 1e-6, _ f: (Tensor<Double>) -> Double
) -> [Double] {
    (0..<x.scalarCount).map { i in
        var plus = x, minus = x
        plus.withUnsafeMutableBufferPointer { $0[i] += h }
        minus.withUnsafeMutableBufferPointer { $0[i] -= h }
        return (f(plus) - f(minus)) / (2 * h)
    }
}

/// The exact gradient of the matching loss (R-operator, cosine, total variation) against central
/// finite differences over every input coordinate, in Double: they agree to 1e-6 norm-wise
/// (truncation about h^2 = 1e-10, rounding about 1e-16 / h = 1e-11, relative to gradients of
/// order 1e-2 to 1).
@Test(arguments: tinyModels)
func matchingLossGradientMatchesFiniteDifferences(_ tiny: TinyModel) throws {
    let (replica, labels, target, x) = try matchingProblem(tiny)
    let objective = try GradientMatchingObjective(
        replica: replica, observed: target, labels: labels, totalVariationWeight: 0.05)
    let (value, gradient) = objective.valueAndGradient(x)
    #expect(abs(value - objective.value(x)) <= 1e-12)

    let reference = centralDifferences(x) { objective.value($0) }
    let error = relativeError(gradient.scalars, reference.map(Float.init))
    #expect(error <= 1e-5, "\(tiny.name): relative error \(error)")
    // Double against Double, without the Float conversion of the reference.
    let exact = relativeError(gradient.scalars, reference)
    #expect(exact <= 1e-6, "\(tiny.name): relative error \(exact)")
}

/// With clipping the dummy gradient is `sum_i min(1, C / ||g_i||) g_i`, and the weights move
/// with the inputs: its exact gradient against central finite differences, with C between the
/// two examples' gradient norms (one clipped, one not; both at least 1% away from C, so the
/// finite differences do not cross the kink of the min).
@Test(arguments: tinyModels)
func clippedMatchingLossGradientMatchesFiniteDifferences(_ tiny: TinyModel) throws {
    let (replica, labels, target, x) = try matchingProblem(tiny)
    let norms = (0..<2).map {
        ParameterVector.norm(replica.evaluate(x.rows($0..<($0 + 1)), labels: [labels[$0]]).gradient)
    }
    let c = (norms[0] + norms[1]) / 2
    try #require(norms.allSatisfy { abs($0 - c) > 0.01 * c }, "norms \(norms) too close for this test")
    let objective = try GradientMatchingObjective(
        replica: replica, observed: target, labels: labels, totalVariationWeight: 0.05, clippingNorm: c)
    let (value, gradient) = objective.valueAndGradient(x)
    #expect(abs(value - objective.value(x)) <= 1e-12)
    let error = relativeError(gradient.scalars, centralDifferences(x) { objective.value($0) })
    #expect(error <= 1e-6, "\(tiny.name): relative error \(error)")
    // A C above both norms clips nothing: the batched path's value.
    let unclipped = try GradientMatchingObjective(
        replica: replica, observed: target, labels: labels, totalVariationWeight: 0.05, clippingNorm: 2 * c)
    let plain = try GradientMatchingObjective(
        replica: replica, observed: target, labels: labels, totalVariationWeight: 0.05)
    #expect(abs(unclipped.value(x) - plain.value(x)) <= 1e-12)
}

/// The R-operator alone: `d/dx <grad_theta l, v>` against central differences of
/// `<grad_theta l(x), v>` over the inputs.
@Test func mixedDerivativeMatchesFiniteDifferences() throws {
    let tiny = tinyModels[3]
    let model = try ModelBuilder.build(specs: tiny.specs, inputShape: tiny.exampleShape, seed: 6)
    let replica = try SecondOrderReplica(model: model, exampleShape: tiny.exampleShape)
    let labels = [1]
    let v = replica.parameterShapes.enumerated().map { randomDouble($1, seed: 20 + UInt64($0), in: -1...1) }
    let x = randomDouble(tiny.exampleShape.prepending(1), seed: 5, in: 0...1)
    let exact = replica.mixedDerivative(replica.evaluate(x, labels: labels), direction: v)
    let reference = centralDifferences(x) { ParameterVector.dot(replica.evaluate($0, labels: labels).gradient, v) }
    #expect(relativeError(exact.scalars, reference) <= 1e-6)
}

@Test func replicaRefusesLayersItCannotDifferentiateTwice() throws {
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 4), .layerNorm(trailingAxes: 1), .linear(outputs: 3)],
        inputShape: [1, 3, 3],
        seed: 0)
    #expect(throws: AuditError.self) { try SecondOrderReplica(model: model, exampleShape: [1, 3, 3]) }
}

// MARK: - Gradient matching

/// iDLG: without noise the label of one example is the smallest entry of the last bias
/// gradient, at any clipping norm.
@Test(arguments: [Double.infinity, 0.01])
func labelIsInferredFromOneExamplesGradient(clippingNorm: Double) throws {
    let data = shapes(count: 10, size: 8)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 8), .tanh, .linear(outputs: 10)], inputShape: [1, 8, 8], seed: 2)
    for i in 0..<10 {
        let (x, y) = batch(data, [i])
        let observed = try GradientObservation.observe(
            model: model, inputs: x, labels: y, classCount: 10,
            defence: GradientDefence(clippingNorm: clippingNorm, noiseMultiplier: 0), seed: 0)
        #expect(try GradientMatching.inferLabel(observed: observed, model: model) == y[0])
    }
    let (x, y) = batch(data, [0, 1])
    let two = try GradientObservation.observe(
        model: model, inputs: x, labels: y, classCount: 10, defence: .none, seed: 0)
    #expect(throws: AuditError.self) { try GradientMatching.inferLabel(observed: two, model: model) }
}

/// Gradient matching on a tiny MLP (64 -> 32 tanh -> 10) recovers one 8x8 image, label
/// inferred, to above 40 dB PSNR in 300 steps without the TV prior (the first layer's gradient
/// determines the image, so the optimum is exact; 30 dB is already recognisable at a glance).
@Test func gradientMatchingRecoversOneExample() throws {
    let data = shapes(count: 4, size: 8)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 32), .tanh, .linear(outputs: 10)], inputShape: [1, 8, 8], seed: 2)
    let (x, y) = batch(data, [3])
    let observed = try GradientObservation.observe(
        model: model, inputs: x, labels: y, classCount: 10, defence: .none, seed: 0)
    let label = try GradientMatching.inferLabel(observed: observed, model: model)
    #expect(label == y[0])
    let attack = GradientMatching(iterations: 300, totalVariationWeight: 0)
    let found = try attack.reconstruct(model: model, observed: observed, labels: [label], exampleShape: [1, 8, 8])
    let quality = ReconstructionQuality(originals: [x.scalars], reconstructions: [found.inputs.scalars])
    #expect(quality.peakSignalToNoiseRatio > 40, "PSNR \(quality.peakSignalToNoiseRatio) dB")
    #expect(found.cosine > 0.999)
}

@Test func gradientMatchingRejectsBadSettings() {
    #expect(throws: AuditError.self) { try GradientMatching(iterations: 0).validate() }
    #expect(throws: AuditError.self) { try GradientMatching(learningRate: 0).validate() }
    #expect(throws: AuditError.self) { try GradientMatching(totalVariationWeight: -1).validate() }
    #expect(throws: AuditError.self) { try GradientMatching(restarts: 0).validate() }
}

// MARK: - Images and the sweep

/// The grid of settings leaves out noise without clipping (the noise is sigma C).
@Test func defenceGridLeavesOutNoiseWithoutClipping() {
    #expect(
        GradientInversionExperiment.defences(clippingNorms: [.infinity, 1], noiseMultipliers: [0, 1]) == [
            .none, GradientDefence(clippingNorm: 1, noiseMultiplier: 0),
            GradientDefence(clippingNorm: 1, noiseMultiplier: 1),
        ])
}

@Test func pngChecksumsAndLayout() {
    #expect(PNG.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    #expect(PNG.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
    let png = PNG.encode(pixels: [0, 128, 255, 1, 2, 3], width: 3, height: 2, channels: 1)
    #expect(Array(png[0..<8]) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    #expect(String(decoding: png[12..<16], as: UTF8.self) == "IHDR")
    #expect(Array(png[16..<24]) == [0, 0, 0, 3, 0, 0, 0, 2])
    // IDAT: zlib header, one final stored block of 2 rows of (filter byte + 3 pixels), Adler-32.
    let idat = Array(png[37..<(37 + 4 + 2 + 5 + 8 + 4)])
    #expect(String(decoding: idat[0..<4], as: UTF8.self) == "IDAT")
    #expect(Array(idat[4..<11]) == [0x78, 0x01, 1, 8, 0, 0xF7, 0xFF])
    #expect(Array(idat[11..<19]) == [0, 0, 128, 255, 0, 1, 2, 3])
    #expect(Array(png.suffix(12)) == [0, 0, 0, 0] + Array("IEND".utf8) + [0xAE, 0x42, 0x60, 0x82])
}

/// A small sweep end to end: the table has one row per setting, the grid every image.
@Test func experimentWritesTheTableAndTheGrid() throws {
    let data = shapes(count: 30, size: 8)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 16), .tanh, .linear(outputs: 10)], inputShape: [1, 8, 8], seed: 0)
    let experiment = GradientInversionExperiment(
        method: .analytic, batchSizes: [1, 2],
        defences: GradientInversionExperiment.defences(clippingNorms: [.infinity, 0.1], noiseMultipliers: [0, 1]))
    let report = try experiment.run(model: model, modelName: "tiny-mlp", data: data, datasetName: "shapes-8")
    #expect(report.records.count == 6)
    let lines = report.csv.split(separator: "\n")
    #expect(lines.count == 7)
    #expect(lines[0] == InversionReport.columns.joined(separator: ","))
    // One example, no noise: exact whether or not it is clipped.
    for r in report.records where r.batchSize == 1 && r.defence.noiseMultiplier == 0 {
        #expect(r.quality.peakSignalToNoiseRatio > 60)
    }
    for r in report.records where r.defence.noiseMultiplier == 1 {
        #expect(r.clippedFraction == 1)
        #expect(r.quality.peakSignalToNoiseRatio < r.baseline.peakSignalToNoiseRatio + 3)
    }
    let svg = try #require(report.grid(title: "test")).svg()
    #expect(svg.components(separatedBy: "<image ").count - 1 == 3 + 3 * 3)
    #expect(svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"))
}

@Test func experimentRejectsBadInput() throws {
    let data = shapes(count: 5, size: 8)
    let model = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 4), .tanh, .linear(outputs: 10)], inputShape: [1, 8, 8], seed: 0)
    func run(_ e: GradientInversionExperiment) throws {
        _ = try e.run(model: model, modelName: "m", data: data, datasetName: "d")
    }
    #expect(throws: AuditError.self) {
        try run(GradientInversionExperiment(method: .analytic, batchSizes: [0], defences: [.none]))
    }
    #expect(throws: AuditError.self) {
        try run(GradientInversionExperiment(method: .analytic, batchSizes: [6], defences: [.none]))
    }
    #expect(throws: AuditError.self) {
        try run(GradientInversionExperiment(method: .analytic, batchSizes: [1], defences: []))
    }
    var scaled = data
    scaled.scale(by: 3)
    let error = try #require(throws: AuditError.self) {
        _ = try GradientInversionExperiment(method: .analytic, batchSizes: [1], defences: [.none])
            .run(model: model, modelName: "m", data: scaled, datasetName: "d")
    }
    #expect(error.description.contains("outside the range"))
}
