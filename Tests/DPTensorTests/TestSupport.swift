import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

/// Uniform samples in [-1, 1] from a fixed seed.
func randomTensor<S: TensorScalar>(_ shape: Shape, seed: UInt64, as _: S.Type = S.self) -> Tensor<S> {
    var rng = PhiloxRandom(seed: seed)
    return Tensor<S>(uniform: shape, in: -1...1, using: &rng)
}

/// Relative tolerance for results of a few dozen roundings in `S`.
func tolerance<S: TensorScalar>(_: S.Type) -> Double { S.self == Float.self ? 2e-5 : 1e-12 }

/// The scalars of `t` as `Double`s.
func doubles<S: TensorScalar>(_ t: Tensor<S>) -> [Double] { t.scalars.map { Double($0) } }

/// `|a - b| <= tol * (1 + |b|)` element-wise, with a message naming the first bad index.
func expectClose(
    _ a: [Double], _ b: [Double], tol: Double, _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) scalars", sourceLocation: sourceLocation)
    guard a.count == b.count else { return }
    for i in a.indices where !(abs(a[i] - b[i]) <= tol * (1 + abs(b[i]))) {
        Issue.record("\(what): index \(i): \(a[i]) vs reference \(b[i]) (tol \(tol))", sourceLocation: sourceLocation)
        return
    }
}

/// The standard normal CDF.
func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
