import DPTensor

/// A model config that cannot be built, with what to change.
public enum ModelBuilderError: Error, Equatable, CustomStringConvertible {
    /// BatchNorm at `index` was asked for.
    case batchNormRefused(index: Int)
    /// The spec at `index` cannot take an example of `inputShape`.
    case incompatibleShape(index: Int, spec: String, inputShape: [Int], reason: String)
    /// A hyper-parameter out of range.
    case invalidValue(index: Int, spec: String, reason: String)
    /// No model of that name in ``ModelRegistry``.
    case unknownModel(name: String, valid: [String])

    public var description: String {
        switch self {
        case let .batchNormRefused(i):
            return "layer \(i): BatchNorm is refused. It normalises each example with statistics of the whole batch, so one "
                + "example's output and gradient depend on every other example in the batch; per-example gradients are then "
                + "not defined, clipping them does not bound one example's influence, and DP-SGD's privacy guarantee does not "
                + "hold. Use groupNorm(groups:) or layerNorm(trailingAxes:) instead: they normalise within each example."
        case let .incompatibleShape(i, spec, shape, reason):
            return "layer \(i) (\(spec)): cannot take examples of shape \(shape): \(reason)"
        case let .invalidValue(i, spec, reason):
            return "layer \(i) (\(spec)): \(reason)"
        case let .unknownModel(name, valid):
            return "unknown model '\(name)'; valid models: \(valid.joined(separator: ", "))"
        }
    }
}

/// Builds a ``Sequential`` from ``LayerSpec``s, inferring each layer's input size from the
/// shape of one example (without the batch axis), for example `[1, 28, 28]` for MNIST.
///
/// Layer `k` is initialised from the Philox stream `(seed, ModelBuilder.initializationStream + k)`,
/// so a model is reproducible from its seed and one layer's initialisation does not change
/// when another layer is added or removed before it.
public enum ModelBuilder {
    /// The first Philox stream used for initialisation (away from the small stream numbers
    /// that samplers and noise generators use with the same seed).
    public static let initializationStream: UInt64 = 0x1A7E_0000_0000

    /// - Throws: ``ModelBuilderError`` for BatchNorm, a spec that does not fit the shape it
    ///   receives, or an out-of-range hyper-parameter.
    public static func build(specs: [LayerSpec], inputShape: Shape, seed: UInt64) throws -> Sequential {
        var layers: [any Layer] = []
        var shape = inputShape
        for (index, spec) in specs.enumerated() {
            var rng = PhiloxRandom(seed: seed, stream: initializationStream + UInt64(index))
            let layer = try makeLayer(spec, index: index, exampleShape: shape, rng: &rng)
            shape = layer.outputShape(forExampleShape: shape)
            layers.append(layer)
        }
        let model = Sequential(layers)
        model.architecture = ModelArchitecture(specs: specs, inputShape: inputShape.array)
        return model
    }

    /// A named model from ``ModelRegistry``.
    public static func build(model name: String, inputShape: Shape, options: ModelOptions = ModelOptions(),
                             seed: UInt64) throws -> Sequential {
        try build(specs: ModelRegistry.specs(named: name, options: options), inputShape: inputShape, seed: seed)
    }

    static func makeLayer(_ spec: LayerSpec, index: Int, exampleShape s: Shape, rng: inout PhiloxRandom) throws -> any Layer {
        func shapeError(_ reason: String) -> ModelBuilderError {
            .incompatibleShape(index: index, spec: spec.description, inputShape: s.array, reason: reason)
        }
        func valueError(_ reason: String) -> ModelBuilderError {
            .invalidValue(index: index, spec: spec.description, reason: reason)
        }
        func checkWindow(kernel: Int, stride: Int, padding: Int) throws {
            guard s.rank == 3 else { throw shapeError("needs [C, H, W]") }
            guard kernel > 0, stride > 0, padding >= 0 else {
                throw valueError("kernel and stride must be positive and padding non-negative")
            }
            guard s[1] + 2 * padding >= kernel, s[2] + 2 * padding >= kernel else {
                throw shapeError("the \(kernel)x\(kernel) window does not fit the (padded) \(s[1])x\(s[2]) input")
            }
        }
        switch spec {
        case let .linear(outputs, bias):
            guard s.rank == 1 || s.rank == 2 else {
                throw shapeError("linear acts on vectors [d] or sequences [T, d]; add a flatten before it")
            }
            guard outputs > 0, s[s.rank - 1] > 0 else { throw valueError("inputs and outputs must be positive") }
            return Linear(inputs: s[s.rank - 1], outputs: outputs, bias: bias, rng: &rng)
        case let .conv2d(outChannels, kernel, stride, padding, bias):
            try checkWindow(kernel: kernel, stride: stride, padding: padding)
            guard outChannels > 0, s[0] > 0 else { throw valueError("channel counts must be positive") }
            return Conv2d(inChannels: s[0], outChannels: outChannels, kernel: kernel, stride: stride, padding: padding,
                          bias: bias, rng: &rng)
        case let .maxPool2d(kernel, stride):
            try checkWindow(kernel: kernel, stride: stride ?? kernel, padding: 0)
            return MaxPool2d(kernel: kernel, stride: stride)
        case let .avgPool2d(kernel, stride):
            try checkWindow(kernel: kernel, stride: stride ?? kernel, padding: 0)
            return AvgPool2d(kernel: kernel, stride: stride)
        case .flatten:
            guard s.rank >= 1 else { throw shapeError("nothing to flatten") }
            return Flatten()
        case .relu: return ReLU()
        case .tanh: return Tanh()
        case let .temperedSigmoid(scale, temperature, offset):
            return TemperedSigmoid(scale: scale, temperature: temperature, offset: offset)
        case let .groupNorm(groups, eps):
            guard s.rank >= 1 else { throw shapeError("needs a channel axis") }
            guard groups > 0, s[0] % groups == 0 else { throw shapeError("\(s[0]) channels do not split into \(groups) equal groups") }
            guard eps > 0 else { throw valueError("eps must be positive") }
            return GroupNorm(groups: groups, channels: s[0], eps: eps)
        case let .layerNorm(trailingAxes, eps):
            guard trailingAxes >= 1, trailingAxes <= s.rank else {
                throw shapeError("cannot normalise over the last \(trailingAxes) axes")
            }
            guard eps > 0 else { throw valueError("eps must be positive") }
            return LayerNorm(shape: Shape(Array(s.suffix(trailingAxes))), eps: eps)
        case let .dropout(rate):
            guard rate >= 0, rate < 1 else { throw valueError("rate \(rate) must be in [0, 1)") }
            return Dropout(rate: rate)
        case .batchNorm:
            throw ModelBuilderError.batchNormRefused(index: index)
        }
    }
}
