import Foundation

/// K ranks as K threads of one process sharing memory: the collectives of MPI with a barrier
/// around each copy. For tests and simulations of data-parallel runs without MPI; ``ThreadRank/abort(code:)``
/// ends the process.
public final class ThreadGroup: @unchecked Sendable {
    public let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    /// One buffer per rank, each written by its own rank's thread only (between barriers).
    final class Slot: @unchecked Sendable { var bytes: [UInt8] = [] }
    let slots: [Slot]

    public init(size: Int) {
        self.size = size
        slots = (0..<size).map { _ in Slot() }
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

    /// The communicator of rank `r`, for the thread that plays it.
    public func rank(_ r: Int) -> ThreadRank { ThreadRank(group: self, rank: r) }
}

/// One rank of a ``ThreadGroup``.
public final class ThreadRank: Communicator {
    let group: ThreadGroup
    public let rank: Int
    public var size: Int { group.size }
    init(group: ThreadGroup, rank: Int) {
        self.group = group
        self.rank = rank
    }

    public func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        group.slots[rank].bytes = Array(send)
        group.barrier()
        for r in 0..<size {
            group.slots[r].bytes.withUnsafeBytes {
                receive.baseAddress!.advanced(by: r * send.count).copyMemory(
                    from: $0.baseAddress!, byteCount: send.count)
            }
        }
        group.barrier()
    }

    public func allToAll(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        let block = send.count / size
        group.slots[rank].bytes = Array(send)
        group.barrier()
        for r in 0..<size {
            group.slots[r].bytes.withUnsafeBytes {
                receive.baseAddress!.advanced(by: r * block).copyMemory(
                    from: $0.baseAddress!.advanced(by: rank * block), byteCount: block)
            }
        }
        group.barrier()
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        if rank == root { group.slots[root].bytes = Array(UnsafeRawBufferPointer(buffer)) }
        group.barrier()
        if rank != root { group.slots[root].bytes.withUnsafeBytes { buffer.copyMemory(from: $0) } }
        group.barrier()
    }

    public func barrier() throws { group.barrier() }
    public func abort(code: Int32) -> Never { fatalError("rank \(rank) aborted with \(code)") }
}

/// The results of the threads of ``onRanks(_:_:)``, by rank.
final class RankResults<T>: @unchecked Sendable {
    var values: [Result<T, Error>?]
    let lock = NSLock()
    init(_ n: Int) { values = Array(repeating: nil, count: n) }
}

extension ThreadGroup {
    /// Runs `body(rank)` on `size` threads (8 MiB of stack each) and returns the results in
    /// rank order, rethrowing the first rank's error.
    public static func run<T>(_ size: Int, _ body: @escaping (Int) throws -> T) throws -> [T] {
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
}
