// DPAccounting alone (no tensors, no training): account a custom mechanism made of
// privacy events, with the RDP and the PLD accountant, then calibrate its noise.
//
// The mechanism: a private pre-processing step (one Gaussian release of per-feature sums,
// sigma 4), then 2000 DP-SGD steps on Poisson batches (q = 0.01, sigma 1.0), then 50
// federated-style rounds that each sample 100 of 10,000 users without replacement (sigma 2),
// accounted under the replace-one relation by RDP.
//
//     cd Examples && swift run AccountCustomMechanism
import DPAccounting

let delta = 1e-5
let statistics = DpEvent.gaussian(noiseMultiplier: 4)
let step = DpEvent.poissonSampled(probability: 0.01, event: .gaussian(noiseMultiplier: 1.0))
let training = DpEvent.composed([statistics, .selfComposed(event: step, count: 2000)])

// MARK: - Epsilon by RDP (an upper bound) and by PLD (certified lower and upper bounds)

var rdp = RDPAccountant()
try rdp.compose(training)
let byRDP = try rdp.epsilon(delta: delta)
print("RDP: \(byRDP)")

var pld = PLDAccountant()
try pld.compose(training)
let byPLD = try pld.epsilon(delta: delta)
print("PLD: \(byPLD)")

// MARK: - A ledger keeps the events, not the epsilons; any accountant re-accounts it

var ledger = PrivacyLedger()
try ledger.record(statistics)
try ledger.record(step, count: 2000)
print("ledger: \(ledger.entries.count) entries, \(ledger.entries.reduce(0) { $0 + $1.count }) events")
let again = try ledger.epsilon(delta: delta, accountant: RDPAccountant())
print("ledger by RDP: epsilon \(again.epsilon)")

// MARK: - Sampling without replacement: replace-one neighbours, RDP only

let rounds = DpEvent.selfComposed(
    event: .sampledWithoutReplacement(sampleSize: 100, datasetSize: 10_000, event: .gaussian(noiseMultiplier: 2)),
    count: 50)
var replaceOne = RDPAccountant(neighboringRelation: .replaceOne)
try replaceOne.compose(rounds)
print("50 rounds without replacement (replace-one, RDP): \(try replaceOne.epsilon(delta: delta))")
do {
    var refused = PLDAccountant()
    try refused.compose(rounds)
} catch {
    print("PLD refuses what it cannot account: \(error)")
}

// MARK: - Calibration: the noise for a target, the steps for a noise

let sigma = try noiseMultiplier(
    targetEpsilon: 2, delta: delta, samplingProbability: 0.01, steps: 2000,
    accountant: PLDAccountant())
let steps = try maxSteps(targetEpsilon: 2, delta: delta, samplingProbability: 0.01, noiseMultiplier: 1.0)
print("epsilon 2 at delta \(delta): noise multiplier \(sigma) for 2000 steps (PLD); at sigma 1.0, \(steps) steps (RDP)")

// The example is a check too: the PLD upper bound is the tighter one, and calibration never overshoots.
var check = PLDAccountant()
try check.compose(
    .selfComposed(event: .poissonSampled(probability: 0.01, event: .gaussian(noiseMultiplier: sigma)), count: 2000))
let calibrated = try check.epsilon(delta: delta).epsilon
guard byPLD.epsilon <= byRDP.epsilon, calibrated <= 2, abs(again.epsilon - byRDP.epsilon) < 1e-9 else {
    fatalError("AccountCustomMechanism: PLD \(byPLD.epsilon) vs RDP \(byRDP.epsilon), calibrated \(calibrated)")
}
