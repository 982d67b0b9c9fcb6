import DPAccounting
import DPData
import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPTraining

/// Runs `body(rank)` on `size` threads (``ThreadGroup``) and returns the results in rank order.
func onRanks<T>(_ size: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
    try ThreadGroup.run(size, body)
}

// MARK: - K ranks equal one process bit for bit

private func parallelTrainer(
    privacy: PrivacySettings?, physical: Int, communicator: any Communicator, specs: [LayerSpec]? = nil,
    seed: UInt64 = 11, modelSeed: UInt64 = 5, dataSeed: UInt64 = 3, optimizer: Optimizer? = nil
) throws -> DPSGDTrainer {
    let data = SyntheticData.gaussianMixture(
        classes: 3, dimensions: 6, examplesPerClass: 30, separation: 2, seed: dataSeed)
    let model = try ModelBuilder.build(
        specs: specs ?? [.linear(outputs: 7, bias: true), .tanh, .linear(outputs: 3, bias: true)], inputShape: [6],
        seed: modelSeed)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: optimizer ?? Adam(learningRate: 0.05), data: data,
        configuration: TrainerConfiguration(
            expectedBatchSize: 20, maxPhysicalBatchSize: physical, privacy: privacy, seed: seed))
    trainer.communicator = communicator
    return trainer
}

/// Everything a step leaves behind: parameters (bits), clipping norm, ledger, figures.
private struct TrainedState: Equatable {
    var parameters: [[UInt32]]
    var clippingNorm: Double
    var ledger: PrivacyLedger
    var reports: [[Double]]
}

private func train(_ trainer: DPSGDTrainer, steps: Int) throws -> TrainedState {
    var reports: [[Double]] = []
    for _ in 0..<steps {
        let r = try trainer.trainStep()
        reports.append([Double(r.batchSize), r.lossSum, Double(r.correct), Double(r.clippedCount), r.clippingNorm])
    }
    return TrainedState(
        parameters: trainer.model.parameters.map { $0.value.scalars.map(\.bitPattern) },
        clippingNorm: trainer.clippingNorm, ledger: trainer.ledger, reports: reports)
}

/// Every parameter bit, the clipping norm, the ledger and every step's figures equal; a short message otherwise.
private func expectSame(_ state: TrainedState, _ one: TrainedState, _ what: String) {
    let a = state.parameters.joined(), b = one.parameters.joined()
    let differing = zip(a, b).filter { $0 != $1 }.count
    #expect(
        a.count == b.count && differing == 0, "\(what): \(differing) of \(b.count) parameters differ from one process")
    #expect(state.clippingNorm == one.clippingNorm, "\(what): clipping norm")
    #expect(state.ledger == one.ledger, "\(what): ledger")
    #expect(state.reports == one.reports, "\(what): step figures")
}

@Test(
    arguments: [
        ClippingMode.flat, .perLayer(thresholds: nil), .automatic(stability: 0.01),
        .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 10),
    ], [2, 3])
func dataParallelRanksGiveTheModelOfOneProcessBitForBit(mode: ClippingMode, ranks: Int) throws {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, clipping: mode, delta: 1e-5)
    // Chunks of 6 for batches of about 20: 3 to 5 chunks a step, rarely a multiple of the ranks.
    let one = try train(parallelTrainer(privacy: privacy, physical: 6, communicator: SingleProcess()), steps: 12)
    let group = ThreadGroup(size: ranks)
    let states = try onRanks(ranks) { r in
        try train(parallelTrainer(privacy: privacy, physical: 6, communicator: group.rank(r)), steps: 12)
    }
    for (r, state) in states.enumerated() { expectSame(state, one, "rank \(r) of \(ranks), \(mode)") }
    // The model moved: the comparison is not of two untrained models.
    let untrained = try parallelTrainer(privacy: privacy, physical: 6, communicator: SingleProcess())
    #expect(untrained.model.parameters.map { $0.value.scalars.map(\.bitPattern) } != one.parameters)
}

@Test func dataParallelNonPrivateTrainingMatchesToo() throws {
    let one = try train(parallelTrainer(privacy: nil, physical: 4, communicator: SingleProcess()), steps: 8)
    let group = ThreadGroup(size: 2)
    let states = try onRanks(2) { r in
        try train(parallelTrainer(privacy: nil, physical: 4, communicator: group.rank(r)), steps: 8)
    }
    for (r, state) in states.enumerated() { expectSame(state, one, "rank \(r), non-private") }
}

/// The chunked sum is the plain sum of the per-chunk sums: against a one-chunk run, the
/// difference is rounding only (relative 1e-5), and the noise is there exactly once.
@Test func chunkedSumsAgreeWithOneChunkUpToRounding() throws {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, delta: 1e-5)
    // SGD: the parameters are linear in the summed gradients (Adam would divide rounding
    // differences by small second moments and amplify them).
    let whole = try train(
        parallelTrainer(
            privacy: privacy, physical: 1024, communicator: SingleProcess(), optimizer: SGD(learningRate: 0.5)),
        steps: 5)
    let group = ThreadGroup(size: 2)
    let split = try onRanks(2) { r in
        try train(
            parallelTrainer(
                privacy: privacy, physical: 5, communicator: group.rank(r), optimizer: SGD(learningRate: 0.5)),
            steps: 5)
    }[0]
    var largest = 0.0
    for (a, b) in zip(whole.parameters.joined(), split.parameters.joined()) {
        let x = Float(bitPattern: a), y = Float(bitPattern: b)
        largest = max(largest, Double(abs(x - y) / max(abs(x), abs(y))))
    }
    #expect(largest <= 1e-5, "largest relative difference \(largest)")
    // Not bit for bit: the chunks are summed in another order than one chunk's examples.
    #expect(whole.parameters != split.parameters)
    #expect(whole.ledger == split.ledger)
}

@Test func dataParallelRefusesWhatItDoesNotSupport() throws {
    let privacy = PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5)
    let group = ThreadGroup(size: 2)
    let errors = try onRanks(2) { r -> String in
        let t = try parallelTrainer(
            privacy: privacy, physical: 4, communicator: group.rank(r),
            specs: [.linear(outputs: 7, bias: true), .tanh, .dropout(rate: 0.1), .linear(outputs: 3, bias: true)])
        do {
            try t.trainStep()
            return "no error"
        } catch { return "\(error)" }
    }
    #expect(errors.allSatisfy { $0.contains("dropout") && $0.contains("one process") }, "\(errors)")
}

// MARK: - Ranks holding different state are stopped

/// One rank (rank 1 of 2) built differently from rank 0; what each rank's first step says.
private func firstStepErrors(_ rank1: @escaping (any Communicator) throws -> DPSGDTrainer) throws -> [String] {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, delta: 1e-5)
    let group = ThreadGroup(size: 2)
    return try onRanks(2) { r -> String in
        let t =
            r == 0
            ? try parallelTrainer(privacy: privacy, physical: 6, communicator: group.rank(0))
            : try rank1(group.rank(1))
        let before = (t.model.parameters.map { $0.value.scalars }, t.ledger, t.step)
        do {
            try t.trainStep()
            return "no error"
        } catch {
            // Nothing was updated or charged.
            #expect(
                t.model.parameters.map { $0.value.scalars } == before.0 && t.ledger == before.1 && t.step == before.2)
            return "\(error)"
        }
    }
}

@Test func dataParallelRanksWithAnotherSeedWeightsOrDataStopBeforeTheFirstStep() throws {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, delta: 1e-5)
    let cases: [(String, (any Communicator) throws -> DPSGDTrainer)] = [
        ("sampling stream", { try parallelTrainer(privacy: privacy, physical: 6, communicator: $0, seed: 12) }),
        ("weights", { try parallelTrainer(privacy: privacy, physical: 6, communicator: $0, modelSeed: 6) }),
        // Another data file of the same size.
        ("training set", { try parallelTrainer(privacy: privacy, physical: 6, communicator: $0, dataSeed: 4) }),
    ]
    for (what, build) in cases {
        let errors = try firstStepErrors(build)
        #expect(
            errors.allSatisfy {
                $0.contains("different training state") && $0.contains(what) && $0.contains("ranks 1")
            },
            "\(what): \(errors)")
    }
}

@Test func dataParallelRankResumedFromAnotherCheckpointIsStopped() throws {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, delta: 1e-5)
    // Rank 1 found a checkpoint after 2 steps on its own filesystem; rank 0 starts fresh.
    let alone = try parallelTrainer(privacy: privacy, physical: 6, communicator: SingleProcess())
    try alone.trainStep()
    try alone.trainStep()
    let saved = alone.checkpoint()
    let errors = try firstStepErrors { c in
        let t = try parallelTrainer(privacy: privacy, physical: 6, communicator: c)
        try t.restore(saved)
        return t
    }
    for what in ["step", "sampling stream", "noise stream", "weights", "optimizer state", "privacy ledger"] {
        #expect(errors.allSatisfy { $0.contains(what) }, "\(what): \(errors)")
    }
}

@Test func dataParallelRanksDrawingAnotherBatchMidRunAreStopped() throws {
    let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 0.5, delta: 1e-5)
    let group = ThreadGroup(size: 2)
    let errors = try onRanks(2) { r -> String in
        let t = try parallelTrainer(privacy: privacy, physical: 1024, communicator: group.rank(r))
        try t.trainStep()
        // After the start-of-run check, rank 1 leaves out examples the other does not: its
        // batches differ from the second step on.
        if r == 1 { t.excludedExamples = (0..<t.data.count).map { $0 % 2 == 0 } }
        let before = t.model.parameters.map { $0.value.scalars }
        do {
            try t.trainStep()
            return "no error"
        } catch {
            #expect(t.model.parameters.map { $0.value.scalars } == before && t.step == 1)
            return "\(error)"
        }
    }
    #expect(errors.allSatisfy { $0.contains("drew another batch") && $0.contains("step 1") }, "\(errors)")
}
