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
