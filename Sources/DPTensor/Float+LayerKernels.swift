import CDPKernels

// MARK: - Vectorised, batch-parallel kernels of the convolutional layers (Float)
//
// The C kernels (CDPKernels) run on a range of examples or planes; these wrappers check shapes
// and split the batch across ``ParallelBatch/threadCount`` threads. Each output depends only on
// its own example's inputs, computed in a fixed order, so the bits do not depend on the thread
// count. The generic Swift functions (``im2col(_:geometry:into:)``, ``col2im(_:geometry:into:)``)
// are the references they are tested against.

/// ``im2col(_:geometry:into:)`` for Float (`[B, C, H, W]` into `[B, K, L]`), vectorised and
/// split across threads by example: the same scalars. `columns` may instead be `[K, B L]`
/// (batch-interleaved: example `b`'s `[K, L]` matrix is the column block `b L ..< (b + 1) L`),
/// the layout in which a convolution over the whole batch is one GEMM.
public func parallelIm2col(_ input: Tensor<Float>, geometry g: ConvGeometry, into columns: inout Tensor<Float>) {
    let (batch, exampleStride, rowStride) = checkColumnLayout(
        input: input.shape, columns: columns.shape, geometry: g, function: "parallelIm2col")
    let plane = g.channels * g.height * g.width
    if batch == 0 || g.patchSize * g.outputPositions == 0 { return }
    input.withUnsafeBufferPointer { xb in
        columns.withUnsafeMutableBufferPointer { cb in
            let x = xb.baseAddress!, cols = cb.baseAddress!
            ParallelBatch.forEachSlice(of: batch, minimumSlice: 8) { _, r in
                let status = dpk_im2col_f32(
                    x + r.lowerBound * plane, cols + r.lowerBound * exampleStride, Int64(r.count), Int64(g.channels),
                    Int64(g.height), Int64(g.width), Int64(g.kernelHeight), Int64(g.kernelWidth),
                    Int64(g.strideHeight), Int64(g.strideWidth), Int64(g.paddingHeight), Int64(g.paddingWidth),
                    Int64(exampleStride), Int64(rowStride))
                precondition(status == 0, "im2col/col2im: out of memory for a padded plane of \(g)")
            }
        }
    }
}

/// ``col2im(_:geometry:into:)`` for Float, except that `output` is **overwritten** (not
/// accumulated into), vectorised and split across threads by example. Every scalar of
/// `output` is written, so it may come from ``Tensor/reuseForOverwrite(shape:)``. `columns`
/// may be `[B, K, L]` or batch-interleaved `[K, B L]`, as for ``parallelIm2col(_:geometry:into:)``.
public func parallelCol2im(_ columns: Tensor<Float>, geometry g: ConvGeometry, into output: inout Tensor<Float>) {
    let (batch, exampleStride, rowStride) = checkColumnLayout(
        input: output.shape, columns: columns.shape, geometry: g, function: "parallelCol2im")
    let plane = g.channels * g.height * g.width
    if batch == 0 || plane == 0 { return }
    columns.withUnsafeBufferPointer { cb in
        output.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!, cols = cb.baseAddress!
            ParallelBatch.forEachSlice(of: batch, minimumSlice: 8) { _, r in
                let status = dpk_col2im_f32(
                    cols + r.lowerBound * exampleStride, x + r.lowerBound * plane, Int64(r.count), Int64(g.channels),
                    Int64(g.height), Int64(g.width), Int64(g.kernelHeight), Int64(g.kernelWidth),
                    Int64(g.strideHeight), Int64(g.strideWidth), Int64(g.paddingHeight), Int64(g.paddingWidth),
                    Int64(exampleStride), Int64(rowStride))
                precondition(status == 0, "im2col/col2im: out of memory for a padded plane of \(g)")
            }
        }
    }
}

/// Checks `[B, C, H, W]` against columns `[B, K, L]` or `[K, B L]`; returns the batch size and
/// the distances between examples and between rows in the columns.
func checkColumnLayout(
    input: Shape, columns: Shape, geometry g: ConvGeometry, function: String
) -> (batch: Int, exampleStride: Int, rowStride: Int) {
    precondition(input.rank == 4, "\(function): input \(input) should be [B, C, H, W]")
    let batch = input[0], k = g.patchSize, l = g.outputPositions
    let interleaved: Shape = [k, batch * l]
    precondition(
        columns == g.columnShape(batch: batch) || columns == interleaved,
        convShapeMessage(
            function: function, input: input, columns: columns, expected: g.columnShape(batch: batch), geometry: g)
            + " (or \(interleaved), batch-interleaved)")
    // The C kernels gather through 32-bit offsets within one padded input plane.
    let planes = g.channels * (g.height + 2 * g.paddingHeight) * (g.width + 2 * g.paddingWidth)
    precondition(planes < Int(Int32.max), "\(function): padded input planes of \(g) too large for 32-bit offsets")
    return columns.rank == 3 ? (batch, k * l, l) : (batch, l, batch * l)
}

/// Max pooling without padding of `x` (`[B, C, H, W]`) into `y` (`[B, C, H', W']`,
/// `H' = (H - kernel) / stride + 1`, every scalar overwritten): each window's first largest
/// element (strict `>` in row-major window order), and in `argmax` its index within its input
/// plane. Vectorised (2x2 windows unrolled) and split across threads by plane.
/// - Precondition: `y` and `argmax` hold `B C H' W'` values; a plane has fewer than 2^31 scalars.
public func parallelMaxPool2d(
    _ x: Tensor<Float>, kernel k: Int, stride s: Int, into y: inout Tensor<Float>, argmax: inout [Int32]
) {
    precondition(x.rank == 4 && k > 0 && s > 0, "parallelMaxPool2d: input \(x.shape), kernel \(k), stride \(s)")
    let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = h >= k ? (h - k) / s + 1 : 0, wo = w >= k ? (w - k) / s + 1 : 0
    precondition(
        y.shape == [b, c, ho, wo] && argmax.count == y.scalarCount,
        "parallelMaxPool2d: output \(y.shape) and \(argmax.count) indices should be [\(b), \(c), \(ho), \(wo)]")
    precondition(h * w <= Int(Int32.max), "parallelMaxPool2d: input planes \(h)x\(w) too large for 32-bit indices")
    if y.scalarCount == 0 { return }
    x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer { yb in
            argmax.withUnsafeMutableBufferPointer { ab in
                let px = xb.baseAddress!, py = yb.baseAddress!, am = ab.baseAddress!
                ParallelBatch.forEachSlice(of: b * c, minimumSlice: 64) { _, r in
                    dpk_maxpool2d_f32(
                        px + r.lowerBound * h * w, py + r.lowerBound * ho * wo, am + r.lowerBound * ho * wo,
                        Int64(r.count), Int64(h), Int64(w), Int64(k), Int64(s))
                }
            }
        }
    }
}

/// The adjoint of ``parallelMaxPool2d(_:kernel:stride:into:argmax:)``: **overwrites** `dx`
/// (`[B, C, H, W]`) with zeros plus each value of `dy` at its arg-max, split by plane.
public func parallelMaxPool2dBackward(_ dy: Tensor<Float>, argmax: [Int32], into dx: inout Tensor<Float>) {
    precondition(dx.rank == 4, "parallelMaxPool2dBackward: input gradient \(dx.shape) should be [B, C, H, W]")
    let planes = dx.shape[0] * dx.shape[1], planeIn = dx.shape[2] * dx.shape[3]
    precondition(
        dy.scalarCount == argmax.count && (planes == 0 || argmax.count % planes == 0),
        "parallelMaxPool2dBackward: gradient \(dy.shape) and \(argmax.count) indices do not match \(dx.shape)")
    if dx.scalarCount == 0 { return }
    let planeOut = argmax.count / planes
    dy.withUnsafeBufferPointer { db in
        argmax.withUnsafeBufferPointer { ab in
            dx.withUnsafeMutableBufferPointer { xb in
                let pd = db.baseAddress!, am = ab.baseAddress!, px = xb.baseAddress!
                ParallelBatch.forEachSlice(of: planes, minimumSlice: 64) { _, r in
                    dpk_maxpool2d_backward_f32(
                        pd + r.lowerBound * planeOut, am + r.lowerBound * planeOut, px + r.lowerBound * planeIn,
                        Int64(r.count), Int64(planeIn), Int64(planeOut))
                }
            }
        }
    }
}

extension Float {
    /// `dx[i] = dy[i] (1 - y[i]^2)` for `count` scalars: the tanh backward pass from its
    /// output `y`; vectorised and split across threads.
    public static func tanhBackward(
        outputGradient dy: UnsafePointer<Float>, output y: UnsafePointer<Float>,
        into dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        ParallelBatch.forEachSlice(of: count, minimumSlice: 16_384) { _, r in
            dpk_tanh_backward_f32(dy + r.lowerBound, y + r.lowerBound, dx + r.lowerBound, Int64(r.count))
        }
    }
}

// MARK: - Layout changes

/// `dst[j, i, :] = src[i, j, :] + add[i]` for `src` `[p, q, l]` and `dst` `[q, p, l]` (any
/// shapes with those counts; a plain copy if `add` is nil): between a convolution's batched
/// GEMM layout `[C, B, L]` and NCHW `[B, C, L]`. Split across threads by `j`.
public func swapLeadingAxes(
    _ src: Tensor<Float>, p: Int, q: Int, l: Int, adding add: Tensor<Float>? = nil, into dst: inout Tensor<Float>
) {
    precondition(
        src.scalarCount == p * q * l && dst.scalarCount == p * q * l && (add?.scalarCount ?? p) == p,
        "swapLeadingAxes: \(src.shape) and \(dst.shape) should hold [\(p), \(q), \(l)] scalars, add \(p)")
    if p * q * l == 0 { return }
    src.withUnsafeBufferPointer { ps in
        dst.withUnsafeMutableBufferPointer { pd in
            let s0 = ps.baseAddress!, d0 = pd.baseAddress!
            func run(_ a: UnsafePointer<Float>?) {
                ParallelBatch.forEachSlice(of: q, minimumSlice: max(1, 16_384 / max(1, p * l))) { _, r in
                    dpk_swap_leading_axes_f32(
                        s0, d0, Int64(p), Int64(q), Int64(l), a, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
            if let add { add.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
        }
    }
}

/// `dst[i, j, :] = scale[j] src[i, j, :]` for `[p, q, l]` scalars: each example's block of a
/// batch-interleaved `[C, B L]` matrix times its weight. Split across threads by `i`.
public func scaleMiddleAxis(
    _ src: Tensor<Float>, p: Int, q: Int, l: Int, by scale: Tensor<Float>, into dst: inout Tensor<Float>
) {
    precondition(
        src.scalarCount == p * q * l && dst.scalarCount == p * q * l && scale.scalarCount == q,
        "scaleMiddleAxis: \(src.shape) and \(dst.shape) should hold [\(p), \(q), \(l)] scalars, scale \(q)")
    if p * q * l == 0 { return }
    src.withUnsafeBufferPointer { ps in
        scale.withUnsafeBufferPointer { pw in
            dst.withUnsafeMutableBufferPointer { pd in
                let s0 = ps.baseAddress!, d0 = pd.baseAddress!, w0 = pw.baseAddress!
                ParallelBatch.forEachSlice(of: p, minimumSlice: max(1, 16_384 / max(1, q * l))) { _, r in
                    dpk_scale_middle_axis_f32(
                        s0, d0, Int64(p), Int64(q), Int64(l), w0, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
        }
    }
}
