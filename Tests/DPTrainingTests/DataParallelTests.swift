import DPAccounting
import DPData
import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPTraining

// MARK: - Ranks as threads of one process

/// K ranks as K threads sharing memory: the collectives of MPI with a barrier around each copy.
final class ThreadGroup: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    fileprivate var slots: [[UInt8]]

    init(size: Int) {
        self.size = size
        slots = Array(repeating: [], count: size)
    }

    func barrier() {
        condition.lock()
        let g = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while g == generation { condition.wait() }
        }
        condition.unlock()
    }

    func rank(_ r: Int) -> ThreadRank { ThreadRank(group: self, rank: r) }
}

final class ThreadRank: Communicator {
    let group: ThreadGroup
    let rank: Int
    var size: Int { group.size }
    init(group: ThreadGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        group.slots[rank] = Array(send)
        group.barrier()
        for r in 0..<size {
            group.slots[r].withUnsafeBytes {
                receive.baseAddress!.advanced(by: r * send.count).copyMemory(
                    from: $0.baseAddress!, byteCount: send.count)
            }
        }
        group.barrier()
    }

    func allToAll(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        let block = send.count / size
        group.slots[rank] = Array(send)
        group.barrier()
        for r in 0..<size {
            group.slots[r].withUnsafeBytes {
                receive.baseAddress!.advanced(by: r * block).copyMemory(
                    from: $0.baseAddress!.advanced(by: rank * block), byteCount: block)
            }
        }
        group.barrier()
    }

    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        if rank == root { group.slots[root] = Array(UnsafeRawBufferPointer(buffer)) }
        group.barrier()
        if rank != root { group.slots[root].withUnsafeBytes { buffer.copyMemory(from: $0) } }
        group.barrier()
    }

    func barrier() throws { group.barrier() }
    func abort(code: Int32) -> Never { fatalError("rank \(rank) aborted with \(code)") }
}

/// The results of the threads of ``onRanks(_:_:)``, by rank.
final class RankResults<T>: @unchecked Sendable {
    var values: [Result<T, Error>?]
    let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
}

/// Runs `body(rank)` on `size` threads and returns the results in rank order.
func onRanks<T>(_ size: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
    let results = RankResults<T>(size)
    var threads: [Thread] = []
    let done = DispatchGroup()
    for r in 0..<size {
        done.enter()
        let t = Thread {
            let outcome = Result { try body(r) }
            results.lock.lock()
            results.values[r] = outcome
            results.lock.unlock()
            done.leave()
        }
        t.stackSize = 8 << 20
        threads.append(t)
    }
    for t in threads { t.start() }
    done.wait()
    return try results.values.map { try $0!.get() }
}

// MARK: - K ranks equal one process bit for bit

private func parallelTrainer(
    privacy: PrivacySettings?, physical: Int, communicator: any Communicator, specs: [LayerSpec]? = nil
) throws -> DPSGDTrainer {
    let data = SyntheticData.gaussianMixture(
        classes: 3, dimensions: 6, examplesPerClass: 30, separation: 2, seed: 3)
    let model = try ModelBuilder.build(
        specs: specs ?? [.linear(outputs: 7, bias: true), .tanh, .linear(outputs: 3, bias: true)], inputShape: [6],
        seed: 5)
    let trainer = try DPSGDTrainer(
        model: model, optimizer: Adam(learningRate: 0.05), data: data,
        configuration: TrainerConfiguration(
            expectedBatchSize: 20, maxPhysicalBatchSize: physical, privacy: privacy, seed: 11))
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
    let whole = try train(parallelTrainer(privacy: privacy, physical: 1024, communicator: SingleProcess()), steps: 5)
    let group = ThreadGroup(size: 2)
    let split = try onRanks(2) { r in
        try train(parallelTrainer(privacy: privacy, physical: 5, communicator: group.rank(r)), steps: 5)
    }[0]
    for (a, b) in zip(whole.parameters.joined(), split.parameters.joined()) {
        let x = Float(bitPattern: a), y = Float(bitPattern: b)
        #expect(abs(x - y) <= 1e-4 * max(1, abs(x)), "\(x) vs \(y)")
    }
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
