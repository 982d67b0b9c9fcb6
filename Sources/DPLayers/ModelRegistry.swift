import DPTensor

/// What the named models are parameterised by.
public struct ModelOptions: Codable, Equatable, Sendable {
    /// The number of classes (outputs of the last layer).
    public var classes: Int
    /// Hidden layer widths of `mlp`.
    public var hiddenSizes: [Int]

    public init(classes: Int = 10, hiddenSizes: [Int] = [1000]) {
        self.classes = classes
        self.hiddenSizes = hiddenSizes
    }
}

/// The models known by name. Input sizes are inferred by ``ModelBuilder`` from the example
/// shape; the `cnn-tanh` models expect `[1, 28, 28]` (MNIST, Fashion-MNIST), where their
/// last convolution block gives 512 features.
public enum ModelRegistry {
    public static let models: [String: @Sendable (ModelOptions) -> [LayerSpec]] = [
        "logistic-regression": { o in [.flatten, .linear(outputs: o.classes)] },
        "mlp": { o in [.flatten] + o.hiddenSizes.flatMap { [LayerSpec.linear(outputs: $0), .relu] } + [.linear(outputs: o.classes)] },
        "cnn-tanh": { o in tanhCNN(firstPadding: 3, classes: o.classes) },
        "cnn-tanh-tramer": { o in tanhCNN(firstPadding: 2, classes: o.classes) },
    ]

    /// The valid names, sorted.
    public static var names: [String] { models.keys.sorted() }

    /// - Throws: ``ModelBuilderError/unknownModel(name:valid:)`` listing the valid names.
    public static func specs(named name: String, options: ModelOptions = ModelOptions()) throws -> [LayerSpec] {
        guard let make = models[name] else { throw ModelBuilderError.unknownModel(name: name, valid: names) }
        return make(options)
    }

    /// The tanh CNN of Papernot et al. 2021 ("Tempered sigmoid activations for deep learning
    /// with differential privacy", AAAI; MNIST / Fashion-MNIST): conv 16 8x8 stride 2, tanh,
    /// max-pool 2 stride 1, conv 32 4x4 stride 2, tanh, max-pool 2 stride 1, flatten, linear
    /// to 32, tanh, linear to the classes.
    ///
    /// On `[1, 28, 28]`: padding 3 gives 14x14 -> 13x13 -> 5x5 -> 4x4, 32 * 4 * 4 = 512
    /// features. Padding 2 (Tramèr & Boneh 2021, "Differentially private learning needs
    /// better features", `cnn-tanh-tramer`) gives 13x13 -> 12x12 -> 5x5 -> 4x4: also 512.
    static func tanhCNN(firstPadding: Int, classes: Int) -> [LayerSpec] {
        [.conv2d(outChannels: 16, kernel: 8, stride: 2, padding: firstPadding), .tanh, .maxPool2d(kernel: 2, stride: 1),
         .conv2d(outChannels: 32, kernel: 4, stride: 2, padding: 0), .tanh, .maxPool2d(kernel: 2, stride: 1),
         .flatten, .linear(outputs: 32), .tanh, .linear(outputs: classes)]
    }
}
