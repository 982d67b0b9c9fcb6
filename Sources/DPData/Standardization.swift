import DPTensor

/// Feature standardisation `x' = (x - mean) / standardDeviation`, with statistics computed
/// from a training set and applied unchanged to its test set (statistics of the test set
/// would leak it into training).
///
/// Groups: one statistic for the whole example (`mean.count == 1`) or one per channel, the
/// leading axis of the example shape (`C` of `[C, H, W]`, each feature of a tabular `[d]`).
///
/// Privacy note: statistics computed from private training data are themselves a release;
/// DP-SGD's guarantee covers them only if they are public or computed privately. Fixed
/// scalings (`1 / 255` for images) and public constants are safe.
public struct Standardization: Codable, Sendable, Equatable {
    public var mean: [Float]
    public var standardDeviation: [Float]

    /// Precondition: as many deviations as means, all positive and finite.
    public init(mean: [Float], standardDeviation: [Float]) {
        precondition(
            mean.count == standardDeviation.count && !mean.isEmpty,
            "Standardization: \(mean.count) means and \(standardDeviation.count) deviations")
        for s in standardDeviation {
            precondition(s > 0 && s.isFinite, "Standardization: standard deviation \(s) must be positive and finite")
        }
        self.mean = mean
        self.standardDeviation = standardDeviation
    }

    /// The statistics of `dataset`: per channel if `perChannel`, else one for all features.
    ///
    /// Computed in `Double`; the population standard deviation. A constant group (deviation
    /// below `1e-6`) gets deviation 1, so it is only centred.
    public static func fit(to dataset: Dataset, perChannel: Bool) -> Standardization {
        let groups = perChannel ? dataset.exampleShape[0] : 1
        let block = dataset.exampleSize / groups
        var sum = [Double](repeating: 0, count: groups)
        var sumSquares = [Double](repeating: 0, count: groups)
        dataset.forEachGroupMoments(groups: groups) { _, g, mean, meanSquare in
            sum[g] += mean * Double(block)
            sumSquares[g] += meanSquare * Double(block)
        }
        let n = Double(max(1, dataset.count * block))
        var mean = [Float](), sd = [Float]()
        for g in 0..<groups {
            let m = sum[g] / n
            let v = max(0, sumSquares[g] / n - m * m)
            mean.append(Float(m))
            sd.append(v.squareRoot() < 1e-6 ? 1 : Float(v.squareRoot()))
        }
        return Standardization(mean: mean, standardDeviation: sd)
    }

    /// Applies the transform in place. Precondition: one group, or one per channel of `dataset`.
    public func apply(to dataset: inout Dataset) {
        let groups = mean.count
        precondition(
            groups == 1 || groups == dataset.exampleShape[0],
            "Standardization: \(groups) statistics for examples of shape \(dataset.exampleShape) (need 1 or \(dataset.exampleShape[0]))"
        )
        let size = dataset.exampleSize
        let block = size / groups
        let count = dataset.count
        let shift = mean, scale = standardDeviation.map { 1 / $0 }
        dataset.mapFeatures { features in
            features.withUnsafeMutableBufferPointer { p in
                for e in 0..<count {
                    for g in 0..<groups {
                        let base = e * size + g * block
                        let m = shift[g], r = scale[g]
                        for j in 0..<block { p[base + j] = (p[base + j] - m) * r }
                    }
                }
            }
        }
    }
}

extension Dataset {
    /// Standardises in place with given statistics (one value, or one per channel).
    public mutating func standardize(mean: [Float], standardDeviation: [Float]) {
        Standardization(mean: mean, standardDeviation: standardDeviation).apply(to: &self)
    }
}

extension TrainTestSplit {
    /// Fits the statistics on the training set only and applies them to both sets.
    /// - Returns: the statistics, to record with the run.
    @discardableResult
    public mutating func standardize(perChannel: Bool) -> Standardization {
        let s = Standardization.fit(to: train, perChannel: perChannel)
        s.apply(to: &train)
        s.apply(to: &test)
        return s
    }
}

extension Dataset {
    /// Standardises every example by its own statistics, in place: per channel (the leading
    /// axis) for images `[C, H, W]`, over all features otherwise. An example's result depends
    /// on that example only, so it costs no privacy. A constant group (standard deviation
    /// below `1e-6`) is only centred.
    public mutating func standardizePerExample() {
        let groups = exampleShape.rank == 3 ? exampleShape[0] : 1
        let block = exampleSize / groups
        var shift = [Float](repeating: 0, count: count * groups), scale = shift
        forEachGroupMoments(groups: groups) { e, g, m, q in
            let sd = max(0, q - m * m).squareRoot()
            shift[e * groups + g] = Float(m)
            scale[e * groups + g] = Float(sd < 1e-6 ? 1 : 1 / sd)
        }
        mapFeatures { features in
            features.withUnsafeMutableBufferPointer { p in
                for i in 0..<shift.count {
                    let base = i * block, m = shift[i], r = scale[i]
                    for j in 0..<block { p[base + j] = (p[base + j] - m) * r }
                }
            }
        }
    }

    /// Calls `body(example, group, mean, meanOfSquares)` for every example and every one of
    /// `groups` equal consecutive blocks of its features (channels), in Double; values are
    /// clipped to `clip` first when given. The one loop behind fitted, per-example and private
    /// statistics.
    public func forEachGroupMoments(
        groups: Int, clippedTo clip: ClosedRange<Float>? = nil,
        _ body: (_ example: Int, _ group: Int, _ mean: Double, _ meanOfSquares: Double) -> Void
    ) {
        let size = exampleSize, block = size / groups
        features.withUnsafeBufferPointer { p in
            for e in 0..<count {
                for g in 0..<groups {
                    let base = e * size + g * block
                    var s = 0.0, q = 0.0
                    for j in 0..<block {
                        var v = p[base + j]
                        if let clip { v = Swift.min(Swift.max(v, clip.lowerBound), clip.upperBound) }
                        let x = Double(v)
                        s += x
                        q += x * x
                    }
                    body(e, g, s / Double(block), q / Double(block))
                }
            }
        }
    }
}

/// The input scaling a model was trained with. Stored beside an exported model (and in a run's
/// checkpoint), so that evaluation and a resumed run apply exactly the same scaling.
public enum InputTransform: Codable, Equatable, Sendable {
    case none
    /// ``Dataset/standardizePerExample()``.
    case perExample
    /// Fixed statistics (declared, fitted for a control run, or differentially private).
    case standardization(Standardization)

    public func apply(to dataset: inout Dataset) {
        switch self {
        case .none: break
        case .perExample: dataset.standardizePerExample()
        case .standardization(let s): s.apply(to: &dataset)
        }
    }
}
