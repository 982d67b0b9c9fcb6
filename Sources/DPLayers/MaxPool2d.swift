import DPTensor

/// Max pooling over `kernel x kernel` windows with `stride`, no padding, on `[B, C, H, W]`.
///
/// Output `[B, C, (H - k) / s + 1, (W - k) / s + 1]`. The gradient goes to the first largest
/// element of each window.
public final class MaxPool2d: ParameterFreeLayer {
    public let kernel: Int
    public let stride: Int
    var inputShape: Shape = [0, 0, 0, 0]
    /// The index of each output's maximum within its input plane (`H W` scalars), so 32 bits
    /// suffice for any plane below 2^31 scalars whatever the batch size.
    var argmax: [Int32] = []

    public init(kernel: Int, stride: Int? = nil) {
        (self.kernel, self.stride) = poolingWindow(kernel: kernel, stride: stride, layer: "MaxPool2d")
    }

    public var description: String { "MaxPool2d(\(kernel), stride: \(stride))" }

    public func outputShape(forExampleShape s: Shape) -> Shape {
        pooledExampleShape(s, kernel: kernel, stride: stride, layer: description)
    }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        let (b, c, h, w) = nchw(x.shape, description)
        let ho = pooledSize(h, kernel: kernel, stride: stride), wo = pooledSize(w, kernel: kernel, stride: stride)
        inputShape = x.shape
        // Every output is written below: no zero fill.
        var y = Tensor<Float>(unsafeUninitializedShape: [b, c, ho, wo]) { _ in }
        let count = b * c * ho * wo
        if argmax.count != count { argmax = [Int32](repeating: 0, count: count) }
        precondition(h * w <= Int(Int32.max), "\(description): input planes \(h)x\(w) too large for 32-bit indices")
        let k = kernel, s = stride
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
        return y
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.scalarCount == argmax.count,
            "\(description).backward: gradient \(dy.shape) does not match the forward output")
        var dx = Tensor<Float>(zeros: inputShape)
        let (b, c, h, w) = nchw(inputShape, description)
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
        return dx
    }
}
