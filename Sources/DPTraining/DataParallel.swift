import Foundation

/// The processes of a data-parallel training run: `size` ranks that each hold the whole model
/// and call the same collectives in the same order (MPI ranks under `mpirun`, one process
/// otherwise). Buffers are raw bytes, so floats travel bit for bit.
///
/// Implemented by ``SingleProcess`` (no communication), by `MPICommunicator` (module DPMPI,
/// built with `make mpi`) and, in the tests, by threads of one process.
public protocol Communicator: AnyObject {
    /// From 0.
    var rank: Int { get }
    var size: Int { get }
    /// Every rank's `send` (the same byte count on every rank), concatenated in rank order.
    func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws
    /// `send` holds `size` equal blocks; block `q` goes to rank `q`. `receive` gets the block
    /// for this rank from every rank, in rank order.
    func allToAll(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws
    /// Overwrites `buffer` on every rank with `root`'s.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends every rank of the job with `code` (a rank that failed alone would leave the others
    /// waiting in a collective forever).
    func abort(code: Int32) -> Never
}

/// One process: no communication.
public final class SingleProcess: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        precondition(receive.count == send.count, "SingleProcess.allGather: \(receive.count) bytes for \(send.count)")
        receive.copyMemory(from: send)
    }
    public func allToAll(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        precondition(receive.count == send.count, "SingleProcess.allToAll: \(receive.count) bytes for \(send.count)")
        receive.copyMemory(from: send)
    }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    public func barrier() throws {}
    public func abort(code: Int32) -> Never { exit(code) }
}

/// A collective that failed (an MPI error code in words, a rank that left).
public struct CommunicatorError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension Communicator {
    /// `allGather` of arrays.
    public func allGather<T>(_ send: [T], into receive: inout [T]) throws {
        precondition(receive.count == send.count * size)
        try send.withUnsafeBytes { s in try receive.withUnsafeMutableBytes { try allGather(s, into: $0) } }
    }

    /// `allToAll` of arrays (`send.count` a multiple of `size`).
    public func allToAll<T>(_ send: [T], into receive: inout [T]) throws {
        precondition(receive.count == send.count && send.count % size == 0)
        try send.withUnsafeBytes { s in try receive.withUnsafeMutableBytes { try allToAll(s, into: $0) } }
    }

    /// `broadcast` of an array (the same count on every rank).
    public func broadcast<T>(_ buffer: inout [T], root: Int) throws {
        try buffer.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }
}

/// Seconds a data-parallel trainer spent per phase (``DPSGDTrainer/timings``), summed over steps.
public struct DataParallelTimings: Hashable, Sendable {
    /// Forward, backward, per-example clipping and accumulation of this rank's chunks.
    public var compute = 0.0
    /// Waiting at a barrier for the slowest rank before the gather (only measured when
    /// ``DPSGDTrainer/measuresWaiting`` is set; otherwise it is part of ``allGather``).
    public var waiting = 0.0
    /// Exchanging the chunks' clipped sums by segment (all-to-all) and their figures, and
    /// gathering the summed segments.
    public var exchange = 0.0
    /// Summing the chunks in order, noise on rank 0, broadcast of the noised sum, optimizer step.
    public var reduceAndUpdate = 0.0
    public var steps = 0

    public init() {}
}
