import DPTensor

/// The rectifier `max(x, 0)`, element-wise. Its derivative at 0 is taken as 0.
public final class ReLU: ParameterFreeLayer {
    var output = Tensor<Float>(zeros: [0])
    var spareOutput = Tensor<Float>(zeros: [0]) // the other buffer (next layer holds one)
    var inputGradient = Tensor<Float>(zeros: [0])
    var spareInputGradient = Tensor<Float>(zeros: [0]) // a Linear layer before keeps one as its output gradient

    public init() {}
    public var description: String { "ReLU" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    /// `relu(x)`, written into one of two output buffers that nothing else holds any more (no
    /// allocation): a Linear layer after this one keeps last step's output until its own forward.
    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        output.reuseForOverwrite(shape: x.shape, alternatingWith: &spareOutput)
        x.withUnsafeBufferPointer { px in
            output.withUnsafeMutableBufferPointer { py in
                for i in 0..<px.count {
                    let v = px[i]
                    py[i] = v > 0 ? v : 0
                }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.shape == output.shape, "ReLU.backward: gradient \(dy.shape) differs from output \(output.shape)")
        // One pass into the layer's own buffer: `dy` is still referenced by the caller (and
        // cached by the layer after), so modifying a copy of it would copy it first.
        inputGradient.reuseForOverwrite(shape: dy.shape, alternatingWith: &spareInputGradient)
        dy.withUnsafeBufferPointer { pd in
            output.withUnsafeBufferPointer { py in
                inputGradient.withUnsafeMutableBufferPointer { dx in
                    for i in 0..<dx.count {
                        let d = pd[i], y = py[i]
                        dx[i] = y > 0 ? d : 0
                    }
                }
            }
        }
        return inputGradient
    }
}
