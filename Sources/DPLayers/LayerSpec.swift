import DPTensor

/// A layer described by name and hyper-parameters, for configs: ``ModelBuilder`` turns a list
/// of specs into a ``Sequential``, inferring every input size from the input shape.
///
/// Encoded with a `type` key and the hyper-parameters beside it; omitted values take the
/// defaults shown, for example (YAML)
///
///     - {type: conv2d, outChannels: 16, kernel: 8, stride: 2, padding: 3}
///     - {type: tanh}
///     - {type: linear, outputs: 10}
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
    /// Over the channel axis (the first axis of an example).
    case groupNorm(groups: Int, eps: Float = 1e-5)
    /// Over the last `trailingAxes` axes of an example.
    case layerNorm(trailingAxes: Int = 1, eps: Float = 1e-5)
    case dropout(rate: Float)
    /// Refused by ``ModelBuilder``: BatchNorm mixes examples. Use `groupNorm` or `layerNorm`.
    case batchNorm

    /// The `type` names, in declaration order.
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
        case .groupNorm(let g, let e): return "groupNorm(groups: \(g), eps: \(e))"
        case .layerNorm(let a, let e): return "layerNorm(trailingAxes: \(a), eps: \(e))"
        case .dropout(let r): return "dropout(rate: \(r))"
        default: return typeName
        }
    }

    // MARK: - Codable

    enum CodingKeys: String, CodingKey {
        case type, outputs, bias, outChannels, kernel, stride, padding, scale, temperature, offset, groups, eps,
            trailingAxes, rate
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
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
        case "flatten": self = .flatten
        case "relu": self = .relu
        case "tanh": self = .tanh
        case "temperedSigmoid":
            self = .temperedSigmoid(
                scale: try c.decodeIfPresent(Float.self, forKey: .scale) ?? 2,
                temperature: try c.decodeIfPresent(Float.self, forKey: .temperature) ?? 2,
                offset: try c.decodeIfPresent(Float.self, forKey: .offset) ?? 1)
        case "groupNorm":
            self = .groupNorm(
                groups: try c.decode(Int.self, forKey: .groups),
                eps: try c.decodeIfPresent(Float.self, forKey: .eps) ?? 1e-5)
        case "layerNorm":
            self = .layerNorm(
                trailingAxes: try c.decodeIfPresent(Int.self, forKey: .trailingAxes) ?? 1,
                eps: try c.decodeIfPresent(Float.self, forKey: .eps) ?? 1e-5)
        case "dropout": self = .dropout(rate: try c.decode(Float.self, forKey: .rate))
        case "batchNorm": self = .batchNorm
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type, in: c,
                debugDescription:
                    "unknown layer type '\(type)'; valid types: \(LayerSpec.typeNames.joined(separator: ", "))")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(typeName, forKey: .type)
        switch self {
        case .linear(let o, let b):
            try c.encode(o, forKey: .outputs)
            try c.encode(b, forKey: .bias)
        case .conv2d(let ch, let k, let s, let p, let b):
            try c.encode(ch, forKey: .outChannels)
            try c.encode(k, forKey: .kernel)
            try c.encode(s, forKey: .stride)
            try c.encode(p, forKey: .padding)
            try c.encode(b, forKey: .bias)
        case .maxPool2d(let k, let s), .avgPool2d(let k, let s):
            try c.encode(k, forKey: .kernel)
            try c.encodeIfPresent(s, forKey: .stride)
        case .temperedSigmoid(let s, let t, let o):
            try c.encode(s, forKey: .scale)
            try c.encode(t, forKey: .temperature)
            try c.encode(o, forKey: .offset)
        case .groupNorm(let g, let e):
            try c.encode(g, forKey: .groups)
            try c.encode(e, forKey: .eps)
        case .layerNorm(let a, let e):
            try c.encode(a, forKey: .trailingAxes)
            try c.encode(e, forKey: .eps)
        case .dropout(let r):
            try c.encode(r, forKey: .rate)
        case .flatten, .relu, .tanh, .batchNorm:
            break
        }
    }
}
