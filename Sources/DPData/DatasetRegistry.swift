// MARK: - Loaders

/// A dataset the registry can load by name. Adding a dataset is one conforming type and
/// one line in ``DatasetRegistry/standard``.
public protocol DatasetLoader {
    /// The registry name (`"fashion-mnist"`).
    static var name: String { get }
    /// The options the loader reads, with a one-line description (and default) each.
    static var options: [String: String] { get }
    /// Loads the training and test sets.
    static func load(_ options: DatasetOptions) throws -> TrainTestSplit
}

/// String options for a loader, as they come from a config file or the command line, with
/// typed accessors that throw ``DataError/invalidOption(dataset:key:value:expected:)``.
public struct DatasetOptions: Sendable, Equatable {
    public var dataset: String
    public var values: [String: String]

    public init(dataset: String, values: [String: String] = [:]) {
        self.dataset = dataset
        self.values = values
    }

    public func string(_ key: String, default value: String? = nil) throws -> String {
        if let v = values[key] { return v }
        if let v = value { return v }
        throw DataError.invalidOption(dataset: dataset, key: key, value: "(missing)", expected: "a value for \(key)")
    }

    public func int(_ key: String, default value: Int, in range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        guard let s = values[key] else { return value }
        guard let v = Int(s), range.contains(v) else {
            throw DataError.invalidOption(dataset: dataset, key: key, value: s,
                                          expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    public func uint64(_ key: String, default value: UInt64) throws -> UInt64 {
        guard let s = values[key] else { return value }
        guard let v = UInt64(s) else {
            throw DataError.invalidOption(dataset: dataset, key: key, value: s, expected: "a non-negative integer")
        }
        return v
    }

    public func double(_ key: String, default value: Double, in range: ClosedRange<Double> = -Double.infinity...Double.infinity) throws -> Double {
        guard let s = values[key] else { return value }
        guard let v = Double(s), v.isFinite, range.contains(v) else {
            throw DataError.invalidOption(dataset: dataset, key: key, value: s,
                                          expected: "a number in [\(range.lowerBound), \(range.upperBound)]")
        }
        return v
    }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let s = values[key] else { return value }
        switch s.lowercased() {
        case "true", "yes", "1": return true
        case "false", "no", "0": return false
        default: throw DataError.invalidOption(dataset: dataset, key: key, value: s, expected: "true or false")
        }
    }
}

// MARK: - Registry

/// Datasets by name.
///
/// Options every dataset accepts, applied after loading: `standardize` (`none`, `global`,
/// `per-channel`; default `none`), with statistics from the training set only.
public struct DatasetRegistry {
    public private(set) var loaders: [String: any DatasetLoader.Type]

    public init(_ loaders: [any DatasetLoader.Type]) {
        self.loaders = [:]
        for l in loaders { register(l) }
    }

    /// Adds or replaces a loader.
    public mutating func register(_ loader: any DatasetLoader.Type) { loaders[loader.name] = loader }

    /// The datasets DPKit ships.
    public static var standard: DatasetRegistry {
        DatasetRegistry([
            FashionMNISTLoader.self,
            SyntheticShapesLoader.self,
            GaussianMixtureLoader.self,
            CSVLoader.self,
        ])
    }

    /// The registered names, sorted.
    public var names: [String] { loaders.keys.sorted() }

    static let commonOptions = ["standardize": "none | global | per-channel (default none); statistics from the training set"]

    /// Loads the dataset `name` with `options`.
    /// - Throws: ``DataError/unknownDataset(name:valid:)`` listing the valid names,
    ///   ``DataError/unknownOption(dataset:key:valid:)`` for a misspelt option, and the loader's errors.
    public func load(_ name: String, options: [String: String] = [:]) throws -> TrainTestSplit {
        guard let loader = loaders[name] else { throw DataError.unknownDataset(name: name, valid: names) }
        let accepted = loader.options.merging(Self.commonOptions) { a, _ in a }
        for key in options.keys.sorted() where accepted[key] == nil {
            throw DataError.unknownOption(dataset: name, key: key, valid: accepted.keys.sorted())
        }
        let opts = DatasetOptions(dataset: name, values: options)
        var pair = try loader.load(opts)
        switch try opts.string("standardize", default: "none") {
        case "none": break
        case "global": pair.standardize(perChannel: false)
        case "per-channel": pair.standardize(perChannel: true)
        case let other:
            throw DataError.invalidOption(dataset: name, key: "standardize", value: other, expected: "none, global or per-channel")
        }
        return pair
    }
}

// MARK: - The standard loaders

public enum FashionMNISTLoader: DatasetLoader {
    public static let name = "fashion-mnist"
    public static let options = ["directory": "folder of the four IDX files (default \(FashionMNIST.defaultDirectory))"]
    public static func load(_ options: DatasetOptions) throws -> TrainTestSplit {
        TrainTestSplit(try FashionMNIST.load(directory: options.string("directory", default: FashionMNIST.defaultDirectory)))
    }
}

public enum SyntheticShapesLoader: DatasetLoader {
    public static let name = "synthetic-shapes"
    public static let options = [
        "train-count": "training images (default 60000)",
        "test-count": "test images (default 10000)",
        "size": "image side in pixels (default 28)",
        "noise": "pixel noise standard deviation (default 0.25)",
        "seed": "seed (default 0)",
    ]
    public static func load(_ options: DatasetOptions) throws -> TrainTestSplit {
        let seed = try options.uint64("seed", default: 0)
        let size = try options.int("size", default: 28, in: 8...1024)
        let noise = Float(try options.double("noise", default: 0.25, in: 0...10))
        return TrainTestSplit(
            train: SyntheticData.shapes(count: try options.int("train-count", default: 60000), size: size, seed: seed,
                                        part: .train, noise: noise),
            test: SyntheticData.shapes(count: try options.int("test-count", default: 10000), size: size, seed: seed,
                                       part: .test, noise: noise))
    }
}

public enum GaussianMixtureLoader: DatasetLoader {
    public static let name = "gaussian-mixture"
    public static let options = [
        "classes": "number of classes (default 2)",
        "dimensions": "features per example (default 10)",
        "train-per-class": "training examples per class (default 5000)",
        "test-per-class": "test examples per class (default 1000)",
        "separation": "approximate distance between class means, in noise standard deviations (default 3)",
        "seed": "seed (default 0)",
    ]
    public static func load(_ options: DatasetOptions) throws -> TrainTestSplit {
        let classes = try options.int("classes", default: 2, in: 2...100_000)
        let dimensions = try options.int("dimensions", default: 10, in: 1...1_000_000)
        let separation = Float(try options.double("separation", default: 3, in: 0...1e6))
        let seed = try options.uint64("seed", default: 0)
        return TrainTestSplit(
            train: SyntheticData.gaussianMixture(classes: classes, dimensions: dimensions,
                                                 examplesPerClass: try options.int("train-per-class", default: 5000),
                                                 separation: separation, seed: seed, part: .train),
            test: SyntheticData.gaussianMixture(classes: classes, dimensions: dimensions,
                                                examplesPerClass: try options.int("test-per-class", default: 1000),
                                                separation: separation, seed: seed, part: .test))
    }
}

public enum CSVLoader: DatasetLoader {
    public static let name = "csv"
    public static let options = [
        "train": "training CSV file (required)",
        "test": "test CSV file (default: hold out test-fraction of the training file)",
        "label": "name of the label column (default label)",
        "test-fraction": "fraction held out for testing when there is no test file (default 0.2)",
        "seed": "seed of the hold-out split (default 0)",
    ]
    public static func load(_ options: DatasetOptions) throws -> TrainTestSplit {
        let label = try options.string("label", default: "label")
        let trainPath = try options.string("train")
        let (train, columns) = try CSVDataset.load(trainPath, labelColumn: label, name: "csv/train")
        if let testPath = options.values["test"] {
            let (test, _) = try CSVDataset.load(testPath, labelColumn: label, classNames: train.classNames,
                                                featureColumns: columns, name: "csv/test")
            return TrainTestSplit(train: train, test: test)
        }
        let fraction = try options.double("test-fraction", default: 0.2, in: 0...1)
        let parts = train.split(fraction: 1 - fraction, seed: try options.uint64("seed", default: 0))
        var first = parts.first, second = parts.second
        first.name = "csv/train"
        second.name = "csv/test"
        return TrainTestSplit(train: first, test: second)
    }
}
