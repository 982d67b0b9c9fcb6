import DPSchema
import DPTensor
import Foundation
import Testing

@testable import DPLayers

// The safetensors writer against the format written out by hand, the reader against malformed
// files, and a model's export under PyTorch's state-dict names.

@Test("safetensors bytes are the format's layout: length, padded JSON header, little-endian F32 data")
func safetensorsLayoutByHand() throws {
    let t = Tensor<Float>([1, -2, 0.5, 3], shape: [2, 2])
    let data = Safetensors.encode([("w", t)], metadata: ["k": "v"])
    let header = #"{"__metadata__":{"k":"v"},"w":{"data_offsets":[0,16],"dtype":"F32","shape":[2,2]}}"#
    var padded = Array(header.utf8)
    while padded.count % 8 != 0 { padded.append(0x20) }
    var expected = withUnsafeBytes(of: UInt64(padded.count).littleEndian) { Array($0) } + padded
    for x: Float in [1, -2, 0.5, 3] { expected += withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } }
    #expect(Array(data) == expected)
    let (tensors, metadata) = try Safetensors.decode(data)
    #expect(tensors["w"] == t && metadata == ["k": "v"])
}

private func file(headerLength: UInt8, _ header: String, data: [UInt8] = []) -> Data {
    Data([headerLength, 0, 0, 0, 0, 0, 0, 0]) + Data(header.utf8) + Data(data)
}

private let malformed: [(String, Data)] = [
    ("short", Data([1, 2, 3])),
    ("header longer than the file", file(headerLength: 200, "{}")),
    ("header not an object", file(headerLength: 2, "[]")),
    ("dtype", file(headerLength: 58, #"{"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}    "#, data: [0, 0])),
    (
        "offsets past the data",
        file(headerLength: 58, #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}    "#, data: [0, 0, 0, 0])
    ),
]

@Test("malformed safetensors files are refused with a reason")
func malformedSafetensors() {
    for (name, data) in malformed {
        #expect(throws: SafetensorsError.self, "\(name)") { try Safetensors.decode(data) }
    }
}

@Test("a model exports under PyTorch names and layouts and rebuilds to the same function")
func modelExportRoundTrip() throws {
    let model = try ModelBuilder.build(
        specs: [
            .conv2d(outChannels: 3, kernel: 3, stride: 1, padding: 1), .groupNorm(groups: 1), .tanh,
            .maxPool2d(kernel: 2, stride: 2), .flatten, .linear(outputs: 4),
        ],
        inputShape: [2, 6, 6], seed: 9)
    let names = model.namedParameters.map(\.name)
    #expect(names == ["0.weight", "0.bias", "1.weight", "1.bias", "5.weight", "5.bias"])
    #expect(model.namedParameters.map(\.parameter.value.shape.array) == [[3, 2, 3, 3], [3], [3], [3], [4, 27], [4]])
    let (copy, metadata) = try Sequential.fromSafetensors(model.safetensors(metadata: ["run_id": "r"]))
    #expect(metadata["run_id"] == "r")
    var rng = PhiloxRandom(seed: 1)
    let x = Tensor<Float>(normal: [5, 2, 6, 6], using: &rng)
    #expect(copy(x) == model(x))
    #expect(model.safetensors() == model.safetensors(), "the same model gives the same bytes")
    // A model of another shape refuses the file.
    let other = try ModelBuilder.build(specs: [.flatten, .linear(outputs: 4)], inputShape: [2, 6, 6], seed: 9)
    #expect(throws: SafetensorsError.self) {
        try other.loadSafetensors(Safetensors.decode(model.safetensors()).tensors)
    }
}

// MARK: - The architecture's spelling

/// Every kind of spec that a model file holds, with values off their defaults.
private let everySpec: [LayerSpec] = [
    .conv2d(outChannels: 3, kernel: 3, stride: 1, padding: 1, bias: false), .groupNorm(groups: 3, eps: 1e-3),
    .temperedSigmoid(scale: 1.5, temperature: 0.5, offset: 0.25), .maxPool2d(kernel: 2, stride: 1),
    .avgPool2d(kernel: 2), .relu, .layerNorm(trailingAxes: 2), .sigmoid, .flatten, .dropout(rate: 0.1),
    .linear(outputs: 5), .tanh, .linear(outputs: 4, bias: false),
]

@Test("a newly written model spells its layers as configs do, in model.layers entries with every value")
func architectureIsWrittenWithTheConfigNames() throws {
    let model = try ModelBuilder.build(specs: everySpec, inputShape: [2, 6, 6], seed: 4)
    let (_, metadata) = try Safetensors.decode(model.safetensors())
    let text = try #require(metadata[Sequential.architectureKey])
    #expect(
        text
            == #"{"input_shape":[2,6,6],"layers":["#
            + #"{"bias":false,"channels":3,"kernel_size":3,"padding":1,"stride":1,"type":"conv2d"},"#
            + #"{"eps":0.001,"groups":3,"type":"group-norm"},"#
            + #"{"offset":0.25,"scale":1.5,"temperature":0.5,"type":"tempered-sigmoid"},"#
            + #"{"size":2,"stride":1,"type":"max-pool2d"},{"size":2,"type":"avg-pool2d"},{"type":"relu"},"#
            + #"{"axes":2,"eps":1e-05,"type":"layer-norm"},{"type":"sigmoid"},{"type":"flatten"},"#
            + #"{"rate":0.1,"type":"dropout"},{"bias":true,"type":"dense","units":5},{"type":"tanh"},"#
            + #"{"bias":false,"type":"dense","units":4}]}"#)
    let (copy, _) = try Sequential.fromSafetensors(model.safetensors())
    #expect(copy.architecture == model.architecture)
}

@Test("a model file of the spelling before (case names: linear, outputs, maxPool2d, ...) still loads")
func architectureOfThePreviousSpellingLoads() throws {
    let model = try ModelBuilder.build(specs: everySpec, inputShape: [2, 6, 6], seed: 4)
    // As Sequential.safetensors wrote it until the layers took the config names.
    let previous =
        #"{"inputShape":[2,6,6],"specs":["#
        + #"{"bias":false,"kernel":3,"outChannels":3,"padding":1,"stride":1,"type":"conv2d"},"#
        + #"{"eps":0.001,"groups":3,"type":"groupNorm"},"#
        + #"{"offset":0.25,"scale":1.5,"temperature":0.5,"type":"temperedSigmoid"},"#
        + #"{"kernel":2,"stride":1,"type":"maxPool2d"},{"kernel":2,"type":"avgPool2d"},{"type":"relu"},"#
        + #"{"eps":1e-05,"trailingAxes":2,"type":"layerNorm"},"#
        + #"{"offset":0,"scale":1,"temperature":1,"type":"temperedSigmoid"},{"type":"flatten"},"#
        + #"{"rate":0.1,"type":"dropout"},{"bias":true,"outputs":5,"type":"linear"},{"type":"tanh"},"#
        + #"{"bias":false,"outputs":4,"type":"linear"}]}"#
    let tensors = model.namedParameters.map { ($0.name, $0.parameter.value) }
    let file = Safetensors.encode(tensors, metadata: [Sequential.architectureKey: previous])
    let (copy, _) = try Sequential.fromSafetensors(file)
    #expect(copy.architecture == model.architecture)
    var rng = PhiloxRandom(seed: 2)
    let x = Tensor<Float>(normal: [3, 2, 6, 6], using: &rng)
    #expect(copy(x) == model(x))
}

@Test("every layer type writes back as itself: describe inverts make")
func everyLayerTypeDescribesWhatItMakes() throws {
    let registry = LayerRegistry.standard
    let required: [String: ConfigValue] = [
        "units": .int(3), "channels": .int(2), "groups": .int(1), "rate": .double(0.5),
    ]
    for plugin in registry.plugins {
        let given = required.filter { key, _ in plugin.spec.parameters.contains { $0.name == key } }
        let spec = try registry.layer(checking: plugin.spec.name, given)
        let entry = try #require(registry.entry(for: spec))
        #expect(entry.type == plugin.spec.name)
        #expect(try registry.layer(checking: entry.type, entry.parameters) == spec)
    }
    #expect(registry.entry(for: .batchNorm)?.type == "batch-norm")
    #expect(throws: ModelBuilderError.self) { try registry.layer(checking: "linear", ["units": .int(3)]) }
    #expect(throws: ParameterError.self) { try registry.layer(checking: "dense", ["outputs": .int(3)]) }
    #expect(throws: ParameterError.self) { try registry.layer(checking: "dense", [:]) }
    #expect(throws: ParameterError.self) { try registry.layer(checking: "dense", ["units": .string("3")]) }
}
