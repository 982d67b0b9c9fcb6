import DPAccounting
import DPData
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPFederated

// The privacy review of issue 13: a non-finite local loss under DP, the clip factor, the
// secure-aggregation minimum of survivors, the released noise of adaptive clipping measured
// against the accounted z, the robust aggregators' warnings, and secure aggregation in training
// with dropouts and adaptive clipping.

@Test func aNonFiniteLocalLossCountsAsAZeroClippedUpdateUnderDP() throws {
    // A local learning rate of 1e38 overflows the weights in the first step, so every client's
    // second local batch has a non-finite loss.
    let (train, _, p) = try smallFederation()
    func trainer(private: Bool) throws -> FederatedTrainer {
        try FederatedTrainer(
            model: try smallModel(), data: train, partition: p,
            configuration: FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 5,
                local: LocalTraining(epochs: 2, batchSize: 5, learningRate: 1e38),
                privacy: `private`
                    ? UserLevelPrivacy(
                        noiseMultiplier: 1, clippingNorm: 0.5,
                        clipping: .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 1))
                    : nil,
                seed: 3))
    }
    let t = try trainer(private: true)
    let before = t.flatParameters()
    let report = try t.runRound()
    #expect(report.nonFiniteClients == 5)
    // Zero updates counted as clipped: the count is 0 of 5, and the model moved by noise only.
    #expect(report.privacy?.unclippedCount == 0)
    #expect(t.flatParameters().allSatisfy { $0.isFinite })
    #expect(t.flatParameters() != before)
    #expect(t.ledger.entries.count == 1)
    // Without DP the failure is reported as before.
    #expect(throws: TrainingError.self) { try trainer(private: false).runRound() }
}

@Test func clippingLeavesTheNormAtMostTheThreshold() {
    // Float(c / norm) rounds to nearest, so about half the time the factor is above c / norm
    // and the clipped norm, computed from the Float values, exceeds c by up to c 1e-7; and the
    // products round too. 5,000 random updates and thresholds, flat and per layer: every norm
    // must be <= its threshold (computed in Double from the stored Floats).
    var rng = PhiloxRandom(seed: 9, stream: 1)
    let layout = UpdateLayout(layerRanges: [0..<17, 17..<40])
    for _ in 0..<5000 {
        var u = (0..<40).map { _ in Float(rng.nextNormalDouble() * 3) }
        let c = 0.01 + rng.nextOpenUnitDouble()
        let perLayer = rng.nextOpenUnitDouble() < 0.5
        let thresholds = perLayer ? [c * 0.6, c * 0.8] : nil
        UpdateClipping.clip(&u, norm: c, layout: layout, thresholds: thresholds)
        func norm(_ r: Range<Int>) -> Double { u[r].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        if let thresholds {
            #expect(norm(0..<17) <= thresholds[0] && norm(17..<40) <= thresholds[1])
        } else {
            #expect(norm(0..<40) <= c, "norm \(norm(0..<40)) > \(c)")
        }
    }
}

@Test func secureAggregationBelowTheMinimumReleasesNoiseOnly() throws {
    // Poisson sampling with 3 expected of 20 clients: many rounds have 1 or 2 clients, whose
    // sum would be their update. Below min_clients = 3 the round must release noise only: the
    // same change of the model whatever the clients' updates (here: local learning rate 0.5
    // against 0, i.e. zero updates), while rounds with 3 or more differ.
    func trainer(_ lr: Double) throws -> FederatedTrainer {
        try smallTrainer(
            FederatedConfiguration(
                rounds: 40, sampling: .poisson, clientsPerRound: 3,
                local: LocalTraining(epochs: 1, batchSize: 5, learningRate: lr),
                privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 0.5),
                secureAggregation: SecureAggregationSettings(), seed: 5))
    }
    let a = try trainer(0.5), b = try trainer(0)
    var small = 0, large = 0
    for _ in 0..<40 {
        let (a0, b0) = (a.flatParameters(), b.flatParameters())
        let ra = try a.runRound(), rb = try b.runRound()
        #expect(ra.sampledClients == rb.sampledClients)
        let da = zip(a.flatParameters(), a0).map { $0 - $1 }, db = zip(b.flatParameters(), b0).map { $0 - $1 }
        let worst = zip(da, db).map { Swift.abs($0 - $1) }.max()!
        if ra.sampledClients.count < 3 {
            #expect(ra.unmaskingSkipped)
            if !ra.sampledClients.isEmpty { small += 1 }
            #expect(worst < 1e-6, "round \(ra.round) with \(ra.sampledClients.count) clients differs by \(worst)")
        } else {
            #expect(!ra.unmaskingSkipped)
            large += 1
            #expect(worst > 1e-4)
        }
    }
    // Every round is composed, skipped or not.
    #expect(a.ledger.entries.reduce(0) { $0 + $1.count } == 40)
    #expect(small > 0 && large > 0, "rounds with 1-2 clients: \(small), with 3 or more: \(large)")
    // A minimum above the clients per round would never train: refused.
    #expect(throws: FederatedError.self) {
        try FederatedConfiguration(
            rounds: 1, clientsPerRound: 2, privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 1),
            secureAggregation: SecureAggregationSettings(minimumClients: 3)
        ).validate(clientCount: 20)
    }
}

@Test func adaptiveClippingReleasesTheAccountedTotalNoise() throws {
    // Black box: one client sends a zero update (unclipped, b = 1) in each of 20,000 rounds of
    // 10 coordinates. Measured: the update noise in units of the round's C_t (200,000 draws,
    // relative standard error 0.16%) and the count noise from the released fraction (20,000
    // draws, 0.5%). Andrew et al.'s split must give back the accounted z:
    // (z_Delta^-2 + (2 sigma_b)^-2)^(-1/2) = z. With z = 1 and sigma_b = 2 the estimate's
    // relative standard error is about 0.15%; tolerance 1% (6 standard errors, false failure
    // < 1e-8). A defect that noises the update with z instead of z_Delta (3.2% too little)
    // fails by 20 standard errors. eta is tiny so C_t stays put.
    let z = 1.0, sigmaB = 2.0, c0 = 0.7, m = 4.0, d = 10
    var agg = try DPFedAvgAggregator(
        privacy: UserLevelPrivacy(
            noiseMultiplier: z, clippingNorm: c0,
            clipping: .adaptive(targetQuantile: 0.5, learningRate: 1e-12, countNoiseMultiplier: sigmaB)),
        expectedClients: m, layout: UpdateLayout(count: d))
    var noise = NoiseSource(randomness: .seeded, seed: 21)
    var updateSquares = 0.0, countSquares = 0.0
    let rounds = 20_000
    for _ in 0..<rounds {
        let (out, report) = agg.aggregate([[Float](repeating: 0, count: d)], noise: &noise)
        for v in out { updateSquares += pow(Double(v) * m / report.clippingNorm, 2) }
        // fraction = (1 - 1/2 + noise) / m + 1/2.
        let countNoise = (report.noisyUnclippedFraction! - 0.5) * m - 0.5
        countSquares += countNoise * countNoise
    }
    let zDelta = (updateSquares / Double(rounds * d)).squareRoot()
    let sb = (countSquares / Double(rounds)).squareRoot()
    let measured = 1 / (1 / (zDelta * zDelta) + 1 / (4 * sb * sb)).squareRoot()
    #expect(Swift.abs(measured / z - 1) < 0.01, "z_Delta \(zDelta), sigma_b \(sb): total \(measured), accounted \(z)")
    #expect(Swift.abs(sb / sigmaB - 1) < 0.03, "count noise \(sb), configured \(sigmaB)")
}

@Test func robustAggregatorWarningsNameTheRisk() {
    // Hypergeometric tail against a slow reference: enumerate P[X = x] from binomial
    // coefficients computed exactly in integers (N = 20, K = 5 malicious, m = 6 drawn).
    func choose(_ n: Int, _ k: Int) -> Double {
        guard k >= 0, k <= n else { return 0 }
        var r = 1.0
        for i in 0..<k { r = r * Double(n - i) / Double(i + 1) }
        return r.rounded()
    }
    for f in 0...4 {
        let reference = ((f + 1)...5).reduce(0.0) { $0 + choose(5, $1) * choose(15, 6 - $1) } / choose(20, 6)
        let p = FederatedConfiguration.hypergeometricTail(population: 20, successes: 5, draws: 6, above: f)
        #expect(Swift.abs(p - reference) < 1e-12 * max(1, reference), "f = \(f): \(p) vs \(reference)")
    }
    // Krum with f = 2 of 10 per round and 10% of 100 clients malicious: the expected count
    // (1) is fine, but P[X > 2] is about 7% per round.
    let krum = FederatedConfiguration(
        rounds: 50, sampling: .fixedSize, clientsPerRound: 10, aggregator: .krum(byzantine: 2, selected: 1),
        attack: FederatedAttack(maliciousFraction: 0.1, kind: .updateScaling(factor: 10)))
    #expect(krum.warnings(clientCount: 100).contains { $0.contains("Krum") && $0.contains("P[more than 2") })
    let trimmed = FederatedConfiguration(
        rounds: 5, clientsPerRound: 10, aggregator: .trimmedMean(beta: 0.1),
        attack: FederatedAttack(maliciousFraction: 0.2, kind: .updateScaling(factor: 10)))
    #expect(trimmed.warnings(clientCount: 100).contains { $0.contains("trimmed mean") })
    let enough = FederatedConfiguration(
        rounds: 5, clientsPerRound: 10, aggregator: .trimmedMean(beta: 0.3),
        attack: FederatedAttack(maliciousFraction: 0.2, kind: .updateScaling(factor: 10)))
    #expect(enough.warnings(clientCount: 100).isEmpty)
    // Secure aggregation's minimum survivors: the extra delta T P[Binomial(N-1, q(1-d)) = k-1],
    // against the binomial formula by hand (N = 20, q = 3/20, no dropout, k = 3, T = 40).
    let pmf = FederatedConfiguration.binomialProbability(19, 0.15, 2)
    #expect(Swift.abs(pmf - 171 * 0.15 * 0.15 * pow(0.85, 17)) < 1e-14)
    let secure = FederatedConfiguration(
        rounds: 40, clientsPerRound: 3, privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 1),
        secureAggregation: SecureAggregationSettings())
    #expect(secure.warnings(clientCount: 20, delta: 1e-5).contains { $0.contains("adds up to") })
    // 100 expected of 3,000 (the shipped size): the term is negligible, no warning.
    let large = FederatedConfiguration(
        rounds: 300, clientsPerRound: 100, privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 1),
        secureAggregation: SecureAggregationSettings())
    #expect(large.warnings(clientCount: 3000, delta: 3e-4).isEmpty)
}

@Test func secureAggregationTrainsWithDropoutsAndAdaptiveClipping() throws {
    // Poisson sampling of 8 expected of 20 clients, 30% dropouts, adaptive clipping, 6 rounds:
    // every round is composed, the dropped clients are among the sampled, the unclipped count
    // is at most the survivors, the noise follows the round's C_t (z_Delta C_t), C_t moves, and
    // against the plain path (same seed, so the same sample, dropouts aside) the model stays
    // finite.
    let (train, _, p) = try smallFederation()
    let z = 1.0, sigmaB = 1.0
    let clipping = ClippingMode.adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: sigmaB)
    let trainer = try FederatedTrainer(
        model: try smallModel(), data: train, partition: p,
        configuration: FederatedConfiguration(
            rounds: 6, sampling: .poisson, clientsPerRound: 8, local: LocalTraining(epochs: 1, batchSize: 5),
            privacy: UserLevelPrivacy(noiseMultiplier: z, clippingNorm: 0.3, clipping: clipping),
            secureAggregation: SecureAggregationSettings(scaleBits: 16, dropoutProbability: 0.3), seed: 8))
    let zDelta = 1 / (1 / (z * z) - 1 / (4 * sigmaB * sigmaB)).squareRoot()
    var norms: [Double] = []
    var dropped = 0
    for _ in 0..<6 {
        let r = try trainer.runRound()
        let privacy = try #require(r.privacy)
        #expect(Set(r.droppedClients).isSubset(of: Set(r.sampledClients)))
        let survivors = r.sampledClients.count - r.droppedClients.count
        #expect(privacy.unclippedCount <= (r.unmaskingSkipped ? 0 : survivors))
        #expect(r.unmaskingSkipped == (survivors < 3))
        #expect(Swift.abs(privacy.noiseStandardDeviation - zDelta * privacy.clippingNorm) < 1e-12)
        norms.append(privacy.clippingNorm)
        dropped += r.droppedClients.count
    }
    #expect(trainer.ledger.entries.reduce(0) { $0 + $1.count } == 6)
    #expect(Set(norms).count > 1)
    #expect(dropped > 0)
    #expect(trainer.flatParameters().allSatisfy { $0.isFinite })
}

@Test func underSecureAggregationTheServerLearnsOnlySumsOfTheDiagnostics() throws {
    // Review finding F2: each client's last-epoch loss, finite flag and example count reached
    // the server in clear beside its masked input. Now what the transport hands the server is
    // who answered; the loss and the finite flag travel masked in the input, so the server
    // reads only their sums. The mean loss equals the plain path's (same seed, same clients,
    // same local training) up to the rounding of each loss to Float and to the grid:
    // 64 (2^-(s+1) + 2^-25) for s = 16 scale bits. A non-finite client still counts (finite bit 0).
    func trainer(secure: Bool, learningRate: Double = 0.1) throws -> FederatedTrainer {
        try smallTrainer(
            FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 5,
                local: LocalTraining(epochs: 2, batchSize: 5, learningRate: learningRate),
                privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 0.5),
                secureAggregation: secure ? SecureAggregationSettings(scaleBits: 16) : nil, seed: 3))
    }
    let secure = try trainer(secure: true)
    let assignment = try secure.beginRound()
    var transport = InProcessTransport(trainer: secure)
    let outcome = try transport.collect(assignment)
    #expect(outcome.updates.count == 5)
    #expect(outcome.updates.allSatisfy { $0.isSecureReceipt })
    #expect(outcome.secureSum?.count == FederatedTrainer.secureInputCount(parameterCount: assignment.global.count))
    let secureReport = try secure.finishRound(assignment, outcome: outcome)
    let plainReport = try trainer(secure: false).runRound()
    #expect(secureReport.sampledClients == plainReport.sampledClients)
    #expect(plainReport.meanLocalLoss.isFinite && plainReport.meanLocalLoss > 0)
    let tolerance = FederatedTrainer.secureLossScale * (1 / Double(1 << 17) + 1 / Double(1 << 25))
    #expect(
        Swift.abs(secureReport.meanLocalLoss - plainReport.meanLocalLoss) <= tolerance,
        "secure \(secureReport.meanLocalLoss), plain \(plainReport.meanLocalLoss)")
    #expect(secureReport.nonFiniteClients == 0)
    // Every client diverges (learning rate 1e38): counted from the masked finite bits.
    let diverging = try trainer(secure: true, learningRate: 1e38).runRound()
    #expect(diverging.nonFiniteClients == 5)
    #expect(diverging.meanLocalLoss.isNaN)
}
