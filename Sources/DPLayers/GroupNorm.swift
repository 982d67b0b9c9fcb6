import DPTensor

/// Group normalisation (Wu & He 2018) on `[B, C, ...]`: the `C` channels are split into
/// `groups` groups of consecutive channels, and each example's group is normalised over its
/// channels and spatial positions, `xhat = (x - mean) / sqrt(var + eps)`, then scaled and
/// shifted per channel, `y = gamma_c xhat + beta_c`.
///
/// Statistics are per example, so unlike BatchNorm no example's output depends on another's:
/// the per-example gradients exist and DP-SGD can clip them. With one group it is LayerNorm
/// over `[C, ...]` with per-channel affine parameters; with `C` groups, InstanceNorm.
///
/// Per-sample gradients of `gamma` (`sum_s dy xhat`) and `beta` (`sum_s dy`) are materialised
/// as `[B, C]` in backward: they cost no more than the backward pass itself. Without `affine`
/// (PyTorch's `GroupNorm(affine=False)`, as Tramèr & Boneh 2021 normalise ScatterNet
/// features), `gamma = 1` and `beta = 0` are constants and the layer has no parameters.
public final class GroupNorm: Layer {
    public let groups: Int
    public let channels: Int
    public let eps: Float
    /// False: `y = xhat`, no parameters.
    public let affine: Bool
    /// `[C]`, initialised to one.
    public let gamma: Parameter
    /// `[C]`, initialised to zero.
    public let beta: Parameter

    var inputShape: Shape = [0, 0]
    var normalized = Tensor<Float>(zeros: [0]) // xhat, input-shaped
    var inverseStd = Tensor<Float>(zeros: [0]) // [B * groups]
    let affineGradients = AffineGradients()

    public init(groups: Int, channels: Int, eps: Float = 1e-5, affine: Bool = true) {
        precondition(
            groups > 0 && channels > 0 && channels % groups == 0,
            "GroupNorm: \(channels) channels cannot be split into \(groups) equal groups")
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.affine = affine
        gamma = Parameter(name: "gamma", value: Tensor(repeating: 1, shape: [channels]))
        beta = Parameter(name: "beta", value: Tensor(zeros: [channels]))
    }

    public var description: String {
        "GroupNorm(\(groups) groups, \(channels) channels\(affine ? "" : ", no affine"))"
    }
    public var parameters: [Parameter] { affine ? [gamma, beta] : [] }

    public func outputShape(forExampleShape s: Shape) -> Shape {
        precondition(s.rank >= 1 && s[0] == channels, "\(description): example shape \(s) should be [\(channels), ...]")
        return s
    }

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(
            x.rank >= 2 && x.shape[1] == channels, "\(description): input \(x.shape) should be [B, \(channels), ...]")
        inputShape = x.shape
        let batch = x.shape[0], spatial = x.shape.trailingCount / channels
        let rows = batch * groups, n = (channels / groups) * spatial
        ensureShape(&normalized, x.shape)
        ensureShape(&inverseStd, [rows])
        var y = Tensor<Float>(zeros: x.shape)
        if batch == 0 || n == 0 { return y }
        x.withUnsafeBufferPointer { px in
            normalized.withUnsafeMutableBufferPointer { h in
                inverseStd.withUnsafeMutableBufferPointer { s in
                    normalizeRows(
                        px.baseAddress!, rows: rows, count: n, eps: eps, normalized: h.baseAddress!,
                        inverseStd: s.baseAddress!)
                }
            }
        }
        normalized.withUnsafeBufferPointer { h in
            gamma.value.withUnsafeBufferPointer { g in
                beta.value.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { out in
                        for plane in 0..<(batch * channels) {
                            let c = plane % channels, base = plane * spatial
                            for j in 0..<spatial { out[base + j] = g[c] * h[base + j] + b[c] }
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
        let batch = inputShape[0], spatial = inputShape.trailingCount / channels
        let rows = batch * groups, n = (channels / groups) * spatial
        affineGradients.prepare(batch: batch, parameters: affine ? channels : 0)
        var dx = dy.reshaped(inputShape)
        if batch == 0 || n == 0 { return dx }
        normalized.withUnsafeBufferPointer { h in
            gamma.value.withUnsafeBufferPointer { g in
                affineGradients.gamma.withUnsafeMutableBufferPointer { dg in
                    affineGradients.beta.withUnsafeMutableBufferPointer { db in
                        dx.withUnsafeMutableBufferPointer { d in
                            // Per-example affine gradients, then dL/dxhat = dy * gamma in place.
                            for plane in 0..<(batch * channels) {
                                let c = plane % channels, base = plane * spatial
                                var sg: Float = 0, sb: Float = 0
                                for j in 0..<spatial {
                                    sg += d[base + j] * h[base + j]
                                    sb += d[base + j]
                                    d[base + j] *= g[c]
                                }
                                if affine {
                                    dg[plane] = sg
                                    db[plane] = sb
                                }
                            }
                            inverseStd.withUnsafeBufferPointer { s in
                                normalizeRowsBackward(
                                    d.baseAddress!, normalized: h.baseAddress!, inverseStd: s.baseAddress!,
                                    rows: rows, count: n)
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {
        if !affine { return }
        checkNorms(norms, batchSize: affineGradients.gamma.shape[0], layer: description)
        affineGradients.addSquaredNorms(into: &norms)
    }

    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        if !affine { return }
        checkExampleWeights(exampleWeights, batchSize: affineGradients.gamma.shape[0], layer: description)
        affineGradients.accumulate(exampleWeights: exampleWeights, gamma: gamma, beta: beta)
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        affine ? [affineGradients.gamma, affineGradients.beta] : []
    }
}
