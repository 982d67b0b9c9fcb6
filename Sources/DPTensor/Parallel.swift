import Dispatch

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
