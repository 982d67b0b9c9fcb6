import DPAccounting
import DPData
import DPTensor
import Foundation
import Testing

@testable import DPTraining

// The private input statistics as a mechanism: the exact sums move by at most the stated
// sensitivity when one example is added, removed or replaced (checked on the extreme examples),
// and the noise on the released statistics has the accounted scale.

private func images(_ values: [[Float]]) -> Dataset {
    Dataset(
        name: "t", features: Tensor(values.flatMap { $0 }, shape: [values.count, 1, 2, 2]),
        labels: values.map { _ in 0 }, classCount: 1)
}

@Test("the centred sums move by at most the stated sensitivity (add/remove and replace-one)")
func privateStatisticsSensitivity() {
    let m = PrivateStandardization(noiseMultiplier: 1, lower: -1, upper: 2, perChannel: true)
    let base: [[Float]] = [[0.1, 0.5, 1.5, -0.3], [1, 1, 1, 1], [0, 0, 0, 0]]
    // Extreme examples: every value at either end of the range, outside it (clipped), mixed.
    let extremes: [[Float]] = [
        [-1, -1, -1, -1], [2, 2, 2, 2], [-5, 9, -5, 9], [0, 0, 0, 0], [2, -1, 2, -1], [0.5, 0.5, 0.5, 0.5],
    ]
    let delta = m.sensitivity(groups: 1)
    var worstAdd = 0.0, worstReplace = 0.0
    let (a0, s0) = m.centredSums(images(base))
    for x in extremes {
        let (a1, s1) = m.centredSums(images(base + [x]))
        worstAdd = max(worstAdd, ((a1[0] - a0[0]) * (a1[0] - a0[0]) + (s1[0] - s0[0]) * (s1[0] - s0[0])).squareRoot())
        for y in extremes {
            let (a2, s2) = m.centredSums(images(base + [y]))
            worstReplace = max(
                worstReplace, ((a1[0] - a2[0]) * (a1[0] - a2[0]) + (s1[0] - s2[0]) * (s1[0] - s2[0])).squareRoot())
        }
    }
    #expect(worstAdd <= delta * (1 + 1e-12), "add/remove moved the sums by \(worstAdd) > \(delta)")
    #expect(worstReplace <= 2 * delta * (1 + 1e-12))
    // The bound is attained (not loose by more than the corners allow): all-lower vs all-upper.
    #expect(worstReplace > 0.7 * 2 * delta)
    #expect(m.event(relation: .addOrRemoveOne) == .gaussian(noiseMultiplier: 1))
    #expect(m.event(relation: .replaceOne) == .gaussian(noiseMultiplier: 0.5))
}

@Test("released mean and second moment carry noise sigma * Delta / n; exact without noise")
func privateStatisticsNoiseScale() {
    let n = 400
    var rng = PhiloxRandom(seed: 5)
    var values: [[Float]] = []
    for _ in 0..<n { values.append((0..<4).map { _ in Float(rng.nextOpenUnitDouble()) }) }
    let data = images(values)
    let exact = Standardization.fit(to: data, perChannel: true)
    let m = PrivateStandardization(noiseMultiplier: 2, lower: 0, upper: 1, perChannel: true)
    // Zero noise draws: the exact statistics.
    let (s0, _) = m.fit(to: data, relation: .addOrRemoveOne) { 0 }
    #expect(abs(s0.mean[0] - exact.mean[0]) < 1e-5 && abs(s0.standardDeviation[0] - exact.standardDeviation[0]) < 1e-5)
    // 20,000 releases: the mean's error has sd sigma Delta / n (relative standard error 0.5%, tolerance 2.5%).
    var noise = PhiloxRandom(seed: 9)
    var errors: [Double] = []
    for _ in 0..<20_000 {
        let (s, _) = m.fit(to: data, relation: .addOrRemoveOne) { noise.nextNormalDouble() }
        errors.append(Double(s.mean[0] - exact.mean[0]))
    }
    let sd = (errors.reduce(0) { $0 + $1 * $1 } / Double(errors.count)).squareRoot()
    let accounted = 2 * m.sensitivity(groups: 1) / Double(n)
    #expect(abs(sd / accounted - 1) < 0.025, "noise on the released mean \(sd) vs accounted \(accounted)")
}

@Test func perExampleStandardisationUsesEachExampleAlone() {
    var a = images([[1, 2, 3, 4], [10, 10, 10, 10]])
    var b = images([[1, 2, 3, 4], [-7, 3, 0, 100]])
    a.standardizePerExample()
    b.standardizePerExample()
    #expect(a.features.rows(0..<1) == b.features.rows(0..<1), "example 0 does not depend on example 1")
    let row = a.features.rows(0..<1).scalars.map(Double.init)
    let mean = row.reduce(0, +) / 4, variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / 4
    #expect(abs(mean) < 1e-6 && abs(variance - 1) < 1e-5)
    #expect(a.features.rows(1..<2).scalars == [0, 0, 0, 0], "a constant example is only centred")
}
