import DPSchema
import DPTensor
import Foundation
import Testing

@_spi(Testing) @testable import DPLayers

struct ModelCase: CustomStringConvertible, Sendable {
    let name: String
    let inputShape: Shape // one example
    let classes: Int
    var parameters: [String: ConfigValue] = [:]
    var description: String { name }
    var input: ModelInput { ModelInput(exampleShape: inputShape, classes: classes) }
}

/// Every model in the registry, at small shapes (the tanh CNNs need 28x28 for 512 features).
let modelCases: [ModelCase] = [
    ModelCase(name: "logistic-regression", inputShape: [1, 4, 4], classes: 3),
    ModelCase(
        name: "mlp", inputShape: [1, 3, 3], classes: 4, parameters: ["hidden_sizes": .list([.int(6), .int(5)])]),
    ModelCase(name: "cnn-tanh", inputShape: [1, 28, 28], classes: 10),
    ModelCase(name: "cnn-tanh-tramer", inputShape: [1, 28, 28], classes: 10),
    ModelCase(name: "scatternet-linear", inputShape: [6, 3, 3], classes: 3, parameters: ["groups": .int(3)]),
    ModelCase(name: "scatternet-cnn", inputShape: [6, 7, 7], classes: 3, parameters: ["groups": .int(2)]),
]

@Test func registryCoversEveryModelCase() {
    #expect(Set(modelCases.map(\.name)) == Set(ModelRegistry.standard.names))
}

@Test(arguments: modelCases)
func modelPerSampleGradientsMatchReferences(_ c: ModelCase) throws {
    let model = try ModelBuilder.build(model: c.name, input: c.input, parameters: c.parameters, seed: 4)
    let batch = 3
    let x = randomTensor(Shape([batch] + c.inputShape.array), seed: 6)
    let labels = (0..<batch).map { $0 % c.classes }
    let logits = model(x)
    #expect(logits.shape == [batch, c.classes])
    let (_, dy) = SoftmaxCrossEntropy()(logits: logits, labels: labels)
    checkPerSampleContract(model, input: x, outputGradient: dy)
}

@Test(arguments: modelCases)
func modelPassesAnEmptyBatch(_ c: ModelCase) throws {
    let model = try ModelBuilder.build(model: c.name, input: c.input, parameters: c.parameters, seed: 4)
    var context = ForwardContext(training: true)
    let y = model.forward(Tensor(zeros: Shape([0] + c.inputShape.array)), context: &context)
    #expect(y.shape == [0, c.classes])
    _ = model.backward(y)
    #expect(model.perSampleGradientSquaredNorms().shape == [0])
    #expect(model.perLayerSquaredNorms().allSatisfy { $0.shape == [0] })
    model.accumulateGradients(exampleWeights: nil)
    #expect(model.parameters.allSatisfy { $0.gradient.norm == 0 })
}

@Test func tanhCNNsHave512FeaturesAndTheCostModelChoice() throws {
    for name in ["cnn-tanh", "cnn-tanh-tramer"] {
        let model = try ModelBuilder.build(
            model: name, input: ModelInput(exampleShape: [1, 28, 28], classes: 10), seed: 1)
        let linears = model.layers.compactMap { $0 as? Linear }
        #expect(linears.map(\.inputCount) == [512, 32], "\(name)")
        let convs = model.layers.compactMap { $0 as? Conv2d }
        // conv1: L = 196 (169), K = 64, C = 16: materialise. conv2: L = 25, K = 256, C = 32:
        // materialise too, since its 8,224 gradient scalars are kept for the clipped sum (ghost
        // 770,225 flops per example, materialise 434,176).
        let firstShape: Shape = [1, 28, 28]
        let secondShape = Sequential(Array(model.layers.prefix(3))).outputShape(forExampleShape: firstShape)
        #expect(secondShape == (name == "cnn-tanh" ? [16, 13, 13] : [16, 12, 12]))
        #expect(convs[0].normRule(forExampleShape: firstShape) == .materialize)
        #expect(convs[1].normRule(forExampleShape: secondShape) == .materialize)
        #expect(PerSampleNormRule.cost(of: .ghost, positions: 25, inputFeatures: 256, outputFeatures: 32) == 770_225)
        #expect(
            PerSampleNormRule.cost(of: .materialize, positions: 25, inputFeatures: 256, outputFeatures: 32) == 434_176)
        // Parameters: 16*64+16 + 32*256+32 + 512*32+32 + 32*10+10.
        #expect(model.parameterCount == 1040 + 8224 + 16416 + 330)
    }
}

@Test func unknownModelNamesTheValidOnes() {
    #expect(throws: ModelBuilderError.unknownModel(name: "resnet", valid: ModelRegistry.standard.names)) {
        try ModelBuilder.build(model: "resnet", input: ModelInput(exampleShape: [1, 28, 28], classes: 10), seed: 0)
    }
    let message = ModelBuilderError.unknownModel(name: "resnet", valid: ModelRegistry.standard.names).description
    for name in ModelRegistry.standard.names { #expect(message.contains(name)) }
}

@Test func batchNormIsRefusedWithTheReason() throws {
    let specs: [LayerSpec] = [.conv2d(outChannels: 4, kernel: 3), .batchNorm, .relu]
    let error = #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(specs: specs, inputShape: [1, 6, 6], seed: 0)
    }
    #expect(error == .batchNormRefused(index: 1))
    let message = try #require(error).description
    #expect(message.contains("BatchNorm is refused"))
    #expect(message.contains("every other example"))
    #expect(message.contains("groupNorm") && message.contains("layerNorm"))
}

@Test func builderRejectsShapesThatDoNotFit() {
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(specs: [.linear(outputs: 3)], inputShape: [1, 4, 4], seed: 0)
    }
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(specs: [.conv2d(outChannels: 2, kernel: 5)], inputShape: [1, 4, 4], seed: 0)
    }
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(specs: [.groupNorm(groups: 3)], inputShape: [4, 2, 2], seed: 0)
    }
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(specs: [.dropout(rate: 1)], inputShape: [4], seed: 0)
    }
}

@Test func builderIsSeededAndInfersSizes() throws {
    let specs: [LayerSpec] = [
        .conv2d(outChannels: 4, kernel: 3, padding: 1), .groupNorm(groups: 2), .temperedSigmoid(),
        .avgPool2d(kernel: 2), .flatten, .dropout(rate: 0.1), .layerNorm(), .linear(outputs: 3),
    ]
    let a = try ModelBuilder.build(specs: specs, inputShape: [2, 6, 6], seed: 9)
    let b = try ModelBuilder.build(specs: specs, inputShape: [2, 6, 6], seed: 9)
    let c = try ModelBuilder.build(specs: specs, inputShape: [2, 6, 6], seed: 10)
    #expect(zip(a.parameters, b.parameters).allSatisfy { $0.value == $1.value })
    #expect(a.parameters[0].value != c.parameters[0].value)
    #expect(a.outputShape(forExampleShape: [2, 6, 6]) == [3])
    #expect((a.layers[6] as? LayerNorm)?.shape == [36])
    // The same model passes the per-sample contract (dropout is off: evaluation context).
    let x = randomTensor([3, 2, 6, 6], seed: 2)
    checkPerSampleContract(a, input: x, outputGradient: randomTensor([3, 3], seed: 3))
}

@Test func layerSpecCodableRoundTripAndDefaults() throws {
    let specs: [LayerSpec] = [
        .linear(outputs: 3, bias: false), .conv2d(outChannels: 2, kernel: 3, stride: 2, padding: 1),
        .maxPool2d(kernel: 2, stride: 1), .avgPool2d(kernel: 2), .flatten, .relu, .tanh,
        .temperedSigmoid(scale: 1, temperature: 3, offset: 0), .groupNorm(groups: 2),
        .groupNorm(groups: 3, eps: 1e-3, affine: false), .layerNorm(trailingAxes: 2), .dropout(rate: 0.25), .batchNorm,
    ]
    let data = try JSONEncoder().encode(specs)
    #expect(try JSONDecoder().decode([LayerSpec].self, from: data) == specs)
    let json =
        #"[{"type": "conv2d", "outChannels": 16, "kernel": 8, "stride": 2}, {"type": "linear", "outputs": 10}, {"type": "maxPool2d", "kernel": 2}]"#
    let decoded = try JSONDecoder().decode([LayerSpec].self, from: Data(json.utf8))
    #expect(
        decoded == [
            .conv2d(outChannels: 16, kernel: 8, stride: 2, padding: 0, bias: true), .linear(outputs: 10, bias: true),
            .maxPool2d(kernel: 2, stride: nil),
        ])
    #expect(throws: DecodingError.self) {
        try JSONDecoder().decode([LayerSpec].self, from: Data(#"[{"type": "batchnorm2d"}]"#.utf8))
    }
}

// MARK: - Sequential

@Test func sequentialPerLayerNormsAndWeights() throws {
    let model = try ModelBuilder.build(
        model: "mlp", input: ModelInput(exampleShape: [5], classes: 3),
        parameters: ["hidden_sizes": .list([.int(4)])], seed: 2)
    let x = randomTensor([4, 5], seed: 1)
    let (_, dy) = SoftmaxCrossEntropy()(logits: model(x), labels: [0, 1, 2, 0])
    _ = model.backward(dy)
    #expect(model.trainableLayers.count == 2)
    let perLayer = model.perLayerSquaredNorms()
    expectClose(perLayer[0] + perLayer[1], model.perSampleGradientSquaredNorms(), "per-layer norms sum to the total")

    let perSample = model.perSampleGradients() // [W1, b1, W2, b2]
    let w1 = randomTensor([4], seed: 3, in: 0...1), w2 = randomTensor([4], seed: 4, in: 0...1)
    model.zeroGradients()
    model.accumulateGradients(perLayerWeights: [w1, w2])
    for (k, p) in model.parameters.enumerated() {
        let w = k < 2 ? w1 : w2
        var expected = Tensor<Float>(zeros: p.value.shape)
        for i in 0..<4 { expected.addScaled(perSample[k][row: i], by: w.scalars[i]) }
        expectClose(p.gradient, expected, "per-layer weighted \(p.name) of layer \(k / 2)")
    }
    model.zeroGradients()
    #expect(model.parameters.allSatisfy { $0.gradient.norm == 0 })
    #expect(model.parameterCount == 5 * 4 + 4 + 4 * 3 + 3)
}

@Test func sequentialPredictAndAccuracy() {
    var rng = PhiloxRandom(seed: 1)
    let layer = Linear(inputs: 2, outputs: 2, bias: false, rng: &rng)
    layer.weight.value = Tensor([1, 0, 0, 1], shape: [2, 2]) // logits = inputs
    let model = Sequential(layer)
    let x = Tensor<Float>([3, 1, 0, 2, 5, 4], shape: [3, 2])
    #expect(model.predict(x, batchSize: 2) == [0, 1, 0])
    #expect(model.accuracy(x, labels: [0, 1, 1], batchSize: 2) == 2.0 / 3.0)
}

@Test func mlpMatchesFiniteDifferences() throws {
    let model = try ModelBuilder.build(
        specs: [.linear(outputs: 3), .tanh, .linear(outputs: 2)], inputShape: [3], seed: 5)
    checkFiniteDifferences(model, input: randomTensor([2, 3], seed: 8))
}

// MARK: - Shape inference

@Test func shapeInferenceMatchesTheBuiltLayersAndAllocatesNothing() throws {
    let specs: [LayerSpec] = [
        .conv2d(outChannels: 4, kernel: 3, stride: 2, padding: 1), .groupNorm(groups: 2), .tanh,
        .maxPool2d(kernel: 2, stride: 1), .avgPool2d(kernel: 2), .flatten, .linear(outputs: 5),
    ]
    let inferred = try ModelBuilder.inferShapes(specs: specs, inputShape: [2, 9, 9])
    #expect(inferred.map(\.outputShape) == [[4, 5, 5], [4, 5, 5], [4, 5, 5], [4, 4, 4], [4, 2, 2], [16], [5]])
    #expect(inferred[0].exampleScalars == 2 * 3 * 3 * 25, "the im2col columns outgrow the output")
    let model = try ModelBuilder.build(specs: specs, inputShape: [2, 9, 9], seed: 1)
    #expect(model.parameterCount == inferred.reduce(0) { $0 + $1.parameterCount })
    #expect(model(Tensor(zeros: [2, 2, 9, 9])).shape == [2, 5])
}

struct ShapeErrorCase: CustomStringConvertible, Sendable {
    var name: String
    var specs: [LayerSpec]
    var input: Shape
    var index: Int?
    var fragment: String
    var description: String { name }
}

let shapeErrorCases: [ShapeErrorCase] = [
    ShapeErrorCase(
        name: "kernel larger than the input", specs: [.conv2d(outChannels: 2, kernel: 5), .flatten],
        input: [1, 4, 4], index: 0, fragment: "the 5x5 window is larger than the 4x4 input"),
    ShapeErrorCase(
        name: "kernel larger than the padded input", specs: [.conv2d(outChannels: 2, kernel: 7, padding: 1)],
        input: [1, 4, 4], index: 0, fragment: "larger than the padded 6x6 input"),
    ShapeErrorCase(
        name: "pooling after the map has shrunk",
        specs: [.conv2d(outChannels: 2, kernel: 3, stride: 3), .maxPool2d(kernel: 3)],
        input: [1, 6, 6], index: 1, fragment: "cannot take examples of shape [2, 2, 2]"),
    ShapeErrorCase(
        name: "convolution on vectors", specs: [.conv2d(outChannels: 2, kernel: 1)], input: [8], index: 0,
        fragment: "needs images [C, H, W]"),
    ShapeErrorCase(
        name: "dense on images", specs: [.linear(outputs: 3)], input: [1, 4, 4], index: 0,
        fragment: "add a flatten before it"),
    ShapeErrorCase(
        name: "zero outputs", specs: [.linear(outputs: 0)], input: [4], index: 0, fragment: "outputs must be positive"),
    ShapeErrorCase(
        name: "negative stride", specs: [.avgPool2d(kernel: 2, stride: -1)], input: [1, 4, 4], index: 0,
        fragment: "kernel and stride must be positive"),
    ShapeErrorCase(
        name: "zero-sized input", specs: [.linear(outputs: 3)], input: [0], index: 0,
        fragment: "every size of an example must be positive"),
    ShapeErrorCase(
        name: "groups that do not divide", specs: [.groupNorm(groups: 3)], input: [4, 2, 2], index: 0,
        fragment: "4 channels do not split into 3"),
    ShapeErrorCase(
        name: "layer norm over too many axes", specs: [.layerNorm(trailingAxes: 2)], input: [4], index: 0,
        fragment: "last 2 axes of a rank-1 example"),
    ShapeErrorCase(
        name: "dropout rate rounding to 1 in Float", specs: [.dropout(rate: Float(0.9999999999))], input: [4], index: 0,
        fragment: "must be in [0, 1)"),
    ShapeErrorCase(
        name: "weights beyond the limit", specs: [.flatten, .linear(outputs: 1 << 20)], input: [1, 28, 28], index: 1,
        fragment: "weight matrix would hold 822083584 scalars; the limit is 268435456"),
    ShapeErrorCase(
        name: "sizes whose product overflows Int",
        specs: [.conv2d(outChannels: 1 << 40, kernel: 1 << 20, padding: 1 << 40)],
        input: [1, 4, 4], index: 0, fragment: "more scalars than a 64-bit integer counts"),
    ShapeErrorCase(name: "no layers", specs: [], input: [4], index: nil, fragment: "no layers"),
]

@Test(arguments: shapeErrorCases)
func shapeInferenceNamesTheLayerAndTheShapes(_ c: ShapeErrorCase) throws {
    let error = #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.inferShapes(specs: c.specs, inputShape: c.input)
    }
    #expect(error?.index == c.index)
    #expect(error?.description.contains(c.fragment) == true, "\(String(describing: error))")
    // Building checks the same rules, before allocating anything.
    #expect(throws: ModelBuilderError.self) { try ModelBuilder.build(specs: c.specs, inputShape: c.input, seed: 0) }
}

@Test func classifierNeedsALastLinearLayerWithOneLogitPerClass() throws {
    let body: [LayerSpec] = [.flatten, .linear(outputs: 8), .tanh]
    for (last, fragment) in [
        (LayerSpec.linear(outputs: 9), "fewer outputs than classes: the labels 9..<10 would have no logit"),
        (.linear(outputs: 11), "more outputs than classes: the logits 10..<11 would belong to no class"),
        (.tanh, "the last layer gives the logits, so it must be a linear layer"),
    ] {
        let error = #expect(throws: ModelBuilderError.self) {
            try ModelBuilder.inferClassifierShapes(specs: body + [last], inputShape: [1, 4, 4], classes: 10)
        }
        #expect(error?.index == 3)
        #expect(error?.description.contains(fragment) == true, "\(String(describing: error))")
    }
    let sequence = #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.inferClassifierShapes(
            specs: [.layerNorm(), .linear(outputs: 3)], inputShape: [5, 4], classes: 3)
    }
    #expect(sequence?.description.contains("flatten before it") == true)
    #expect(
        try ModelBuilder.inferClassifierShapes(
            specs: body + [.linear(outputs: 10)], inputShape: [1, 4, 4], classes: 10
        ).last?.outputShape == [10])
    // Named models are checked as classifiers of their class count, on their input.
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(model: "cnn-tanh", input: ModelInput(exampleShape: [1, 8, 8], classes: 10), seed: 0)
    }
}

@Test func maxPoolGradientReachesTheMaximumOfEveryPlane() throws {
    // Per-plane argmax offsets: each plane's gradient lands in that plane.
    let pool = MaxPool2d(kernel: 2)
    var x = Tensor<Float>(zeros: [2, 3, 2, 2])
    x.withUnsafeMutableBufferPointer { p in for plane in 0..<6 { p[plane * 4 + plane % 4] = 1 } }
    var context = ForwardContext(training: true)
    #expect(pool.forward(x, context: &context).shape == [2, 3, 1, 1])
    let dx = pool.backward(Tensor(repeating: 1, shape: [2, 3, 1, 1]))
    #expect(dx == x)
}

/// Tramèr & Boneh's models on ScatterNet features ([81, 7, 7]): their layers and sizes
/// (Handcrafted-DP models.py: ScatterLinear, and MNIST_CNN with in_channels 81).
@Test func scatterNetModelsByName() throws {
    let input = ModelInput(exampleShape: [81, 7, 7], classes: 10)
    let linear = try ModelRegistry.standard.specs(named: "scatternet-linear", input: input)
    #expect(linear == [.groupNorm(groups: 27, affine: false), .flatten, .linear(outputs: 10)])
    let a = try ModelBuilder.build(specs: linear, inputShape: [81, 7, 7], seed: 0)
    let linearCount: Int = a.parameters.map(\.value.scalarCount).reduce(0, +)
    #expect(linearCount == 81 * 49 * 10 + 10)
    let cnn = try ModelRegistry.standard.specs(named: "scatternet-cnn", input: input)
    let b = try ModelBuilder.build(specs: cnn, inputShape: [81, 7, 7], seed: 0)
    #expect(b.outputShape(forExampleShape: [81, 7, 7]) == [10])
    // conv 81->16 3x3, conv 16->32 3x3, dense 32*4*4 -> 32, dense 32 -> 10.
    let conv1 = 81 * 9 * 16 + 16, conv2 = 16 * 9 * 32 + 32, dense1 = 512 * 32 + 32, dense2 = 32 * 10 + 10
    let count: Int = b.parameters.map(\.value.scalarCount).reduce(0, +)
    #expect(count == conv1 + conv2 + dense1 + dense2)
    // The group norm has no parameters, as PyTorch's GroupNorm(27, 81, affine=False).
    #expect((b.layers[0] as? GroupNorm)?.parameters.isEmpty == true)
    // Channels that 27 groups cannot split are refused by shape inference.
    #expect(throws: ModelBuilderError.self) {
        try ModelBuilder.build(
            specs: ModelRegistry.standard.specs(
                named: "scatternet-linear", input: ModelInput(exampleShape: [1, 28, 28], classes: 10)),
            inputShape: [1, 28, 28], seed: 0)
    }
}
