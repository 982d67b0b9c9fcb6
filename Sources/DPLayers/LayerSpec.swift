import DPSchema
import DPTensor

/// A layer described by name and hyper-parameters, for configs: ``ModelBuilder`` turns a list
/// of specs into a ``Sequential``, inferring every input size from the input shape.
///
/// Encoded as configs write it in `model.layers` (the layer types of ``LayerRegistry``): a
/// `type` key and the parameters beside it, every value written, for example (JSON)
///
///     {"type": "conv2d", "channels": 16, "kernel_size": 8, "stride": 2, "padding": 3, "bias": true}
///     {"type": "tanh"}
///     {"type": "dense", "units": 10, "bias": true}
///
/// Decoding also reads the spelling of files written before (the case names and labels:
/// `{"type": "linear", "outputs": 10}`), where omitted values take the defaults of the cases.
///
/// `batchNorm` exists only so that a config asking for it is refused with an explanation
/// (``ModelBuilderError/batchNormRefused(index:)``) instead of failing to parse or being
/// rewritten silently.
public enum LayerSpec: Codable, Hashable, Sendable, CustomStringConvertible {
    case linear(outputs: Int, bias: Bool = true)
    case conv2d(outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true)
    case maxPool2d(kernel: Int, stride: Int? = nil)
    case avgPool2d(kernel: Int, stride: Int? = nil)
    case flatten
    case relu
    case tanh
    case temperedSigmoid(scale: Float = 2, temperature: Float = 2, offset: Float = 1)
    /// Over the channel axis (the first axis of an example); `affine` false: no learned scale
    /// and shift (PyTorch's `affine=False`).
    case groupNorm(groups: Int, eps: Float = 1e-5, affine: Bool = true)
    /// Over the last `trailingAxes` axes of an example.
    case layerNorm(trailingAxes: Int = 1, eps: Float = 1e-5)
    case dropout(rate: Float)
    /// Refused by ``ModelBuilder``: BatchNorm mixes examples. Use `groupNorm` or `layerNorm`.
    case batchNorm

    /// The case names, in declaration order (``description`` writes them; files written before
    /// layers were encoded with ``LayerRegistry``'s types had them as `type`).
    public static let typeNames = [
        "linear", "conv2d", "maxPool2d", "avgPool2d", "flatten", "relu", "tanh",
        "temperedSigmoid", "groupNorm", "layerNorm", "dropout", "batchNorm",
    ]

    public var typeName: String {
        switch self {
        case .linear: return "linear"
        case .conv2d: return "conv2d"
        case .maxPool2d: return "maxPool2d"
        case .avgPool2d: return "avgPool2d"
        case .flatten: return "flatten"
        case .relu: return "relu"
        case .tanh: return "tanh"
        case .temperedSigmoid: return "temperedSigmoid"
        case .groupNorm: return "groupNorm"
        case .layerNorm: return "layerNorm"
        case .dropout: return "dropout"
        case .batchNorm: return "batchNorm"
        }
    }

    public var description: String {
        switch self {
        case .linear(let o, let b): return "linear(outputs: \(o), bias: \(b))"
        case .conv2d(let c, let k, let s, let p, let b):
            return "conv2d(outChannels: \(c), kernel: \(k), stride: \(s), padding: \(p), bias: \(b))"
        case .maxPool2d(let k, let s): return "maxPool2d(kernel: \(k), stride: \(s ?? k))"
        case .avgPool2d(let k, let s): return "avgPool2d(kernel: \(k), stride: \(s ?? k))"
        case .temperedSigmoid(let s, let t, let o):
            return "temperedSigmoid(scale: \(s), temperature: \(t), offset: \(o))"
        case .groupNorm(let g, let e, let a): return "groupNorm(groups: \(g), eps: \(e)\(a ? "" : ", affine: false"))"
        case .layerNorm(let a, let e): return "layerNorm(trailingAxes: \(a), eps: \(e))"
        case .dropout(let r): return "dropout(rate: \(r))"
        default: return typeName
        }
    }

    // MARK: - Codable

    /// Writes the `model.layers` entry of this spec (``LayerRegistry/entry(for:)``).
    public func encode(to encoder: any Encoder) throws {
        guard let (type, parameters) = LayerRegistry.standard.entry(for: self) else {
            throw EncodingError.invalidValue(
                self, .init(codingPath: encoder.codingPath, debugDescription: "no layer type describes \(self)"))
        }
        let entry = [("type", ConfigValue.string(type))] + parameters.sorted { $0.key < $1.key }.map { ($0, $1) }
        try ConfigValue.map(entry).encode(to: encoder)
    }

    /// Reads a `model.layers` entry (``LayerRegistry/layer(checking:_:)``), or an entry of the
    /// spelling before it.
    public init(from decoder: any Decoder) throws {
        let legacy = try decoder.container(keyedBy: LegacyKey.self)
        let type = try legacy.decode(String.self, forKey: .type)
        if Self.legacyOnlyTypes.contains(type) || (type == "conv2d" && legacy.contains(.outChannels)) {
            self = try Self(legacy: legacy, type: type)
            return
        }
        guard case .map(let pairs) = try ConfigValue(from: decoder) else {
            throw DecodingError.dataCorruptedError(forKey: .type, in: legacy, debugDescription: "not a layer entry")
        }
        var parameters = [String: ConfigValue](pairs.map { ($0.key, $0.value) }) { first, _ in first }
        parameters["type"] = nil
        do {
            self = try LayerRegistry.standard.layer(checking: type, parameters)
        } catch {
            throw DecodingError.dataCorruptedError(forKey: .type, in: legacy, debugDescription: "\(error)")
        }
    }

    // MARK: - The spelling before LayerRegistry's types

    /// The case names that are not also layer types (`conv2d` is both: the old one has `outChannels`).
    static let legacyOnlyTypes: Set = [
        "linear", "maxPool2d", "avgPool2d", "temperedSigmoid", "groupNorm", "layerNorm", "batchNorm",
    ]

    enum LegacyKey: String, CodingKey {
        case type, outputs, bias, outChannels, kernel, stride, padding, scale, temperature, offset, groups, eps,
            trailingAxes, rate
    }

    /// An entry of the case names and labels, as files were written before.
    init(legacy c: KeyedDecodingContainer<LegacyKey>, type: String) throws {
        switch type {
        case "linear":
            self = .linear(
                outputs: try c.decode(Int.self, forKey: .outputs),
                bias: try c.decodeIfPresent(Bool.self, forKey: .bias) ?? true)
        case "conv2d":
            self = .conv2d(
                outChannels: try c.decode(Int.self, forKey: .outChannels),
                kernel: try c.decode(Int.self, forKey: .kernel),
                stride: try c.decodeIfPresent(Int.self, forKey: .stride) ?? 1,
                padding: try c.decodeIfPresent(Int.self, forKey: .padding) ?? 0,
                bias: try c.decodeIfPresent(Bool.self, forKey: .bias) ?? true)
        case "maxPool2d":
            self = .maxPool2d(
                kernel: try c.decode(Int.self, forKey: .kernel),
                stride: try c.decodeIfPresent(Int.self, forKey: .stride))
        case "avgPool2d":
            self = .avgPool2d(
                kernel: try c.decode(Int.self, forKey: .kernel),
                stride: try c.decodeIfPresent(Int.self, forKey: .stride))
        case "temperedSigmoid":
            self = .temperedSigmoid(
                scale: try c.decodeIfPresent(Float.self, forKey: .scale) ?? 2,
                temperature: try c.decodeIfPresent(Float.self, forKey: .temperature) ?? 2,
                offset: try c.decodeIfPresent(Float.self, forKey: .offset) ?? 1)
        case "groupNorm":
            self = .groupNorm(
                groups: try c.decode(Int.self, forKey: .groups),
                eps: try c.decodeIfPresent(Float.self, forKey: .eps) ?? 1e-5, affine: true)
        case "layerNorm":
            self = .layerNorm(
                trailingAxes: try c.decodeIfPresent(Int.self, forKey: .trailingAxes) ?? 1,
                eps: try c.decodeIfPresent(Float.self, forKey: .eps) ?? 1e-5)
        case "batchNorm":
            self = .batchNorm
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "no layer type `\(type)`")
        }
    }
}
