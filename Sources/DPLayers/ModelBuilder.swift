import DPSchema
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
    /// No layer type of that name in ``LayerRegistry``.
    case unknownLayerType(name: String, valid: [String])
    /// A model with no layers.
    case noLayers
    /// A tensor of the layer at `index` (its weights, or one example's output or workspace)
    /// would hold more scalars than ``ModelLimits`` allow (nil: more than `Int` can count).
    case tooLarge(index: Int, spec: String, inputShape: [Int], tensor: String, scalars: Int?, limit: Int)
    /// A classifier whose last layer is not a linear layer giving one logit per class: the
    /// layer at `index` (the last; linear or not) gives `outputShape` per example for `classes` classes.
    case classifierOutput(index: Int, spec: String, isLinear: Bool, outputShape: [Int], classes: Int)

    /// The layer the error is about, if any.
    public var index: Int? {
        switch self {
        case .batchNormRefused(let i), .incompatibleShape(let i, _, _, _), .invalidValue(let i, _, _),
            .tooLarge(let i, _, _, _, _, _), .classifierOutput(let i, _, _, _, _):
            return i
        case .unknownModel, .unknownLayerType, .noLayers:
            return nil
        }
    }

    /// What is wrong, without the layer's position (for messages that name it their own way).
    public var reason: String {
        switch self {
        case .batchNormRefused:
            return "BatchNorm is refused. It normalises each example with statistics of the whole batch, so one "
                + "example's output and gradient depend on every other example in the batch; per-example gradients are then "
                + "not defined, clipping them does not bound one example's influence, and DP-SGD's privacy guarantee does not "
                + "hold. Use groupNorm(groups:) or layerNorm(trailingAxes:) instead: they normalise within each example."
        case .incompatibleShape(_, _, let shape, let reason):
            return "cannot take examples of shape \(shape): \(reason)"
        case .invalidValue(_, _, let reason):
            return reason
        case .unknownModel(let name, let valid):
            return "unknown model '\(name)'; valid models: \(valid.joined(separator: ", "))"
        case .unknownLayerType(let name, let valid):
            return "unknown layer type '\(name)'; valid layer types: \(valid.joined(separator: ", "))"
        case .noLayers:
            return "the model has no layers"
        case .tooLarge(_, _, let shape, let tensor, let scalars, let limit):
            let count = scalars.map { "\($0) scalars" } ?? "more scalars than a 64-bit integer counts"
            return
                "is too large: on examples of shape \(shape) its \(tensor) would hold \(count); the limit is \(limit) (\(limit / (1 << 28)) GiB of Float)"
        case .classifierOutput(_, _, let isLinear, let shape, let classes):
            if !isLinear {
                return
                    "the last layer gives the logits, so it must be a linear layer with one output per class (\(classes)); it gives \(shape) per example"
            }
            if shape.count != 1 {
                return
                    "gives \(shape) per example, but the logits must be one vector of \(classes) values (one per class): flatten before it"
            }
            let direction =
                shape[0] < classes
                ? "fewer outputs than classes: the labels \(shape[0])..<\(classes) would have no logit"
                : "more outputs than classes: the logits \(classes)..<\(shape[0]) would belong to no class, yet take part in the softmax and the predicted class"
            return
                "gives \(shape[0]) logits per example for \(classes) classes (\(direction)); it needs \(classes) outputs"
        }
    }

    public var description: String {
        switch self {
        case .batchNormRefused(let i):
            return "layer \(i): \(reason)"
        case .incompatibleShape(let i, let spec, _, _), .invalidValue(let i, let spec, _),
            .tooLarge(let i, let spec, _, _, _, _),
            .classifierOutput(let i, let spec, _, _, _):
            return "layer \(i) (\(spec)): \(reason)"
        case .unknownModel, .unknownLayerType, .noLayers:
            return reason
        }
    }
}

/// Size limits that shape inference enforces, so that a model described in a config is refused
/// with a message instead of overflowing an `Int` or exhausting memory while it is built.
public enum ModelLimits {
    /// The most scalars one parameter tensor (a layer's weights) may hold: 2^28 (1 GiB of Float).
    public static let parameterScalars = 1 << 28
    /// The most scalars one example may occupy in any tensor a layer makes: its output, or a
    /// convolution's im2col columns (`Cin k^2 x Hout Wout`): 2^28 (1 GiB of Float per example).
    public static let exampleScalars = 1 << 28
}

/// What shape inference knows about one layer of a model, before anything is allocated.
public struct InferredLayer: Equatable, Sendable {
    public var spec: LayerSpec
    /// The shape of one example entering the layer.
    public var inputShape: Shape
    /// The shape of one example leaving it.
    public var outputShape: Shape
    /// The number of trainable scalars.
    public var parameterCount: Int
    /// The scalars one example occupies in the layer's largest cached tensor (its output, or
    /// a convolution's im2col columns).
    public var exampleScalars: Int
}

/// Builds a ``Sequential`` from ``LayerSpec``s, inferring each layer's input size from the
/// shape of one example (without the batch axis), for example `[1, 28, 28]` for MNIST.
///
/// Every spec is checked by shape inference (``inferShapes(specs:inputShape:)``) before
/// anything is allocated: the same rules answer "does this config describe a model?" when a
/// config is loaded and build the model later, so a model that validates builds.
///
/// Layer `k` is initialised from the Philox stream `(seed, ModelBuilder.initializationStream + k)`,
/// so a model is reproducible from its seed and one layer's initialisation does not change
/// when another layer is added or removed before it.
public enum ModelBuilder {
    /// The first Philox stream used for initialisation (away from the small stream numbers
    /// that samplers and noise generators use with the same seed).
    public static let initializationStream: UInt64 = 0x1A7E_0000_0000

    /// - Throws: ``ModelBuilderError`` for BatchNorm, a spec that does not fit the shape it
    ///   receives, an out-of-range hyper-parameter, or a tensor beyond ``ModelLimits``.
    public static func build(specs: [LayerSpec], inputShape: Shape, seed: UInt64) throws -> Sequential {
        let inferred = try inferShapes(specs: specs, inputShape: inputShape)
        var layers: [any Layer] = []
        for (index, info) in inferred.enumerated() {
            var rng = PhiloxRandom(seed: seed, stream: initializationStream + UInt64(index))
            let layer = makeLayer(info.spec, exampleShape: info.inputShape, rng: &rng)
            let shape = layer.outputShape(forExampleShape: info.inputShape)
            precondition(
                shape == info.outputShape,
                "ModelBuilder: shape inference gives \(info.outputShape) for \(info.spec), the layer \(shape)")
            layers.append(layer)
        }
        let model = Sequential(layers)
        model.architecture = ModelArchitecture(specs: specs, inputShape: inputShape.array)
        return model
    }

    /// A named model of `registry`, checked as a classifier of `input.classes` classes.
    /// - Throws: ``ModelBuilderError/unknownModel(name:valid:)`` and the shape errors.
    public static func build(
        model name: String, input: ModelInput, parameters: [String: ConfigValue] = [:],
        registry: ModelRegistry = .standard, seed: UInt64
    ) throws -> Sequential {
        let specs = try registry.specs(named: name, parameters: parameters, input: input)
        _ = try inferClassifierShapes(specs: specs, inputShape: input.exampleShape, classes: input.classes)
        return try build(specs: specs, inputShape: input.exampleShape, seed: seed)
    }

    // MARK: - Shape inference

    /// Each layer's input and output shape for examples of `inputShape`, with every check the
    /// builder makes: ranks, window sizes against the (padded) input, divisibility of
    /// channels into groups, hyper-parameter ranges, and the sizes of ``ModelLimits``. Nothing
    /// is allocated.
    /// - Throws: ``ModelBuilderError`` naming the first layer that does not fit.
    public static func inferShapes(specs: [LayerSpec], inputShape: Shape) throws -> [InferredLayer] {
        guard let first = specs.first else { throw ModelBuilderError.noLayers }
        guard inputShape.rank >= 1, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelBuilderError.incompatibleShape(
                index: 0, spec: first.description, inputShape: inputShape.array,
                reason: "every size of an example must be positive")
        }
        var shape = inputShape
        var out: [InferredLayer] = []
        out.reserveCapacity(specs.count)
        for (index, spec) in specs.enumerated() {
            let info = try infer(spec, index: index, exampleShape: shape)
            out.append(info)
            shape = info.outputShape
        }
        return out
    }

    /// ``inferShapes(specs:inputShape:)`` for a classifier: the last layer must be linear and
    /// give one vector of `classes` logits per example. Fewer outputs than classes leave labels
    /// without a logit (the loss cannot be formed); more leave logits that belong to no class
    /// but still take part in the softmax and the predicted class; both are refused.
    public static func inferClassifierShapes(
        specs: [LayerSpec], inputShape: Shape, classes: Int
    ) throws -> [InferredLayer] {
        let inferred = try inferShapes(specs: specs, inputShape: inputShape)
        let last = inferred[inferred.count - 1]
        let isLinear: Bool
        if case .linear = last.spec { isLinear = true } else { isLinear = false }
        guard isLinear, last.outputShape == [classes] else {
            throw ModelBuilderError.classifierOutput(
                index: inferred.count - 1, spec: last.spec.description, isLinear: isLinear,
                outputShape: last.outputShape.array,
                classes: classes)
        }
        return inferred
    }

    /// The checks and the output shape of one spec on examples of shape `s`.
    static func infer(_ spec: LayerSpec, index: Int, exampleShape s: Shape) throws -> InferredLayer {
        func shapeError(_ reason: String) -> ModelBuilderError {
            .incompatibleShape(index: index, spec: spec.description, inputShape: s.array, reason: reason)
        }
        func valueError(_ reason: String) -> ModelBuilderError {
            .invalidValue(index: index, spec: spec.description, reason: reason)
        }
        /// The product of `factors`, checked against `limit`.
        func count(_ factors: [Int], _ tensor: String, limit: Int) throws -> Int {
            var n = 1
            for f in factors {
                let (p, overflow) = n.multipliedReportingOverflow(by: f)
                guard !overflow else {
                    throw ModelBuilderError.tooLarge(
                        index: index, spec: spec.description, inputShape: s.array,
                        tensor: tensor, scalars: nil, limit: limit)
                }
                n = p
            }
            guard n <= limit else {
                throw ModelBuilderError.tooLarge(
                    index: index, spec: spec.description, inputShape: s.array,
                    tensor: tensor, scalars: n, limit: limit)
            }
            return n
        }
        /// The output side of a window sweep over a side of `n` padded by `padding` on each end.
        func windowOutput(kernel: Int, stride: Int, padding: Int) throws -> (height: Int, width: Int) {
            guard s.rank == 3 else {
                throw shapeError("needs images [C, H, W] (convolutions and pooling come before any flatten)")
            }
            guard kernel > 0, stride > 0, padding >= 0 else {
                throw valueError("kernel and stride must be positive and padding non-negative")
            }
            let (twice, overflow) = padding.multipliedReportingOverflow(by: 2)
            guard !overflow, twice <= Int.max - max(s[1], s[2]) else {
                throw valueError("padding \(padding) is too large")
            }
            let h = s[1] + twice, w = s[2] + twice
            guard h >= kernel, w >= kernel else {
                let padded = padding > 0 ? "padded \(h)x\(w)" : "\(h)x\(w)"
                throw shapeError("the \(kernel)x\(kernel) window is larger than the \(padded) input")
            }
            return ((h - kernel) / stride + 1, (w - kernel) / stride + 1)
        }
        func same(_ parameters: Int = 0) throws -> InferredLayer {
            InferredLayer(
                spec: spec, inputShape: s, outputShape: s, parameterCount: parameters,
                exampleScalars: try count(s.array, "output", limit: ModelLimits.exampleScalars))
        }

        switch spec {
        case .linear(let outputs, let bias):
            guard s.rank == 1 || s.rank == 2 else {
                throw shapeError("linear acts on vectors [d] or sequences [T, d]; add a flatten before it")
            }
            guard outputs > 0 else { throw valueError("outputs must be positive") }
            let inputs = s[s.rank - 1]
            let weights = try count([outputs, inputs], "weight matrix", limit: ModelLimits.parameterScalars)
            var output = s
            output[output.rank - 1] = outputs
            return InferredLayer(
                spec: spec, inputShape: s, outputShape: output, parameterCount: weights + (bias ? outputs : 0),
                exampleScalars: try count(output.array, "output", limit: ModelLimits.exampleScalars))
        case .conv2d(let outChannels, let kernel, let stride, let padding, let bias):
            guard outChannels > 0 else { throw valueError("channel counts must be positive") }
            let (h, w) = try windowOutput(kernel: kernel, stride: stride, padding: padding)
            let weights = try count(
                [outChannels, s[0], kernel, kernel], "weight tensor", limit: ModelLimits.parameterScalars)
            let columns = try count([s[0], kernel, kernel, h, w], "im2col columns", limit: ModelLimits.exampleScalars)
            let output = try count([outChannels, h, w], "output", limit: ModelLimits.exampleScalars)
            return InferredLayer(
                spec: spec, inputShape: s, outputShape: [outChannels, h, w],
                parameterCount: weights + (bias ? outChannels : 0), exampleScalars: max(columns, output))
        case .maxPool2d(let kernel, let stride), .avgPool2d(let kernel, let stride):
            let (h, w) = try windowOutput(kernel: kernel, stride: stride ?? kernel, padding: 0)
            return InferredLayer(
                spec: spec, inputShape: s, outputShape: [s[0], h, w], parameterCount: 0,
                exampleScalars: try count([s[0], h, w], "output", limit: ModelLimits.exampleScalars))
        case .flatten:
            let n = try count(s.array, "output", limit: ModelLimits.exampleScalars)
            return InferredLayer(spec: spec, inputShape: s, outputShape: [n], parameterCount: 0, exampleScalars: n)
        case .relu, .tanh:
            return try same()
        case .temperedSigmoid(let scale, let temperature, let offset):
            guard scale.isFinite, temperature.isFinite, offset.isFinite else {
                throw valueError("scale, temperature and offset must be finite")
            }
            return try same()
        case .groupNorm(let groups, let eps, let affine):
            guard groups > 0, s[0] % groups == 0 else {
                throw shapeError("\(s[0]) channels do not split into \(groups) equal groups")
            }
            guard eps > 0, eps.isFinite else { throw valueError("eps must be positive") }
            return try same(affine ? 2 * s[0] : 0)
        case .layerNorm(let trailingAxes, let eps):
            guard trailingAxes >= 1, trailingAxes <= s.rank else {
                throw shapeError("cannot normalise over the last \(trailingAxes) axes of a rank-\(s.rank) example")
            }
            guard eps > 0, eps.isFinite else { throw valueError("eps must be positive") }
            return try same(2 * Shape(Array(s.suffix(trailingAxes))).scalarCount)
        case .dropout(let rate):
            guard rate >= 0, rate < 1 else { throw valueError("rate \(rate) must be in [0, 1)") }
            return try same()
        case .batchNorm:
            throw ModelBuilderError.batchNormRefused(index: index)
        }
    }

    /// The layer of `spec` for examples of shape `s`. Precondition: `infer` accepted them.
    static func makeLayer(_ spec: LayerSpec, exampleShape s: Shape, rng: inout PhiloxRandom) -> any Layer {
        switch spec {
        case .linear(let outputs, let bias):
            return Linear(inputs: s[s.rank - 1], outputs: outputs, bias: bias, rng: &rng)
        case .conv2d(let outChannels, let kernel, let stride, let padding, let bias):
            return Conv2d(
                inChannels: s[0], outChannels: outChannels, kernel: kernel, stride: stride, padding: padding,
                bias: bias, rng: &rng)
        case .maxPool2d(let kernel, let stride): return MaxPool2d(kernel: kernel, stride: stride)
        case .avgPool2d(let kernel, let stride): return AvgPool2d(kernel: kernel, stride: stride)
        case .flatten: return Flatten()
        case .relu: return ReLU()
        case .tanh: return Tanh()
        case .temperedSigmoid(let scale, let temperature, let offset):
            return TemperedSigmoid(scale: scale, temperature: temperature, offset: offset)
        case .groupNorm(let groups, let eps, let affine):
            return GroupNorm(groups: groups, channels: s[0], eps: eps, affine: affine)
        case .layerNorm(let trailingAxes, let eps):
            return LayerNorm(shape: Shape(Array(s.suffix(trailingAxes))), eps: eps)
        case .dropout(let rate): return Dropout(rate: rate)
        case .batchNorm: preconditionFailure("ModelBuilder: batchNorm passed shape inference")
        }
    }
}
