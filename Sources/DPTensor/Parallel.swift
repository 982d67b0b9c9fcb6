import Dispatch
import Foundation

/// Splits work on a batch across threads, for the per-example work that runs outside BLAS
/// (im2col, pooling, activations, per-example norms and GEMMs).
///
/// The thread count is OpenBLAS's (``BLASRuntime/threadCount``, set by `dpkit --threads` or
/// `OPENBLAS_NUM_THREADS`), so one setting governs every core DPKit uses. Callers give each
/// slice work whose results depend only on the examples in it, computed in a fixed order, so
/// the results are the same bits whatever the thread count. Sums across examples are left to
/// single BLAS calls (OpenBLAS splits a GEMM's or GEMV's outputs across its threads, never a
/// sum), not to one partial sum per thread.
public enum ParallelBatch {
    /// The number of threads the batch is split across.
    public static var threadCount: Int { max(1, BLASRuntime.threadCount) }

    /// Calls `body(slice, range)` for `min(threadCount, count / minimumSlice)` (at least 1)
    /// contiguous slices of `0..<count`, concurrently when there is more than one. `body` must
    /// only write memory that belongs to its range (or to its slice index).
    public static func forEachSlice(
        of count: Int, minimumSlice: Int = 1, _ body: (_ slice: Int, _ range: Range<Int>) -> Void
    ) {
        forEachSlice(of: count, slices: sliceCount(for: count, minimumSlice: minimumSlice), body)
    }

    /// Calls `body(slice, range)` for exactly `slices` contiguous slices of `0..<count` (`slices`
    /// from ``sliceCount(for:minimumSlice:)``, read once by a caller that sizes per-slice
    /// workspaces with it: the thread count can change meanwhile, see
    /// ``BLASRuntime/withThreadCount(_:_:)``).
    public static func forEachSlice(
        of count: Int, slices: Int, _ body: (_ slice: Int, _ range: Range<Int>) -> Void
    ) {
        precondition(slices >= 1, "ParallelBatch.forEachSlice: \(slices) slices")
        if count <= 0 { return }
        if slices == 1 {
            body(0, 0..<count)
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: slices) { s in
                body(s, slice(s, of: slices, count: count))
            }
        }
    }

    /// The number of slices ``forEachSlice(of:minimumSlice:_:)`` uses for `count` items.
    public static func sliceCount(for count: Int, minimumSlice: Int = 1) -> Int {
        max(1, min(threadCount, count / max(1, minimumSlice)))
    }

    /// Slice `s` of `slices` near-equal contiguous ranges of `0..<count`.
    public static func slice(_ s: Int, of slices: Int, count: Int) -> Range<Int> {
        (s * count / slices)..<((s + 1) * count / slices)
    }
}

extension ParallelBatch {
    /// The largest `m n k` of a GEMM that OpenBLAS 0.3 runs on one thread whatever its thread
    /// count (`SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD = 65536 * 4`). Loops of
    /// per-example GEMMs at most this size are split across threads here; larger ones run one
    /// after another and OpenBLAS threads each of them, so the two never oversubscribe the cores.
    public static let singleThreadedGemmLimit = 262_144

    /// ``forEachSlice(of:minimumSlice:_:)`` for a loop over `count` examples whose BLAS calls
    /// are at most `gemmSize` (`m n k`): split across threads when OpenBLAS would run each call
    /// on one thread (``singleThreadedGemmLimit``), one slice otherwise.
    public static func forEachSlice(
        of count: Int, gemmSize: Int, _ body: (_ slice: Int, _ range: Range<Int>) -> Void
    ) {
        forEachSlice(of: count, slices: sliceCount(for: count, gemmSize: gemmSize), body)
    }

    /// The number of slices ``forEachSlice(of:gemmSize:_:)`` uses.
    public static func sliceCount(for count: Int, gemmSize: Int) -> Int {
        gemmSize > singleThreadedGemmLimit ? 1 : sliceCount(for: count)
    }
}

extension ParallelBatch {
    /// Calls `body(worker, item)` once for every item of `0..<count`, on `workers` threads
    /// (concurrently when more than one) that each take the next item as they finish one.
    /// Which worker takes which item depends on timing, so `body`'s result for an item must not
    /// depend on the worker (each worker holding, say, a replica of the same model).
    public static func forEachItem(of count: Int, workers: Int, _ body: (_ worker: Int, _ item: Int) -> Void) {
        if count <= 0 { return }
        if workers <= 1 {
            for i in 0..<count { body(0, i) }
            return
        }
        let next = ItemCounter()
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                while let i = next.take(below: count) { body(w, i) }
            }
        }
    }

    /// ``forEachItem(of:workers:_:)`` collecting `body`'s results in item order.
    public static func map<T>(_ count: Int, workers: Int, _ body: (_ worker: Int, _ item: Int) -> T) -> [T] {
        var results = [T?](repeating: nil, count: max(0, count))
        results.withUnsafeMutableBufferPointer { out in
            // Each item's slot is written by the one thread that took the item.
            forEachItem(of: count, workers: workers) { w, i in out[i] = body(w, i) }
        }
        return results.map { $0! }
    }
}

/// The next item of ``ParallelBatch/forEachItem(of:workers:_:)``, shared by its threads.
final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
