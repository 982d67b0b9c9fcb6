import DPTensor

/// Average pooling over `kernel x kernel` windows with `stride`, no padding, on `[B, C, H, W]`.
///
/// Output `[B, C, (H - k) / s + 1, (W - k) / s + 1]`; each input in a window receives
/// `1 / k^2` of that window's output gradient.
public final class AvgPool2d: ParameterFreeLayer {
    public let kernel: Int
    public let stride: Int
    var inputShape: Shape = [0, 0, 0, 0]

    public init(kernel: Int, stride: Int? = nil) {
        (self.kernel, self.stride) = poolingWindow(kernel: kernel, stride: stride, layer: "AvgPool2d")
    }

    public var description: String { "AvgPool2d(\(kernel), stride: \(stride))" }

    public func outputShape(forExampleShape s: Shape) -> Shape {
        pooledExampleShape(s, kernel: kernel, stride: stride, layer: description)
    }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        let (b, c, h, w) = nchw(x.shape, description)
        let ho = pooledSize(h, kernel: kernel, stride: stride), wo = pooledSize(w, kernel: kernel, stride: stride)
        inputShape = x.shape
        var y = Tensor<Float>(zeros: [b, c, ho, wo])
        let k = kernel, s = stride, scale = 1 / Float(kernel * kernel)
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                for plane in 0..<(b * c) {
                    let inBase = plane * h * w, outBase = plane * ho * wo
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            var sum: Float = 0
                            for ky in 0..<k {
                                let rowBase = inBase + (oy * s + ky) * w + ox * s
                                for kx in 0..<k { sum += px[rowBase + kx] }
                            }
                            py[outBase + oy * wo + ox] = sum * scale
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        let (b, c, h, w) = nchw(inputShape, description)
        let ho = pooledSize(h, kernel: kernel, stride: stride), wo = pooledSize(w, kernel: kernel, stride: stride)
        precondition(
            dy.shape == [b, c, ho, wo],
            "\(description).backward: gradient \(dy.shape) should be [\(b), \(c), \(ho), \(wo)]")
        var dx = Tensor<Float>(zeros: inputShape)
        let k = kernel, s = stride, scale = 1 / Float(kernel * kernel)
        dy.withUnsafeBufferPointer { pd in
            dx.withUnsafeMutableBufferPointer { px in
                for plane in 0..<(b * c) {
                    let inBase = plane * h * w, outBase = plane * ho * wo
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            let g = pd[outBase + oy * wo + ox] * scale
                            for ky in 0..<k {
                                let rowBase = inBase + (oy * s + ky) * w + ox * s
                                for kx in 0..<k { px[rowBase + kx] += g }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }
}
