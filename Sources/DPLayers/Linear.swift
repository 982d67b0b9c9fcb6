import DPTensor

/// A dense layer `y = x W^T + b` on the last axis, with weight `W` of shape `[outputs, inputs]`.
///
/// Input `[B, inputs]` (one vector per example) or `[B, T..., inputs]` (a sequence of `L = T...`
/// vectors per example; the weights are shared across positions).
///
/// Per-sample gradient rules:
/// - one vector per example: `||g_i||^2 = ||x_i||^2 ||dy_i||^2 + ||dy_i||^2` (the second term
///   for the bias); no per-example gradient is built (Goodfellow 2015);
/// - sequences: the ghost norm or the materialised per-example gradient, whichever
///   ``PerSampleNormRule/cheaper(positions:inputFeatures:outputFeatures:)`` picks for
///   `L`, `K = inputs`, `C = outputs`.
///
/// ``accumulateGradients(exampleWeights:)`` is one GEMM `W.grad += (w . dY)^T X` over the
/// whole batch, and one GEMV for the bias.
///
/// Initialisation as PyTorch's default: `W` and `b` uniform in `±1/sqrt(inputs)` (Kaiming
/// uniform with `a = sqrt(5)`).
public final class Linear: Layer {
    public let inputCount: Int
    public let outputCount: Int
    public let weight: Parameter
    public let bias: Parameter?

    /// Forces a norm rule for sequence input (tests); `nil` lets the cost model choose.
    var normRuleOverride: PerSampleNormRule?

    /// `false` skips the input gradient (``Layer/needsInputGradient``): ``backward(_:)`` returns zeros.
    public var needsInputGradient = true
    var zeroInputGradient = Tensor<Float>(zeros: [0, 0])

    // Cached by forward/backward.
    var input = Tensor<Float>(zeros: [0, 0]) // [rows, inputs], rows = B * L
    var outputGradient = Tensor<Float>(zeros: [0, 0]) // [rows, outputs]
    var batchSize = 0
    var positions = 1

    // Outputs, written in place when the caller let go of last step's (no allocation).
    var output = Tensor<Float>(zeros: [0, 0]) // [rows, outputs]
    var inputGradient = Tensor<Float>(zeros: [0, 0]) // [rows, inputs]

    // Workspaces, re-allocated only when the batch shape changes.
    var inputNorms = Tensor<Float>(zeros: [0])
    var gradientNorms = Tensor<Float>(zeros: [0])
    var scaledGradient = Tensor<Float>(zeros: [0, 0])
    var rowOnes = Tensor<Float>(zeros: [0])
    var outerProducts = OuterProductNorms()

    public init(inputs: Int, outputs: Int, bias: Bool = true, rng: inout PhiloxRandom) {
        precondition(inputs > 0 && outputs > 0, "Linear: inputs (\(inputs)) and outputs (\(outputs)) must be positive")
        inputCount = inputs
        outputCount = outputs
        let bound = 1 / Float(inputs).squareRoot()
        weight = Parameter(name: "weight", value: Tensor(uniform: [outputs, inputs], in: -bound...bound, using: &rng))
        self.bias =
            bias
            ? Parameter(name: "bias", value: Tensor(uniform: [outputs], in: -bound...bound, using: &rng)) : nil
    }

    public var description: String { "Linear(\(inputCount)->\(outputCount)\(bias == nil ? ", no bias" : ""))" }
    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    public func outputShape(forExampleShape inputShape: Shape) -> Shape {
        precondition(
            inputShape.rank >= 1 && inputShape[inputShape.rank - 1] == inputCount,
            "\(description): example shape \(inputShape) does not end in \(inputCount)")
        var s = inputShape
        s[s.rank - 1] = outputCount
        return s
    }

    /// The rule used for the current batch shape.
    var normRule: PerSampleNormRule {
        normRuleOverride
            ?? (positions == 1
                ? .ghost
                : PerSampleNormRule.cheaper(
                    positions: positions, inputFeatures: inputCount, outputFeatures: outputCount))
    }

    // MARK: - Forward and backward

    public func forward(_ x: Tensor<Float>, context: inout ForwardContext) -> Tensor<Float> {
        precondition(
            x.rank >= 2 && x.shape[x.rank - 1] == inputCount,
            "\(description): input \(x.shape) should be [B, ..., \(inputCount)]")
        batchSize = x.shape[0]
        let rows = x.scalarCount / inputCount
        positions = batchSize == 0 ? x.shape.trailingCount / inputCount : rows / batchSize
        input = x.reshaped([rows, inputCount])
        // gemm with beta 0 writes every output (inputCount > 0): no zero fill.
        output.reuseForOverwrite(shape: [rows, outputCount])
        gemm(input, transposed: false, weight.value, transposed: true, into: &output)
        if let b = bias { output.addRowVector(b.value) }
        var outShape = x.shape
        outShape[outShape.rank - 1] = outputCount
        return output.reshaped(outShape)
    }

    public func backward(_ dy: Tensor<Float>) -> Tensor<Float> {
        let rows = input.shape[0]
        precondition(
            dy.scalarCount == rows * outputCount,
            "\(description).backward: output gradient \(dy.shape) does not match the forward output ([\(rows), \(outputCount)])"
        )
        outputGradient = dy.reshaped([rows, outputCount])
        var inShape = dy.shape
        inShape[inShape.rank - 1] = inputCount
        if !needsInputGradient {
            if zeroInputGradient.shape != inShape { zeroInputGradient = Tensor(zeros: inShape) }
            return zeroInputGradient
        }
        // gemm with beta 0 writes every scalar (outputCount > 0): no zero fill.
        inputGradient.reuseForOverwrite(shape: [rows, inputCount])
        gemm(outputGradient, weight.value, into: &inputGradient)
        return inputGradient.reshaped(inShape)
    }

    // MARK: - Per-sample gradients

    public func addPerSampleGradientSquaredNorms(into norms: inout Tensor<Float>) {
        checkNorms(norms, batchSize: batchSize, layer: description)
        if batchSize == 0 { return }
        let rule = normRule
        if positions == 1 && rule == .ghost {
            ensureShape(&inputNorms, [batchSize])
            ensureShape(&gradientNorms, [batchSize])
            input.rowSquaredNorms(into: &inputNorms)
            outputGradient.rowSquaredNorms(into: &gradientNorms)
            let hasBias = bias != nil
            inputNorms.withUnsafeBufferPointer { xn in
                gradientNorms.withUnsafeBufferPointer { gn in
                    norms.withUnsafeMutableBufferPointer { out in
                        for i in 0..<batchSize { out[i] += (hasBias ? xn[i] + 1 : xn[i]) * gn[i] }
                    }
                }
            }
        } else {
            outerProducts.addSquaredNorms(
                a: input, d: outputGradient, layout: .positionsFirst, positions: positions,
                inputFeatures: inputCount, outputFeatures: outputCount, bias: bias != nil, rule: rule, into: &norms)
        }
    }

    public func accumulateGradients(exampleWeights: Tensor<Float>?) {
        checkExampleWeights(exampleWeights, batchSize: batchSize, layer: description)
        if batchSize == 0 { return }
        let rows = input.shape[0]
        var dy = outputGradient
        if let w = exampleWeights {
            ensureShape(&scaledGradient, [batchSize, positions * outputCount])
            scaledGradient.assign(outputGradient)
            scaledGradient.scaleRows(by: w)
            dy = scaledGradient.reshaped([rows, outputCount])
        }
        gemm(dy, transposed: true, input, beta: 1, into: &weight.gradient)
        if let b = bias {
            if let w = exampleWeights, positions == 1 {
                gemv(outputGradient, transposed: true, w, beta: 1, into: &b.gradient)
            } else {
                if rowOnes.shape != [rows] { rowOnes = Tensor(repeating: 1, shape: [rows]) }
                gemv(dy, transposed: true, rowOnes, beta: 1, into: &b.gradient)
            }
        }
    }

    @_spi(Testing) public func referencePerSampleGradients() -> [Tensor<Float>] {
        var gw = Tensor<Float>(zeros: [batchSize, outputCount, inputCount])
        var gb = Tensor<Float>(zeros: [batchSize, outputCount])
        for i in 0..<batchSize {
            let rowRange = (i * positions)..<((i + 1) * positions)
            let xi = input.rows(rowRange), di = outputGradient.rows(rowRange)
            var g = Tensor<Float>(zeros: [outputCount, inputCount])
            gemm(di, transposed: true, xi, into: &g)
            copyRow(g, into: &gw, row: i)
            copyRow(di.sum(alongAxis: 0), into: &gb, row: i)
        }
        return bias == nil ? [gw] : [gw, gb]
    }
}

/// Copies `source` into row `row` of `destination` (`[B] + source.shape`). Slow path, for references.
func copyRow(_ source: Tensor<Float>, into destination: inout Tensor<Float>, row: Int) {
    let n = destination.shape.trailingCount
    precondition(source.scalarCount == n, "copyRow: \(source.shape) does not fit a row of \(destination.shape)")
    source.withUnsafeBufferPointer { s in
        destination.withUnsafeMutableBufferPointer { d in
            for j in 0..<n { d[row * n + j] = s[j] }
        }
    }
}
