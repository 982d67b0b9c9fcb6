import DPTensor

/// A labelled classification dataset held in memory.
///
/// `features` has shape `[count] + exampleShape`: `[N, 1, 28, 28]` (NCHW) for grey images,
/// `[N, d]` for tabular data. Labels are class indices in `0..<classCount`.
public struct Dataset: Sendable {
    /// A short name for logs and run manifests (`"fashion-mnist/train"`).
    public var name: String
    /// The examples, `[count] + exampleShape`.
    public private(set) var features: Tensor<Float>
    /// One class index per example, in `0..<classCount`.
    public private(set) var labels: [Int]
    /// The number of classes (labels may not use all of them).
    public let classCount: Int
    /// The name of each class, `classNames[label]`; for CSV string labels, the mapping used.
    public let classNames: [String]

    /// Precondition: one label per example, each in `0..<classCount`; `classNames` empty
    /// (then the indices are used as names) or one per class.
    public init(name: String, features: Tensor<Float>, labels: [Int], classCount: Int, classNames: [String] = []) {
        precondition(
            features.rank >= 2,
            "Dataset \(name): features \(features.shape) need a leading example axis and an example shape")
        precondition(
            features.shape[0] == labels.count,
            "Dataset \(name): \(features.shape[0]) examples but \(labels.count) labels")
        precondition(classCount > 0, "Dataset \(name): classCount \(classCount) must be positive")
        precondition(
            classNames.isEmpty || classNames.count == classCount,
            "Dataset \(name): \(classNames.count) class names for \(classCount) classes")
        for (i, y) in labels.enumerated() {
            precondition(
                y >= 0 && y < classCount, "Dataset \(name): label \(y) of example \(i) is outside 0..<\(classCount)")
        }
        self.name = name
        self.features = features
        self.labels = labels
        self.classCount = classCount
        self.classNames = classNames.isEmpty ? (0..<classCount).map(String.init) : classNames
    }

    // MARK: - Size

    /// The number of examples.
    public var count: Int { labels.count }
    /// The shape of one example (`[1, 28, 28]`, `[d]`).
    public var exampleShape: Shape { Shape(Array(features.shape.dropFirst())) }
    /// The number of scalars in one example.
    public var exampleSize: Int { features.shape.trailingCount }
    /// The number of examples of each class.
    public var classCounts: [Int] {
        var c = [Int](repeating: 0, count: classCount)
        for y in labels { c[y] += 1 }
        return c
    }

    // MARK: - Batches

    /// The shape of a batch of `n` examples: `[n] + exampleShape`.
    public func batchShape(_ n: Int) -> Shape { features.shape.withLeading(n) }

    /// Copies the examples `indices` into `batch` (shape `[indices.count] + exampleShape`) and
    /// their labels into `labels`, in order.
    ///
    /// Allocates nothing when `batch` already has that shape and is not shared, and `labels`
    /// has the capacity; otherwise `batch` is replaced by a tensor of the right shape (so a
    /// Poisson-sampled batch of a new size costs one allocation). Precondition: every index is
    /// in `0..<count`.
    public func gather(indices: [Int], into batch: inout Tensor<Float>, labels batchLabels: inout [Int]) {
        let shape = batchShape(indices.count)
        if batch.shape != shape { batch = Tensor(zeros: shape) }
        let size = exampleSize
        let n = count
        features.withUnsafeBufferPointer { src in
            batch.withUnsafeMutableBufferPointer { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                for (row, i) in indices.enumerated() {
                    precondition(i >= 0 && i < n, "Dataset.gather: index \(i) out of range 0..<\(n) in \(name)")
                    (d + row * size).update(from: s + i * size, count: size)
                }
            }
        }
        batchLabels.removeAll(keepingCapacity: true)
        for i in indices { batchLabels.append(labels[i]) }
    }

    // MARK: - Subsets

    /// A new dataset with the examples `indices`, in that order (a copy).
    public func subset(_ indices: [Int], name: String? = nil) -> Dataset {
        var batch = Tensor<Float>(zeros: batchShape(indices.count))
        var y: [Int] = []
        y.reserveCapacity(indices.count)
        gather(indices: indices, into: &batch, labels: &y)
        return Dataset(
            name: name ?? self.name, features: batch, labels: y, classCount: classCount, classNames: classNames)
    }

    /// This dataset's examples followed by `other`'s (same example shape and classes).
    public func appending(_ other: Dataset, name: String? = nil) -> Dataset {
        precondition(
            other.exampleShape == exampleShape && other.classCount == classCount,
            "Dataset.appending: \(other.name) has examples \(other.exampleShape) and \(other.classCount) classes, \(self.name) \(exampleShape) and \(classCount)"
        )
        var x = Tensor<Float>(zeros: batchShape(count + other.count))
        x.withUnsafeMutableBufferPointer { out in
            features.withUnsafeBufferPointer { a in
                other.features.withUnsafeBufferPointer { b in
                    _ = UnsafeMutableBufferPointer(rebasing: out[0..<a.count]).update(fromContentsOf: a)
                    _ = UnsafeMutableBufferPointer(rebasing: out[a.count...]).update(fromContentsOf: b)
                }
            }
        }
        return Dataset(
            name: name ?? self.name, features: x, labels: labels + other.labels, classCount: classCount,
            classNames: classNames)
    }

    /// Splits the examples at random into two parts, `first` holding `round(fraction * count)`
    /// of them, stratified by class so both parts keep the class proportions.
    ///
    /// Reproducible from `seed` (Philox stream 0x5b17). Precondition: `0 <= fraction <= 1`.
    public func split(fraction: Double, seed: UInt64) -> (first: Dataset, second: Dataset) {
        precondition(fraction >= 0 && fraction <= 1, "Dataset.split: fraction \(fraction) is outside [0, 1]")
        var rng = PhiloxRandom(seed: seed, stream: 0x5b17)
        var byClass = [[Int]](repeating: [], count: classCount)
        for (i, y) in labels.enumerated() { byClass[y].append(i) }
        var first: [Int] = [], second: [Int] = []
        // Largest-remainder rounding per class, so the first part has round(fraction * count) examples.
        let target = Int((fraction * Double(count)).rounded())
        var quotas = byClass.map { Int((fraction * Double($0.count)).rounded(.down)) }
        let order = (0..<classCount).sorted {
            let ra = fraction * Double(byClass[$0].count) - Double(quotas[$0])
            let rb = fraction * Double(byClass[$1].count) - Double(quotas[$1])
            return ra != rb ? ra > rb : $0 < $1
        }
        var missing = target - quotas.reduce(0, +)
        for c in order where missing > 0 && quotas[c] < byClass[c].count {
            quotas[c] += 1
            missing -= 1
        }
        for c in 0..<classCount {
            var members = byClass[c]
            members.shuffle(using: &rng)
            first += members[..<quotas[c]]
            second += members[quotas[c]...]
        }
        first.sort()
        second.sort()
        return (subset(first, name: name + "/first"), subset(second, name: name + "/second"))
    }

    // MARK: - In-place transforms

    /// Multiplies every feature by `factor` (`1 / 255` maps bytes to `[0, 1]`).
    public mutating func scale(by factor: Float) { features.scale(by: factor) }

    /// Replaces the features by `transform(features)`; the shape must not change.
    public mutating func mapFeatures(_ transform: (inout Tensor<Float>) -> Void) {
        let shape = features.shape
        transform(&features)
        precondition(features.shape == shape, "Dataset.mapFeatures: shape changed from \(shape) to \(features.shape)")
    }
}

/// A training set and the test set that goes with it.
public struct TrainTestSplit: Sendable {
    public var train: Dataset
    public var test: Dataset

    /// Precondition: the two sets have the same example shape and class count.
    public init(train: Dataset, test: Dataset) {
        precondition(
            train.exampleShape == test.exampleShape,
            "TrainTestSplit: train examples \(train.exampleShape) and test examples \(test.exampleShape) differ")
        precondition(
            train.classCount == test.classCount,
            "TrainTestSplit: train has \(train.classCount) classes, test \(test.classCount)")
        self.train = train
        self.test = test
    }

    public init(_ pair: (train: Dataset, test: Dataset)) { self.init(train: pair.train, test: pair.test) }
}
