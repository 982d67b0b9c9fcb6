import Dispatch
import Foundation

/// Splits work on a batch across threads, for the per-example work that runs outside BLAS
/// (im2col, pooling, activations, per-example norms and GEMMs).
///
/// The thread count is DPKit's (``BLASRuntime/threadCount``, set by `dpkit --threads` or
/// `OPENBLAS_NUM_THREADS`); OpenBLAS itself runs on one thread, and large GEMMs are cut into
/// blocks here (``forEachGemmBlock(m:n:k:_:)``). Callers give each slice work whose results
/// depend only on the examples in it, computed in a fixed order, so the results are the same
/// bits whatever the thread count. Sums across examples are left to single BLAS calls, not to
/// one partial sum per thread.
public enum ParallelBatch {
    /// The number of threads the batch is split across.
    /// 1 on a thread that already runs one slice or item of a split (no nested splits).
    public static var threadCount: Int { isWorker ? 1 : max(1, BLASRuntime.threadCount) }

    /// Whether this thread runs one slice or item of a split.
    static var isWorker: Bool { pthread_getspecific(workerKey) != nil }

    static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `body` marked as a worker (``threadCount`` is 1 inside).
    static func asWorker(_ body: () -> Void) {
        let before = pthread_getspecific(workerKey)
        pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: 1))
        body()
        pthread_setspecific(workerKey, before)
    }

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
                asWorker { body(s, slice(s, of: slices, count: count)) }
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
    /// The largest `m n k` of a GEMM run as one block (OpenBLAS 0.3's own threshold for
    /// threading, `SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD = 65536 * 4`). Loops of
    /// per-example GEMMs at most this size are split across threads here; larger ones run one
    /// after another, each cut into blocks across the threads (``forEachGemmBlock(m:n:k:_:)``).
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
                asWorker { while let i = next.take(below: count) { body(w, i) } }
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

// MARK: - Large GEMMs in blocks

extension ParallelBatch {
    /// Rows per block when a large GEMM is split along the rows of `C`, and columns per block
    /// when along its columns.
    public static let gemmBlockRows = 128
    public static let gemmBlockColumns = 256

    /// Calls `body(rows, columns)` for the blocks of a row-major `C[m, n] = op(A) op(B)` (inner
    /// size `k`), on ``threadCount`` threads. GEMMs of at most ``singleThreadedGemmLimit``
    /// (`m n k`) are one block; larger ones are cut along the rows of `C` (blocks of
    /// ``gemmBlockRows``, when `m >= 2 gemmBlockRows`) or its columns (``gemmBlockColumns``,
    /// when `n >= 2 gemmBlockColumns`), whichever packs less again (a row block repacks `op(B)`,
    /// a column block `op(A)`). The blocks depend on the shapes only, and each is one
    /// single-threaded BLAS call whose sums run over all of `k`, so `C` has the same bits at every
    /// thread count (OpenBLAS's own threads are not used: ``BLASRuntime/threadCount``).
    public static func forEachGemmBlock(
        m: Int, n: Int, k: Int, _ body: (_ rows: Range<Int>, _ columns: Range<Int>) -> Void
    ) {
        let byRows = m >= 2 * gemmBlockRows ? (m + gemmBlockRows - 1) / gemmBlockRows : 1
        let byColumns = n >= 2 * gemmBlockColumns ? (n + gemmBlockColumns - 1) / gemmBlockColumns : 1
        if m * n * k <= singleThreadedGemmLimit || (byRows == 1 && byColumns == 1) {
            body(0..<m, 0..<n)
            return
        }
        let rowsCost = byRows > 1 ? (byRows - 1) * k * n : Int.max
        let columnsCost = byColumns > 1 ? (byColumns - 1) * m * k : Int.max
        if rowsCost <= columnsCost {
            forEachItem(of: byRows, workers: min(threadCount, byRows)) { _, b in
                body((b * gemmBlockRows)..<min(m, (b + 1) * gemmBlockRows), 0..<n)
            }
        } else {
            forEachItem(of: byColumns, workers: min(threadCount, byColumns)) { _, b in
                body(0..<m, (b * gemmBlockColumns)..<min(n, (b + 1) * gemmBlockColumns))
            }
        }
    }
}

extension ParallelBatch {
    /// ``forEachGemmBlock(m:n:k:_:)`` for a row-major `C = op(A) op(B)` given by pointers:
    /// `body(rows, columns, A, B, C)` for each block, with the pointers moved to its first row of
    /// `op(A)`, first column of `op(B)` and first entry of `C` (leading dimensions unchanged).
    @inlinable
    public static func forEachGemmBlock<S>(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<S>, lda: Int,
        b: UnsafePointer<S>, ldb: Int, c: UnsafeMutablePointer<S>, ldc: Int,
        _ body: (_ rows: Int, _ columns: Int, UnsafePointer<S>, UnsafePointer<S>, UnsafeMutablePointer<S>) -> Void
    ) {
        forEachGemmBlock(m: m, n: n, k: k) { r, cs in
            body(
                r.count, cs.count, transA ? a + r.lowerBound : a + r.lowerBound * lda,
                transB ? b + cs.lowerBound * ldb : b + cs.lowerBound, c + r.lowerBound * ldc + cs.lowerBound)
        }
    }
}
