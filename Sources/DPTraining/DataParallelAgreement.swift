import DPTensor
import Foundation

/// A 64-bit FNV-1a checksum over 8-byte words, to tell whether the ranks of a data-parallel run
/// hold the same bytes. It detects accidents (another data file, another checkpoint), it is not
/// a cryptographic hash.
struct StateChecksum {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ word: UInt64) {
        value = (value ^ word) &* 0x0000_0100_0000_01b3
    }

    mutating func add(_ bytes: UnsafeRawBufferPointer) {
        add(UInt64(bytes.count))
        let words = bytes.count / 8
        for i in 0..<words { add(bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
        var tail: UInt64 = 0
        for i in (words * 8)..<bytes.count { tail = tail << 8 | UInt64(bytes[i]) }
        add(tail)
    }

    mutating func add<T>(_ array: [T]) { array.withUnsafeBytes { add($0) } }

    mutating func add(_ state: PhiloxRandom.State) {
        for w in [state.key, state.stream, state.block, UInt64(state.used)] { add(w) }
    }
}

extension DPSGDTrainer {
    /// The state every rank of a data-parallel run must share before a step, by name: the
    /// training set, the step, the sampling and noise streams, the parameters and the optimizer.
    func rankFingerprint() -> [(name: String, value: UInt64)] {
        var data = StateChecksum()
        self.data.features.withUnsafeBufferPointer { data.add(UnsafeRawBufferPointer($0)) }
        data.add(self.data.labels)
        if let excluded = excludedExamples { data.add(excluded.map { $0 ? UInt8(1) : 0 }) }
        var weights = StateChecksum()
        for p in model.parameters { p.value.withUnsafeBufferPointer { weights.add(UnsafeRawBufferPointer($0)) } }
        var optimizerState = StateChecksum()
        let state = optimizer.state
        optimizerState.add(UInt64(state.step))
        for key in state.buffers.keys.sorted() {
            optimizerState.add(Array(key.utf8))
            for b in state.buffers[key]! { optimizerState.add(b) }
        }
        var sampling = StateChecksum()
        sampling.add(sampler.rng.state)
        var noise = StateChecksum()
        noise.add(noiseRandom.state)
        var ledgerSum = StateChecksum()
        ledgerSum.add(Array(String(describing: ledger).utf8))
        return [
            ("training set (size \(self.data.count))", data.value),
            ("step", UInt64(step)),
            ("sampling stream", sampling.value),
            ("noise stream", noise.value),
            ("weights", weights.value),
            ("optimizer state", optimizerState.value),
            ("clipping norm", clippingNorm.bitPattern),
            ("privacy ledger", ledgerSum.value),
        ]
    }

    /// Gathers ``rankFingerprint()`` from every rank and throws, naming what differs on which
    /// ranks, unless all agree. Every rank sees the same gathered figures, so every rank throws
    /// or none does. Called before a data-parallel trainer's first step (and after a restore):
    /// ranks that resumed from different checkpoints, or read different data of the same size,
    /// would otherwise sum chunks of different batches, where one example could contribute up
    /// to K times the clipping norm while the ledger charges it once.
    func verifyRanksAgree() throws {
        let mine = rankFingerprint()
        var all = [UInt64](repeating: 0, count: mine.count * communicator.size)
        try communicator.allGather(mine.map(\.value), into: &all)
        var differing: [String] = []
        for (i, field) in mine.enumerated() {
            let ranks = (0..<communicator.size).filter { all[$0 * mine.count + i] != all[i] }
            if !ranks.isEmpty {
                differing.append(
                    "\(field.name) (ranks \(ranks.map(String.init).joined(separator: ", ")) differ from rank 0)")
            }
        }
        guard differing.isEmpty else {
            throw CommunicatorError(
                "the \(communicator.size) ranks hold different training state at step \(step): "
                    + differing.joined(separator: "; ")
                    + ". Every rank must read the same data and continue from the same checkpoint (an output folder on a shared filesystem, the same data files on every node); nothing was trained or released"
            )
        }
    }

    /// A checksum of this step's batch (the example indices, in order), 52 bits so that it
    /// travels exactly in a Double among the chunks' figures.
    func batchChecksum(_ indices: [Int]) -> Double {
        var c = StateChecksum()
        c.add(indices)
        return Double(c.value >> 12)
    }
}
