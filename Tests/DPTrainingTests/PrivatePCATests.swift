import DPAccounting
import DPData
import DPTensor
import Foundation
import Testing

@testable import DPTraining

@Suite("PrivatePCA")
struct PrivatePCATests {
    /// Examples `a e_0 + b e_1 + c e_2` in 4 dimensions, with spreads 5 > 2 > 0.5, so that the
    /// second moment of the unit-normalised examples has eigenvectors `e_0, e_1, e_2` in that order.
    static func anisotropic(count: Int) -> Dataset {
        var rng = PhiloxRandom(seed: 3)
        var x: [Float] = []
        for _ in 0..<count {
            let a = Float(5 * rng.nextNormalDouble()), b = Float(2 * rng.nextNormalDouble())
            let c = Float(0.5 * rng.nextNormalDouble())
            x += [a, b, c, 0]
        }
        return Dataset(
            name: "aniso", features: Tensor(x, shape: [count, 4]), labels: [Int](repeating: 0, count: count),
            classCount: 1)
    }

    @Test func noiseFreeProjectionIsTheTopEigenvectors() throws {
        let data = Self.anisotropic(count: 400)
        // The slow reference: A = sum u u^T by explicit loops, in Double.
        var a = [[Double]](repeating: [Double](repeating: 0, count: 4), count: 4)
        for i in 0..<data.count {
            let v = (0..<4).map { Double(data.features[i, $0]) }
            let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
            for j in 0..<4 { for k in 0..<4 { a[j][k] += v[j] * v[k] / (norm * norm) } }
        }
        let second = PrivatePCA.secondMoment(data)
        for j in 0..<4 { for k in 0..<4 { #expect(abs(second[j, k] - a[j][k]) <= 1e-9 * 400) } }
        let (projection, event) = try PrivatePCA(components: 2, noiseMultiplier: 1).fit(
            to: data, relation: .addOrRemoveOne, normal: { 0 })
        #expect(event == .gaussian(noiseMultiplier: 1))
        let p = projection.components
        #expect(p.shape == [2, 4])
        // e_0, then e_1, signed positive.
        #expect(abs(p[0, 0] - 1) < 1e-3 && abs(p[1, 1] - 1) < 1e-3, "\(p)")
        // Each row is an eigenvector of A: A p = (p^T A p) p.
        for c in 0..<2 {
            let row = (0..<4).map { Double(p[c, $0]) }
            let ap = (0..<4).map { j in (0..<4).map { a[j][$0] * row[$0] }.reduce(0, +) }
            let lambda = zip(row, ap).map(*).reduce(0, +)
            for j in 0..<4 { #expect(abs(ap[j] - lambda * row[j]) <= 1e-4 * lambda) }
        }
        // The projected data are P x.
        let z = projection.apply(to: data)
        #expect(z.exampleShape == [2])
        var dot: Float = 0
        for j in 0..<4 { dot += p[0, j] * data.features[7, j] }
        #expect(abs(z.features[7, 0] - dot) < 1e-4)
    }

    @Test func noiseIsSymmetricWithTheMultiplier() throws {
        // With every draw 1, A + E = A + sigma (all ones): the top direction moves towards (1, 1, 1, 1).
        let data = Self.anisotropic(count: 50)
        let sigma = 1000.0
        let (projection, _) = try PrivatePCA(components: 1, noiseMultiplier: sigma).fit(
            to: data, relation: .addOrRemoveOne, normal: { 1 })
        for j in 0..<4 { #expect(abs(projection.components[0, j] - 0.5) < 0.01, "\(projection.components)") }
    }

    /// The sensitivity the event rests on: the upper triangle of u u^T has L2 norm <= 1 for a
    /// unit u (add/remove), and u u^T - v v^T at most 2 (replace-one: the event halves sigma).
    @Test func upperTriangleSensitivity() {
        var rng = PhiloxRandom(seed: 9)
        for trial in 0..<200 {
            let d = 1 + trial % 7
            func unit() -> [Double] {
                let v = (0..<d).map { _ in rng.nextNormalDouble() }
                let n = v.map { $0 * $0 }.reduce(0, +).squareRoot()
                return v.map { $0 / n }
            }
            let u = unit(), v = unit()
            var one = 0.0, two = 0.0
            for j in 0..<d {
                for k in j..<d {
                    one += (u[j] * u[k]) * (u[j] * u[k])
                    two += (u[j] * u[k] - v[j] * v[k]) * (u[j] * u[k] - v[j] * v[k])
                }
            }
            #expect(one.squareRoot() <= 1 + 1e-12 && two.squareRoot() <= 2 + 1e-12)
        }
        #expect(
            PrivatePCA(components: 1, noiseMultiplier: 4).event(relation: .replaceOne) == .gaussian(noiseMultiplier: 2))
    }

    @Test func refusesMoreComponentsThanValues() {
        #expect(throws: TrainingError.self) {
            try PrivatePCA(components: 5, noiseMultiplier: 1).fit(
                to: Self.anisotropic(count: 10), relation: .addOrRemoveOne
            ) { 0 }
        }
    }
}
