import DPTensor
import Testing

@_spi(Testing) @testable import DPLayers

// MARK: - Cases

func makeRNG(_ seed: UInt64 = 3) -> PhiloxRandom { PhiloxRandom(seed: seed) }

func linear(_ i: Int, _ o: Int, bias: Bool = true, rule: PerSampleNormRule? = nil) -> Linear {
    var rng = makeRNG()
    let l = Linear(inputs: i, outputs: o, bias: bias, rng: &rng)
    l.normRuleOverride = rule
    return l
}

func conv(
    _ cin: Int, _ cout: Int, kernel: Int, stride: Int, padding: Int, bias: Bool = true,
    rule: PerSampleNormRule? = nil
) -> Conv2d {
    var rng = makeRNG()
    let c = Conv2d(
        inChannels: cin, outChannels: cout, kernel: kernel, stride: stride, padding: padding, bias: bias, rng: &rng)
    c.normRuleOverride = rule
    return c
}

/// Every layer with parameters, in the shapes and rule variants the tests cover.
let parameterCases: [LayerCase] = [
    LayerCase(name: "Linear 5->3", inputShape: [4, 5], make: { linear(5, 3) }),
    LayerCase(name: "Linear 5->3 no bias", inputShape: [4, 5], make: { linear(5, 3, bias: false) }),
    LayerCase(name: "Linear 5->3 materialise", inputShape: [3, 5], make: { linear(5, 3, rule: .materialize) }),
    LayerCase(name: "Linear sequence auto", inputShape: [3, 4, 5], make: { linear(5, 3) }),
    LayerCase(name: "Linear sequence ghost", inputShape: [3, 4, 5], make: { linear(5, 3, rule: .ghost) }),
    LayerCase(
        name: "Linear sequence materialise", inputShape: [3, 2, 2, 5], make: { linear(5, 3, rule: .materialize) }),
    LayerCase(
        name: "Conv2d k3 s2 p1 ghost", inputShape: [3, 2, 5, 5],
        make: { conv(2, 3, kernel: 3, stride: 2, padding: 1, rule: .ghost) }),
    LayerCase(
        name: "Conv2d k3 s2 p1 materialise", inputShape: [3, 2, 5, 5],
        make: { conv(2, 3, kernel: 3, stride: 2, padding: 1, rule: .materialize) }),
    LayerCase(
        name: "Conv2d k2 s1 p2 ghost no bias", inputShape: [2, 1, 3, 4],
        make: { conv(1, 2, kernel: 2, stride: 1, padding: 2, bias: false, rule: .ghost) }),
    LayerCase(
        name: "Conv2d k2 s1 p2 materialise no bias", inputShape: [2, 1, 3, 4],
        make: { conv(1, 2, kernel: 2, stride: 1, padding: 2, bias: false, rule: .materialize) }),
    LayerCase(
        name: "Conv2d k3 s1 p0 auto", inputShape: [2, 2, 4, 4], make: { conv(2, 2, kernel: 3, stride: 1, padding: 0) }),
    LayerCase(name: "GroupNorm 2x4", inputShape: [3, 4, 2, 2], make: { GroupNorm(groups: 2, channels: 4) }),
    LayerCase(name: "GroupNorm 1x3 on vectors", inputShape: [2, 3, 3], make: { GroupNorm(groups: 1, channels: 3) }),
    LayerCase(name: "LayerNorm [5]", inputShape: [3, 5], make: { LayerNorm(shape: [5]) }),
    LayerCase(name: "LayerNorm [4] on sequences", inputShape: [2, 3, 4], make: { LayerNorm(shape: [4]) }),
    LayerCase(name: "LayerNorm [2, 3]", inputShape: [3, 2, 3], make: { LayerNorm(shape: [2, 3]) }),
]

/// Every layer without parameters.
let parameterFreeCases: [LayerCase] = [
    LayerCase(name: "ReLU", inputShape: [3, 2, 4], make: { ReLU() }, separatedInput: true),
    LayerCase(name: "Tanh", inputShape: [3, 5], make: { Tanh() }),
    LayerCase(
        name: "TemperedSigmoid", inputShape: [3, 5],
        make: { TemperedSigmoid(scale: 1.5, temperature: 0.7, offset: 0.2) }),
    LayerCase(name: "Flatten", inputShape: [2, 2, 3, 2], make: { Flatten() }),
    LayerCase(
        name: "MaxPool2d 2/1", inputShape: [2, 2, 4, 4], make: { MaxPool2d(kernel: 2, stride: 1) }, separatedInput: true
    ),
    LayerCase(name: "MaxPool2d 2/2", inputShape: [2, 1, 5, 5], make: { MaxPool2d(kernel: 2) }, separatedInput: true),
    LayerCase(name: "AvgPool2d 3/2", inputShape: [2, 2, 5, 5], make: { AvgPool2d(kernel: 3, stride: 2) }),
    LayerCase(name: "Dropout", inputShape: [3, 6], make: { Dropout(rate: 0.5) }),
    LayerCase(
        name: "GroupNorm 2x4 no affine", inputShape: [3, 4, 2, 2],
        make: { GroupNorm(groups: 2, channels: 4, affine: false) }
    ),
]

// MARK: - Per-sample gradients

@Test(arguments: parameterCases)
func perSampleGradientsMatchReferences(_ c: LayerCase) {
    let layer = c.make()
    let x = c.input()
    var context = ForwardContext(training: false)
    let y = layer.forward(x, context: &context)
    #expect(
        y.shape == Shape([x.shape[0]] + layer.outputShape(forExampleShape: Shape(Array(x.shape.dropFirst()))).array))
    checkPerSampleContract(layer, input: x, outputGradient: randomTensor(y.shape, seed: 2))
}

// MARK: - Finite differences

@Test(arguments: parameterCases + parameterFreeCases)
func backwardMatchesFiniteDifferences(_ c: LayerCase) {
    checkFiniteDifferences(c.make(), input: c.input())
}

// MARK: - Empty batch

@Test(arguments: parameterCases + parameterFreeCases)
func emptyBatchPassesThrough(_ c: LayerCase) {
    let layer = c.make()
    var context = ForwardContext(training: true)
    let x = Tensor<Float>(zeros: c.inputShape.withLeading(0))
    let y = layer.forward(x, context: &context)
    #expect(y.shape[0] == 0)
    let dx = layer.backward(Tensor(zeros: y.shape))
    #expect(dx.shape == x.shape)
    var norms = Tensor<Float>(zeros: [0])
    layer.addPerSampleGradientSquaredNorms(into: &norms)
    #expect(norms.scalarCount == 0)
    for p in layer.parameters { p.gradient.fill(0.5) }
    layer.accumulateGradients(exampleWeights: Tensor(zeros: [0]))
    layer.accumulateGradients(exampleWeights: nil)
    for p in layer.parameters { #expect(p.gradient == Tensor(repeating: 0.5, shape: p.value.shape)) }
    for g in layer.perSampleGradients() { #expect(g.shape[0] == 0) }
}

// MARK: - Dropout

@Test func dropoutIsDeterministicAndPerExample() {
    let layer = Dropout(rate: 0.5)
    let x = randomTensor([4, 32], seed: 3)
    var c1 = ForwardContext(training: true, rng: PhiloxRandom(seed: 21))
    var c2 = ForwardContext(training: true, rng: PhiloxRandom(seed: 21))
    let y1 = layer.forward(x, context: &c1)
    let y2 = layer.forward(x, context: &c2)
    #expect(y1 == y2)
    #expect(c1.rng == c2.rng)
    // The first two examples' masks do not depend on the others.
    var c3 = ForwardContext(training: true, rng: PhiloxRandom(seed: 21))
    var other = randomTensor([4, 32], seed: 9)
    other.withUnsafeMutableBufferPointer { p in x.withUnsafeBufferPointer { q in for j in 0..<64 { p[j] = q[j] } } }
    let y3 = layer.forward(other, context: &c3)
    #expect(y3.rows(0..<2) == y1.rows(0..<2).reshaped([2, 32]))
    // Kept scalars are scaled by 2, dropped ones are zero, and some of each occur.
    let ratios = zip(y1.scalars, x.scalars).map { $1 == 0 ? 0 : $0 / $1 }
    #expect(ratios.allSatisfy { $0 == 0 || abs($0 - 2) < 1e-6 })
    #expect(ratios.contains(0) && ratios.contains { $0 != 0 })
    // Another stream gives another mask; evaluation is the identity.
    var c4 = ForwardContext(training: true, rng: PhiloxRandom(seed: 22))
    #expect(layer.forward(x, context: &c4) != y1)
    var eval = ForwardContext(training: false)
    #expect(layer.forward(x, context: &eval) == x)
}

// MARK: - Output buffers

/// A Linear layer after Tanh, ReLU or MaxPool2d keeps last step's output as its input until its own
/// forward pass: the layer alternates between two buffers (no allocation after the second
/// step), never writes into the one still held, and computes the same values as a fresh layer.
@Test("Tanh, ReLU and MaxPool2d alternate between two output (and input-gradient) buffers while a neighbour holds one")
func heldOutputsAlternate() {
    let makers: [() -> any Layer] = [{ Tanh() }, { ReLU() }, { MaxPool2d(kernel: 2) }]
    for make in makers {
        let layer = make()
        var context = ForwardContext(training: true)
        var held = layer.forward(randomTensor([3, 2, 6, 6], seed: 10), context: &context)
        var addresses: [UnsafePointer<Float>?] = []
        for step in 1...4 {
            let x = randomTensor([3, 2, 6, 6], seed: UInt64(10 + step))
            let heldValues = held.scalars
            let y = layer.forward(x, context: &context)
            var fresh = ForwardContext(training: true)
            #expect(y == make().forward(x, context: &fresh), "\(layer) step \(step): values")
            #expect(held.scalars == heldValues, "\(layer) step \(step): wrote into the output still held")
            #expect(!y.sharesStorage(with: held))
            addresses.append(y.withUnsafeBufferPointer { UnsafePointer($0.baseAddress) })
            held = y
        }
        #expect(addresses[2] == addresses[0] && addresses[3] == addresses[1], "\(layer): not two alternating buffers")
    }
    // The input gradients of Tanh and ReLU likewise (a Linear layer before keeps one as its
    // output gradient until its next backward pass).
    let activations: [() -> any Layer] = [{ Tanh() }, { ReLU() }]
    for make in activations {
        let layer = make()
        var context = ForwardContext(training: true)
        let x = randomTensor([3, 2, 6, 6], seed: 20)
        _ = layer.forward(x, context: &context)
        var held = layer.backward(randomTensor([3, 2, 6, 6], seed: 21))
        var addresses: [UnsafePointer<Float>?] = []
        for step in 1...4 {
            let dy = randomTensor([3, 2, 6, 6], seed: UInt64(21 + step))
            let heldValues = held.scalars
            let dx = layer.backward(dy)
            let reference = make()
            var fresh = ForwardContext(training: true)
            _ = reference.forward(x, context: &fresh)
            #expect(dx == reference.backward(dy), "\(layer) backward step \(step): values")
            #expect(held.scalars == heldValues)
            addresses.append(dx.withUnsafeBufferPointer { UnsafePointer($0.baseAddress) })
            held = dx
        }
        #expect(addresses[2] == addresses[0] && addresses[3] == addresses[1], "\(layer): not two alternating gradients")
    }
}
