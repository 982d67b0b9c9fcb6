import DPTensor

/// The output size of a pooling window sweep without padding: `(n - kernel) / stride + 1`.
@inlinable
func pooledSize(_ n: Int, kernel: Int, stride: Int) -> Int {
    n >= kernel ? (n - kernel) / stride + 1 : 0
}

/// Checks an NCHW input and returns its dimensions.
func nchw(_ x: Shape, _ layer: String) -> (b: Int, c: Int, h: Int, w: Int) {
    precondition(x.rank == 4, "\(layer): input \(x) should be [B, C, H, W]")
    return (x[0], x[1], x[2], x[3])
}

/// The kernel and stride of a pooling layer, checked: `stride` defaults to `kernel`.
func poolingWindow(kernel: Int, stride: Int?, layer: String) -> (kernel: Int, stride: Int) {
    let s = stride ?? kernel
    precondition(kernel > 0 && s > 0, "\(layer): kernel \(kernel) and stride \(s) must be positive")
    return (kernel, s)
}

/// The pooled shape `[C, H', W']` of one `[C, H, W]` example.
func pooledExampleShape(_ s: Shape, kernel: Int, stride: Int, layer: String) -> Shape {
    precondition(s.rank == 3, "\(layer): example shape \(s) should be [C, H, W]")
    return [s[0], pooledSize(s[1], kernel: kernel, stride: stride), pooledSize(s[2], kernel: kernel, stride: stride)]
}

// MARK: - Max-pooling kernels

/// Max pooling without padding of `x` (`[B, C, H, W]`) into `y` (`[B, C, H', W']`, every
/// scalar overwritten): each `kernel x kernel` window (step `stride`) gives `y` its first
/// largest element and `argmax` that element's index within its input plane (`H W` scalars).
/// ``MaxPool2d`` runs it in `Float`; the gradient-inversion replica runs it in `Double`.
/// - Precondition: `y` and `argmax` hold `B C H' W'` values; a plane has fewer than 2^31 scalars.
@inlinable
public func maxPool2d<S: TensorScalar>(
    _ x: Tensor<S>, kernel k: Int, stride s: Int, into y: inout Tensor<S>, argmax: inout [Int32]
) {
    let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = pooledSize(h, kernel: k, stride: s), wo = pooledSize(w, kernel: k, stride: s)
    precondition(
        y.shape == [b, c, ho, wo] && argmax.count == y.scalarCount,
        "maxPool2d: output \(y.shape) and \(argmax.count) indices should be [\(b), \(c), \(ho), \(wo)]")
    precondition(h * w <= Int(Int32.max), "maxPool2d: input planes \(h)x\(w) too large for 32-bit indices")
    x.withUnsafeBufferPointer { xb in
        y.withUnsafeMutableBufferPointer { yb in
            argmax.withUnsafeMutableBufferPointer { ab in
                let px = xb.baseAddress!, py = yb.baseAddress!, am = ab.baseAddress!
                for plane in 0..<(b * c) {
                    let inBase = plane * h * w, outBase = plane * ho * wo
                    for oy in 0..<ho {
                        let outRow = outBase + oy * wo
                        if k == 2 {
                            // The common 2x2 window, unrolled: the same rule as below.
                            let r0 = inBase + oy * s * w, r1 = r0 + w
                            for ox in 0..<wo {
                                let c0 = ox * s
                                var best = r0 + c0, bestValue = px[best]
                                let v1 = px[r0 + c0 + 1], v2 = px[r1 + c0], v3 = px[r1 + c0 + 1]
                                if v1 > bestValue {
                                    bestValue = v1
                                    best = r0 + c0 + 1
                                }
                                if v2 > bestValue {
                                    bestValue = v2
                                    best = r1 + c0
                                }
                                if v3 > bestValue {
                                    bestValue = v3
                                    best = r1 + c0 + 1
                                }
                                py[outRow + ox] = bestValue
                                am[outRow + ox] = Int32(truncatingIfNeeded: best - inBase)
                            }
                            continue
                        }
                        for ox in 0..<wo {
                            // Branch-free running maximum; strict `>` keeps the first largest.
                            var best = inBase + oy * s * w + ox * s
                            var bestValue = px[best]
                            for ky in 0..<k {
                                let rowBase = inBase + (oy * s + ky) * w + ox * s
                                for kx in 0..<k {
                                    let v = px[rowBase + kx]
                                    let better = v > bestValue
                                    bestValue = better ? v : bestValue
                                    best = better ? rowBase + kx : best
                                }
                            }
                            py[outRow + ox] = bestValue
                            am[outRow + ox] = Int32(truncatingIfNeeded: best - inBase)
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of ``maxPool2d(_:kernel:stride:into:argmax:)``: each value of `dy` is added to
/// `dx` (`[B, C, H, W]`) at its arg-max within its input plane.
@inlinable
public func maxPool2dBackward<S: TensorScalar>(_ dy: Tensor<S>, argmax: [Int32], into dx: inout Tensor<S>) {
    let b = dx.shape[0], c = dx.shape[1], h = dx.shape[2], w = dx.shape[3]
    let planeIn = h * w, planeOut = b * c == 0 ? 0 : argmax.count / (b * c)
    dy.withUnsafeBufferPointer { pd in
        dx.withUnsafeMutableBufferPointer { px in
            argmax.withUnsafeBufferPointer { am in
                for plane in 0..<(b * c) {
                    let inBase = plane * planeIn, outBase = plane * planeOut
                    for j in outBase..<(outBase + planeOut) { px[inBase + Int(am[j])] += pd[j] }
                }
            }
        }
    }
}
