// MARK: - im2col / col2im for batched 2-D convolution (NCHW)

/// The sizes of a 2-D convolution over NCHW input: `channels` planes of `height x width`,
/// a `kernelHeight x kernelWidth` window moved by `stride`, over input zero-padded by
/// `padding` on every side.
///
///     outputHeight = (height + 2 paddingHeight - kernelHeight) / strideHeight + 1
///     outputWidth  = (width  + 2 paddingWidth  - kernelWidth)  / strideWidth  + 1
///
/// (floor division, as in PyTorch's `Conv2d` with `dilation = 1`).
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public var channels: Int, height: Int, width: Int
    public var kernelHeight: Int, kernelWidth: Int
    public var strideHeight: Int, strideWidth: Int
    public var paddingHeight: Int, paddingWidth: Int

    /// - Precondition: positive sizes and strides, non-negative padding, and a window that fits
    ///   the padded input.
    public init(
        channels: Int, height: Int, width: Int, kernel: (height: Int, width: Int),
        stride: (height: Int, width: Int) = (1, 1), padding: (height: Int, width: Int) = (0, 0)
    ) {
        self.channels = channels
        self.height = height
        self.width = width
        (kernelHeight, kernelWidth) = kernel
        (strideHeight, strideWidth) = stride
        (paddingHeight, paddingWidth) = padding
        precondition(
            channels >= 0 && height >= 0 && width >= 0 && kernelHeight > 0 && kernelWidth > 0
                && strideHeight > 0 && strideWidth > 0 && paddingHeight >= 0 && paddingWidth >= 0,
            "ConvGeometry: invalid sizes \(self)")
        precondition(
            height + 2 * paddingHeight >= kernelHeight && width + 2 * paddingWidth >= kernelWidth,
            "ConvGeometry: kernel \(kernelHeight)x\(kernelWidth) larger than the padded input \(self)")
    }

    /// Square kernel, equal strides and paddings on both axes.
    public init(channels: Int, height: Int, width: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.init(
            channels: channels, height: height, width: width, kernel: (kernel, kernel),
            stride: (stride, stride), padding: (padding, padding))
    }

    public var outputHeight: Int { (height + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    public var outputWidth: Int { (width + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }
    /// Rows of one example's column matrix: `channels * kernelHeight * kernelWidth`.
    public var patchSize: Int { channels * kernelHeight * kernelWidth }
    /// Columns of one example's column matrix: `outputHeight * outputWidth`.
    public var outputPositions: Int { outputHeight * outputWidth }
    /// The shape of one example's input, `[C, H, W]`.
    public var inputShape: Shape { [channels, height, width] }
    /// The column tensor for a batch of `batch` examples: `[batch, patchSize, outputPositions]`.
    public func columnShape(batch: Int) -> Shape { [batch, patchSize, outputPositions] }

    public var description: String {
        "ConvGeometry(C \(channels), H \(height), W \(width), kernel \(kernelHeight)x\(kernelWidth), "
            + "stride \(strideHeight)x\(strideWidth), padding \(paddingHeight)x\(paddingWidth))"
    }
}

extension ConvGeometry {
    /// The geometry of an input tensor `[B, C, H, W]` or `[C, H, W]`.
    public init(
        input shape: Shape, kernel: (height: Int, width: Int), stride: (height: Int, width: Int),
        padding: (height: Int, width: Int)
    ) {
        precondition(shape.rank == 4 || shape.rank == 3, "im2col: input \(shape) must be [B, C, H, W] or [C, H, W]")
        let r = shape.rank
        self.init(
            channels: shape[r - 3], height: shape[r - 2], width: shape[r - 1], kernel: kernel,
            stride: stride, padding: padding)
    }

    /// The input positions of output position `o` and kernel offset `k` along one axis:
    /// `i = o * stride - padding + k`; the range of `o` for which `0 <= i < size`.
    @usableFromInline
    static func validOutputRange(size: Int, outputs: Int, stride: Int, padding: Int, offset k: Int) -> Range<Int> {
        // o * stride >= padding - k  and  o * stride <= size - 1 + padding - k
        let lowNum = padding - k
        let lo = lowNum <= 0 ? 0 : (lowNum + stride - 1) / stride
        let highNum = size - 1 + padding - k
        let hi = highNum < 0 ? 0 : Swift.min(outputs, highNum / stride + 1)
        return lo < hi ? lo..<hi : 0..<0
    }
}

/// Unfolds the convolution windows of `input` into columns so that a 2-D convolution is a GEMM.
///
/// Layout (per example, the same as PyTorch's `unfold`): row `r = (c * kh + i) * kw + j` of the
/// column matrix holds, at column `l = oh * outW + ow`, the input scalar
/// `x[c, oh * strideH - padH + i, ow * strideW - padW + j]`, or 0 where that falls in the
/// padding. So for one example, with weights `W` of shape `[Cout, C * kh * kw]`,
///
///     y[Cout, outH * outW] = W x cols[C * kh * kw, outH * outW]
///
/// is the convolution output already in NCHW order (`[Cout, outH, outW]`), and the per-example
/// weight gradient is `dY[Cout, L] x colsᵀ[L, C * kh * kw]` (one GEMM per example, which DP-SGD
/// needs anyway for per-sample gradients).
///
/// - Parameters:
///   - input: `[B, C, H, W]` (then `columns` is `[B, C * kh * kw, outH * outW]`) or `[C, H, W]`
///     (then `columns` is `[C * kh * kw, outH * outW]`).
///   - columns: preallocated output; every scalar is overwritten.
/// - Precondition: shapes agree with ``ConvGeometry``; the message names both shapes.
@inlinable
public func im2col<S: TensorScalar>(
    _ input: Tensor<S>, kernel: (height: Int, width: Int),
    stride: (height: Int, width: Int) = (1, 1),
    padding: (height: Int, width: Int) = (0, 0),
    into columns: inout Tensor<S>
) {
    let g = ConvGeometry(input: input.shape, kernel: kernel, stride: stride, padding: padding)
    im2col(input, geometry: g, into: &columns)
}

/// ``im2col(_:kernel:stride:padding:into:)`` with a square kernel and equal strides and paddings.
@inlinable
public func im2col<S: TensorScalar>(
    _ input: Tensor<S>, kernel: Int, stride: Int = 1, padding: Int = 0,
    into columns: inout Tensor<S>
) {
    im2col(input, kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding), into: &columns)
}

/// ``im2col(_:kernel:stride:padding:into:)`` for a precomputed geometry.
@inlinable
public func im2col<S: TensorScalar>(_ input: Tensor<S>, geometry g: ConvGeometry, into columns: inout Tensor<S>) {
    let batch = checkConvShapes(input: input.shape, columns: columns.shape, geometry: g, function: "im2col")
    let plane = g.height * g.width, inputStride = g.channels * plane
    let outW = g.outputWidth, outH = g.outputHeight, L = g.outputPositions
    let colStride = g.patchSize * L
    if batch == 0 || colStride == 0 { return }
    input.withUnsafeBufferPointer { xb in
        columns.withUnsafeMutableBufferPointer { cb in
            let x = xb.baseAddress!, cols = cb.baseAddress!
            for b in 0..<batch {
                for c in 0..<g.channels {
                    let xc = x + b * inputStride + c * plane
                    for i in 0..<g.kernelHeight {
                        let ohRange = ConvGeometry.validOutputRange(
                            size: g.height, outputs: outH, stride: g.strideHeight,
                            padding: g.paddingHeight, offset: i)
                        for j in 0..<g.kernelWidth {
                            let owRange = ConvGeometry.validOutputRange(
                                size: g.width, outputs: outW, stride: g.strideWidth,
                                padding: g.paddingWidth, offset: j)
                            let row = cols + b * colStride + ((c * g.kernelHeight + i) * g.kernelWidth + j) * L
                            for oh in 0..<outH {
                                let dst = row + oh * outW
                                guard ohRange.contains(oh), !owRange.isEmpty else {
                                    dst.update(repeating: 0, count: outW)
                                    continue
                                }
                                let src = xc + (oh * g.strideHeight - g.paddingHeight + i) * g.width
                                for ow in 0..<owRange.lowerBound { dst[ow] = 0 }
                                var iw = owRange.lowerBound * g.strideWidth - g.paddingWidth + j
                                if g.strideWidth == 1 {
                                    dst.advanced(by: owRange.lowerBound).update(from: src + iw, count: owRange.count)
                                } else {
                                    for ow in owRange {
                                        dst[ow] = src[iw]
                                        iw += g.strideWidth
                                    }
                                }
                                for ow in owRange.upperBound..<outW { dst[ow] = 0 }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of ``im2col(_:geometry:into:)``: adds every column entry back to the input
/// position it came from (entries from the padding are dropped), **accumulating** into
/// `output`, which the caller zeroes first if it wants the plain result. For a convolution's
/// backward pass, `col2im(Wᵀ x dY)` is the input gradient.
///
/// `<im2col(x), y> = <x, col2im(y)>` for all `x`, `y`.
///
/// - Parameters:
///   - columns: `[B, C * kh * kw, outH * outW]` (or `[C * kh * kw, outH * outW]`).
///   - output: `[B, C, H, W]` (or `[C, H, W]`), accumulated into.
@inlinable
public func col2im<S: TensorScalar>(
    _ columns: Tensor<S>, kernel: (height: Int, width: Int),
    stride: (height: Int, width: Int) = (1, 1),
    padding: (height: Int, width: Int) = (0, 0),
    into output: inout Tensor<S>
) {
    let g = ConvGeometry(input: output.shape, kernel: kernel, stride: stride, padding: padding)
    col2im(columns, geometry: g, into: &output)
}

/// ``col2im(_:kernel:stride:padding:into:)`` with a square kernel and equal strides and paddings.
@inlinable
public func col2im<S: TensorScalar>(
    _ columns: Tensor<S>, kernel: Int, stride: Int = 1, padding: Int = 0,
    into output: inout Tensor<S>
) {
    col2im(columns, kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding), into: &output)
}

/// ``col2im(_:kernel:stride:padding:into:)`` for a precomputed geometry.
@inlinable
public func col2im<S: TensorScalar>(_ columns: Tensor<S>, geometry g: ConvGeometry, into output: inout Tensor<S>) {
    let batch = checkConvShapes(input: output.shape, columns: columns.shape, geometry: g, function: "col2im")
    let plane = g.height * g.width, inputStride = g.channels * plane
    let outW = g.outputWidth, outH = g.outputHeight, L = g.outputPositions
    let colStride = g.patchSize * L
    if batch == 0 || colStride == 0 { return }
    columns.withUnsafeBufferPointer { cb in
        output.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!, cols = cb.baseAddress!
            for b in 0..<batch {
                for c in 0..<g.channels {
                    let xc = x + b * inputStride + c * plane
                    for i in 0..<g.kernelHeight {
                        let ohRange = ConvGeometry.validOutputRange(
                            size: g.height, outputs: outH, stride: g.strideHeight,
                            padding: g.paddingHeight, offset: i)
                        for j in 0..<g.kernelWidth {
                            let owRange = ConvGeometry.validOutputRange(
                                size: g.width, outputs: outW, stride: g.strideWidth,
                                padding: g.paddingWidth, offset: j)
                            if owRange.isEmpty { continue }
                            let row = cols + b * colStride + ((c * g.kernelHeight + i) * g.kernelWidth + j) * L
                            for oh in ohRange {
                                let src = row + oh * outW
                                let dst = xc + (oh * g.strideHeight - g.paddingHeight + i) * g.width
                                var iw = owRange.lowerBound * g.strideWidth - g.paddingWidth + j
                                for ow in owRange {
                                    dst[iw] += src[ow]
                                    iw += g.strideWidth
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Checks input and column shapes against the geometry; returns the batch size (1 for rank 3).
@usableFromInline func checkConvShapes(input: Shape, columns: Shape, geometry g: ConvGeometry, function: String) -> Int
{
    let batched = input.rank == 4
    let batch = batched ? input[0] : 1
    let expected: Shape = batched ? g.columnShape(batch: batch) : [g.patchSize, g.outputPositions]
    precondition(
        columns == expected,
        convShapeMessage(
            function: function, input: input, columns: columns,
            expected: expected, geometry: g))
    return batch
}

/// The message of a shape mismatch between a convolution input and its columns.
@usableFromInline func convShapeMessage(
    function: String, input: Shape, columns: Shape, expected: Shape, geometry: ConvGeometry
) -> String {
    "\(function): columns \(columns) should be \(expected) for input \(input) and \(geometry)"
}

/// A convolution from its columns: `y_i = W columns_i + b` for each example `i`, one GEMM per
/// example after the bias fills `y_i`'s rows; examples split across ``ParallelBatch`` threads
/// when the GEMMs are small enough for OpenBLAS to run each on one thread.
///
/// - Parameters:
///   - weight: `W`, `C` rows of `K` (`[C, K]`, or `[C, C_in, kh, kw]` with `K = C_in kh kw`).
///   - columns: ``im2col(_:geometry:into:)`` of the input, `[B, K, L]`.
///   - bias: `b`, `[C]`, or `nil`.
///   - y: `B C L` scalars (`[B, C, L]` or `[B, C, H', W']`); every one is overwritten.
/// - Precondition: the shapes agree; the message names them.
@inlinable
public func convolutionForward<S: TensorScalar>(
    weight: Tensor<S>, columns: Tensor<S>, bias: Tensor<S>?, into y: inout Tensor<S>
) {
    let batch = columns.shape[0], k = columns.shape[1], l = columns.shape[2]
    let c = k == 0 ? 0 : weight.scalarCount / k
    precondition(
        weight.scalarCount == c * k && y.scalarCount == batch * c * l && (bias?.scalarCount ?? c) == c,
        "convolutionForward: weight \(weight.shape), columns \(columns.shape), output \(y.shape)")
    weight.withUnsafeBufferPointer { w in
        columns.withUnsafeBufferPointer { cols in
            y.withUnsafeMutableBufferPointer { out in
                let y0 = out.baseAddress!, w0 = w.baseAddress!, c0 = cols.baseAddress!
                ParallelBatch.forEachSlice(of: batch, gemmSize: c * k * l) { _, range in
                    for i in range {
                        let yi = y0 + i * c * l
                        if let bias {
                            bias.withUnsafeBufferPointer { pb in
                                for ch in 0..<c { (yi + ch * l).update(repeating: pb[ch], count: l) }
                            }
                        }
                        S.blasGemm(
                            transA: false, transB: false, m: c, n: l, k: k, alpha: 1, a: w0, lda: k,
                            b: c0 + i * k * l, ldb: l, beta: bias == nil ? 0 : 1, c: yi, ldc: l)
                    }
                }
            }
        }
    }
}

/// The column gradient of a convolution: `columns_i = W^T D_i + beta columns_i` for each example
/// `i`, one GEMM per example (split across threads as in ``convolutionForward(weight:columns:bias:into:)``);
/// ``col2im(_:geometry:into:)`` of it is the input gradient.
///
/// - Parameters:
///   - weight: `W`, `C` rows of `K` (`[C, K]`, or `[C, C_in, kh, kw]` with `K = C_in kh kw`).
///   - outputGradient: `D`, `[B, C, L]`.
///   - beta: 0 overwrites `columns`; 1 adds to them.
///   - columns: `[B, K, L]`.
/// - Precondition: the shapes agree; the message names them.
@inlinable
public func convolutionColumnGradient<S: TensorScalar>(
    weight: Tensor<S>, outputGradient: Tensor<S>, beta: S = 0, into columns: inout Tensor<S>
) {
    let batch = columns.shape[0], k = columns.shape[1], l = columns.shape[2], c = outputGradient.shape[1]
    precondition(
        outputGradient.shape == [batch, c, l] && weight.scalarCount == c * k,
        "convolutionColumnGradient: weight \(weight.shape), gradient \(outputGradient.shape), columns \(columns.shape)")
    weight.withUnsafeBufferPointer { w in
        outputGradient.withUnsafeBufferPointer { d in
            columns.withUnsafeMutableBufferPointer { dc in
                let w0 = w.baseAddress!, d0 = d.baseAddress!, c0 = dc.baseAddress!
                ParallelBatch.forEachSlice(of: batch, gemmSize: c * k * l) { _, range in
                    for i in range {
                        S.blasGemm(
                            transA: true, transB: false, m: k, n: l, k: c, alpha: 1, a: w0, lda: k,
                            b: d0 + i * c * l, ldb: l, beta: beta, c: c0 + i * k * l, ldc: l)
                    }
                }
            }
        }
    }
}
