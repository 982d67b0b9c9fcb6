import DPAccounting
import DPData
import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPTraining

// The trainer as a black-box mechanism: what it releases (parameter updates, clipping norms,
// batches) is measured and compared with the privacy event it composes into its ledger.
//
// Statistical contract of this suite: each estimate has its standard error stated beside it;
// the tolerances sit at 4 or more standard errors from the accounted value (a false failure
// less often than once in 10^4 runs, per test), and a defect that makes any released noise 3%
// smaller than accounted moves the estimate 8 or more standard errors past the tolerance.
// Seeds are fixed, so a run is deterministic; the rates above are over seeds. The secure-mode
// tests use the OS generator and so are genuinely random at those rates.

// MARK: - Fixtures

/// Three Gaussian classes in `dimensions` dimensions.
private func mixture(count: Int, dimensions: Int, seed: UInt64 = 7) -> Dataset {
    SyntheticData.gaussianMixture(
        classes: 3, dimensions: dimensions, examplesPerClass: count / 3, separation: 2, seed: seed)
}

private func trainer(
    _ model: Sequential, _ data: Dataset, batch: Int, privacy: PrivacySettings?,
    sampling: SamplingScheme = .poisson, learningRate: Double = 1, seed: UInt64 = 21
) throws -> DPSGDTrainer {
    try DPSGDTrainer(
        model: model, optimizer: SGD(learningRate: learningRate), data: data,
        configuration: TrainerConfiguration(
            sampling: sampling, expectedBatchSize: batch,
            privacy: privacy, seed: seed))
}

/// Mean and (population) standard deviation.
private func meanAndDeviation(_ x: [Double]) -> (mean: Double, sd: Double) {
    let m = x.reduce(0, +) / Double(x.count)
    return (m, (x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count)).squareRoot())
}

/// The noise on one step's summed gradient, recovered from the released update: the same
/// trainer with sigma = 0 (same seed, so the same batch and the same clipped sum) is the
/// noiseless twin; with SGD at learning rate 1, `noise = -(theta_noisy - theta_clean) * m`.
private func releasedGradientNoise(
    privacy: PrivacySettings, sampling: SamplingScheme,
    clean: PrivacySettings
) throws -> (noise: [Double], event: DpEvent) {
    let data = mixture(count: 300, dimensions: 200)
    let batch = 16
    // 200 -> 480 -> 3: 97,923 parameters, each coordinate one noise sample.
    let build = {
        try ModelBuilder.build(
            specs: [.linear(outputs: 480, bias: true), .tanh, .linear(outputs: 3, bias: true)],
            inputShape: [200], seed: 3)
    }
    let noisyModel = try build(), cleanModel = try build()
    let noisy = try trainer(noisyModel, data, batch: batch, privacy: privacy, sampling: sampling)
    let twin = try trainer(cleanModel, data, batch: batch, privacy: clean, sampling: sampling)
    try noisy.trainStep()
    try twin.trainStep()
    var noise: [Double] = []
    for (p, q) in zip(noisyModel.parameters, cleanModel.parameters) {
        for (x, y) in zip(p.value.scalars, q.value.scalars) { noise.append(-Double(x - y) * Double(batch)) }
    }
    return (noise, noisy.stepEvent)
}

/// The Gaussian noise multiplier inside a one-step event, and the L2 sensitivity of the
/// clipped sum under the event's relation (C under add/remove, 2C under replace-one).
private func accountedNoise(_ event: DpEvent, clippingNorm c: Double) -> (sigma: Double, sensitivity: Double) {
    switch event {
    case .poissonSampled(_, .gaussian(let s)): return (s, c)
    case .sampledWithoutReplacement(_, _, .gaussian(let s)): return (s, 2 * c)
    default:
        Issue.record("unexpected step event \(event.summary)")
        return (.nan, .nan)
    }
}

// MARK: - Gradient noise

@Test(
    "the released update noise is the accounted sigma times the sensitivity over the expected batch",
    arguments: SamplingScheme.allCases)
func updateNoiseMatchesTheAccountedEvent(sampling: SamplingScheme) throws {
    let c = 0.5
    let (noise, event) = try releasedGradientNoise(
        privacy: PrivacySettings(noiseMultiplier: 1.3, clippingNorm: c, delta: 1e-5), sampling: sampling,
        clean: PrivacySettings(noiseMultiplier: 0, clippingNorm: c, delta: 1e-5))
    let (sigma, sensitivity) = accountedNoise(event, clippingNorm: c)
    let (mean, sd) = meanAndDeviation(noise)
    // 97,923 coordinates: the relative standard error of sd is 1/sqrt(2N) = 0.23%; the
    // tolerance 1.2% is 5.3 standard errors (false failure ~1e-7); 3% too little noise sits
    // 8 standard errors beyond it.
    let accounted = sigma * sensitivity
    #expect(abs(sd / accounted - 1) < 0.012, "released noise sd \(sd) vs accounted \(accounted) (\(event.summary))")
    #expect(abs(mean) < 5 * sd / Double(noise.count).squareRoot(), "noise mean \(mean)")
}

// MARK: - Adaptive clipping: the joint mechanism

/// Recovers the released centred count from the clipping norms: `C' = C exp(-eta (f - gamma))`
/// gives `f = gamma - log(C'/C) / eta`, and the count is `R = m (f - 1/2)`. Runs `steps` steps in
/// a regime where every example is unclipped (huge C) or clipped (tiny C), and returns
/// `(batch size, R)` per step.
private func releasedCounts(
    unclipped: Bool, steps: Int, sigma: Double, countSigma: Double,
    seed: UInt64
) throws -> [(batch: Double, count: Double)] {
    let data = mixture(count: 42, dimensions: 2, seed: seed)
    let model = try ModelBuilder.build(specs: [.linear(outputs: 3, bias: true)], inputShape: [2], seed: seed)
    let eta = 1e-4, gamma = 0.5
    let t = try trainer(
        model, data, batch: 21,
        privacy: PrivacySettings(
            noiseMultiplier: sigma, clippingNorm: unclipped ? 1e6 : 1e-7,
            clipping: .adaptive(targetQuantile: gamma, learningRate: eta, countNoiseMultiplier: countSigma),
            delta: 1e-5),
        learningRate: 0, seed: seed)
    var out: [(Double, Double)] = []
    out.reserveCapacity(steps)
    for _ in 0..<steps {
        let before = t.clippingNorm
        let r = try t.trainStep()
        #expect(r.clippedCount == (unclipped ? 0 : r.batchSize), "regime broken at step \(r.step)")
        let f = gamma - Foundation.log(t.clippingNorm / before) / eta
        out.append((Double(r.batchSize), 21 * (f - 0.5)))
    }
    return out
}

/// Least-squares slope and residuals of y on x.
private func regress(_ points: [(batch: Double, count: Double)]) -> (slope: Double, residuals: [Double]) {
    let mx = points.reduce(0) { $0 + $1.batch } / Double(points.count)
    let my = points.reduce(0) { $0 + $1.count } / Double(points.count)
    var sxy = 0.0, sxx = 0.0
    for p in points {
        sxy += (p.batch - mx) * (p.count - my)
        sxx += (p.batch - mx) * (p.batch - mx)
    }
    let slope = sxy / sxx
    return (slope, points.map { $0.count - my - slope * ($0.batch - mx) })
}

@Test("adaptive clipping releases exactly the accounted joint Gaussian mechanism (Poisson, add/remove)")
func adaptiveClippingIsTheAccountedJointMechanism() throws {
    let sigma = 1.0, countSigma = 2.0, c = 0.5
    // 1. The gradient's share of the noise, from the released update.
    let (noise, event) = try releasedGradientNoise(
        privacy: PrivacySettings(
            noiseMultiplier: sigma, clippingNorm: c,
            clipping: .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: countSigma),
            delta: 1e-5),
        sampling: .poisson, clean: PrivacySettings(noiseMultiplier: 0, clippingNorm: c, delta: 1e-5))
    let gradientSD = meanAndDeviation(noise).sd // relative standard error 0.23%
    let accountedSigma = accountedNoise(event, clippingNorm: c).sigma
    #expect(accountedSigma == sigma)

    // 2. The count's sensitivity and noise, from the released clipping norms. Each example's
    // term in the released count is the slope of the count on the batch size (every example of
    // a regime has the same clipped state): the per-example sensitivity, measured.
    let steps = 20_000
    let all = try releasedCounts(unclipped: true, steps: steps, sigma: sigma, countSigma: countSigma, seed: 1)
    let none = try releasedCounts(unclipped: false, steps: steps, sigma: sigma, countSigma: countSigma, seed: 2)
    let (slopeUnclipped, r1) = regress(all), (slopeClipped, r2) = regress(none)
    // Slope standard error: sd / (sd(|B|) sqrt(T)) = 2 / (3.2 * 141) = 0.0045; tolerance 0.03.
    let sensitivity = max(abs(slopeUnclipped), abs(slopeClipped))
    #expect(
        abs(slopeUnclipped - 0.5) < 0.03 && abs(slopeClipped + 0.5) < 0.03,
        "count slopes \(slopeUnclipped) (unclipped) and \(slopeClipped) (clipped): the centred count moves by 1/2 per example"
    )
    // 40,000 residuals: relative standard error of sd 0.35%; tolerance 1.5% (4.3 standard errors).
    let countSD = meanAndDeviation(r1 + r2).sd
    #expect(countSD > countSigma * 0.985, "count noise sd \(countSD) vs accounted \(countSigma)")
    #expect(abs(countSD / countSigma - 1) < 0.015)

    // 3. The pair is one Gaussian mechanism of multiplier s with 1/s^2 = (C/sd_g)^2 + (Delta_b/sd_b)^2:
    // measured, it must be at least the accounted sigma (within the estimates' tolerance).
    let measured =
        1 / ((c / gradientSD) * (c / gradientSD) + (sensitivity / countSD) * (sensitivity / countSD)).squareRoot()
    #expect(
        measured > accountedSigma * 0.985,
        "the released pair is a Gaussian mechanism of multiplier \(measured), accounted \(accountedSigma)")
    #expect(abs(measured / accountedSigma - 1) < 0.015)
}

@Test func adaptiveClippingRefusesACountNoiseThatLeavesNoGradientNoise() throws {
    #expect(throws: TrainingError.self) {
        try AdaptiveClipping.gradientNoiseMultiplier(accounted: 2, countNoiseMultiplier: 1)
    }
    #expect(
        try AdaptiveClipping.gradientNoiseMultiplier(accounted: 1, countNoiseMultiplier: 2) == 1
            / (1 - 1.0 / 16).squareRoot())
}

// MARK: - Sampling

/// Per-example inclusion counts and batch sizes over `steps` batches.
private func inclusion(
    _ scheme: SamplingScheme, n: Int, batch: Int, steps: Int,
    randomness: RandomnessSource
) -> (counts: [Int], sizes: [Int]) {
    var s = BatchSampler(
        scheme: scheme, datasetSize: n, expectedBatchSize: batch, rng: PhiloxRandom(seed: 31),
        randomness: randomness)
    var counts = [Int](repeating: 0, count: n), sizes: [Int] = []
    var idx: [Int] = []
    for _ in 0..<steps {
        s.nextBatch(into: &idx)
        sizes.append(idx.count)
        for i in idx { counts[i] += 1 }
    }
    return (counts, sizes)
}

@Test(
    "each example joins a batch with the accounted probability, under both samplers and both sources",
    arguments: SamplingScheme.allCases, RandomnessSource.allCases)
func inclusionFrequenciesMatchTheEvent(scheme: SamplingScheme, randomness: RandomnessSource) {
    let n = 50, batch = 10, steps = 20_000
    let q = Double(batch) / Double(n)
    let (counts, sizes) = inclusion(scheme, n: n, batch: batch, steps: steps, randomness: randomness)
    // Each count is Binomial(T, q). Chi-square over the 50 examples: the 1e-5 upper quantile of
    // chi^2 with 50 degrees of freedom is 104.5 (a 3% error in q adds about (0.03)^2 T q / (1-q) = 225 to it).
    let expected = Double(steps) * q, variance = Double(steps) * q * (1 - q)
    let chi2 = counts.reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / variance }
    #expect(chi2 < 104.5, "inclusion counts chi-square \(chi2) (50 d.f.)")
    let total = Double(counts.reduce(0, +))
    // Total inclusions: mean T n q; sd sqrt(T n q (1 - q)) = 400 under Poisson; 0 for fixed size.
    #expect(
        abs(total / (Double(steps * n) * q) - 1) < 0.01, "mean inclusion rate \(total / Double(steps * n)) vs q = \(q)")
    let (meanSize, sdSize) = meanAndDeviation(sizes.map(Double.init))
    switch scheme {
    case .poisson:
        // |B| ~ Binomial(n, q): variance n q (1 - q) = 8; relative standard error of the sample
        // variance sqrt(2 / T) = 1%, tolerance 6%.
        #expect(abs(sdSize * sdSize / (Double(n) * q * (1 - q)) - 1) < 0.06, "batch size variance \(sdSize * sdSize)")
        #expect(abs(meanSize - Double(batch)) < 0.1)
    case .fixedSize:
        #expect(sizes.allSatisfy { $0 == batch })
    }
}

// MARK: - Secure mode

@Test("secure mode: two runs with the same seed and config differ in batches and noise; the seeded streams stay unused")
func secureModeRandomnessIsNotDerivedFromTheSeed() throws {
    let data = mixture(count: 60, dimensions: 4)
    func run() throws -> (batches: [[Int]], parameters: [Float], trainer: DPSGDTrainer) {
        let model = try ModelBuilder.build(specs: [.linear(outputs: 3, bias: true)], inputShape: [4], seed: 1)
        let t = try trainer(
            model, data, batch: 30,
            privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5, randomness: .secure))
        var batches: [[Int]] = []
        for _ in 0..<3 {
            var copy = t.sampler
            batches.append(copy.nextBatch())
            try t.trainStep()
        }
        return (batches, model.parameters.flatMap(\.value.scalars), t)
    }
    let a = try run(), b = try run()
    // Identical batches by chance: (q^2 + (1-q)^2)^n = 2^-60 per step.
    #expect(a.batches != b.batches, "secure batches repeat across runs: they come from the seed")
    #expect(a.parameters != b.parameters, "secure noise repeats across runs")
    // What the seed would have produced is not what ran.
    var seeded = BatchSampler(
        scheme: .poisson, datasetSize: data.count, expectedBatchSize: 30,
        rng: PhiloxRandom(seed: 21).split(stream: RandomStream.sampling.rawValue))
    #expect(a.batches[0] != seeded.nextBatch())
    // The seeded sampling and noise streams were never advanced.
    let root = PhiloxRandom(seed: 21)
    #expect(a.trainer.sampler.rng == root.split(stream: RandomStream.sampling.rawValue))
    #expect(a.trainer.noiseRandom == root.split(stream: RandomStream.noise.rawValue))
}

// MARK: - Non-finite norms and the clipped fraction

@Test("an infinite per-example gradient norm stops the step with a clear error; nothing is applied or composed")
func nonFiniteGradientNormStopsTheStep() throws {
    // One coordinate of 1e20: finite logits and loss, but a squared gradient norm of ~1e40 (inf in Float).
    var features = [Float](repeating: 0.1, count: 20 * 3)
    features[0] = 1e20
    let data = Dataset(
        name: "overflow", features: Tensor(features, shape: [20, 3]), labels: (0..<20).map { $0 % 2 }, classCount: 2)
    let model = try ModelBuilder.build(specs: [.linear(outputs: 2, bias: true)], inputShape: [3], seed: 1)
    model.parameters[0].value.fill(1e-30)
    let before = model.parameters.map(\.value.scalars)
    let t = try trainer(
        model, data, batch: 20, privacy: PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5))
    do {
        try t.trainStep()
        Issue.record("the step ran with a non-finite gradient norm")
    } catch let e as TrainingError {
        guard case .nonFiniteGradientNorm = e else {
            Issue.record("wrong error: \(e)")
            return
        }
        #expect("\(e)".contains("clipping cannot bound"))
    }
    #expect(model.parameters.map(\.value.scalars) == before)
    #expect(t.ledger.entries.isEmpty && t.step == 0)
}

@Test("per-layer clipping reports the fraction of examples with any layer clipped (never above 1)")
func perLayerClippedFractionIsAtMostOne() throws {
    let data = mixture(count: 60, dimensions: 6)
    let model = try ModelBuilder.build(
        specs: [.linear(outputs: 5, bias: true), .tanh, .linear(outputs: 3, bias: true)],
        inputShape: [6], seed: 2)
    let t = try trainer(
        model, data, batch: 20,
        privacy: PrivacySettings(
            noiseMultiplier: 1, clippingNorm: 1e-6, clipping: .perLayer(thresholds: nil), delta: 1e-5))
    for _ in 0..<5 {
        let r = try t.trainStep()
        #expect(
            r.clippedCount == r.batchSize, "every example has both layers clipped: \(r.clippedCount) of \(r.batchSize)")
    }
}
