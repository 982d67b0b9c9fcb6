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

extension LayerSpec {
    var isLinear: Bool { if case .linear = self { return true } else { return false } }
}

// MARK: - Limits

/// The most scalars (train and test together) a generated dataset may hold: 2^30 (4 GiB of Float).
enum GeneratedDataLimits {
    static let maxScalars = 1 << 30
}

// MARK: - Model specs

extension ModelConfig {
    /// The DPLayers specs of this model for examples of `inputShape` and `classes` classes: the
    /// list `TrainingExecutor.buildModel` builds and config validation infers shapes through.
    /// - Throws: ``ModelBuilderError/unknownModel(name:valid:)`` for a name `registry` does not know.
    func layerSpecs(inputShape: Shape, classes: Int, registry: ModelRegistry) throws -> [LayerSpec] {
        if let layers { return layers }
        return try registry.specs(
            named: name ?? "", parameters: options,
            input: ModelInput(exampleShape: inputShape, classes: classes))
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
    func checkedLayerSpecs(
        inputShape: Shape, classes: Int, dataset: String, registry: ModelRegistry = .standard
    ) throws
        -> (specs: [LayerSpec], layers: [InferredLayer])
    {
        let specs = try layerSpecs(inputShape: inputShape, classes: classes, registry: registry)
        do {
            let inferred = try ModelBuilder.inferClassifierShapes(
                specs: specs, inputShape: inputShape, classes: classes)
            return (specs, inferred)
        } catch let error as ModelBuilderError {
            throw ModelShapeError(
                path: path(ofLayer: error.index),
                message: message(for: error, specs: specs, inputShape: inputShape, classes: classes, dataset: dataset))
        }
    }

    /// The config-facing message of a shape inference error: the layer (as written in the
    /// config), what is wrong, the fix, and the shapes up to it.
    func message(
        for error: ModelBuilderError, specs: [LayerSpec], inputShape: Shape, classes: Int,
        dataset: String
    ) -> String {
        var text: String
        let layerName: String = {
            guard let i = error.index else { return "" }
            if layers != nil, i < layerTypes.count { return "`\(layerTypes[i])`" }
            return i < specs.count ? "layer \(i) of model `\(name ?? "")` (\(specs[i]))" : ""
        }()
        switch error {
        case .classifierOutput(_, _, let isLinear, let shape, _):
            let head = layers != nil ? "`{type: dense, units: \(classes)}`" : "a dense layer of \(classes) units"
            if !isLinear {
                text =
                    "\(layerName) is the last layer, but the last layer gives the logits, one per class: end the model with \(head) (this layer gives \(shape) per example)"
            } else if shape.count != 1 {
                text =
                    "\(layerName) gives \(shape) per example, but the logits must be one vector of \(classes) values (one per class): add `{type: flatten}` before it"
            } else if shape[0] < classes {
                text =
                    "\(layerName) gives \(shape[0]) logits for \(classes) classes: the labels \(shape[0])..<\(classes) would have no logit; set `units: \(classes)`"
            } else {
                text =
                    "\(layerName) gives \(shape[0]) logits for \(classes) classes: the logits \(classes)..<\(shape[0]) would belong to no class yet take part in the softmax and in the predicted class; set `units: \(classes)`"
            }
        case .noLayers:
            text = "the model has no layers"
        default:
            text = layerName.isEmpty ? error.reason : "\(layerName) \(error.reason)"
        }
        // The shapes the layers before it produce.
        if let index = error.index, index > 0,
            let before = try? ModelBuilder.inferShapes(specs: Array(specs.prefix(index)), inputShape: inputShape)
        {
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
                (key.hasPrefix("dataset") || key.hasPrefix("model"))
                    && !(path == key || path.hasPrefix(key + ".") || path.hasPrefix(key + "["))
            }.sorted { $0.key < $1.key }
            if !notes.isEmpty {
                error.message += " (with " + notes.map { "\($0.key) from \($0.value)" }.joined(separator: ", ") + ")"
            }
            return error
        }

        let registries = context.registries
        let declaredExamples = try dataset.declaredExamples(registry: registries.datasets)
        // Fixed files hold so many examples; generated data must fit in memory.
        if let declared = declaredExamples {
            if let available = declared.available {
                if let n = dataset.trainSize, n > available.train {
                    throw error(
                        "dataset.train_size",
                        "\(n) exceeds the \(available.train) training examples of \(dataset.name); allowed: 1...\(available.train)"
                    )
                }
                if let n = dataset.testSize, n > available.test {
                    throw error(
                        "dataset.test_size",
                        "\(n) exceeds the \(available.test) test examples of \(dataset.name); allowed: 1...\(available.test)"
                    )
                }
            } else {
                let perExample = declared.shape.scalarCount
                let examples = declared.trainCount + declared.testCount
                let (scalars, overflow) = perExample.multipliedReportingOverflow(by: examples)
                if overflow || scalars > GeneratedDataLimits.maxScalars {
                    let key = dataset.trainSize != nil ? "dataset.train_size" : "dataset.options"
                    throw error(
                        key,
                        "\(examples) generated examples of shape \(declared.shape) would hold \(overflow ? "more than 2^63" : String(scalars)) scalars; the limit is \(GeneratedDataLimits.maxScalars) (4 GiB of Float): lower train_size or test_size, or the example size"
                    )
                }
            }
            if case .fixed(let mean, _) = dataset.normalize {
                let channels = declared.shape.rank == 3 ? declared.shape[0] : declared.shape.scalarCount
                if mean.count != 1 && mean.count != channels {
                    throw error(
                        "dataset.normalize_options.mean",
                        "has \(mean.count) values for examples of shape \(declared.shape); give one value, or one per channel (\(channels))"
                    )
                }
            }
        }

        if let declared = declaredExamples {
            do {
                _ = try model.checkedLayerSpecs(
                    inputShape: declared.shape, classes: declared.classes, dataset: declared.summary,
                    registry: registries.models)
            } catch let e as ModelShapeError {
                throw error(e.path, e.message)
            } catch let e as ModelBuilderError {
                throw error("model.name", e.description)
            }
            return
        }
        // Only the file knows (csv): examples are vectors [features]; the feature and class
        // counts come with the file.
        let specs: [LayerSpec]
        do {
            specs = try model.layerSpecs(inputShape: [1], classes: 2, registry: registries.models)
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
                let name =
                    model.layers != nil
                    ? "`\(model.layerTypes[i])`" : "layer \(i) of model `\(model.name ?? "")` (\(spec))"
                throw error(model.path(ofLayer: i), "\(name) \(what) (dataset `\(dataset.name)`)")
            }
        }
        if let layers = model.layers, let last = layers.last, !last.isLinear {
            throw error(
                model.path(ofLayer: layers.count - 1),
                "`\(model.layerTypes[layers.count - 1])` is the last layer, but the last layer gives the logits, one per class: end the model with `{type: dense, units: <classes>}` (the class count of the data file; dataset `\(dataset.name)`)"
            )
        }
    }
}
