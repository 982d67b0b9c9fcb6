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
        precondition(
            dy.shape == output.shape, "ReLU.backward: gradient \(dy.shape) differs from output \(output.shape)")
        // One pass into a fresh tensor: `dy` is still referenced by the caller (and cached by
        // the layer after), so modifying a copy of it would copy it first.
        return dy.withUnsafeBufferPointer { pd in
            output.withUnsafeBufferPointer { py in
                Tensor(unsafeUninitializedShape: dy.shape) { dx in
                    for i in 0..<dx.count {
                        let d = pd[i], y = py[i]
                        dx[i] = y > 0 ? d : 0
                    }
                }
            }
        }
    }
}
