import DPData
import DPTensor
import Foundation

extension Scattering2D {
    /// The scattering features of every image of `dataset` (`[N, C, H, W]`): each channel is
    /// transformed on its own and its coefficients are kept together, giving
    /// `[N, C * channels, outputHeight, outputWidth]` (Kymatio's `[N, C, channels, h, w]`
    /// flattened, as Tramèr & Boneh feed it to their models).
    ///
    /// A fixed transform applied to each example alone: it reads no other example, so it
    /// costs no privacy and changes no neighbouring relation.
    /// - Throws: ``FeatureError/badExampleShape(found:expected:)`` when the examples are not
    ///   `[C, height, width]`.
    public func transform(
        _ dataset: Dataset, threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) throws
        -> Dataset
    {
        let shape = dataset.exampleShape.array
        guard shape.count == 3, shape[1] == height, shape[2] == width else {
            throw FeatureError.badExampleShape(found: shape, expected: "[channels, \(height), \(width)] images")
        }
        let images = dataset.features.withUnsafeBufferPointer { Array($0) }
        let planes = dataset.count * shape[0]
        let out = transform(images, count: planes, threads: threads)
        let features = Tensor(out, shape: [dataset.count, shape[0] * channels, outputHeight, outputWidth])
        return Dataset(
            name: dataset.name, features: features, labels: dataset.labels, classCount: dataset.classCount,
            classNames: dataset.classNames)
    }

    /// The shape of the features of examples of `shape` (`[C, H, W]`) with scale `J` and `L`
    /// angles, without building the filters.
    /// - Throws: as ``init(height:width:scales:angles:)``, and
    ///   ``FeatureError/badExampleShape(found:expected:)`` for examples that are not images.
    public static func featureShape(forExampleShape shape: [Int], scales J: Int, angles L: Int) throws -> [Int] {
        guard shape.count == 3 else {
            throw FeatureError.badExampleShape(found: shape, expected: "[channels, height, width] images")
        }
        guard J >= 1 && J <= 12 else {
            throw FeatureError.invalidParameter(name: "J", value: "\(J)", expected: "an integer in 1...12")
        }
        guard L >= 1 && L <= 64 else {
            throw FeatureError.invalidParameter(name: "L", value: "\(L)", expected: "an integer in 1...64")
        }
        guard shape[1] >= (1 << J) && shape[2] >= (1 << J) else {
            throw FeatureError.inputTooSmall(height: shape[1], width: shape[2], scale: 1 << J)
        }
        let channels = 1 + J * L + L * L * J * (J - 1) / 2
        let padded = { (n: Int) in ((n + (1 << J)) >> J + 1) << J }
        return [shape[0] * channels, (padded(shape[1]) >> J) - 2, (padded(shape[2]) >> J) - 2]
    }
}

/// Scattering features computed once per process for each dataset they are asked of, so a
/// sweep of runs (seeds, models, budgets) over one dataset transforms it once.
///
/// Keyed by a caller's description of the data (dataset name, options, sizes) and the
/// transform's parameters; holds the most recent `capacity` results.
public final class FeatureCache: @unchecked Sendable {
    public static let shared = FeatureCache(capacity: 2)

    private let lock = NSLock()
    private let capacity: Int
    private var entries: [(key: String, value: TrainTestSplit)] = []

    public init(capacity: Int) { self.capacity = capacity }

    /// The cached value of `key`, else `make()`'s, stored. `make` runs under the cache's lock,
    /// so two runs asking for the same features at once compute them once.
    public func value(for key: String, make: () throws -> TrainTestSplit) rethrows -> TrainTestSplit {
        lock.lock()
        defer { lock.unlock() }
        if let i = entries.firstIndex(where: { $0.key == key }) {
            let entry = entries.remove(at: i)
            entries.append(entry)
            return entry.value
        }
        let value = try make()
        entries.append((key, value))
        if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        return value
    }
}
