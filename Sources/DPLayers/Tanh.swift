import DPTensor

/// The hyperbolic tangent, element-wise; `d tanh(x)/dx = 1 - tanh(x)^2`.
///
/// Papernot et al. 2021 ("Tempered sigmoid activations for deep learning with differential
/// privacy") found bounded activations train better than ReLU under DP-SGD; tanh is the
/// tempered sigmoid with scale 2, temperature 2 and offset 1.
public final class Tanh: ParameterFreeLayer {
    var output = Tensor<Float>(zeros: [0])
    var spareOutput = Tensor<Float>(zeros: [0]) // the other buffer (next layer holds one)
    var inputGradient = Tensor<Float>(zeros: [0])
    var spareInputGradient = Tensor<Float>(zeros: [0]) // a Linear layer before keeps one as its output gradient

    public init() {}
    public var description: String { "Tanh" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    /// Writes into one of two output buffers that nothing else holds any more (no allocation):
    /// a Linear or Conv2d layer after this one keeps last step's output until its own forward pass.
    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        output.reuseForOverwrite(shape: x.shape, alternatingWith: &spareOutput)
        x.withUnsafeBufferPointer { px in
            output.withUnsafeMutableBufferPointer { py in
                if px.count > 0 { Float.vectorizableTanh(px.baseAddress!, into: py.baseAddress!, count: px.count) }
            }
        }
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.shape == output.shape, "Tanh.backward: gradient \(dy.shape) differs from output \(output.shape)")
        // One pass into the layer's own buffer: `dy` is still referenced by the caller (and
        // cached by the layer after), so modifying a copy of it would copy it first.
        inputGradient.reuseForOverwrite(shape: dy.shape, alternatingWith: &spareInputGradient)
        dy.withUnsafeBufferPointer { pd in
            output.withUnsafeBufferPointer { py in
                inputGradient.withUnsafeMutableBufferPointer { dx in
                    if dx.count > 0 {
                        Float.tanhBackward(
                            outputGradient: pd.baseAddress!, output: py.baseAddress!, into: dx.baseAddress!,
                            count: dx.count)
                    }
                }
            }
        }
        return inputGradient
    }
}
