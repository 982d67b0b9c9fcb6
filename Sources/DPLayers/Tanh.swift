import DPTensor

/// The hyperbolic tangent, element-wise; `d tanh(x)/dx = 1 - tanh(x)^2`.
///
/// Papernot et al. 2021 ("Tempered sigmoid activations for deep learning with differential
/// privacy") found bounded activations train better than ReLU under DP-SGD; tanh is the
/// tempered sigmoid with scale 2, temperature 2 and offset 1.
public final class Tanh: ParameterFreeLayer {
    var output = Tensor<Float>(zeros: [0])

    public init() {}
    public var description: String { "Tanh" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        output = tanh(x)
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.shape == output.shape, "Tanh.backward: gradient \(dy.shape) differs from output \(output.shape)")
        // One pass into a fresh tensor: `dy` is still referenced by the caller (and cached by
        // the layer after), so modifying a copy of it would copy it first.
        return dy.withUnsafeBufferPointer { pd in
            output.withUnsafeBufferPointer { py in
                Tensor(unsafeUninitializedShape: dy.shape) { dx in
                    for i in 0..<dx.count {
                        let d = pd[i], y = py[i]
                        dx[i] = d * (1 - y * y)
                    }
                }
            }
        }
    }
}
