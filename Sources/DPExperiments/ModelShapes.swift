import DPData
import DPLayers
import DPTensor
import DPTraining

// Shape inference of a run's model when its config is loaded, from the dataset config alone
// (no data file is read), and the one translation of a `model:` section into DPLayers specs
// that both this check and `TrainingExecutor.buildModel` use: a model that validates builds.
//
// The last layer of a `model.layers` list must be `dense` with `units` equal to the dataset's
// class count. Earlier versions appended a dense layer of `classes` units when the list did
// not end in one; that is gone, because the appended layer was in no config, no hash and no
// manifest (a list ending in `flatten` trained a logistic regression that nothing recorded),
// and because a shape error in it named a layer the user never wrote. More units than
// classes are refused too: the extra logits belong to no class but still take part in the
// softmax and in the predicted class, so the run is not the classifier the table reports;
// it is nearly always a typo.

// MARK: - Examples a dataset config describes

/// The shape of one example and the number of classes, as a dataset config declares them.
struct DeclaredExamples: Equatable {
    var shape: Shape
    var classes: Int
    /// Training and test examples the loader will generate or read, when known from the config.
    var trainCount: Int?
    var testCount: Int?
    /// `dataset `synthetic-shapes` (image_size 8): examples [1, 8, 8], 10 classes`.
    var summary: String
}

/// Sizes of generated data that `TrainingExecutor.loadData` uses when the config gives none.
/// Kept equal to it by `declaredExamplesMatchTheLoaders` (ModelShapeTests).
enum GeneratedDataDefaults {
    static let shapesTrain = 10_000, shapesTest = 2_000
    static let mixtureTrain = 4_000, mixtureTest = 1_000
    /// The most scalars (train and test together) a generated dataset may hold: 2^30 (4 GiB of Float).
    static let maxScalars = 1 << 30
}

/// Fashion-MNIST's fixed sizes.
enum FashionMNISTSizes {
    static let train = 60_000, test = 10_000
}

extension DatasetConfig {
    /// The examples this config describes, without reading data; nil for `csv` (its columns and
    /// labels are in the file, checked when the run loads it) and for datasets DPKit cannot load.
    var declaredExamples: DeclaredExamples? {
        switch name {
        case "fashion-mnist":
            return DeclaredExamples(shape: [1, 28, 28], classes: FashionMNIST.classNames.count,
                                    trainCount: min(trainSize ?? FashionMNISTSizes.train, FashionMNISTSizes.train),
                                    testCount: min(testSize ?? FashionMNISTSizes.test, FashionMNISTSizes.test),
                                    summary: "dataset `fashion-mnist`: examples [1, 28, 28], 10 classes")
        case "synthetic-shapes":
            guard let size = options["image_size"]?.intValue else { return nil }
            let classes = SyntheticData.shapeClassNames.count
            return DeclaredExamples(shape: [1, size, size], classes: classes,
                                    trainCount: trainSize ?? GeneratedDataDefaults.shapesTrain,
                                    testCount: testSize ?? GeneratedDataDefaults.shapesTest,
                                    summary: "dataset `synthetic-shapes` (image_size \(size)): examples [1, \(size), \(size)], \(classes) classes")
        case "gaussian-mixture":
            guard let dimensions = options["dimensions"]?.intValue, let classes = options["classes"]?.intValue else { return nil }
            // The loader draws ceil(size / classes) examples per class, then keeps the first `size`.
            func drawn(_ n: Int) -> Int { (n + classes - 1) / classes * classes }
            return DeclaredExamples(shape: [dimensions], classes: classes,
                                    trainCount: drawn(trainSize ?? GeneratedDataDefaults.mixtureTrain),
                                    testCount: drawn(testSize ?? GeneratedDataDefaults.mixtureTest),
                                    summary: "dataset `gaussian-mixture` (dimensions \(dimensions), classes \(classes)): examples [\(dimensions)], \(classes) classes")
        default:
            return nil
        }
    }
}

// MARK: - Model specs

extension ModelConfig {
    /// The DPLayers specs of this model for examples of `inputShape` and `classes` classes: the
    /// list `TrainingExecutor.buildModel` builds and config validation infers shapes through.
    /// - Throws: ``ModelBuilderError/unknownModel(name:valid:)`` for a registry name DPLayers cannot build.
    func layerSpecs(inputShape: Shape, classes: Int) throws -> [DPLayers.LayerSpec] {
        if let layers { return try layers.map(Self.layerSpec) }
        let name = self.name ?? "mlp"
        switch name {
        case "mlp":
            let hidden = options["hidden_sizes"]?.intListValue ?? [128]
            let activation = try Self.activation(options["activation"]?.stringValue ?? "tanh")
            var specs: [DPLayers.LayerSpec] = inputShape.rank > 1 ? [.flatten] : []
            for h in hidden {
                specs.append(.linear(outputs: h, bias: true))
                specs.append(activation)
            }
            specs.append(.linear(outputs: classes, bias: true))
            return specs
        default:
            return try ModelRegistry.specs(named: name, options: ModelOptions(classes: classes))
        }
    }

    static func activation(_ name: String) throws -> DPLayers.LayerSpec {
        switch name {
        case "tanh": return .tanh
        case "relu": return .relu
        case "sigmoid": return .temperedSigmoid(scale: 1, temperature: 1, offset: 0)
        default: throw TrainingError.invalidSetting("model.options.activation: `\(name)`; allowed: tanh, relu, sigmoid")
        }
    }

    /// The config's layer spec (registry names and validated parameters) as a DPLayers spec.
    static func layerSpec(_ l: LayerSpec) throws -> DPLayers.LayerSpec {
        let o = l.options
        switch l.type {
        case "dense": return .linear(outputs: o["units"]?.intValue ?? 1, bias: true)
        case "conv2d":
            return .conv2d(outChannels: o["channels"]?.intValue ?? 1, kernel: o["kernel_size"]?.intValue ?? 3,
                           stride: o["stride"]?.intValue ?? 1, padding: o["padding"]?.intValue ?? 0, bias: true)
        case "max-pool2d": return .maxPool2d(kernel: o["size"]?.intValue ?? 2, stride: o["stride"]?.intValue)
        case "avg-pool2d": return .avgPool2d(kernel: o["size"]?.intValue ?? 2, stride: o["stride"]?.intValue)
        case "flatten": return .flatten
        case "tanh", "relu", "sigmoid": return try activation(l.type)
        case "tempered-sigmoid":
            return .temperedSigmoid(scale: Float(o["scale"]?.doubleValue ?? 2), temperature: Float(o["temperature"]?.doubleValue ?? 2),
                                    offset: Float(o["offset"]?.doubleValue ?? 1))
        case "group-norm": return .groupNorm(groups: o["groups"]?.intValue ?? 1, eps: 1e-5)
        case "layer-norm": return .layerNorm(trailingAxes: o["axes"]?.intValue ?? 1, eps: 1e-5)
        case "dropout": return .dropout(rate: Float(o["rate"]?.doubleValue ?? 0.5))
        default: throw TrainingError.invalidSetting("model.layers: no layer `\(l.type)`")
        }
    }

    /// The layer types ``layerSpec(_:)`` translates.
    static let buildableLayerTypes: Set<String> = [
        "dense", "conv2d", "max-pool2d", "avg-pool2d", "flatten", "tanh", "relu", "sigmoid", "tempered-sigmoid",
        "group-norm", "layer-norm", "dropout",
    ]

    /// Whether DPKit can build this model: a `layers` list of types ``layerSpec(_:)`` knows, or
    /// a name ``layerSpecs(inputShape:classes:)`` knows (not a plugin registered at run time).
    var isBuildable: Bool {
        if let layers { return layers.allSatisfy { Self.buildableLayerTypes.contains($0.type) } }
        return name == "mlp" || ModelRegistry.models[name ?? "mlp"] != nil
    }

    /// The config key path of layer `index` of the built model: `model.layers[3]` for a
    /// `layers` list, `model.name` for a registry model (whose layers the config does not list).
    func path(ofLayer index: Int?) -> String {
        guard layers != nil else { return "model.name" }
        return index.map { "model.layers[\($0)]" } ?? "model.layers"
    }

    /// Infers every layer's shape on `examples` and checks the logits: one vector of `classes`
    /// values from a last `dense` layer. Returns the specs and the inferred layers.
    /// - Throws: ``ModelShapeError`` naming the layer's key path, the shapes and the fix.
    func checkedLayerSpecs(inputShape: Shape, classes: Int, dataset: String) throws
        -> (specs: [DPLayers.LayerSpec], layers: [InferredLayer])
    {
        let specs = try layerSpecs(inputShape: inputShape, classes: classes)
        do {
            let inferred = try ModelBuilder.inferClassifierShapes(specs: specs, inputShape: inputShape, classes: classes)
            return (specs, inferred)
        } catch let error as ModelBuilderError {
            throw ModelShapeError(path: path(ofLayer: error.index),
                                  message: message(for: error, specs: specs, inputShape: inputShape, classes: classes, dataset: dataset))
        }
    }

    /// The config-facing message of a shape inference error: the layer (as written in the
    /// config), what is wrong, the fix, and the shapes up to it.
    func message(for error: ModelBuilderError, specs: [DPLayers.LayerSpec], inputShape: Shape, classes: Int,
                 dataset: String) -> String {
        var text: String
        let layerName: String = {
            guard let i = error.index else { return "" }
            if let layers, i < layers.count { return "`\(layers[i].type)`" }
            return i < specs.count ? "layer \(i) of model `\(name ?? "mlp")` (\(specs[i]))" : ""
        }()
        switch error {
        case let .classifierOutput(_, _, isLinear, shape, _):
            let head = layers != nil ? "`{type: dense, units: \(classes)}`" : "a dense layer of \(classes) units"
            if !isLinear {
                text = "\(layerName) is the last layer, but the last layer gives the logits, one per class: end the model with \(head) (this layer gives \(shape) per example)"
            } else if shape.count != 1 {
                text = "\(layerName) gives \(shape) per example, but the logits must be one vector of \(classes) values (one per class): add `{type: flatten}` before it"
            } else if shape[0] < classes {
                text = "\(layerName) gives \(shape[0]) logits for \(classes) classes: the labels \(shape[0])..<\(classes) would have no logit; set `units: \(classes)`"
            } else {
                text = "\(layerName) gives \(shape[0]) logits for \(classes) classes: the logits \(classes)..<\(shape[0]) would belong to no class yet take part in the softmax and in the predicted class; set `units: \(classes)`"
            }
        case .noLayers:
            text = "the model has no layers"
        default:
            text = layerName.isEmpty ? error.reason : "\(layerName) \(error.reason)"
        }
        // The shapes the layers before it produce.
        if let index = error.index, index > 0,
           let before = try? ModelBuilder.inferShapes(specs: Array(specs.prefix(index)), inputShape: inputShape) {
            let chain = ([inputShape] + before.map(\.outputShape)).map(\.description).joined(separator: " -> ")
            text += "; shapes: \(chain)"
        }
        return text + " (\(dataset))"
    }
}

/// A model that does not fit its data, at the key path of the layer (`model.layers[3]`).
struct ModelShapeError: Error, CustomStringConvertible {
    var path: String
    var message: String
    var description: String { "\(path): \(message)" }
}

// MARK: - Validation at config load

extension RunConfig {
    /// Checks that the run's data can be generated and its model built, from the config alone.
    ///
    /// Datasets with a declared example shape (everything but `csv`) get full shape inference
    /// through the model, the logits check and the size limits; `csv` gets the checks that do
    /// not depend on its columns (examples are vectors, so no convolution or pooling; the last
    /// layer is dense), and the rest when the run loads the file (`TrainingExecutor.buildModel`).
    static func checkShapes(dataset: DatasetConfig, model: ModelConfig, context: ParseContext) throws {
        func error(_ path: String, _ message: String) -> ConfigError {
            var error = context.error(path, message)
            // A value set by a sweep or include entry elsewhere in the dataset or model (such
            // as `dataset.options.image_size`) changes the shapes too: say which.
            let notes = context.origins.filter { (key, _) in
                (key.hasPrefix("dataset") || key.hasPrefix("model")) && !(path == key || path.hasPrefix(key + ".") || path.hasPrefix(key + "["))
            }.sorted { $0.key < $1.key }
            if !notes.isEmpty {
                error.message += " (with " + notes.map { "\($0.key) from \($0.value)" }.joined(separator: ", ") + ")"
            }
            return error
        }

        // Generated data must fit in memory.
        if let declared = dataset.declaredExamples {
            if dataset.name == "fashion-mnist" {
                if let n = dataset.trainSize, n > FashionMNISTSizes.train {
                    throw error("dataset.train_size", "\(n) exceeds the \(FashionMNISTSizes.train) training images of fashion-mnist; allowed: 1...\(FashionMNISTSizes.train)")
                }
                if let n = dataset.testSize, n > FashionMNISTSizes.test {
                    throw error("dataset.test_size", "\(n) exceeds the \(FashionMNISTSizes.test) test images of fashion-mnist; allowed: 1...\(FashionMNISTSizes.test)")
                }
            } else {
                let perExample = declared.shape.scalarCount
                let examples = (declared.trainCount ?? 0) + (declared.testCount ?? 0)
                let (scalars, overflow) = perExample.multipliedReportingOverflow(by: examples)
                if overflow || scalars > GeneratedDataDefaults.maxScalars {
                    let key = dataset.trainSize != nil ? "dataset.train_size" : "dataset.options"
                    throw error(key, "\(examples) generated examples of shape \(declared.shape) would hold \(overflow ? "more than 2^63" : String(scalars)) scalars; the limit is \(GeneratedDataDefaults.maxScalars) (4 GiB of Float): lower train_size or test_size, or the example size")
                }
            }
            if case .fixed(let mean, _) = dataset.normalize {
                let channels = declared.shape.rank == 3 ? declared.shape[0] : declared.shape.scalarCount
                if mean.count != 1 && mean.count != channels {
                    throw error("dataset.normalize_options.mean", "has \(mean.count) values for examples of shape \(declared.shape); give one value, or one per channel (\(channels))")
                }
            }
        }

        guard model.isBuildable else { return }  // a plugin registered at run time: its executor checks it
        if let declared = dataset.declaredExamples {
            do {
                _ = try model.checkedLayerSpecs(inputShape: declared.shape, classes: declared.classes, dataset: declared.summary)
            } catch let e as ModelShapeError {
                throw error(e.path, e.message)
            } catch let e as ModelBuilderError {
                throw error("model.name", e.description)
            }
            return
        }
        guard dataset.name == "csv" else { return }
        // csv: examples are vectors [features]; the feature and class counts come with the file.
        let specs: [DPLayers.LayerSpec]
        do {
            specs = try model.layerSpecs(inputShape: [1], classes: 2)
        } catch let e as ModelBuilderError {
            throw error("model.name", e.description)
        }
        for (i, spec) in specs.enumerated() {
            let what: String?
            switch spec {
            case .conv2d, .maxPool2d, .avgPool2d:
                what = "needs images [C, H, W], but csv examples are vectors [features]"
            case .layerNorm(let axes, _) where axes > 1:
                what = "normalises over the last \(axes) axes, but csv examples are vectors [features] (one axis)"
            default:
                what = nil
            }
            if let what {
                let name = model.layers.map { "`\($0[i].type)`" } ?? "layer \(i) of model `\(model.name ?? "mlp")` (\(spec))"
                throw error(model.path(ofLayer: i), "\(name) \(what) (dataset `csv`)")
            }
        }
        if let layers = model.layers, let last = layers.last, last.type != "dense" {
            throw error(model.path(ofLayer: layers.count - 1),
                        "`\(last.type)` is the last layer, but the last layer gives the logits, one per class: end the model with `{type: dense, units: <classes>}` (the class count of the csv file; dataset `csv`)")
        }
    }
}
