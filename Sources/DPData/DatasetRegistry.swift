import DPCrypto
import DPSchema
import DPTensor
import Foundation

// MARK: - Requests and declared examples

/// What a config (or a caller) asks of a dataset: the plugin's parameters with defaults filled
/// in, the file or folder, how many examples to keep, and the seed of generated data.
public struct DatasetRequest: Sendable {
    public var parameters: Parameters
    /// File or folder; required by datasets whose spec has `requiresPath` (csv).
    public var path: String?
    /// Keep only the first `trainSize` training examples (all when nil; generated data has its
    /// own default size).
    public var trainSize: Int?
    public var testSize: Int?
    /// Seed of generated data (the run's seed).
    public var seed: UInt64
    /// Opens the dataset's files that are DPKit envelopes (decrypted in memory); only for
    /// datasets that read files (``DatasetPlugin/readsFiles``).
    public var decryptionKey: DecryptionKey?

    public init(
        parameters: Parameters, path: String? = nil, trainSize: Int? = nil, testSize: Int? = nil, seed: UInt64 = 0,
        decryptionKey: DecryptionKey? = nil
    ) {
        self.parameters = parameters
        self.path = path
        self.trainSize = trainSize
        self.testSize = testSize
        self.seed = seed
        self.decryptionKey = decryptionKey
    }
}

/// The shape of one example, the number of classes and the sizes, as a request declares them
/// (no data read).
public struct DeclaredExamples: Equatable, Sendable {
    public var shape: Shape
    public var classes: Int
    /// Training and test examples the loader will generate or read.
    public var trainCount: Int
    public var testCount: Int
    /// The most training and test examples there are, for datasets of fixed files
    /// (fashion-mnist); nil for generated data.
    public var available: (train: Int, test: Int)?
    /// `dataset `synthetic-shapes` (image_size 8): examples [1, 8, 8], 10 classes`.
    public var summary: String

    public init(
        shape: Shape, classes: Int, trainCount: Int, testCount: Int, available: (train: Int, test: Int)? = nil,
        summary: String
    ) {
        self.shape = shape
        self.classes = classes
        self.trainCount = trainCount
        self.testCount = testCount
        self.available = available
        self.summary = summary
    }

    public static func == (a: DeclaredExamples, b: DeclaredExamples) -> Bool {
        a.shape == b.shape && a.classes == b.classes && a.trainCount == b.trainCount && a.testCount == b.testCount
            && a.available?.train == b.available?.train && a.available?.test == b.available?.test
            && a.summary == b.summary
    }
}

// MARK: - Plugins

/// A dataset known by name: its parameter schema, what it declares without reading data, its
/// training-set size and its loader. Registered once, in ``DatasetRegistry/standard`` (or with
/// ``DatasetRegistry/register(_:)``); configs, the CLI and the docs read that registry.
public struct DatasetPlugin: Plugin {
    public var spec: PluginSpec
    /// The examples, from the request alone; nil when only the file knows them (csv).
    public var declare: @Sendable (DatasetRequest) -> DeclaredExamples?
    /// The number of training examples ``load`` gives (after `trainSize` and any hold-out),
    /// counted without loading the examples where possible.
    public var trainingSetSize: @Sendable (DatasetRequest) throws -> Int
    /// The training and test sets before `trainSize` and `testSize` are applied (the registry
    /// applies them).
    public var load: @Sendable (DatasetRequest) throws -> TrainTestSplit
    /// True when the data comes from files, which may then be DPKit envelopes
    /// (`dataset.decryption_key`); false for generated data.
    public var readsFiles: Bool

    /// ``DataError/unknownDataset(name:valid:)``.
    public static func unknownName(_ name: String, valid: [String]) -> any Error {
        DataError.unknownDataset(name: name, valid: valid)
    }

    /// A dataset; `trainingSetSize` defaults to the declared count, else the loaded count.
    public init(
        _ spec: PluginSpec,
        readsFiles: Bool = false,
        declare: @escaping @Sendable (DatasetRequest) -> DeclaredExamples? = { _ in nil },
        trainingSetSize: (@Sendable (DatasetRequest) throws -> Int)? = nil,
        load: @escaping @Sendable (DatasetRequest) throws -> TrainTestSplit
    ) {
        self.spec = spec
        self.readsFiles = readsFiles
        self.declare = declare
        self.load = load
        self.trainingSetSize =
            trainingSetSize ?? { request in
                if let declared = declare(request) { return declared.trainCount }
                let split = try load(request)
                return min(request.trainSize ?? split.train.count, split.train.count)
            }
    }
}

// MARK: - Registry

/// Datasets by name: the one list that `dataset.name` in configs, the plugin reference in
/// docs/experiments.md and ``Registry/load(_:)`` read.
public typealias DatasetRegistry = Registry<DatasetPlugin>

extension Registry where Entry == DatasetPlugin {
    /// The datasets DPKit ships.
    public static var standard: DatasetRegistry { standardDatasets }

    /// A request for dataset `name` with `parameters` (defaults filled in from its schema).
    /// - Throws: ``DataError/unknownDataset(name:valid:)`` listing the valid names.
    public func request(
        _ name: String, parameters: [String: ConfigValue] = [:], path: String? = nil,
        trainSize: Int? = nil, testSize: Int? = nil, seed: UInt64 = 0, decryptionKey: DecryptionKey? = nil
    ) throws -> DatasetRequest {
        DatasetRequest(
            parameters: try plugin(name, parameters: parameters).parameters, path: path, trainSize: trainSize,
            testSize: testSize, seed: seed, decryptionKey: decryptionKey)
    }

    /// Loads the dataset of `request` and keeps the first `trainSize` and `testSize` examples.
    public func load(_ request: DatasetRequest) throws -> TrainTestSplit {
        var split = try plugin(request.parameters.plugin.name).load(request)
        if let n = request.trainSize, n < split.train.count { split.train = split.train.subset(Array(0..<n)) }
        if let n = request.testSize, n < split.test.count { split.test = split.test.subset(Array(0..<n)) }
        return split
    }

    /// The examples `request` declares, without reading data (nil for csv).
    public func declaredExamples(_ request: DatasetRequest) throws -> DeclaredExamples? {
        try plugin(request.parameters.plugin.name).declare(request)
    }

    /// The number of training examples `load(request)` gives.
    public func trainingSetSize(_ request: DatasetRequest) throws -> Int {
        try plugin(request.parameters.plugin.name).trainingSetSize(request)
    }
}

private let standardDatasets = DatasetRegistry(
    kind: "dataset", [.fashionMNIST, .syntheticShapes, .gaussianMixture, .csv])

// MARK: - The standard datasets

extension DatasetPlugin {
    /// Fashion-MNIST from its four IDX files.
    public static let fashionMNIST = DatasetPlugin(
        PluginSpec(
            "fashion-mnist",
            "Fashion-MNIST 28x28 grey images, 10 classes (IDX files; `path` is their directory, default: the Debian package's)"
        ),
        readsFiles: true,
        declare: { r in
            DeclaredExamples(
                shape: [1, 28, 28], classes: FashionMNIST.classNames.count,
                trainCount: min(r.trainSize ?? FashionMNIST.trainCount, FashionMNIST.trainCount),
                testCount: min(r.testSize ?? FashionMNIST.testCount, FashionMNIST.testCount),
                available: (FashionMNIST.trainCount, FashionMNIST.testCount),
                summary: "dataset `fashion-mnist`: examples [1, 28, 28], 10 classes")
        },
        load: { r in
            TrainTestSplit(
                try FashionMNIST.load(directory: r.path ?? FashionMNIST.defaultDirectory, key: r.decryptionKey))
        })

    /// Sizes of generated data when the request gives none.
    public enum GeneratedSizes {
        public static let shapesTrain = 10_000, shapesTest = 2_000
        public static let mixtureTrain = 4_000, mixtureTest = 1_000
    }

    /// Images of simple shapes (``SyntheticData/shapes(count:size:seed:part:noise:)``).
    public static let syntheticShapes = DatasetPlugin(
        PluginSpec(
            "synthetic-shapes", "generated images of simple shapes, one class per shape",
            parameters: [
                ParameterSpec(
                    "image_size", .int, range: .closed(8, 1024), default: .int(28), "side of the square image in pixels"
                ),
                ParameterSpec(
                    "noise", .double, range: .closed(0, 10), default: .double(0.1), "standard deviation of pixel noise"),
            ]),
        declare: { r in
            let size = r.parameters.int("image_size")
            let classes = SyntheticData.shapeClassNames.count
            return DeclaredExamples(
                shape: [1, size, size], classes: classes,
                trainCount: r.trainSize ?? GeneratedSizes.shapesTrain,
                testCount: r.testSize ?? GeneratedSizes.shapesTest,
                summary:
                    "dataset `synthetic-shapes` (image_size \(size)): examples [1, \(size), \(size)], \(classes) classes"
            )
        },
        load: { r in
            let size = r.parameters.int("image_size"), noise = Float(r.parameters.double("noise"))
            return TrainTestSplit(
                train: SyntheticData.shapes(
                    count: r.trainSize ?? GeneratedSizes.shapesTrain, size: size, seed: r.seed,
                    part: .train, noise: noise),
                test: SyntheticData.shapes(
                    count: r.testSize ?? GeneratedSizes.shapesTest, size: size, seed: r.seed,
                    part: .test, noise: noise))
        })

    /// One Gaussian per class (``SyntheticData/gaussianMixture(classes:dimensions:examplesPerClass:separation:seed:part:)``);
    /// `ceil(size / classes)` examples per class are drawn, so the count is rounded up to a multiple of the classes.
    public static let gaussianMixture = DatasetPlugin(
        PluginSpec(
            "gaussian-mixture", "points from one Gaussian per class",
            parameters: [
                ParameterSpec("dimensions", .int, range: .closed(1, 1_000_000), default: .int(20), "input dimension"),
                ParameterSpec("classes", .int, range: .closed(2, 100_000), default: .int(2), "number of classes"),
                ParameterSpec(
                    "separation", .double, range: ValueRange(lower: 0, lowerInclusive: false, upper: 1e6),
                    default: .double(2.0), "distance between class means in units of the standard deviation"),
            ]),
        declare: { r in
            let dimensions = r.parameters.int("dimensions"), classes = r.parameters.int("classes")
            func drawn(_ n: Int) -> Int { (n + classes - 1) / classes * classes }
            return DeclaredExamples(
                shape: [dimensions], classes: classes,
                trainCount: drawn(r.trainSize ?? GeneratedSizes.mixtureTrain),
                testCount: drawn(r.testSize ?? GeneratedSizes.mixtureTest),
                summary:
                    "dataset `gaussian-mixture` (dimensions \(dimensions), classes \(classes)): examples [\(dimensions)], \(classes) classes"
            )
        },
        load: { r in
            let classes = r.parameters.int("classes"), dimensions = r.parameters.int("dimensions")
            let separation = Float(r.parameters.double("separation"))
            func perClass(_ n: Int) -> Int { (n + classes - 1) / classes }
            return TrainTestSplit(
                train: SyntheticData.gaussianMixture(
                    classes: classes, dimensions: dimensions,
                    examplesPerClass: perClass(r.trainSize ?? GeneratedSizes.mixtureTrain),
                    separation: separation, seed: r.seed, part: .train),
                test: SyntheticData.gaussianMixture(
                    classes: classes, dimensions: dimensions,
                    examplesPerClass: perClass(r.testSize ?? GeneratedSizes.mixtureTest),
                    separation: separation, seed: r.seed, part: .test))
        })

    /// A numeric CSV file (``CSVDataset``). Without `test_path`, the last `testSize` rows
    /// (default a fifth, at least one) are the test set, in file order.
    public static let csv = DatasetPlugin(
        PluginSpec(
            "csv", "a numeric CSV file, one example per row",
            parameters: [
                ParameterSpec("label_column", .string, default: .string("label"), "name of the integer label column"),
                ParameterSpec(
                    "test_path", .string, "a separate test file; without it the last test_size rows are held out"),
            ], requiresPath: true),
        readsFiles: true,
        trainingSetSize: { r in
            let rows = try CSVDataset.rowCount(try csvPath(r), key: r.decryptionKey)
            let train =
                r.parameters.optionalString("test_path") == nil
                ? rows - heldOut(rows: rows, testSize: r.testSize) : rows
            return min(r.trainSize ?? train, train)
        },
        load: { r in
            let path = try csvPath(r)
            let label = r.parameters.string("label_column")
            let train = try CSVDataset.load(path, labelColumn: label, key: r.decryptionKey)
            if let testPath = r.parameters.optionalString("test_path") {
                let test = try CSVDataset.load(
                    testPath, labelColumn: label, classNames: train.dataset.classNames,
                    featureColumns: train.featureColumns, key: r.decryptionKey)
                return TrainTestSplit(train: train.dataset, test: test.dataset)
            }
            let n = train.dataset.count
            let hold = heldOut(rows: n, testSize: r.testSize)
            return TrainTestSplit(
                train: train.dataset.subset(Array(0..<(n - hold))),
                test: train.dataset.subset(Array((n - hold)..<n)))
        })

    private static func csvPath(_ r: DatasetRequest) throws -> String {
        guard let path = r.path else {
            throw DataError.invalidOption(
                dataset: "csv", key: "path", value: "(missing)", expected: "the path of the CSV file")
        }
        return path
    }

    /// Rows of a single csv file held out for testing: `testSize`, default a fifth (at least one), leaving one.
    private static func heldOut(rows n: Int, testSize: Int?) -> Int { min(n - 1, testSize ?? max(1, n / 5)) }
}
