import DPTensor

/// The rectifier `max(x, 0)`, element-wise. Its derivative at 0 is taken as 0.
public final class ReLU: ParameterFreeLayer {
    var output = Tensor<Float>(zeros: [0])

    public init() {}
    public var description: String { "ReLU" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        output = relu(x)
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(dy.shape == output.shape, "ReLU.backward: gradient \(dy.shape) differs from output \(output.shape)")
        var dx = dy
        dx.combine(output) { d, y in y > 0 ? d : 0 }
        return dx
    }
}
