import DPTensor

/// Layer normalisation (Ba et al. 2016) over the trailing `shape` axes: input `[B, ..., shape]`
/// is normalised over each trailing block of `D = shape.scalarCount` scalars,
/// `xhat = (x - mean) / sqrt(var + eps)`, then `y = gamma . xhat + beta` element-wise, with
/// `gamma` and `beta` of shape `shape` (PyTorch's `normalized_shape`).
///
/// Statistics are per example (per position), so no example's output depends on another's.
/// Per-sample gradients of `gamma` (`sum_positions dy . xhat`) and `beta` (`sum_positions dy`)
/// are materialised as `[B, D]` in backward.
public final class LayerNorm: Layer {
    public let shape: Shape
    public let eps: Float
    /// `shape`, initialised to one.
    public let gamma: Parameter
    /// `shape`, initialised to zero.
    public let beta: Parameter

    var inputShape: Shape = [0, 0]
    var normalized = Tensor<Float>(zeros: [0])
    var inverseStd = Tensor<Float>(zeros: [0]) // [rows]
    let affine = AffineGradients()

    public init(shape: Shape, eps: Float = 1e-5) {
        precondition(shape.rank >= 1 && shape.scalarCount > 0, "LayerNorm: normalised shape \(shape) must be non-empty")
        self.shape = shape
        self.eps = eps
        gamma = Parameter(name: "gamma", value: Tensor(repeating: 1, shape: shape))
        beta = Parameter(name: "beta", value: Tensor(zeros: shape))
    }

    public var description: String { "LayerNorm(\(shape))" }
    public var parameters: [Parameter] { [gamma, beta] }

    public func outputShape(forExampleShape s: Shape) -> Shape {
        precondition(
            s.rank >= shape.rank && Array(s.suffix(shape.rank)) == shape.array,
            "\(description): example shape \(s) does not end in \(shape)")
        return s
    }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(
            x.rank > shape.rank && Array(x.shape.suffix(shape.rank)) == shape.array,
            "\(description): input \(x.shape) should be [B, ..., \(shape.array.map(String.init).joined(separator: ", "))]"
        )
        inputShape = x.shape
        let d = shape.scalarCount, rows = x.scalarCount / d
        ensureShape(&normalized, x.shape)
        ensureShape(&inverseStd, [rows])
        var y = Tensor<Float>(zeros: x.shape)
        if rows == 0 { return y }
        x.withUnsafeBufferPointer { px in
            normalized.withUnsafeMutableBufferPointer { h in
                inverseStd.withUnsafeMutableBufferPointer { s in
                    normalizeRows(
                        px.baseAddress!, rows: rows, count: d, eps: eps, normalized: h.baseAddress!,
                        inverseStd: s.baseAddress!)
                }
            }
        }
        normalized.withUnsafeBufferPointer { h in
            gamma.value.withUnsafeBufferPointer { g in
                beta.value.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { out in
                        for r in 0..<rows {
                            for j in 0..<d { out[r * d + j] = g[j] * h[r * d + j] + b[j] }
                        }
                    }
                }
            }
        }
        return y
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        precondition(
            dy.scalarCount == inputShape.scalarCount,
            "\(description).backward: gradient \(dy.shape) should be \(inputShape)")
        let batch = inputShape[0], d = shape.scalarCount, rows = inputShape.scalarCount / d
        let positions = batch == 0 ? 0 : rows / batch
        affine.prepare(batch: batch, parameters: d)
        var dx = dy.reshaped(inputShape)
        if rows == 0 { return dx }
        normalized.withUnsafeBufferPointer { h in
            gamma.value.withUnsafeBufferPointer { g in
                affine.gamma.withUnsafeMutableBufferPointer { dg in
                    affine.beta.withUnsafeMutableBufferPointer { db in
                        dx.withUnsafeMutableBufferPointer { dd in
                            for r in 0..<rows {
                                let example = r / positions, base = r * d
                                for j in 0..<d {
                                    dg[example * d + j] += dd[base + j] * h[base + j]
                                    db[example * d + j] += dd[base + j]
                                    dd[base + j] *= g[j]
                                }
                            }
                            inverseStd.withUnsafeBufferPointer { s in
                                normalizeRowsBackward(
                                    dd.baseAddress!, normalized: h.baseAddress!, inverseStd: s.baseAddress!,
                                    rows: rows, count: d)
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {
        checkNorms(norms, batchSize: affine.gamma.shape[0], layer: description)
        affine.addSquaredNorms(into: &norms)
    }

    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        checkExampleWeights(exampleWeights, batchSize: affine.gamma.shape[0], layer: description)
        affine.accumulate(exampleWeights: exampleWeights, gamma: gamma, beta: beta)
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        [
            affine.gamma.reshaped(Shape([affine.gamma.shape[0]] + shape.array)),
            affine.beta.reshaped(Shape([affine.beta.shape[0]] + shape.array)),
        ]
    }
}
