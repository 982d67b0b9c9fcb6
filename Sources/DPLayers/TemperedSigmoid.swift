import DPTensor

/// The tempered sigmoid `s * sigmoid(T x) - o`, element-wise (Papernot et al. 2021,
/// "Tempered sigmoid activations for deep learning with differential privacy", AAAI).
///
/// Its derivative is `s T sigmoid(T x) (1 - sigmoid(T x))`. `scale = 2, temperature = 2,
/// offset = 1` is tanh; `1, 1, 0` is the logistic sigmoid.
public final class TemperedSigmoid: ParameterFreeLayer {
    public let scale: Float
    public let temperature: Float
    public let offset: Float
    var sigma = Tensor<Float>(zeros: [0]) // sigmoid(T x), cached

    public init(scale: Float = 2, temperature: Float = 2, offset: Float = 1) {
        self.scale = scale
        self.temperature = temperature
        self.offset = offset
    }

    public var description: String { "TemperedSigmoid(s: \(scale), T: \(temperature), o: \(offset))" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        let t = temperature, s = scale, o = offset
        sigma = x.map { sigmoidScalar(t * $0) }
        return sigma.map { s * $0 - o }
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.shape == sigma.shape, "TemperedSigmoid.backward: gradient \(dy.shape) differs from output \(sigma.shape)"
        )
        let st = scale * temperature
        var dx = dy
        dx.combine(sigma) { d, p in d * st * p * (1 - p) }
        return dx
    }
}
