import DPTensor

/// Inverted dropout: in training, each scalar is kept with probability `1 - rate` and scaled
/// by `1 / (1 - rate)`, so that evaluation is the identity.
///
/// Masks are per-example: each forward pass draws one key from the context's generator, and
/// example `i` draws its mask from the Philox stream `(key, i)`. An example's mask therefore
/// depends only on the context generator and its position in the batch, never on other
/// examples, and a run is reproducible from its seed.
public final class Dropout: ParameterFreeLayer {
    public let rate: Float
    var mask = Tensor<Float>(zeros: [0]) // 0 or 1 / (1 - rate); empty in evaluation
    var training = false

    public init(rate: Float) {
        precondition(rate >= 0 && rate < 1, "Dropout: rate \(rate) must be in [0, 1)")
        self.rate = rate
    }

    public var description: String { "Dropout(\(rate))" }
    public func outputShape(forExampleShape inputShape: Shape) -> Shape { inputShape }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        training = context.training && rate > 0
        guard training else { return x }
        precondition(x.rank >= 1, "Dropout: input needs a batch axis, got \(x.shape)")
        let key = context.rng.next()
        let batch = x.shape[0], n = x.shape.trailingCount
        ensureShape(&mask, x.shape)
        let keep = 1 / (1 - rate), p = rate
        mask.withUnsafeMutableBufferPointer { m in
            for i in 0..<batch {
                var g = PhiloxRandom(seed: key, stream: UInt64(i))
                for j in 0..<n { m[i * n + j] = g.nextOpenUnitFloat() < p ? 0 : keep }
            }
        }
        var y = x
        y.multiply(mask)
        return y
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        guard training else { return dy }
        precondition(dy.shape == mask.shape, "Dropout.backward: gradient \(dy.shape) differs from output \(mask.shape)")
        var dx = dy
        dx.multiply(mask)
        return dx
    }
}
