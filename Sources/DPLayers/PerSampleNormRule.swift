import DPTensor

// MARK: - Ghost norm or materialised per-example gradient

/// How a layer whose weight gradient is a sum of outer products computes per-example
/// squared gradient norms.
///
/// For Linear on sequences and for Conv2d (through im2col), example `i`'s weight gradient
/// is `G_i = D_i^T A_i`, with `A_i` the layer inputs at `L` positions (`[L, K]`, im2col
/// columns for a convolution) and `D_i` the output gradients there (`[L, C]`). Its squared
/// Frobenius norm can be found two ways:
/// - ``ghost``: `||G_i||^2 = sum_{l,l'} (A_i A_i^T)[l,l'] (D_i D_i^T)[l,l']`, two Gram
///   matrices and a dot product, about `2 L^2 (K + C)` flops, no `[C, K]` matrix per example
///   (Li et al. 2022, "Large language models can be strong differentially private learners";
///   Goodfellow 2015 for `L = 1`);
/// - ``materialize``: form `G_i = D_i^T A_i` and take its norm, about `2 L K C` flops.
///
/// ``cheaper(positions:inputFeatures:outputFeatures:)`` picks the cheaper of the two for a
/// layer's shape: mixed ghost clipping (Bu et al. 2022, "Scalable and efficient training of
/// large convolutional neural networks with differential privacy"). The cost counts the clipped
/// sum too: after ghost norms it is one GEMM over the batch's positions (`2 L K C` per
/// example); materialised gradients of at most ``keptGradientLimit`` scalars are kept, so the
/// sum is one GEMV over them (`2 K C`); larger ones are not kept and the sum is the GEMM. Both
/// rules cost the same multiple of the batch size, so the choice does not depend on it.
public enum PerSampleNormRule: String, Sendable, Codable, CaseIterable {
    case ghost
    case materialize

    /// The largest per-example weight gradient (`K C` scalars, bias included) that the
    /// materialise rule keeps for the clipped sum: 16,384 scalars, 64 KiB per example (16 MiB
    /// for a batch of 256), so the private step's memory stays close to the non-private one's.
    public static let keptGradientLimit = 16_384

    /// Whether a materialised `[C, K]` gradient (plus `C` bias entries) is kept for the sum.
    public static func keepsGradients(inputFeatures k: Int, outputFeatures c: Int) -> Bool {
        k * c + c <= keptGradientLimit
    }

    /// The flop estimate of each rule for one example, norms and clipped sum: Gram matrices
    /// `2 L^2 (K + C)`, their dot product `L^2` and the sum's GEMM `2 L K C`; or the per-example
    /// gradient `2 L K C`, its norm `K C` and the sum, `2 K C` from kept gradients (else `2 L K C`).
    public static func cost(
        of rule: PerSampleNormRule, positions l: Int, inputFeatures k: Int,
        outputFeatures c: Int
    ) -> Int {
        let sumByGEMM = 2 * l * k * c
        switch rule {
        case .ghost: return 2 * l * l * (k + c) + l * l + sumByGEMM
        case .materialize:
            return 2 * l * k * c + k * c + (keepsGradients(inputFeatures: k, outputFeatures: c) ? 2 * k * c : sumByGEMM)
        }
    }

    /// The cheaper rule for `L` positions, `K` input and `C` output features (ghost on ties).
    public static func cheaper(positions l: Int, inputFeatures k: Int, outputFeatures c: Int) -> PerSampleNormRule {
        cost(of: .ghost, positions: l, inputFeatures: k, outputFeatures: c)
            <= cost(of: .materialize, positions: l, inputFeatures: k, outputFeatures: c) ? .ghost : .materialize
    }
}

/// How one example's matrices are stored: positions as rows (`A_i` is `[L, K]`, as for
/// Linear on `[B, T, d]`), as columns (`A_i^T` is `[K, L]`, as im2col and NCHW give), or as
/// columns of one batch-wide matrix (`A^T` is `[K, B L]` and example `i`'s `A_i^T` the column
/// block `i L ..< (i + 1) L`, as Conv2d's batched GEMMs use).
enum PositionLayout {
    case positionsFirst
    case positionsLast
    case batchInterleaved
}

/// Re-allocates `tensor` only when its shape differs from `shape`.
@inlinable
func ensureShape(_ tensor: inout Tensor<Float>, _ shape: Shape) {
    if tensor.shape != shape { tensor = Tensor(zeros: shape) }
}

/// Workspaces and the two rules for per-example squared norms of `G_i = D_i^T A_i` (and of
/// the bias gradient `D_i^T 1`). Buffers are allocated once per shape and thread count and
/// reused; examples are split across ``ParallelBatch`` threads (one workspace each), and each
/// example's norm is computed by the same BLAS calls whatever the split.
struct OuterProductNorms {
    /// `[threads, per-thread scalars]`: the Gram matrices or the materialised gradient, and the
    /// bias gradient, of the example a thread is on.
    var workspace = Tensor<Float>(zeros: [0, 0])
    var ones = Tensor<Float>(zeros: [0])

    /// Adds `||D_i^T A_i||^2` (and `||D_i^T 1||^2` if `bias`) to `norms[i]`. With the
    /// materialise rule and `kept`, example `i`'s `G_i` (`[C, K]`, then the `C` bias entries)
    /// is left at `kept + i (C K + C)`.
    ///
    /// - Parameters:
    ///   - a: `B L K` scalars in `layout`.
    ///   - d: `B L C` scalars in `layout`.
    mutating func addSquaredNorms(
        a: Tensor<Float>, d: Tensor<Float>, layout: PositionLayout,
        positions l: Int, inputFeatures k: Int, outputFeatures c: Int,
        bias: Bool, rule: PerSampleNormRule, into norms: inout Tensor<Float>,
        keepingGradientsIn kept: UnsafeMutablePointer<Float>? = nil
    ) {
        let batch = norms.scalarCount
        precondition(
            a.scalarCount == batch * l * k && d.scalarCount == batch * l * c,
            "OuterProductNorms: a \(a.shape) and d \(d.shape) do not hold \(batch) examples of [\(l), \(k)] and [\(l), \(c)]"
        )
        precondition(kept == nil || rule == .materialize, "OuterProductNorms: only materialised gradients are kept")
        if batch == 0 || l == 0 { return }
        let first = layout == .positionsFirst
        // Where example i's matrices start, and their leading dimensions.
        let (aStride, dStride, lda, ldd): (Int, Int, Int, Int)
        switch layout {
        case .positionsFirst: (aStride, dStride, lda, ldd) = (l * k, l * c, k, c)
        case .positionsLast: (aStride, dStride, lda, ldd) = (k * l, c * l, l, l)
        case .batchInterleaved: (aStride, dStride, lda, ldd) = (l, l, batch * l, batch * l)
        }
        let matrixSize = rule == .ghost ? 2 * l * l : c * k
        let perThread = matrixSize + (bias ? c : 0)
        let gemmSize = rule == .ghost ? l * l * max(k, c) : c * k * l
        // Read once: the workspace has one row per slice, whatever the thread count does meanwhile.
        let slices = ParallelBatch.sliceCount(for: batch, gemmSize: gemmSize)
        if workspace.shape[0] < slices || workspace.shape[1] != perThread {
            workspace = Tensor(zeros: [max(slices, ParallelBatch.threadCount), perThread])
        }
        if bias && ones.shape != [l] { ones = Tensor(repeating: 1, shape: [l]) }
        a.withUnsafeBufferPointer { pa in
            d.withUnsafeBufferPointer { pd in
                ones.withUnsafeBufferPointer { po in
                    workspace.withUnsafeMutableBufferPointer { pw in
                        norms.withUnsafeMutableBufferPointer { out in
                            let a0 = pa.baseAddress!, d0 = pd.baseAddress!, one = po.baseAddress
                            let w0 = pw.baseAddress!, n0 = out.baseAddress!
                            ParallelBatch.forEachSlice(of: batch, slices: slices) { s, range in
                                for i in range {
                                    let keep = kept.map { $0 + i * (c * k + c) }
                                    let m = keep ?? w0 + s * perThread, bg = keep.map { $0 + c * k } ?? m + matrixSize
                                    let ai = a0 + i * aStride, di = d0 + i * dStride
                                    switch rule {
                                    case .ghost:
                                        // Positions last: A_i^T is [K, L], Gram = (A_i^T)^T A_i^T.
                                        let gramD = m + l * l
                                        Float.blasGemm(
                                            transA: !first, transB: first, m: l, n: l, k: k, alpha: 1, a: ai,
                                            lda: lda, b: ai, ldb: lda, beta: 0, c: m, ldc: l)
                                        Float.blasGemm(
                                            transA: !first, transB: first, m: l, n: l, k: c, alpha: 1, a: di,
                                            lda: ldd, b: di, ldb: ldd, beta: 0, c: gramD, ldc: l)
                                        n0[i] += Float.blasDot(n: l * l, x: m, incx: 1, y: gramD, incy: 1)
                                    case .materialize:
                                        // G_i = D_i^T A_i, [C, K].
                                        Float.blasGemm(
                                            transA: first, transB: !first, m: c, n: k, k: l, alpha: 1, a: di,
                                            lda: ldd, b: ai, ldb: lda, beta: 0, c: m, ldc: k)
                                        n0[i] += Float.blasDot(n: c * k, x: m, incx: 1, y: m, incy: 1)
                                    }
                                    if bias {
                                        Float.blasGemv(
                                            trans: first, m: first ? l : c, n: first ? c : l, alpha: 1, a: di,
                                            lda: ldd, x: one!, incx: 1, beta: 0, y: bg, incy: 1)
                                        n0[i] += Float.blasDot(n: c, x: bg, incx: 1, y: bg, incy: 1)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
