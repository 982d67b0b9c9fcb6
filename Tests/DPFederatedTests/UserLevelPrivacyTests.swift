import DPAccounting
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPFederated

// DP-FedAvg's server step against a by-hand reference, the released noise against the accounted
// noise, adaptive clipping against a known quantile, and the user-level epsilon against the
// accountant. Seeds are fixed; the statistical tolerances are stated beside each check.

/// `count` random updates of `d` scalars with norms spread around 1.
private func randomUpdates(count: Int, d: Int, seed: UInt64) -> [[Float]] {
    var rng = PhiloxRandom(seed: seed, stream: 5)
    return (0..<count).map { i in
        var u = [Float](repeating: 0, count: d)
        u.withUnsafeMutableBufferPointer {
            rng.fillNormal($0, standardDeviation: Float(0.2 + 0.25 * Double(i % 5)) / Float(d).squareRoot())
        }
        return u
    }
}

@Test(arguments: [false, true])
func aggregateEqualsClipSumNoiseDivideByExpectedByHand(perLayer: Bool) throws {
    let d = 12
    let layout = UpdateLayout(layerRanges: [0..<5, 5..<12])
    // 7 clients sampled, 10 expected: the denominator must be 10, never 7.
    let updates = randomUpdates(count: 7, d: d, seed: 1)
    let c = 0.5, z = 1.3
    var agg = try DPFedAvgAggregator(
        privacy: UserLevelPrivacy(
            noiseMultiplier: z, clippingNorm: c, clipping: perLayer ? .perLayer(thresholds: nil) : .flat),
        expectedClients: 10,
        layout: layout)
    var noise = NoiseSource(randomness: .seeded, seed: 77)
    let (out, report) = agg.aggregate(updates, noise: &noise)

    // By hand: each client clipped (whole update to C, or each layer to C / sqrt 2), summed,
    // plus the same Gaussian draws times z C, over 10.
    var sum = [Double](repeating: 0, count: d)
    var unclipped = 0
    for u in updates {
        let norm = u.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        if norm <= c { unclipped += 1 }
        if perLayer {
            for r in [0..<5, 5..<12] {
                let nk = u[r].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                let f = min(1, (c / 2.0.squareRoot()) / nk)
                for j in r { sum[j] += Double(u[j]) * f }
            }
        } else {
            let f = min(1, c / norm)
            for j in 0..<d { sum[j] += Double(u[j]) * f }
        }
    }
    var draws = [Double](repeating: 0, count: d)
    var rng = PhiloxRandom(seed: 77, stream: 0xfed_0015e)
    draws.withUnsafeMutableBufferPointer { rng.fillNormal($0) }
    let expected = (0..<d).map { (sum[$0] + z * c * draws[$0]) / 10 }
    for j in 0..<d { #expect(Swift.abs(Double(out[j]) - expected[j]) < 1e-6 * max(1, Swift.abs(expected[j]))) }
    #expect(report.noiseStandardDeviation == z * c)
    #expect(report.unclippedCount == unclipped)
    #expect(unclipped > 0 && unclipped < 7) // the fixture clips some clients and not others
}

@Test func adaptiveRoundSplitsTheBudgetAndUsesTheRoundsNorm() throws {
    let d = 6
    let updates = randomUpdates(count: 9, d: d, seed: 2)
    let z = 1.0, sigmaB = 2.0, c0 = 0.4, eta = 0.2, gamma = 0.5
    var agg = try DPFedAvgAggregator(
        privacy: UserLevelPrivacy(
            noiseMultiplier: z, clippingNorm: c0,
            clipping: .adaptive(targetQuantile: gamma, learningRate: eta, countNoiseMultiplier: sigmaB)),
        expectedClients: 8,
        layout: UpdateLayout(count: d))
    var noise = NoiseSource(randomness: .seeded, seed: 5)
    let (out, report) = agg.aggregate(updates, noise: &noise)
    // z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2) = (1 - 1/16)^(-1/2).
    let zDelta = 1 / (1 - 1.0 / 16).squareRoot()
    var rng = PhiloxRandom(seed: 5, stream: 0xfed_0015e)
    var draws = [Double](repeating: 0, count: d)
    draws.withUnsafeMutableBufferPointer { rng.fillNormal($0) }
    var one = [0.0]
    one.withUnsafeMutableBufferPointer { rng.fillNormal($0) }
    var sum = [Double](repeating: 0, count: d)
    var unclipped = 0
    for u in updates {
        let norm = u.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        if norm <= c0 { unclipped += 1 }
        for j in 0..<d { sum[j] += Double(u[j]) * min(1, c0 / norm) }
    }
    for j in 0..<d {
        #expect(Swift.abs(Double(out[j]) - (sum[j] + zDelta * c0 * draws[j]) / 8) < 1e-6)
    }
    // The noise is calibrated to the norm used this round (C_0), not the updated one.
    #expect(Swift.abs(report.noiseStandardDeviation - zDelta * c0) < 1e-12)
    // The centred count sum_i (b_i - 1/2) + N(0, sigma_b^2) over the 9 sampled clients (its
    // sensitivity is 1/2), over the expected 8, plus 1/2.
    let bTilde = (Double(unclipped) - 9.0 / 2 + sigmaB * one[0]) / 8 + 0.5
    #expect(Swift.abs(report.noisyUnclippedFraction! - bTilde) < 1e-12)
    // Geometric update, with the sign that shrinks C when too many are unclipped.
    #expect(Swift.abs(report.nextClippingNorm - c0 * Foundation.exp(-eta * (bTilde - gamma))) < 1e-12)
    #expect(agg.clippingNorm == report.nextClippingNorm)
}

@Test func releasedNoiseHasTheAccountedDeviation() throws {
    // Black box: all clients send zero, so m times the release is the noise alone. 200,000
    // coordinates: the sample deviation has relative standard error 1/sqrt(2 x 200000) =
    // 0.16%; the tolerance 0.8% is 5 standard errors (false failure < 1e-6), and a defect that
    // makes the noise 3% smaller than accounted misses by 14 standard errors.
    let d = 200_000
    for clipping in [ClippingMode.flat, .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 0.8)] {
        let z = 1.1
        var agg = try DPFedAvgAggregator(
            privacy: UserLevelPrivacy(noiseMultiplier: z, clippingNorm: 0.7, clipping: clipping), expectedClients: 20,
            layout: UpdateLayout(count: d))
        var noise = NoiseSource(randomness: .seeded, seed: 11)
        let (out, _) = agg.aggregate([[Float](repeating: 0, count: d)], noise: &noise)
        let x = out.map { Double($0) * 20 }
        let sd = (x.reduce(0) { $0 + $1 * $1 } / Double(d)).squareRoot()
        let zUpdate: Double
        if case .adaptive = clipping { zUpdate = 1 / (1 / (z * z) - 1 / (4 * 0.64)).squareRoot() } else { zUpdate = z }
        #expect(Swift.abs(sd / (zUpdate * 0.7) - 1) < 0.008, "noise sd \(sd), accounted \(zUpdate * 0.7)")
    }
}

@Test(arguments: [0.5, 0.9])
func adaptiveClippingConvergesToTheTargetQuantile(gamma: Double) throws {
    // Update norms ~ Exp(1): the gamma-quantile is -log(1 - gamma) (0.693 and 2.303). 100
    // clients per round, sigma_b = m / 20 = 5, eta = 0.2, from C_0 = 0.05 (far below).
    // After 300 rounds log C fluctuates around log q with a standard deviation of about 0.04
    // (restoring rate eta f(q) q ~ 0.07 per round against per-round noise of about 0.014);
    // the mean of the last 100 rounds has a standard deviation below 0.02, and the
    // tolerance is 10% (5 of them). With the sign of the update inverted C runs to 0.
    let m = 100
    var agg = try DPFedAvgAggregator(
        privacy: UserLevelPrivacy(
            noiseMultiplier: 1, clippingNorm: 0.05,
            clipping: .adaptive(targetQuantile: gamma, learningRate: 0.2, countNoiseMultiplier: Double(m) / 20)),
        expectedClients: Double(m),
        layout: UpdateLayout(count: 1))
    var noise = NoiseSource(randomness: .seeded, seed: 3)
    var rng = PhiloxRandom(seed: 8, stream: 2)
    var late: [Double] = []
    for t in 0..<300 {
        let updates = (0..<m).map { _ in [Float(-Foundation.log(rng.nextOpenUnitDouble()))] }
        let (_, report) = agg.aggregate(updates, noise: &noise)
        if t >= 200 { late.append(report.clippingNorm) }
    }
    let meanLogC = late.map { Foundation.log($0) }.reduce(0, +) / Double(late.count)
    let quantile = -Foundation.log(1 - gamma)
    #expect(
        Swift.abs(Foundation.exp(meanLogC) / quantile - 1) < 0.1,
        "C -> \(Foundation.exp(meanLogC)), quantile \(quantile)")
}

@Test func countNoiseTooSmallForTheBudgetIsRefused() {
    #expect(throws: TrainingError.self) {
        try UserLevelPrivacy(
            noiseMultiplier: 1, clippingNorm: 1,
            clipping: .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 0.5)
        ).updateNoiseMultiplier()
    }
    #expect(throws: FederatedError.self) {
        try DPFedAvgAggregator(
            privacy: UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 1, clipping: .automatic(stability: 0.01)),
            expectedClients: 1, layout: UpdateLayout(count: 1))
    }
}

// MARK: - Training and accounting

/// Three Gaussian classes in 8 dimensions over `clients` clients.
func smallFederation(
    clients: Int = 20, perClass: Int = 60, seed: UInt64 = 1
) throws -> (Dataset, Dataset, ClientPartition) {
    let train = SyntheticData.gaussianMixture(
        classes: 3, dimensions: 8, examplesPerClass: perClass, separation: 4, seed: seed)
    let test = SyntheticData.gaussianMixture(
        classes: 3, dimensions: 8, examplesPerClass: 50, separation: 4, seed: seed, part: .test)
    let p = try ClientPartition.make(labels: train.labels, classCount: 3, clients: clients, scheme: .iid, seed: seed)
    return (train, test, p)
}

func smallModel(seed: UInt64 = 2) throws -> Sequential {
    try ModelBuilder.build(
        specs: [.linear(outputs: 16, bias: true), .tanh, .linear(outputs: 3, bias: true)], inputShape: [8], seed: seed)
}

/// A trainer of ``smallModel(seed:)`` on the default ``smallFederation(clients:perClass:seed:)``.
func smallTrainer(_ configuration: FederatedConfiguration) throws -> FederatedTrainer {
    let (train, _, p) = try smallFederation()
    return try FederatedTrainer(model: try smallModel(), data: train, partition: p, configuration: configuration)
}

@Test func nonPrivateFedAvgLearns() throws {
    let (train, test, p) = try smallFederation()
    let trainer = try FederatedTrainer(
        model: try smallModel(), data: train, partition: p,
        configuration: FederatedConfiguration(
            rounds: 10, sampling: .fixedSize, clientsPerRound: 5,
            local: LocalTraining(epochs: 2, batchSize: 5, learningRate: 0.1),
            weighting: .examples))
    for _ in 0..<10 { try trainer.runRound() }
    #expect(trainer.evaluate(test: test).cleanAccuracy > 0.9)
    #expect(throws: FederatedError.self) { try trainer.epsilon(delta: 1e-5) }
}

@Test(arguments: [SamplingScheme.poisson, .fixedSize])
func userLevelEpsilonEqualsTheAccountants(sampling: SamplingScheme) throws {
    let (train, _, p) = try smallFederation()
    let z = 0.9, rounds = 6, m = 4, n = p.clientCount
    let trainer = try FederatedTrainer(
        model: try smallModel(), data: train, partition: p,
        configuration: FederatedConfiguration(
            rounds: rounds, sampling: sampling, clientsPerRound: m, local: LocalTraining(epochs: 1, batchSize: 10),
            privacy: UserLevelPrivacy(noiseMultiplier: z, clippingNorm: 1)))
    for _ in 0..<rounds { try trainer.runRound() }
    var reference = RDPAccountant(neighboringRelation: sampling == .poisson ? .addOrRemoveOne : .replaceOne)
    let event: DpEvent =
        sampling == .poisson
        ? .poissonSampled(probability: Double(m) / Double(n), event: .gaussian(noiseMultiplier: z))
        : .sampledWithoutReplacement(sampleSize: m, datasetSize: n, event: .gaussian(noiseMultiplier: z / 2))
    try reference.compose(event, count: rounds)
    let expected = try reference.epsilon(delta: 1e-5).epsilon
    #expect(Swift.abs(try trainer.epsilon(delta: 1e-5).epsilon - expected) < 1e-12 * expected)
    if sampling == .poisson {
        // The PLD accountant on the same ledger: within its certified bounds of RDP's value
        // (RDP is an upper bound, PLD tighter).
        let pld = try trainer.epsilon(delta: 1e-5, accountant: PLDAccountant())
        #expect(pld.epsilon <= expected * 1.0001)
    }
    // The wrong relation is refused, not silently accounted.
    #expect(throws: AccountingError.self) {
        try trainer.epsilon(
            delta: 1e-5,
            accountant: RDPAccountant(neighboringRelation: sampling == .poisson ? .replaceOne : .addOrRemoveOne))
    }
}

@Test func privacyRefusesWhatTheAccountantCannotModel() throws {
    let (train, _, p) = try smallFederation()
    let dp = UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 1)
    let cases: [(FederatedConfiguration, String)] = [
        (FederatedConfiguration(rounds: 1, clientsPerRound: 4, weighting: .examples, privacy: dp), "uniform"),
        (
            FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 5, aggregator: .median, privacy: dp), "sensitivity"
        ),
        (FederatedConfiguration(rounds: 1, clientsPerRound: 21), "more than the 20 clients"),
        (
            FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 6, aggregator: .krum(byzantine: 2, selected: 1)),
            "2f + 3"
        ),
        (
            FederatedConfiguration(rounds: 1, clientsPerRound: 6, aggregator: .krum(byzantine: 1, selected: 1)),
            "fixed-size"
        ),
        (
            FederatedConfiguration(rounds: 1, clientsPerRound: 4, secureAggregation: SecureAggregationSettings()),
            "enable user-level DP"
        ),
        (
            FederatedConfiguration(
                rounds: 1, sampling: .fixedSize, clientsPerRound: 9, aggregator: .median,
                attack: FederatedAttack(maliciousFraction: 0.5, kind: .updateScaling(factor: -3))), "majority"
        ),
    ]
    for (config, phrase) in cases {
        do {
            _ = try FederatedTrainer(model: try smallModel(), data: train, partition: p, configuration: config)
            Issue.record("expected a refusal containing \"\(phrase)\"")
        } catch let e as FederatedError {
            #expect(e.description.contains(phrase), "\(e.description)")
        }
    }
}
