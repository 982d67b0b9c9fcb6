import DPCrypto
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// Test loss and accuracy of a model exported by a run (`models/<run_id>.safetensors`), on
/// the test set of the dataset it was trained on (rebuilt from the metadata, generated data
/// from the run's seed) or of another dataset, with the input scaling it was trained with.
public enum ModelEvaluation {
    /// Metadata key of the dataset section (name, options, sizes, path) as JSON.
    public static let datasetKey = "dpkit.dataset"
    /// Metadata key of a transfer run's public part (`kind` and the `statement` of what the
    /// epsilon covers) as JSON; absent when the run had no `public` part.
    public static let publicKey = "dpkit.public"

    public struct Result: Sendable {
        public var runID: String?
        public var dataset: String
        public var examples: Int
        public var loss: Double
        public var accuracy: Double
        public var epsilon: String?
        /// The public part's kind (`subset`, `classes`, `dataset`), when the model was
        /// pretrained or trained with one: the epsilon covers only the private part.
        public var publicKind: String?
        /// What the epsilon covers, when there was a public part.
        public var publicStatement: String?
    }

    /// A model exported by a run, with what is needed to feed it: its input scaling and the raw
    /// (unscaled) test set of its dataset.
    public struct LoadedModel {
        public var model: Sequential
        public var metadata: [String: String]
        public var transform: InputTransform
        /// The test set before the input scaling (pixels in [0, 1] for images).
        public var rawTest: Dataset
        public var datasetName: String
    }

    /// Reads `file`, rebuilds the model and loads the raw test set of its dataset.
    /// - Parameters:
    ///   - file: a safetensors file written by `dpkit run` (or its envelope, `.safetensors.dpkenc`).
    ///   - dataset: another dataset's name (its default options), instead of the run's.
    ///   - keyPath: the private key (or passphrase file) that opens an encrypted model and the
    ///     encrypted files of its dataset, in memory.
    /// - Throws: ``OutputError`` naming the file and the problem.
    public static func load(file: URL, dataset override: String? = nil, keyPath: String? = nil) throws -> LoadedModel {
        guard let stored = FileManager.default.contents(atPath: file.path) else {
            throw OutputError(
                "cannot read \(file.path): \(FileManager.default.fileExists(atPath: file.path) ? "permission denied or not a file" : "no such file")"
            )
        }
        let bytes = try openSealed(stored, path: file.path, key: keyPath.map(DecryptionKey.load), what: "model")
        let model: Sequential, metadata: [String: String]
        do { (model, metadata) = try Sequential.fromSafetensors(bytes) } catch {
            throw OutputError("\(file.path): \(error)")
        }
        let transform: InputTransform
        if let t = metadata["input_transform"] {
            guard let decoded = try? JSONDecoder().decode(InputTransform.self, from: Data(t.utf8)) else {
                throw OutputError("\(file.path): unreadable input_transform in the metadata")
            }
            transform = decoded
        } else {
            transform = .none
        }
        var config: DatasetConfig
        if let name = override {
            config = DatasetConfig(name: name, path: nil, normalize: .none, trainSize: nil, testSize: nil, options: [:])
        } else {
            guard let text = metadata[datasetKey], let tree = try? ConfigValue(jsonData: Data(text.utf8)),
                case .string(let name)? = tree["name"]
            else {
                throw OutputError("\(file.path): no dataset in the metadata; name one with --dataset")
            }
            var options: [String: ConfigValue] = [:]
            if case .map(let pairs)? = tree["options"] { for (k, v) in pairs { options[k] = v } }
            config = DatasetConfig(
                name: name, path: tree["path"]?.stringValue, normalize: .none,
                trainSize: tree["train_size"].flatMap(\.intValue), testSize: tree["test_size"].flatMap(\.intValue),
                options: options, features: DatasetFeatures(metadata: tree["features"]))
        }
        config.decryptionKey = keyPath
        // Evaluation reads the test set only; a small training size keeps generation cheap.
        config.trainSize = min(config.trainSize ?? 1, 1)
        var split = try TrainingExecutor().loadData(config, seed: Int(metadata["seed"] ?? "0") ?? 0)
        // A model of a `public.classes` run knows the private classes only (relabelled 0..<k).
        if override == nil, let text = metadata[datasetKey], let tree = try? ConfigValue(jsonData: Data(text.utf8)),
            let classes = tree["private_classes"]?.intListValue, !classes.isEmpty,
            classes.allSatisfy({ $0 >= 0 && $0 < split.test.classCount })
        {
            split.test = PublicSplit.relabel(split.test, keeping: classes, name: split.test.name)
        }
        let expected = model.architecture.map { Shape($0.inputShape) }
        guard expected == nil || expected == split.test.exampleShape else {
            throw OutputError(
                "\(file.path) expects examples of shape \(expected!.array); \(config.name) has \(split.test.exampleShape.array)"
            )
        }
        let outputs = model.outputShape(forExampleShape: split.test.exampleShape)
        guard outputs.array == [split.test.classCount] else {
            throw OutputError(
                "\(file.path) has \(outputs.array) outputs; \(config.name) has \(split.test.classCount) classes")
        }
        return LoadedModel(
            model: model, metadata: metadata, transform: transform, rawTest: split.test, datasetName: config.name)
    }

    /// Test loss and accuracy of the model in `file` (see ``load(file:dataset:keyPath:)``).
    public static func evaluate(file: URL, dataset override: String? = nil, keyPath: String? = nil) throws -> Result {
        let loaded = try load(file: file, dataset: override, keyPath: keyPath)
        var test = loaded.rawTest
        loaded.transform.apply(to: &test)
        let (loss, accuracy) = Evaluation.evaluate(model: loaded.model, dataset: test)
        let publicPart = loaded.metadata[publicKey].flatMap { try? ConfigValue(jsonData: Data($0.utf8)) }
        return Result(
            runID: loaded.metadata["run_id"], dataset: loaded.datasetName, examples: test.count, loss: loss,
            accuracy: accuracy, epsilon: loaded.metadata["epsilon"], publicKind: publicPart?["kind"]?.stringValue,
            publicStatement: publicPart?["statement"]?.stringValue)
    }
}
