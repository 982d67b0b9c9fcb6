import DPTensor

/// A 2-D convolution on NCHW input `[B, Cin, H, W]`, computed through im2col: with
/// `cols_i = im2col(x_i)` of shape `[K, L]` (`K = Cin k^2` patch size, `L = Hout Wout` output
/// positions) and `W` viewed as `[Cout, K]`, example `i`'s output is `Y_i = W cols_i + b`
/// (`[Cout, L]`, already NCHW).
///
/// The columns of the whole batch are kept batch-interleaved, `cols = [cols_1 ... cols_B]`
/// (`[K, B L]`), so that the forward pass is one GEMM `W cols` (`[Cout, B L]`, then laid out
/// NCHW with the bias added), the input gradient one GEMM `W^T dY` (with `dY` kept as
/// `[Cout, B L]`) and col2im: OpenBLAS runs these at large-GEMM speed on every thread instead
/// of `B` small GEMMs.
///
/// Example `i`'s weight gradient is `G_i = dY_i cols_i^T`. Its squared norm comes from the
/// rule that ``PerSampleNormRule/cheaper(positions:inputFeatures:outputFeatures:)`` picks
/// for `(L, K, Cout)` (mixed ghost clipping, Bu et al. 2022): the ghost norm
/// `sum_{l,l'} (cols_i^T cols_i)[l,l'] (dY_i^T dY_i)[l,l']`, about `2 L^2 (K + Cout)` flops;
/// or the materialised `G_i`, about `2 L K Cout`. The bias gradient is `dY_i 1`. The clipped
/// sum ``accumulateGradients(exampleWeights:)`` is one GEMV `sum_i w_i G_i` over the
/// materialised gradients when the norm pass kept them
/// (``PerSampleNormRule/keepsGradients(inputFeatures:outputFeatures:)``), otherwise one GEMM
/// `sum_i w_i dY_i cols_i^T = (dY diag(w)) cols^T` over all `B L` positions.
///
/// The im2col columns are kept from forward for the norms and the accumulation; they, the
/// backward column buffer and the layer's output and input gradient are allocated once per
/// batch shape (the output and input gradient again only if the caller still holds the last
/// ones). im2col, col2im and the per-example norms are split across ``ParallelBatch`` threads
/// by example and the batch-wide GEMMs across OpenBLAS's; no sum is split by thread, so the
/// bits do not depend on the thread count.
///
/// Initialisation as PyTorch's default: `W` and `b` uniform in `±1/sqrt(Cin k^2)`.
public final class Conv2d: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    public let padding: Int
    /// `[Cout, Cin, k, k]`.
    public let weight: Parameter
    /// `[Cout]`.
    public let bias: Parameter?

    /// Forces a norm rule (tests); `nil` lets the cost model choose.
    var normRuleOverride: PerSampleNormRule?

    /// `false` skips the input gradient (``Layer/needsInputGradient``): ``backward(_:)`` returns zeros.
    public var needsInputGradient = true
    var zeroInputGradient = Tensor<Float>(zeros: [0, 0, 0, 0])

    var geometry: ConvGeometry?
    var batchSize = 0
    var columns = Tensor<Float>(zeros: [0, 0]) // [K, B L], from forward
    var outputGradient = Tensor<Float>(zeros: [0, 0]) // [Cout, B L], from backward
    var columnGradient = Tensor<Float>(zeros: [0, 0]) // [K, B L], backward workspace
    var batchOutput = Tensor<Float>(zeros: [0, 0]) // [Cout, B L], forward workspace
    var weightedOutputGradient = Tensor<Float>(zeros: [0, 0]) // [Cout, B L], dY diag(w)
    var output = Tensor<Float>(zeros: [0, 0, 0, 0]) // reused when the caller let go of it
    var inputGradient = Tensor<Float>(zeros: [0, 0, 0, 0]) // reused likewise
    var positionOnes = Tensor<Float>(zeros: [0]) // [B L]
    /// `[B, Cout K + Cout]`: the materialised per-example gradients of the last norm pass, kept
    /// for the clipped sum (``PerSampleNormRule/keepsGradients(inputFeatures:outputFeatures:)``);
    /// valid until the next forward or backward pass.
    var keptGradients = Tensor<Float>(zeros: [0, 0])
    var keptGradientsValid = false
    var outerProducts = OuterProductNorms()

    public init(
        inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, rng: inout PhiloxRandom
    ) {
        precondition(
            inChannels > 0 && outChannels > 0 && kernel > 0 && stride > 0 && padding >= 0,
            "Conv2d: invalid sizes (in \(inChannels), out \(outChannels), kernel \(kernel), stride \(stride), padding \(padding))"
        )
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        let bound = 1 / Float(inChannels * kernel * kernel).squareRoot()
        weight = Parameter(
            name: "weight",
            value: Tensor(
                uniform: [outChannels, inChannels, kernel, kernel],
                in: -bound...bound, using: &rng))
        self.bias =
            bias
            ? Parameter(name: "bias", value: Tensor(uniform: [outChannels], in: -bound...bound, using: &rng)) : nil
    }

    public var description: String {
        "Conv2d(\(inChannels)->\(outChannels), \(kernel)x\(kernel), stride: \(stride), padding: \(padding)\(bias == nil ? ", no bias" : ""))"
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    /// `K = Cin k^2`.
    public var patchSize: Int { inChannels * kernel * kernel }

    func geometry(for s: Shape) -> ConvGeometry {
        precondition(
            s.rank == 3 && s[0] == inChannels, "\(description): example shape \(s) should be [\(inChannels), H, W]")
        return ConvGeometry(
            channels: inChannels, height: s[1], width: s[2], kernel: kernel, stride: stride, padding: padding)
    }

    public func outputShape(forExampleShape s: Shape) -> Shape {
        let g = geometry(for: s)
        return [outChannels, g.outputHeight, g.outputWidth]
    }

    /// The output and the im2col columns (`Cout L + K L` scalars per example).
    public func cachedScalars(forExampleShape s: Shape) -> Int {
        let g = geometry(for: s)
        return (outChannels + patchSize) * g.outputPositions
    }

    /// The rule the cost model picks for example shape `[Cin, H, W]` (ignoring any override).
    public func normRule(forExampleShape s: Shape) -> PerSampleNormRule {
        let g = geometry(for: s)
        return PerSampleNormRule.cheaper(
            positions: g.outputPositions, inputFeatures: patchSize, outputFeatures: outChannels)
    }

    // MARK: - Forward and backward

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(x.rank == 4, "\(description): input \(x.shape) should be [B, \(inChannels), H, W]")
        let g = geometry(for: Shape(Array(x.shape.dropFirst())))
        geometry = g
        batchSize = x.shape[0]
        keptGradientsValid = false
        let c = outChannels, k = patchSize, n = batchSize * g.outputPositions
        ensureShape(&columns, [k, n])
        parallelIm2col(x, geometry: g, into: &columns)
        if batchSize == 0 || k == 0 { return Tensor(zeros: [batchSize, c, g.outputHeight, g.outputWidth]) }
        // W cols, one GEMM with beta 0, then NCHW with the bias: every output is written.
        ensureShape(&batchOutput, [c, n])
        weight.value.withUnsafeBufferPointer { w in
            columns.withUnsafeBufferPointer { cols in
                batchOutput.withUnsafeMutableBufferPointer { y in
                    Float.blasGemm(
                        transA: false, transB: false, m: c, n: n, k: k, alpha: 1, a: w.baseAddress!, lda: k,
                        b: cols.baseAddress!, ldb: n, beta: 0, c: y.baseAddress!, ldc: n)
                }
            }
        }
        output.reuseForOverwrite(shape: [batchSize, c, g.outputHeight, g.outputWidth])
        swapLeadingAxes(batchOutput, p: c, q: batchSize, l: g.outputPositions, adding: bias?.value, into: &output)
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        guard let g = geometry else { preconditionFailure("\(description).backward before forward") }
        let l = g.outputPositions, c = outChannels
        precondition(
            dy.scalarCount == batchSize * c * l,
            "\(description).backward: gradient \(dy.shape) should be [\(batchSize), \(c), \(g.outputHeight), \(g.outputWidth)]"
        )
        let n = batchSize * l, k = patchSize
        keptGradientsValid = false
        ensureShape(&outputGradient, [c, n])
        swapLeadingAxes(dy, p: batchSize, q: c, l: l, into: &outputGradient)
        let inputShape: Shape = [batchSize, inChannels, g.height, g.width]
        if !needsInputGradient || batchSize == 0 {
            if zeroInputGradient.shape != inputShape { zeroInputGradient = Tensor(zeros: inputShape) }
            return zeroInputGradient
        }
        // W^T dY, one GEMM with beta 0, then col2im (which overwrites).
        ensureShape(&columnGradient, [k, n])
        weight.value.withUnsafeBufferPointer { w in
            outputGradient.withUnsafeBufferPointer { d in
                columnGradient.withUnsafeMutableBufferPointer { dc in
                    Float.blasGemm(
                        transA: true, transB: false, m: k, n: n, k: c, alpha: 1, a: w.baseAddress!, lda: k,
                        b: d.baseAddress!, ldb: n, beta: 0, c: dc.baseAddress!, ldc: n)
                }
            }
        }
        inputGradient.reuseForOverwrite(shape: inputShape)
        parallelCol2im(columnGradient, geometry: g, into: &inputGradient)
        return inputGradient
    }

    // MARK: - Per-sample gradients

    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {
        checkNorms(norms, batchSize: batchSize, layer: description)
        guard let g = geometry, batchSize > 0 else { return }
        let rule =
            normRuleOverride
            ?? PerSampleNormRule.cheaper(
                positions: g.outputPositions, inputFeatures: patchSize, outputFeatures: outChannels)
        let keep =
            rule == .materialize
            && PerSampleNormRule.keepsGradients(inputFeatures: patchSize, outputFeatures: outChannels)
        if keep { ensureShape(&keptGradients, [batchSize, patchSize * outChannels + outChannels]) }
        keptGradients.withUnsafeMutableBufferPointer { kept in
            outerProducts.addSquaredNorms(
                a: columns, d: outputGradient, layout: .batchInterleaved, positions: g.outputPositions,
                inputFeatures: patchSize, outputFeatures: outChannels, bias: bias != nil, rule: rule, into: &norms,
                keepingGradientsIn: keep ? kept.baseAddress! : nil)
        }
        keptGradientsValid = keep
    }

    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        checkExampleWeights(exampleWeights, batchSize: batchSize, layer: description)
        guard let g = geometry, batchSize > 0 else { return }
        let k = patchSize, c = outChannels, n = batchSize * g.outputPositions
        if let exampleWeights, keptGradientsValid {
            // sum_i w_i G_i from the gradients the norm pass kept: one GEMV per parameter.
            let stride = c * k + c
            exampleWeights.withUnsafeBufferPointer { w in
                keptGradients.withUnsafeBufferPointer { kept in
                    weight.gradient.withUnsafeMutableBufferPointer { gw in
                        Float.blasGemv(
                            trans: true, m: batchSize, n: c * k, alpha: 1, a: kept.baseAddress!, lda: stride,
                            x: w.baseAddress!, incx: 1, beta: 1, y: gw.baseAddress!, incy: 1)
                    }
                    if let b = bias {
                        b.gradient.withUnsafeMutableBufferPointer { gb in
                            Float.blasGemv(
                                trans: true, m: batchSize, n: c, alpha: 1, a: kept.baseAddress! + c * k, lda: stride,
                                x: w.baseAddress!, incx: 1, beta: 1, y: gb.baseAddress!, incy: 1)
                        }
                    }
                }
            }
            return
        }
        // (dY diag(w)) cols^T: each example's block of dY scaled by its weight, then one GEMM
        // over all B L positions (OpenBLAS splits the output, never the sum, across threads).
        var d = outputGradient
        if let exampleWeights {
            ensureShape(&weightedOutputGradient, [c, n])
            scaleMiddleAxis(
                outputGradient, p: c, q: batchSize, l: g.outputPositions, by: exampleWeights,
                into: &weightedOutputGradient)
            d = weightedOutputGradient
        }
        if bias != nil && positionOnes.shape != [n] { positionOnes = Tensor(repeating: 1, shape: [n]) }
        d.withUnsafeBufferPointer { pd in
            columns.withUnsafeBufferPointer { cols in
                weight.gradient.withUnsafeMutableBufferPointer { gw in
                    Float.blasGemm(
                        transA: false, transB: true, m: c, n: k, k: n, alpha: 1, a: pd.baseAddress!, lda: n,
                        b: cols.baseAddress!, ldb: n, beta: 1, c: gw.baseAddress!, ldc: k)
                }
            }
            if let b = bias {
                positionOnes.withUnsafeBufferPointer { ones in
                    b.gradient.withUnsafeMutableBufferPointer { gb in
                        Float.blasGemv(
                            trans: false, m: c, n: n, alpha: 1, a: pd.baseAddress!, lda: n,
                            x: ones.baseAddress!, incx: 1, beta: 1, y: gb.baseAddress!, incy: 1)
                    }
                }
            }
        }
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        let k = patchSize, c = outChannels
        var gw = Tensor<Float>(zeros: Shape([batchSize] + weight.value.shape.array))
        var gb = Tensor<Float>(zeros: [batchSize, c])
        let l = geometry?.outputPositions ?? 0
        for i in 0..<batchSize {
            let di = exampleBlock(outputGradient, example: i, positions: l)
            let ci = exampleBlock(columns, example: i, positions: l)
            var gi = Tensor<Float>(zeros: [c, k])
            gemm(di, transposed: false, ci, transposed: true, into: &gi)
            copyRow(gi, into: &gw, row: i)
            copyRow(di.sum(alongAxis: 1), into: &gb, row: i)
        }
        return bias == nil ? [gw] : [gw, gb]
    }
}

/// Example `i`'s `[R, L]` block of a batch-interleaved `[R, B L]` matrix, copied (for tests).
func exampleBlock(_ t: Tensor<Float>, example i: Int, positions l: Int) -> Tensor<Float> {
    let rows = t.shape[0], n = t.shape[1]
    return t.withUnsafeBufferPointer { p in
        Tensor(unsafeUninitializedShape: [rows, l]) { out in
            for r in 0..<rows {
                for j in 0..<l { out[r * l + j] = p[r * n + i * l + j] }
            }
        }
    }
}
