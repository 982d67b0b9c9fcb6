import DPTensor
import Testing

@_spi(Testing) @testable import DPLayers

// MARK: - Random data and comparisons

func randomTensor(_ shape: Shape, seed: UInt64, in range: ClosedRange<Float> = -1...1) -> Tensor<Float> {
    var rng = PhiloxRandom(seed: seed, stream: 99)
    return Tensor(uniform: shape, in: range, using: &rng)
}

/// `||a - b|| / max(||b||, floor)`: the norm-wise relative error.
func relativeError(_ a: Tensor<Float>, _ b: Tensor<Float>, floor: Double = 1e-6) -> Double {
    precondition(a.scalarCount == b.scalarCount, "relativeError: \(a.shape) vs \(b.shape)")
    var diff = 0.0, ref = 0.0
    let sa = a.scalars, sb = b.scalars
    for i in 0..<sa.count {
        let d = Double(sa[i]) - Double(sb[i])
        diff += d * d
        ref += Double(sb[i]) * Double(sb[i])
    }
    return diff.squareRoot() / max(ref.squareRoot(), floor)
}

func expectClose(
    _ a: Tensor<Float>, _ b: Tensor<Float>, tolerance: Double = 1e-4, _ what: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(a.scalarCount == b.scalarCount, "\(what): \(a.shape) vs \(b.shape)", sourceLocation: sourceLocation)
    guard a.scalarCount == b.scalarCount else { return }
    let e = relativeError(a, b)
    #expect(e <= tolerance, "\(what): relative error \(e)\n got \(a)\n want \(b)", sourceLocation: sourceLocation)
}

/// `sum(y * r)` accumulated in Double.
func weightedSum(_ y: Tensor<Float>, _ r: Tensor<Float>) -> Double {
    let a = y.scalars, b = r.scalars
    var s = 0.0
    for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
    return s
}

func zeroGradients(_ layer: any Layer) {
    for p in layer.parameters { p.gradient.fill(0) }
}

// MARK: - The per-sample gradient contract

/// Checks, for one layer and batch:
/// 1. the fast per-sample squared norms equal the norms of `perSampleGradients()`;
/// 2. `perSampleGradients()` equals a loop of batch-size-one forward/backward passes
///    (each accumulated with unit weight);
/// 3. `accumulateGradients(exampleWeights: w)` equals `sum_i w_i g_i` for random `w`.
func checkPerSampleContract(
    _ layer: any Layer, input x: Tensor<Float>, outputGradient dy: Tensor<Float>,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let batch = x.shape[0]
    var context = ForwardContext(training: false)
    _ = layer.forward(x, context: &context)
    _ = layer.backward(dy)
    let fastNorms = layer.perSampleGradientSquaredNorms(batchSize: batch)
    let perSample = layer.perSampleGradients()
    #expect(perSample.count == layer.parameters.count, sourceLocation: sourceLocation)
    for (g, p) in zip(perSample, layer.parameters) {
        #expect(
            g.shape == Shape([batch] + p.value.shape.array),
            "\(layer.description): per-sample \(g.shape) for \(p.name) \(p.value.shape)", sourceLocation: sourceLocation
        )
    }
    var slowNorms = Tensor<Float>(zeros: [batch])
    for g in perSample { slowNorms.add(g.reshaped([batch, g.shape.trailingCount]).rowSquaredNorms()) }
    expectClose(
        fastNorms, slowNorms, "\(layer.description): fast norms vs per-sample gradients", sourceLocation: sourceLocation
    )

    // Weighted accumulation over the batch.
    let w = randomTensor([batch], seed: 5, in: 0...1)
    zeroGradients(layer)
    layer.accumulateGradients(exampleWeights: w)
    for (k, p) in layer.parameters.enumerated() {
        var expected = Tensor<Float>(zeros: p.value.shape)
        for i in 0..<batch { expected.addScaled(perSample[k][row: i], by: w.scalars[i]) }
        expectClose(
            p.gradient, expected, "\(layer.description): weighted accumulation of \(p.name)",
            sourceLocation: sourceLocation)
    }

    // One example at a time.
    for i in 0..<batch {
        _ = layer.forward(x.rows(i..<(i + 1)), context: &context)
        _ = layer.backward(dy.rows(i..<(i + 1)))
        zeroGradients(layer)
        layer.accumulateGradients(exampleWeights: nil)
        for (k, p) in layer.parameters.enumerated() {
            expectClose(
                perSample[k][row: i], p.gradient,
                "\(layer.description): example \(i), \(p.name), batch vs batch of one",
                sourceLocation: sourceLocation)
        }
    }
    zeroGradients(layer)
}

// MARK: - Finite differences

/// Central finite differences of `L = sum(forward(x) * r)` (accumulated in Double) against
/// backward (input gradient) and accumulateGradients(nil) (parameter gradients).
func checkFiniteDifferences(
    _ layer: any Layer, input x: Tensor<Float>, eps: Float = 1e-2, tolerance: Double = 1e-2,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    func loss(_ x: Tensor<Float>, _ r: Tensor<Float>) -> Double {
        var context = ForwardContext(training: true, rng: PhiloxRandom(seed: 11))
        return weightedSum(layer.forward(x, context: &context), r)
    }
    var context = ForwardContext(training: true, rng: PhiloxRandom(seed: 11))
    let y = layer.forward(x, context: &context)
    let r = randomTensor(y.shape, seed: 77)
    let dx = layer.backward(r)
    zeroGradients(layer)
    layer.accumulateGradients(exampleWeights: nil)
    let analytic = layer.parameters.map(\.gradient)

    var numeric = Tensor<Float>(zeros: x.shape)
    for j in 0..<x.scalarCount {
        var xp = x, xm = x
        xp.withUnsafeMutableBufferPointer { $0[j] += eps }
        xm.withUnsafeMutableBufferPointer { $0[j] -= eps }
        let d = (loss(xp, r) - loss(xm, r)) / (2 * Double(eps))
        numeric.withUnsafeMutableBufferPointer { $0[j] = Float(d) }
    }
    expectClose(
        dx, numeric, tolerance: tolerance, "\(layer.description): input gradient vs finite differences",
        sourceLocation: sourceLocation)

    for (k, p) in layer.parameters.enumerated() {
        let original = p.value
        var numeric = Tensor<Float>(zeros: original.shape)
        for j in 0..<original.scalarCount {
            p.value = original
            p.value.withUnsafeMutableBufferPointer { $0[j] += eps }
            let lp = loss(x, r)
            p.value = original
            p.value.withUnsafeMutableBufferPointer { $0[j] -= eps }
            let lm = loss(x, r)
            numeric.withUnsafeMutableBufferPointer { $0[j] = Float((lp - lm) / (2 * Double(eps))) }
        }
        p.value = original
        expectClose(
            analytic[k], numeric, tolerance: tolerance,
            "\(layer.description): \(p.name) gradient vs finite differences",
            sourceLocation: sourceLocation)
    }
    zeroGradients(layer)
}

// MARK: - Cases

/// A layer factory and an input shape, for parameterised tests.
struct LayerCase: CustomStringConvertible, @unchecked Sendable {
    let name: String
    let inputShape: Shape
    let make: () -> any Layer
    /// Input values kept away from kinks (ReLU at 0, MaxPool ties) for finite differences.
    var separatedInput = false

    var description: String { name }

    func input(seed: UInt64 = 1) -> Tensor<Float> {
        if !separatedInput { return randomTensor(inputShape, seed: seed) }
        // Distinct values 0.05 apart, shuffled, centred: no ties within a finite-difference step, none near 0.
        var rng = PhiloxRandom(seed: seed)
        var values = (0..<inputShape.scalarCount).map {
            Float($0) * 0.05 + 0.025 - Float(inputShape.scalarCount) * 0.025
        }
        values.shuffle(using: &rng)
        return Tensor(values, shape: inputShape)
    }
}
