// swift-format-ignore-file
// (the snippet regions are shown word for word in the docs: Tests/DocumentationTests)
import DPAccounting

/// docs/accounting.md, "Privacy events are values".
func accountingEvents() throws {
    // snippet: accounting-events
    let step = DpEvent.poissonSampled(probability: 256.0 / 60000,
                                      event: .gaussian(noiseMultiplier: 1.1))
    var rdp = RDPAccountant()                     // add/remove-one by default
    try rdp.compose(step, count: 14062)
    let e = try rdp.epsilon(delta: 1e-5)          // epsilon 2.5966 at order 8.1

    var pld = PLDAccountant()
    try pld.compose(.selfComposed(event: step, count: 14062))
    let r = try pld.epsilon(delta: 1e-5)          // epsilon is between 2.3812 and 2.3817
    // end snippet
    print(e, r)
}

/// docs/accounting.md, "Calibration".
func accountingCalibration() throws {
    // snippet: accounting-calibration
    let sigma = try noiseMultiplier(targetEpsilon: 2, delta: 1e-5, samplingProbability: 0.01,
                                    steps: 10000, accountant: PLDAccountant())
    let steps = try maxSteps(targetEpsilon: 2, delta: 1e-5, samplingProbability: 0.01,
                             noiseMultiplier: 1.0)
    // Any event family, e.g. fixed-size batches:
    let s = try noiseMultiplier(targetEpsilon: 2, delta: 1e-5,
                                accountant: RDPAccountant(neighboringRelation: .replaceOne)) {
        .selfComposed(event: .sampledWithoutReplacement(sampleSize: 256, datasetSize: 60000,
                                                        event: .gaussian(noiseMultiplier: $0)),
                      count: 2000)
    }
    // end snippet
    print(sigma, steps, s)
}
