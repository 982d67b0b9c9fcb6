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
        dataset.features.withUnsafeBufferPointer { p in
            for e in 0..<dataset.count {
                for g in 0..<groups {
                    let base = e * dataset.exampleSize + g * block
                    var s = 0.0, q = 0.0
                    for j in 0..<block {
                        let x = Double(p[base + j])
                        s += x
                        q += x * x
                    }
                    sum[g] += s
                    sumSquares[g] += q
                }
            }
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
        let size = exampleSize, block = size / groups, count = self.count
        mapFeatures { features in
            features.withUnsafeMutableBufferPointer { p in
                for e in 0..<count {
                    for g in 0..<groups {
                        let base = e * size + g * block
                        var s = 0.0, q = 0.0
                        for j in 0..<block {
                            let x = Double(p[base + j])
                            s += x
                            q += x * x
                        }
                        let m = s / Double(block)
                        let sd = max(0, q / Double(block) - m * m).squareRoot()
                        let r = Float(sd < 1e-6 ? 1 : 1 / sd), mf = Float(m)
                        for j in 0..<block { p[base + j] = (p[base + j] - mf) * r }
                    }
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
