import DPTensor
import Foundation

/// What ``ModelBuilder`` needs to rebuild a model: its layer specs and the example shape.
///
/// Encoded as `{"input_shape": [1, 28, 28], "layers": [...]}`, each layer the entry a config
/// writes in `model.layers` (``LayerSpec``'s `Codable`). Decoding also reads the spelling of
/// files written before, `{"inputShape": [...], "specs": [...]}` with the specs' case names.
public struct ModelArchitecture: Codable, Equatable, Sendable {
    public var specs: [LayerSpec]
    public var inputShape: [Int]

    public init(specs: [LayerSpec], inputShape: [Int]) {
        self.specs = specs
        self.inputShape = inputShape
    }

    enum CodingKeys: String, CodingKey {
        case specs = "layers", inputShape = "input_shape"
        case legacySpecs = "specs", legacyInputShape = "inputShape"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(inputShape, forKey: .inputShape)
        try c.encode(specs, forKey: .specs)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let legacy = !c.contains(.specs)
        specs = try c.decode([LayerSpec].self, forKey: legacy ? .legacySpecs : .specs)
        inputShape = try c.decode([Int].self, forKey: legacy ? .legacyInputShape : .inputShape)
    }
}

/// Model export in the safetensors format with PyTorch's names and layouts.
///
/// A model built from specs `[s0, s1, ...]` corresponds to `torch.nn.Sequential(m0, m1, ...)`
/// with one module per spec, in order (`Flatten`, `Tanh`, `ReLU`, `MaxPool2d` included), so
/// its state dict keys are `"<index>.weight"` and `"<index>.bias"`:
/// - `dense` -> `nn.Linear(in, units)`: weight `[units, in]`, bias `[units]`;
/// - `conv2d` -> `nn.Conv2d(in, channels, kernel_size, stride, padding)`: weight
///   `[channels, in, k, k]`, bias `[channels]` (NCHW inputs);
/// - `group-norm` -> `nn.GroupNorm(groups, channels)`, `layer-norm` -> `nn.LayerNorm(shape)`:
///   DPKit's `gamma` and `beta` are PyTorch's `weight` and `bias`;
/// - `flatten` -> `nn.Flatten()` (row-major over C, H, W, as PyTorch), `tanh` -> `nn.Tanh()`,
///   `relu` -> `nn.ReLU()`, pools -> `nn.MaxPool2d(size, stride)` / `nn.AvgPool2d(size, stride)`,
///   `sigmoid` -> `nn.Sigmoid()`, `dropout` -> `nn.Dropout(rate)`; `tempered-sigmoid` has no
///   PyTorch module (no parameters: `scale * sigmoid(temperature * x) - offset`).
/// The metadata holds the architecture (`dpkit.architecture`, JSON, the layers spelled as
/// configs spell them: ``ModelArchitecture``) so that ``fromSafetensors(_:)`` rebuilds the model
/// without its config; callers add their own keys.
extension Sequential {
    /// Parameters under their PyTorch state-dict names, in model order.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        var out: [(String, Parameter)] = []
        for (index, layer) in layers.enumerated() {
            for p in layer.parameters {
                let torchName: String
                switch p.name {
                case "gamma": torchName = "weight"
                case "beta": torchName = "bias"
                default: torchName = p.name
                }
                out.append(("\(index).\(torchName)", p))
            }
        }
        return out
    }

    public static let architectureKey = "dpkit.architecture"

    /// The safetensors bytes of the parameters, with the architecture and `metadata` in the header.
    public func safetensors(metadata: [String: String] = [:]) -> Data {
        var meta = metadata
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys // the same model gives the same bytes
        if let a = architecture, let json = try? encoder.encode(a) {
            meta[Self.architectureKey] = String(decoding: json, as: UTF8.self)
        }
        return Safetensors.encode(namedParameters.map { ($0.name, $0.parameter.value) }, metadata: meta)
    }

    /// Copies the tensors of a safetensors file into this model's parameters.
    /// - Throws: ``SafetensorsError`` when a parameter is missing, has another shape, or the file
    ///   holds tensors this model does not have.
    public func loadSafetensors(_ tensors: [String: Tensor<Float>]) throws {
        let named = namedParameters
        for (name, p) in named {
            guard let t = tensors[name] else {
                throw SafetensorsError("the file has no tensor `\(name)` for \(description)")
            }
            guard t.shape == p.value.shape else {
                throw SafetensorsError(
                    "tensor `\(name)` has shape \(t.shape.array); the model's is \(p.value.shape.array)")
            }
            p.value = t
        }
        let extra = Set(tensors.keys).subtracting(named.map(\.name))
        if !extra.isEmpty {
            throw SafetensorsError("the file has tensors the model does not: \(extra.sorted().joined(separator: ", "))")
        }
    }

    /// Rebuilds a model exported by ``safetensors(metadata:)`` and loads its parameters.
    public static func fromSafetensors(_ data: Data) throws -> (model: Sequential, metadata: [String: String]) {
        let (tensors, metadata) = try Safetensors.decode(data)
        guard let text = metadata[architectureKey],
            let architecture = try? JSONDecoder().decode(ModelArchitecture.self, from: Data(text.utf8))
        else {
            throw SafetensorsError(
                "no `\(architectureKey)` in the metadata: not a model exported by DPKit (build the model yourself and call loadSafetensors)"
            )
        }
        let model = try ModelBuilder.build(
            specs: architecture.specs, inputShape: Shape(architecture.inputShape), seed: 0)
        try model.loadSafetensors(tensors)
        return (model, metadata)
    }
}
