import DPAccounting
import DPData
import DPTensor
import Foundation

/// A projection onto the top principal directions of the training set, fitted with the
/// Gaussian mechanism (Abadi et al. 2016, "Deep learning with differential privacy", CCS,
/// sec. 4: "DP-PCA"): the examples are normalised to unit L2 norm, their second-moment matrix
/// gets Gaussian noise, and the projection is onto the top eigenvectors of the noisy matrix.
///
/// Mechanism. Example `x_i` (flattened to `d` values) becomes `u_i = x_i / ||x_i||` (zero stays
/// zero), and `A = sum_i u_i u_i^T` (not centred, as Abadi et al.). The release is
/// `A + E` with `E` symmetric: each entry `E_jk = E_kj`, `j <= k`, is `N(0, sigma^2)`, drawn once.
///
/// Sensitivity. The released coordinates are the upper triangle of `A` (`j <= k`); adding or
/// removing one example changes them by the upper triangle of `u u^T`, whose L2 norm is
/// `sqrt(sum_j u_j^4 + sum_{j<k} u_j^2 u_k^2) <= sum_j u_j^2 = 1`. So under add/remove-one the
/// release is the Gaussian mechanism with noise multiplier `sigma`. Under replace-one the
/// change is `u u^T - v v^T`, of norm at most 2 (triangle inequality): `Gaussian(sigma / 2)`,
/// the convention ``PrivateStandardization`` and the training step use.
///
/// The projection `P` (`[k, d]`, unit rows, in descending order of the noisy eigenvalues, each
/// signed so that its largest-magnitude entry is positive) is post-processing of the release;
/// projecting the test set costs nothing.
public struct PrivatePCA: Sendable {
    /// `k`, the dimension of the projected examples.
    public var components: Int
    /// sigma: the standard deviation of each noise entry (the sensitivity is 1).
    public var noiseMultiplier: Double

    public init(components: Int, noiseMultiplier: Double) {
        precondition(
            components >= 1 && noiseMultiplier > 0,
            "PrivatePCA: \(components) components (need >= 1), sigma \(noiseMultiplier) (need > 0)")
        self.components = components
        self.noiseMultiplier = noiseMultiplier
    }

    /// The privacy event of the release under `relation`.
    public func event(relation: NeighboringRelation) -> DpEvent {
        .gaussian(noiseMultiplier: relation == .replaceOne ? noiseMultiplier / 2 : noiseMultiplier)
    }

    /// `A = sum_i u_i u_i^T` over `dataset`'s examples normalised to unit norm, `[d, d]`, Double.
    static func secondMoment(_ dataset: Dataset) -> Tensor<Double> {
        let n = dataset.count, d = dataset.exampleSize
        var u = Tensor<Double>(zeros: [n, d])
        dataset.features.withUnsafeBufferPointer { x in
            u.withUnsafeMutableBufferPointer { out in
                for i in 0..<n {
                    var norm = 0.0
                    for j in 0..<d { norm += Double(x[i * d + j]) * Double(x[i * d + j]) }
                    norm = norm.squareRoot()
                    if norm == 0 { continue }
                    for j in 0..<d { out[i * d + j] = Double(x[i * d + j]) / norm }
                }
            }
        }
        var a = Tensor<Double>(zeros: [d, d])
        gemm(u, transposed: true, u, alpha: 1, into: &a)
        return a
    }

    /// The noisy projection fitted on `dataset` and the event to compose into the run's ledger.
    /// `normal` draws one standard normal (seeded stream or OS CSPRNG, by the run's randomness).
    /// - Throws: ``TrainingError/invalidSetting(_:)`` when `components` exceeds the example
    ///   size; ``DPTensor/LinearAlgebraError`` when the eigendecomposition fails.
    public func fit(
        to dataset: Dataset, relation: NeighboringRelation, normal: () -> Double
    ) throws -> (PCAProjection, DpEvent) {
        let d = dataset.exampleSize
        guard components <= d else {
            throw TrainingError.invalidSetting(
                "dataset.projection_options.components: \(components) exceeds the \(d) values of each example; use 1...\(d)"
            )
        }
        var a = Self.secondMoment(dataset)
        a.withUnsafeMutableBufferPointer { m in
            for j in 0..<d {
                for k in j..<d {
                    let e = noiseMultiplier * normal()
                    m[j * d + k] += e
                    if k != j { m[k * d + j] += e }
                }
            }
        }
        return (try Self.topEigenvectors(a, count: components), event(relation: relation))
    }

    /// The `count` eigenvectors of the largest eigenvalues of the symmetric `a`, as rows.
    static func topEigenvectors(_ a: Tensor<Double>, count k: Int) throws -> PCAProjection {
        let d = a.shape[0]
        let eig = try symmetricEigendecomposition(a)
        var rows = Tensor<Float>(zeros: [k, d])
        for c in 0..<k {
            let col = d - 1 - c
            var best = 0
            for i in 0..<d where abs(eig.eigenvectors[i, col]) > abs(eig.eigenvectors[best, col]) { best = i }
            let sign: Double = eig.eigenvectors[best, col] < 0 ? -1 : 1
            for i in 0..<d { rows[c, i] = Float(sign * eig.eigenvectors[i, col]) }
        }
        return PCAProjection(components: rows)
    }
}

/// A linear projection of flattened examples onto `k` directions: `z = P x`.
public struct PCAProjection: Sendable {
    /// `P`, `[k, d]`, one direction per row.
    public var components: Tensor<Float>

    public init(components: Tensor<Float>) {
        precondition(components.rank == 2, "PCAProjection: components must be [k, d], got \(components.shape)")
        self.components = components
    }

    /// `dataset` with each example replaced by `P x` (`[k]`).
    public func apply(to dataset: Dataset) -> Dataset {
        let k = components.shape[0], d = components.shape[1]
        precondition(
            dataset.exampleSize == d, "PCAProjection: examples of \(dataset.exampleSize) values, expected \(d)")
        let flat = dataset.features.reshaped([dataset.count, d])
        let z = matmul(flat, transposed: false, components, transposed: true)
        return Dataset(
            name: dataset.name, features: z.reshaped([dataset.count, k]), labels: dataset.labels,
            classCount: dataset.classCount, classNames: dataset.classNames)
    }
}
