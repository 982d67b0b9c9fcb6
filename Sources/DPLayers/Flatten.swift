import DPTensor

/// Reshapes `[B, d1, d2, ...]` to `[B, d1 * d2 * ...]`; copies nothing.
public final class Flatten: ParameterFreeLayer {
    var inputShape: Shape = [0]

    public init() {}
    public var description: String { "Flatten" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { [inputShape.scalarCount] }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(x.rank >= 1, "Flatten: input needs a batch axis, got \(x.shape)")
        inputShape = x.shape
        return x.reshaped([x.shape[0], x.shape.trailingCount])
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.scalarCount == inputShape.scalarCount,
            "Flatten.backward: gradient \(dy.shape) does not match input \(inputShape)")
        return dy.reshaped(inputShape)
    }
}
