import DPSchema
import DPTensor

// MARK: - Layer types

/// A layer type known by name (`dense`, `conv2d`, ...): its parameter schema, the
/// ``LayerSpec`` it makes, and back. The names and parameters are the ones configs write in
/// `model.layers` and ``LayerSpec`` is encoded with (an exported model's architecture).
public struct LayerPlugin: Plugin {
    public var spec: PluginSpec
    public var make: @Sendable (Parameters) -> LayerSpec
    /// The parameters that `make` takes back to `spec`, when `spec` is of this type; else nil.
    public var describe: @Sendable (LayerSpec) -> [String: ConfigValue]?

    public init(
        _ spec: PluginSpec, make: @escaping @Sendable (Parameters) -> LayerSpec,
        describe: @escaping @Sendable (LayerSpec) -> [String: ConfigValue]?
    ) {
        self.spec = spec
        self.make = make
        self.describe = describe
    }

    /// A layer type without parameters that stands for `layer`.
    public static func fixed(_ name: String, _ layer: LayerSpec) -> LayerPlugin {
        LayerPlugin(PluginSpec(name), make: { _ in layer }, describe: { $0 == layer ? [:] : nil })
    }

    /// ``ModelBuilderError/unknownLayerType(name:valid:)``.
    public static func unknownName(_ name: String, valid: [String]) -> any Error {
        ModelBuilderError.unknownLayerType(name: name, valid: valid)
    }
}

/// Layer types by name: the one list `model.layers[].type` reads, and the one spelling of
/// layers in files (``LayerSpec``'s `Codable`).
public typealias LayerRegistry = Registry<LayerPlugin>

extension Registry where Entry == LayerPlugin {
    /// The layer types DPKit ships.
    public static var standard: LayerRegistry { standardLayers }

    /// The type of ``LayerSpec/batchNorm``, refused by configs and by ``ModelBuilder``.
    public static var batchNormType: String { "batch-norm" }

    /// The spec of layer type `name` with `parameters` (defaults filled in); nil for an unknown name.
    public func layer(_ name: String, _ parameters: [String: ConfigValue] = [:]) -> LayerSpec? {
        guard let (layer, parameters) = try? plugin(name, parameters: parameters) else { return nil }
        return layer.make(parameters)
    }

    /// The spec of the `model.layers` entry of type `name` with `parameters`, checked against
    /// the type's schema (``Parameters/init(checking:for:)``) as an entry read from a file is.
    /// ``batchNormType`` gives ``LayerSpec/batchNorm``, which ``ModelBuilder`` refuses.
    /// - Throws: ``ModelBuilderError/unknownLayerType(name:valid:)``; ``DPSchema/ParameterError``.
    public func layer(checking name: String, _ parameters: [String: ConfigValue]) throws -> LayerSpec {
        if name == Self.batchNormType, parameters.isEmpty { return .batchNorm }
        let layer = try plugin(name)
        return layer.make(try Parameters(checking: parameters, for: layer.spec))
    }

    /// The `model.layers` entry of `spec`: the first layer type whose ``LayerPlugin/describe``
    /// takes it, and its parameters (``batchNormType`` for ``LayerSpec/batchNorm``); nil when
    /// no type of this registry does (``standard`` describes every spec).
    public func entry(for spec: LayerSpec) -> (type: String, parameters: [String: ConfigValue])? {
        if spec == .batchNorm { return (Self.batchNormType, [:]) }
        for layer in plugins {
            if let parameters = layer.describe(spec) { return (layer.spec.name, parameters) }
        }
        return nil
    }
}

private let batchNormReason =
    "batch normalisation mixes examples of a batch, so per-example gradients and DP-SGD's guarantee break; use group-norm"

/// `bias` of dense and conv2d layers, and `eps` of the norms: optional without a default, so
/// that configs that do not write them keep their hashes.
private let biasParameter = ParameterSpec("bias", .bool, "default true: add a learned bias")
private let epsParameter = ParameterSpec(
    "eps", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6),
    "default 1e-5: added to the variance")

/// A `Float` hyper-parameter as configs write it: the shortest decimal that reads back as it.
private func number(_ x: Float) -> ConfigValue {
    let shortest = Double("\(x)") ?? Double(x)
    return .double(Float(shortest) == x ? shortest : Double(x))
}

private let standardLayers = LayerRegistry(
    kind: "layer type",
    [
        LayerPlugin(
            PluginSpec(
                "dense", parameters: [ParameterSpec("units", .int, range: .atLeast(1), required: true), biasParameter]),
            make: { .linear(outputs: $0.int("units"), bias: $0.optionalBool("bias") ?? true) },
            describe: {
                guard case .linear(let units, let bias) = $0 else { return nil }
                return ["units": .int(units), "bias": .bool(bias)]
            }),
        LayerPlugin(
            PluginSpec(
                "conv2d",
                parameters: [
                    ParameterSpec("channels", .int, range: .atLeast(1), required: true),
                    ParameterSpec("kernel_size", .int, range: .atLeast(1), default: .int(3)),
                    ParameterSpec("stride", .int, range: .atLeast(1), default: .int(1)),
                    ParameterSpec("padding", .int, range: .nonNegative, default: .int(0)),
                    biasParameter,
                ]),
            make: { p in
                .conv2d(
                    outChannels: p.int("channels"), kernel: p.int("kernel_size"), stride: p.int("stride"),
                    padding: p.int("padding"), bias: p.optionalBool("bias") ?? true)
            },
            describe: {
                guard case .conv2d(let channels, let kernel, let stride, let padding, let bias) = $0 else { return nil }
                return [
                    "channels": .int(channels), "kernel_size": .int(kernel), "stride": .int(stride),
                    "padding": .int(padding), "bias": .bool(bias),
                ]
            }),
        .pooling("max-pool2d", make: { .maxPool2d(kernel: $0, stride: $1) }) {
            guard case .maxPool2d(let size, let stride) = $0 else { return nil }
            return (size, stride)
        },
        .pooling("avg-pool2d", make: { .avgPool2d(kernel: $0, stride: $1) }) {
            guard case .avgPool2d(let size, let stride) = $0 else { return nil }
            return (size, stride)
        },
        .fixed("flatten", .flatten), .fixed("tanh", .tanh), .fixed("relu", .relu), .fixed("sigmoid", .sigmoid),
        LayerPlugin(
            PluginSpec(
                "tempered-sigmoid", "s * sigmoid(T x) - o (Papernot et al. 2021)",
                parameters: [
                    ParameterSpec(
                        "scale", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6),
                        default: .double(2)),
                    ParameterSpec(
                        "temperature", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6),
                        default: .double(2)),
                    ParameterSpec("offset", .double, range: .closed(-1e6, 1e6), default: .double(1)),
                ]),
            make: { p in
                .temperedSigmoid(
                    scale: Float(p.double("scale")), temperature: Float(p.double("temperature")),
                    offset: Float(p.double("offset")))
            },
            describe: {
                guard case .temperedSigmoid(let scale, let temperature, let offset) = $0 else { return nil }
                return ["scale": number(scale), "temperature": number(temperature), "offset": number(offset)]
            }),
        LayerPlugin(
            PluginSpec(
                "group-norm",
                parameters: [
                    ParameterSpec("groups", .int, range: .atLeast(1), required: true), epsParameter,
                    ParameterSpec("affine", .bool, "default true: a learned scale and shift per channel"),
                ]),
            make: {
                .groupNorm(
                    groups: $0.int("groups"), eps: $0.optionalDouble("eps").map(Float.init) ?? 1e-5,
                    affine: $0.optionalBool("affine") ?? true)
            },
            describe: {
                guard case .groupNorm(let groups, let eps, let affine) = $0 else { return nil }
                var parameters: [String: ConfigValue] = ["groups": .int(groups), "eps": number(eps)]
                if !affine { parameters["affine"] = .bool(false) }
                return parameters
            }),
        LayerPlugin(
            PluginSpec(
                "layer-norm", "normalise each example over its last `axes` axes",
                parameters: [ParameterSpec("axes", .int, range: .atLeast(1), default: .int(1)), epsParameter]),
            make: { .layerNorm(trailingAxes: $0.int("axes"), eps: $0.optionalDouble("eps").map(Float.init) ?? 1e-5) },
            describe: {
                guard case .layerNorm(let axes, let eps) = $0 else { return nil }
                return ["axes": .int(axes), "eps": number(eps)]
            }),
        LayerPlugin(
            PluginSpec("dropout", parameters: [ParameterSpec("rate", .double, range: .halfOpenUnit, required: true)]),
            make: { .dropout(rate: Float($0.double("rate"))) },
            describe: {
                guard case .dropout(let rate) = $0 else { return nil }
                return ["rate": number(rate)]
            }),
    ], refused: [LayerRegistry.batchNormType: batchNormReason, "batchnorm": batchNormReason])

extension LayerPlugin {
    /// A pooling layer type: a square window of `size`, moved by `stride` (default: `size`);
    /// `match` gives the size and stride of a spec of this type.
    static func pooling(
        _ name: String, make: @escaping @Sendable (_ size: Int, _ stride: Int?) -> LayerSpec,
        match: @escaping @Sendable (LayerSpec) -> (size: Int, stride: Int?)?
    ) -> LayerPlugin {
        LayerPlugin(
            PluginSpec(
                name,
                parameters: [
                    ParameterSpec("size", .int, range: .atLeast(1), default: .int(2)),
                    ParameterSpec("stride", .int, range: .atLeast(1), "default size"),
                ]),
            make: { make($0.int("size"), $0.optionalInt("stride")) },
            describe: {
                guard let (size, stride) = match($0) else { return nil }
                var parameters: [String: ConfigValue] = ["size": .int(size)]
                if let stride { parameters["stride"] = .int(stride) }
                return parameters
            })
    }
}

extension LayerSpec {
    /// The logistic sigmoid `1 / (1 + e^-x)`: a tempered sigmoid of scale 1, temperature 1, offset 0.
    public static let sigmoid = LayerSpec.temperedSigmoid(scale: 1, temperature: 1, offset: 0)
}

// MARK: - Named models

/// What a named model is built for: one example's shape and the number of classes.
public struct ModelInput: Equatable, Sendable {
    public var exampleShape: Shape
    public var classes: Int

    public init(exampleShape: Shape, classes: Int) {
        self.exampleShape = exampleShape
        self.classes = classes
    }
}

/// A model known by name: its parameter schema (one default each) and the layers it makes.
public struct ModelPlugin: Plugin {
    public var spec: PluginSpec
    public var make: @Sendable (Parameters, ModelInput) -> [LayerSpec]

    public init(_ spec: PluginSpec, make: @escaping @Sendable (Parameters, ModelInput) -> [LayerSpec]) {
        self.spec = spec
        self.make = make
    }

    /// ``ModelBuilderError/unknownModel(name:valid:)``.
    public static func unknownName(_ name: String, valid: [String]) -> any Error {
        ModelBuilderError.unknownModel(name: name, valid: valid)
    }
}

/// Named models: the one list that `model.name` in configs, `dpkit bench`, the plugin
/// reference and ``ModelBuilder/build(model:input:parameters:registry:seed:)`` read. Input sizes
/// are inferred by ``ModelBuilder`` from the example shape; the `cnn-tanh` models expect
/// `[1, 28, 28]` (MNIST, Fashion-MNIST), where their last convolution block gives 512 features.
public typealias ModelRegistry = Registry<ModelPlugin>

extension Registry where Entry == ModelPlugin {
    /// The models DPKit ships.
    public static var standard: ModelRegistry { standardModels }

    /// The layers of model `name` with `parameters` (defaults filled in) for `input`.
    /// - Throws: ``ModelBuilderError/unknownModel(name:valid:)`` listing the valid names.
    public func specs(
        named name: String, parameters: [String: ConfigValue] = [:], input: ModelInput
    ) throws -> [LayerSpec] {
        let (model, parameters) = try plugin(name, parameters: parameters)
        return model.make(parameters, input)
    }
}

/// The groups of the ScatterNet models' input normalisation (Tramèr & Boneh's `num_groups`;
/// 27 for the 81 channels of J = 2, L = 8 on grey images).
private let scatterGroups = ParameterSpec(
    "groups", .int, range: .atLeast(1), default: .int(27), "groups of the input group-norm (no affine)")

private let standardModels = ModelRegistry(
    kind: "model",
    [
        ModelPlugin(PluginSpec("logistic-regression", "one dense layer and softmax")) { _, input in
            [.flatten, .linear(outputs: input.classes)]
        },
        ModelPlugin(
            PluginSpec(
                "mlp", "dense layers with an activation between them",
                parameters: [
                    ParameterSpec(
                        "hidden_sizes", .intList, range: .atLeast(1), default: .list([.int(128)]),
                        "widths of the hidden layers"),
                    ParameterSpec("activation", .choice(["tanh", "relu", "sigmoid"]), default: .string("tanh")),
                ])
        ) { p, input in
            // The activation is a layer type of the same name.
            let activation = LayerRegistry.standard.layer(p.string("activation")) ?? .tanh
            var specs: [LayerSpec] = input.exampleShape.rank > 1 ? [.flatten] : []
            for h in p.intList("hidden_sizes") { specs += [.linear(outputs: h), activation] }
            return specs + [.linear(outputs: input.classes)]
        },
        ModelPlugin(
            PluginSpec(
                "cnn-tanh",
                "convolutional network with tanh activations (Papernot et al. 2021, tempered sigmoids): conv 16 8x8/2 pad 3, max-pool 2/1, conv 32 4x4/2, max-pool 2/1, dense 32, dense classes"
            )
        ) { _, input in
            ModelPlugin.tanhCNN(firstPadding: 3, classes: input.classes)
        },
        ModelPlugin(
            PluginSpec(
                "cnn-tanh-tramer", "cnn-tanh with the first convolution's padding 2, as Tramer & Boneh 2021 trained it")
        ) { _, input in
            ModelPlugin.tanhCNN(firstPadding: 2, classes: input.classes)
        },
        ModelPlugin(
            PluginSpec(
                "scatternet-linear",
                "Tramer & Boneh 2021 on ScatterNet features (`dataset.features: scattering`): group-norm without affine, dense classes",
                parameters: [scatterGroups])
        ) { p, input in
            [.groupNorm(groups: p.int("groups"), affine: false), .flatten, .linear(outputs: input.classes)]
        },
        ModelPlugin(
            PluginSpec(
                "scatternet-cnn",
                "Tramer & Boneh 2021 CNN on ScatterNet features: group-norm without affine, conv 16 3x3/2 pad 1, tanh, conv 32 3x3/1 pad 1, tanh, dense 32, tanh, dense classes",
                parameters: [scatterGroups])
        ) { p, input in
            [
                .groupNorm(groups: p.int("groups"), affine: false),
                .conv2d(outChannels: 16, kernel: 3, stride: 2, padding: 1), .tanh,
                .conv2d(outChannels: 32, kernel: 3, stride: 1, padding: 1), .tanh,
                .flatten, .linear(outputs: 32), .tanh, .linear(outputs: input.classes),
            ]
        },
    ])

extension ModelPlugin {

    /// The tanh CNN of Papernot et al. 2021 ("Tempered sigmoid activations for deep learning
    /// with differential privacy", AAAI; MNIST / Fashion-MNIST): conv 16 8x8 stride 2, tanh,
    /// max-pool 2 stride 1, conv 32 4x4 stride 2, tanh, max-pool 2 stride 1, flatten, linear
    /// to 32, tanh, linear to the classes.
    ///
    /// On `[1, 28, 28]`: padding 3 gives 14x14 -> 13x13 -> 5x5 -> 4x4, 32 * 4 * 4 = 512
    /// features. Padding 2 (Tramèr & Boneh 2021, "Differentially private learning needs
    /// better features", `cnn-tanh-tramer`) gives 13x13 -> 12x12 -> 5x5 -> 4x4: also 512.
    static func tanhCNN(firstPadding: Int, classes: Int) -> [LayerSpec] {
        [
            .conv2d(outChannels: 16, kernel: 8, stride: 2, padding: firstPadding), .tanh,
            .maxPool2d(kernel: 2, stride: 1),
            .conv2d(outChannels: 32, kernel: 4, stride: 2, padding: 0), .tanh, .maxPool2d(kernel: 2, stride: 1),
            .flatten, .linear(outputs: 32), .tanh, .linear(outputs: classes),
        ]
    }
}
