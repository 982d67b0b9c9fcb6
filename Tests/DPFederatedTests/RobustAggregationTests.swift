import DPAuditing
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPFederated

// Robust aggregators against slow references, Krum against a planted outlier, and attacks.

@Test func medianAndTrimmedMeanMatchSortedColumns() throws {
    var rng = PhiloxRandom(seed: 1, stream: 1)
    for n in [5, 6] {
        let updates = (0..<n).map { _ in (0..<4).map { _ in Float(rng.nextNormalDouble()) } }
        let median = Aggregator.median.combine(updates)
        let trimmed = Aggregator.trimmedMean(beta: 0.2).combine(updates)
        for j in 0..<4 {
            let col = updates.map { Double($0[j]) }.sorted()
            let med = n % 2 == 1 ? col[n / 2] : (col[n / 2 - 1] + col[n / 2]) / 2
            #expect(Swift.abs(Double(median[j]) - med) < 1e-6)
            let k = Int(0.2 * Double(n)) // 1
            let kept = col[k..<(n - k)]
            #expect(Swift.abs(Double(trimmed[j]) - kept.reduce(0, +) / Double(kept.count)) < 1e-6)
        }
    }
}

@Test func krumDiscardsAPlantedOutlier() throws {
    // Seven honest updates near (1, 1, 1), two attackers far away: Krum (f = 2) picks an
    // honest one, Multi-Krum (m = 5) averages honest ones only.
    var rng = PhiloxRandom(seed: 2, stream: 1)
    var updates = (0..<7).map { _ in (0..<3).map { _ in Float(1 + 0.1 * rng.nextNormalDouble()) } }
    updates.append([50, -50, 50])
    updates.append([40, -60, 45])
    try Aggregator.krum(byzantine: 2, selected: 1).check(clients: 9)
    let chosen = Aggregator.krumSelection(updates, byzantine: 2, selected: 5)
    #expect(chosen.allSatisfy { $0 < 7 })
    let multi = Aggregator.krum(byzantine: 2, selected: 5).combine(updates)
    #expect(multi.allSatisfy { Swift.abs($0 - 1) < 0.2 })
    #expect(Aggregator.mean.combine(updates).contains { Swift.abs($0 - 1) > 5 })
    #expect(throws: FederatedError.self) { try Aggregator.krum(byzantine: 3, selected: 1).check(clients: 8) }
    #expect(throws: FederatedError.self) { try Aggregator.trimmedMean(beta: 0.5).check(clients: 8) }
}

@Test func scaledUpdatesBreakTheMeanButNotTheMedian() throws {
    // 20% of the clients send their update times -10 (a sign-flipped, boosted update): FedAvg
    // with the mean is dragged away, the median keeps learning.
    let (train, test, p) = try smallFederation()
    func accuracy(_ aggregator: Aggregator) throws -> Double {
        let trainer = try FederatedTrainer(
            model: try smallModel(), data: train, partition: p,
            configuration: FederatedConfiguration(
                rounds: 8, sampling: .fixedSize, clientsPerRound: 10, local: LocalTraining(epochs: 1, batchSize: 5),
                aggregator: aggregator,
                attack: FederatedAttack(maliciousFraction: 0.2, kind: .updateScaling(factor: -10)),
                seed: 3))
        #expect(trainer.maliciousClients.count == 4)
        for _ in 0..<8 { try trainer.runRound() }
        return trainer.evaluate(test: test).cleanAccuracy
    }
    let median = try accuracy(.median)
    let mean = try accuracy(.mean)
    #expect(median > 0.85)
    #expect(mean < median - 0.2)
}

@Test func backdoorClientsCarryTriggeredExamplesAndMetricsAreReported() throws {
    let train = SyntheticData.shapes(count: 200, size: 12, seed: 1)
    let test = SyntheticData.shapes(count: 50, size: 12, seed: 1, part: .test)
    let p = try ClientPartition.make(labels: train.labels, classCount: 10, clients: 10, scheme: .iid, seed: 1)
    let trainer = try FederatedTrainer(
        model: try ModelBuilder.build(
            specs: [.flatten, .linear(outputs: 10, bias: true)], inputShape: [1, 12, 12], seed: 1),
        data: train, partition: p,
        configuration: FederatedConfiguration(
            rounds: 2, sampling: .fixedSize, clientsPerRound: 4,
            attack: FederatedAttack(
                maliciousFraction: 0.2, kind: .backdoor(trigger: BackdoorTrigger(size: 3), target: 0, fraction: 0.5)),
            seed: 2))
    #expect(trainer.maliciousClients.count == 2)
    for k in trainer.maliciousClients {
        #expect(
            trainer.clientData[k].count == p.clients[k].count + Int((0.5 * Double(p.clients[k].count)).rounded(.up)))
    }
    try trainer.runRound()
    let e = trainer.evaluate(test: test)
    #expect(e.backdoorSuccessRate != nil)
    // A non-private run: the client accuracy percentiles are there, in order.
    let (p10, p50, p90) = (e.clientAccuracyP10 ?? .nan, e.clientAccuracyP50 ?? .nan, e.clientAccuracyP90 ?? .nan)
    #expect(p10 <= p50 && p50 <= p90)
}

@Test func secureAggregationInTrainingMatchesThePlainClippedSum() throws {
    // With secure aggregation the server's sum is the fixed-point sum of the clients' clipped
    // updates: equal to the plain clipped sum within n / 2^(s+1) per coordinate, and the noise
    // is added after unmasking with the same seed, so the two models agree to that tolerance.
    let (train, _, p) = try smallFederation()
    func finalParameters(_ secure: SecureAggregationSettings?) throws -> [Float] {
        let trainer = try FederatedTrainer(
            model: try smallModel(), data: train, partition: p,
            configuration: FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 5, local: LocalTraining(epochs: 1, batchSize: 10),
                privacy: UserLevelPrivacy(noiseMultiplier: 0.5, clippingNorm: 0.3), secureAggregation: secure,
                seed: 4))
        try trainer.runRound()
        return trainer.flatParameters()
    }
    let plain = try finalParameters(nil)
    let secure = try finalParameters(SecureAggregationSettings(scaleBits: 20))
    // Clipping to C - slack (slack = sqrt(d) / 2^21) changes clipped updates by at most that
    // slack each; rounding by 2^-21 per coordinate; over 5 clients divided by 5.
    let d = Double(plain.count)
    let tolerance = (d.squareRoot() / 2_097_152) + 1.0 / 2_097_152 + 1e-6
    let worst = zip(plain, secure).map { Double(Swift.abs($0 - $1)) }.max()!
    #expect(worst < tolerance, "worst difference \(worst), tolerance \(tolerance)")
    #expect(worst > 0)
}
