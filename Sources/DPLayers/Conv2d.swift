import DPTensor

/// A 2-D convolution on NCHW input `[B, Cin, H, W]`, computed through im2col: with
/// `cols_i = im2col(x_i)` of shape `[K, L]` (`K = Cin k^2` patch size, `L = Hout Wout` output
/// positions) and `W` viewed as `[Cout, K]`, example `i`'s output is `Y_i = W cols_i + b`
/// (`[Cout, L]`, already NCHW).
///
/// Example `i`'s weight gradient is `G_i = dY_i cols_i^T`. Its squared norm comes from the
/// rule that ``PerSampleNormRule/cheaper(positions:inputFeatures:outputFeatures:)`` picks
/// for `(L, K, Cout)` (mixed ghost clipping, Bu et al. 2022): the ghost norm
/// `sum_{l,l'} (cols_i^T cols_i)[l,l'] (dY_i^T dY_i)[l,l']`, about `2 L^2 (K + Cout)` flops,
/// when the output map is small; otherwise the materialised `G_i`, about `2 L K Cout`. The
/// bias gradient is `dY_i 1`. ``accumulateGradients(exampleWeights:)`` runs one GEMM per
/// example, `W.grad += w_i dY_i cols_i^T`, with `w_i` as the GEMM's alpha (no rescaled copy).
///
/// The im2col columns are kept from forward for the norms and the accumulation; they, the
/// backward column buffer and the layer's output and input gradient are allocated once per
/// batch shape (the output and input gradient again only if the caller still holds the last
/// ones). im2col, col2im and the per-example GEMMs and norms are split across
/// ``ParallelBatch`` threads by example; the weight gradient sums fixed groups of
/// ``accumulationGroupSize`` examples, so the bits do not depend on the thread count.
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
    var columns = Tensor<Float>(zeros: [0, 0, 0]) // [B, K, L], from forward
    var outputGradient = Tensor<Float>(zeros: [0, 0, 0]) // [B, Cout, L], from backward
    /// Held by ``outputGradient`` between steps so that the layer before can reuse its buffer.
    let noOutputGradient = Tensor<Float>(zeros: [0, 0, 0])
    var columnGradient = Tensor<Float>(zeros: [0, 0, 0]) // [B, K, L], backward workspace
    var output = Tensor<Float>(zeros: [0, 0, 0, 0]) // reused when the caller let go of it
    var inputGradient = Tensor<Float>(zeros: [0, 0, 0, 0]) // reused likewise
    /// `[groups, Cout K + Cout]`: per-group partial weight and bias gradients.
    var partialGradients = Tensor<Float>(zeros: [0, 0])
    var positionOnes = Tensor<Float>(zeros: [0])
    var batchOnes = Tensor<Float>(zeros: [0])
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
        outputGradient = noOutputGradient // the last step's, held by the layer after otherwise
        let c = outChannels
        ensureShape(&columns, g.columnShape(batch: batchSize))
        parallelIm2col(x, geometry: g, into: &columns)
        if batchSize == 0 { return Tensor(zeros: [0, c, g.outputHeight, g.outputWidth]) }
        // Every output is written by convolutionForward (bias fill, or a GEMM with beta 0): no zero fill.
        output.reuseForOverwrite(shape: [batchSize, c, g.outputHeight, g.outputWidth])
        convolutionForward(weight: weight.value, columns: columns, bias: bias?.value, into: &output)
        return output
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        guard let g = geometry else { preconditionFailure("\(description).backward before forward") }
        let l = g.outputPositions, c = outChannels
        precondition(
            dy.scalarCount == batchSize * c * l,
            "\(description).backward: gradient \(dy.shape) should be [\(batchSize), \(c), \(g.outputHeight), \(g.outputWidth)]"
        )
        outputGradient = dy.reshaped([batchSize, c, l])
        let inputShape: Shape = [batchSize, inChannels, g.height, g.width]
        if !needsInputGradient || batchSize == 0 {
            if zeroInputGradient.shape != inputShape { zeroInputGradient = Tensor(zeros: inputShape) }
            return zeroInputGradient
        }
        ensureShape(&columnGradient, g.columnShape(batch: batchSize))
        convolutionColumnGradient(weight: weight.value, outputGradient: outputGradient, into: &columnGradient)
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
        outerProducts.addSquaredNorms(
            a: columns, d: outputGradient, layout: .positionsLast, positions: g.outputPositions,
            inputFeatures: patchSize, outputFeatures: outChannels, bias: bias != nil, rule: rule, into: &norms)
    }

    /// Examples per partial sum in ``accumulateGradients(exampleWeights:)``: fixed, so that the
    /// sum's rounding does not depend on the thread count.
    static let accumulationGroupSize = 32

    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        checkExampleWeights(exampleWeights, batchSize: batchSize, layer: description)
        guard let g = geometry, batchSize > 0 else { return }
        let k = patchSize, l = g.outputPositions, c = outChannels, batch = batchSize
        if exampleWeights == nil && batchOnes.shape != [batch] { batchOnes = Tensor(repeating: 1, shape: [batch]) }
        let weights = exampleWeights ?? batchOnes
        if bias != nil && positionOnes.shape != [l] { positionOnes = Tensor(repeating: 1, shape: [l]) }
        // Group j adds w_i dY_i cols_i^T (and w_i dY_i 1) over its examples into its own partial,
        // one GEMM per example with w_i as alpha; the partials are then added in group order.
        let groupSize = Self.accumulationGroupSize
        let groups = ParallelBatch.groupCount(batch, groupSize: groupSize)
        let partialSize = c * k + c
        ensureShape(&partialGradients, [groups, partialSize])
        let hasBias = bias != nil
        weights.withUnsafeBufferPointer { w in
            columns.withUnsafeBufferPointer { cols in
                outputGradient.withUnsafeBufferPointer { d in
                    positionOnes.withUnsafeBufferPointer { ones in
                        partialGradients.withUnsafeMutableBufferPointer { pp in
                            let p0 = pp.baseAddress!, w0 = w.baseAddress!, d0 = d.baseAddress!
                            let c0 = cols.baseAddress!, one = ones.baseAddress
                            ParallelBatch.forEachSlice(of: groups, gemmSize: c * k * l) { _, groupRange in
                                for group in groupRange {
                                    let partial = p0 + group * partialSize
                                    partial.update(repeating: 0, count: partialSize)
                                    for i in (group * groupSize)..<min(batch, (group + 1) * groupSize) where w0[i] != 0 {
                                        Float.blasGemm(
                                            transA: false, transB: true, m: c, n: k, k: l, alpha: w0[i],
                                            a: d0 + i * c * l, lda: l, b: c0 + i * k * l, ldb: l,
                                            beta: 1, c: partial, ldc: k)
                                        if hasBias {
                                            Float.blasGemv(
                                                trans: false, m: c, n: l, alpha: w0[i], a: d0 + i * c * l, lda: l,
                                                x: one!, incx: 1, beta: 1, y: partial + c * k, incy: 1)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        partialGradients.withUnsafeBufferPointer { pp in
            weight.gradient.withUnsafeMutableBufferPointer { gw in
                for group in 0..<groups {
                    Float.blasAxpy(
                        n: c * k, alpha: 1, x: pp.baseAddress! + group * partialSize, incx: 1,
                        y: gw.baseAddress!, incy: 1)
                }
            }
            if let b = bias {
                b.gradient.withUnsafeMutableBufferPointer { gb in
                    for group in 0..<groups {
                        Float.blasAxpy(
                            n: c, alpha: 1, x: pp.baseAddress! + group * partialSize + c * k, incx: 1,
                            y: gb.baseAddress!, incy: 1)
                    }
                }
            }
        }
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        let k = patchSize, c = outChannels
        var gw = Tensor<Float>(zeros: Shape([batchSize] + weight.value.shape.array))
        var gb = Tensor<Float>(zeros: [batchSize, c])
        for i in 0..<batchSize {
            let di = outputGradient[row: i], ci = columns[row: i]
            var gi = Tensor<Float>(zeros: [c, k])
            gemm(di, transposed: false, ci, transposed: true, into: &gi)
            copyRow(gi, into: &gw, row: i)
            copyRow(di.sum(alongAxis: 1), into: &gb, row: i)
        }
        return bias == nil ? [gw] : [gw, gb]
    }
}
