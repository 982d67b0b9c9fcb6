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
        // Every output is written by maxPool2d: no zero fill.
        var y = Tensor<Float>(unsafeUninitializedShape: [b, c, ho, wo]) { _ in }
        let count = b * c * ho * wo
        if argmax.count != count { argmax = [Int32](repeating: 0, count: count) }
        precondition(h * w <= Int(Int32.max), "\(description): input planes \(h)x\(w) too large for 32-bit indices")
        maxPool2d(x, kernel: kernel, stride: stride, into: &y, argmax: &argmax)
        return y
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.scalarCount == argmax.count,
            "\(description).backward: gradient \(dy.shape) does not match the forward output")
        var dx = Tensor<Float>(zeros: inputShape)
        maxPool2dBackward(dy, argmax: argmax, into: &dx)
        return dx
    }
}
