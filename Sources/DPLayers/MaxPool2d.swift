import DPTensor

/// Max pooling over `kernel x kernel` windows with `stride`, no padding, on `[B, C, H, W]`.
///
/// Output `[B, C, (H - k) / s + 1, (W - k) / s + 1]`. The gradient goes to the first largest
/// element of each window. The vectorised kernels (``parallelMaxPool2d(_:kernel:stride:into:argmax:)``)
/// are split across ``ParallelBatch`` threads by plane; the output and input gradient buffers
/// are reused from step to step when the caller has let go of them.
public final class MaxPool2d: ParameterFreeLayer {
    public let kernel: Int
    public let stride: Int
    var inputShape: Shape = [0, 0, 0, 0]
    /// The index of each output's maximum within its input plane (`H W` scalars), so 32 bits
    /// suffice for any plane below 2^31 scalars whatever the batch size.
    var argmax: [Int32] = []
    var output = Tensor<Float>(zeros: [0, 0, 0, 0])
    var spareOutput = Tensor<Float>(zeros: [0, 0, 0, 0]) // the other buffer (next layer holds one)
    var inputGradient = Tensor<Float>(zeros: [0, 0, 0, 0])

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
        // Every output is written by the kernel: no zero fill.
        output.reuseForOverwrite(shape: [b, c, ho, wo], alternatingWith: &spareOutput)
        let count = b * c * ho * wo
        if argmax.count != count { argmax = [Int32](repeating: 0, count: count) }
        precondition(h * w <= Int(Int32.max), "\(description): input planes \(h)x\(w) too large for 32-bit indices")
        parallelMaxPool2d(x, kernel: kernel, stride: stride, into: &output, argmax: &argmax)
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.scalarCount == argmax.count,
            "\(description).backward: gradient \(dy.shape) does not match the forward output")
        inputGradient.reuseForOverwrite(shape: inputShape)
        parallelMaxPool2dBackward(dy, argmax: argmax, into: &inputGradient)
        return inputGradient
    }
}
