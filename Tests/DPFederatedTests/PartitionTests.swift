import DPData
import DPTensor
import Foundation
import Testing

@testable import DPFederated

// Partitions: exact coverage (every example with exactly one client), the shapes each scheme
// promises, determinism in the seed, and the errors for inputs that cannot be split.

/// `perClass` examples of each of `classes` classes, interleaved.
private func labels(classes: Int = 10, perClass: Int = 60) -> [Int] { (0..<(classes * perClass)).map { $0 % classes } }

private func assertCovers(_ p: ClientPartition, count n: Int) {
    let all = p.clients.flatMap { $0 }
    #expect(all.count == n)
    #expect(Set(all) == Set(0..<n))
}

@Test func iidPartitionIsBalancedExactAndSeeded() throws {
    let y = labels()
    let p = try ClientPartition.make(labels: y, classCount: 10, clients: 7, scheme: .iid, seed: 1)
    assertCovers(p, count: y.count)
    #expect(p.sizes.max()! - p.sizes.min()! <= 1)
    #expect(try ClientPartition.make(labels: y, classCount: 10, clients: 7, scheme: .iid, seed: 1) == p)
    #expect(try ClientPartition.make(labels: y, classCount: 10, clients: 7, scheme: .iid, seed: 2) != p)
    let h = p.labelHistograms(labels: y, classCount: 10)
    #expect(h.map { $0.reduce(0, +) } == p.sizes)
}

@Test func labelShardsGiveEachClientAtMostItsShardsLabels() throws {
    // 600 examples, 10 clients x 2 shards = 20 shards of 30: each shard holds one label.
    let y = labels()
    let p = try ClientPartition.make(
        labels: y, classCount: 10, clients: 10, scheme: .labelShards(shardsPerClient: 2), seed: 3)
    assertCovers(p, count: y.count)
    #expect(p.sizes.allSatisfy { $0 == 60 })
    for h in p.labelHistograms(labels: y, classCount: 10) {
        #expect(h.filter { $0 > 0 }.count <= 2)
        #expect(h.allSatisfy { $0 % 30 == 0 })
    }
}

@Test func dirichletSkewFollowsAlpha() throws {
    let y = labels(perClass: 400)
    let skewed = try ClientPartition.make(
        labels: y, classCount: 10, clients: 40, scheme: .dirichlet(alpha: 0.05), seed: 4)
    let flat = try ClientPartition.make(
        labels: y, classCount: 10, clients: 40, scheme: .dirichlet(alpha: 1000), seed: 4)
    for p in [skewed, flat] {
        assertCovers(p, count: y.count)
        #expect(p.sizes.allSatisfy { $0 == 100 })
    }
    // The share of each client's most frequent class: Dir(0.005 x 10) puts almost all mass on
    // one class (E[max] > 0.9); Dir(100 x 10) is close to uniform (max share about 0.1).
    func meanTopShare(_ p: ClientPartition) -> Double {
        let h = p.labelHistograms(labels: y, classCount: 10)
        return h.map { Double($0.max()!) / Double($0.reduce(0, +)) }.reduce(0, +) / Double(h.count)
    }
    #expect(meanTopShare(skewed) > 0.8)
    #expect(meanTopShare(flat) < 0.25)
}

@Test(arguments: [0.3, 1.0, 2.5])
func gammaSamplerHasTheRightMoments(shape: Double) {
    // Gamma(a, 1): mean a, variance a. 40,000 draws: the standard error of the mean is
    // sqrt(a / 40000); the tolerance is 5 of them (false failure < 1e-6); a sampler with the
    // wrong shape by 5% misses by more than 7 standard errors at a = 2.5.
    var rng = PhiloxRandom(seed: 9, stream: 1)
    let n = 40_000
    let x = (0..<n).map { _ in Foundation.exp(ClientPartition.logGamma(shape: shape, rng: &rng)) }
    let mean = x.reduce(0, +) / Double(n)
    let variance = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
    #expect(Swift.abs(mean - shape) < 5 * (shape / Double(n)).squareRoot())
    // Var of the sample variance for Gamma: (2a^2 + 6a) / n roughly (kurtosis 6/a).
    #expect(Swift.abs(variance - shape) < 5 * ((2 * shape * shape + 6 * shape) / Double(n)).squareRoot())
}

@Test func badPartitionsAreClearErrors() {
    let y = labels(perClass: 2)
    #expect(throws: FederatedError.self) {
        try ClientPartition.make(labels: y, classCount: 10, clients: 5, scheme: .dirichlet(alpha: 0), seed: 0)
    }
    #expect(throws: FederatedError.self) {
        try ClientPartition.make(labels: y, classCount: 10, clients: 5, scheme: .dirichlet(alpha: -1), seed: 0)
    }
    #expect(throws: FederatedError.self) {
        try ClientPartition.make(labels: y, classCount: 10, clients: 21, scheme: .iid, seed: 0)
    }
    #expect(throws: FederatedError.self) {
        try ClientPartition.make(labels: y, classCount: 10, clients: 0, scheme: .iid, seed: 0)
    }
    // 20 examples in 8 clients x 3 shards = 24 shards: some shards would be empty.
    do {
        _ = try ClientPartition.make(
            labels: y, classCount: 10, clients: 8, scheme: .labelShards(shardsPerClient: 3), seed: 0)
        Issue.record("expected an error")
    } catch let e as FederatedError {
        #expect(e.description.contains("no data"))
    } catch { Issue.record("wrong error \(error)") }
}
