import DPLayers
import DPTensor
import Foundation

/// A Double-precision copy of a ``Sequential`` that gives, besides the loss and the gradient
/// with respect to the parameters, the **mixed second derivative** that gradient matching
/// needs: for a direction `v` in parameter space,
///
///     R_v(x) = d/dx < grad_theta l(x, theta), v >  =  d/de grad_x l(x, theta + e v) |_{e = 0}
///
/// (the two are equal by the symmetry of mixed partial derivatives). It is computed exactly,
/// by Pearlmutter's R-operator ("Fast exact multiplication by the Hessian", Neural
/// Computation 1994): one forward pass that carries each activation's tangent `a'` (how it
/// moves when the parameters move along `v`), then one backward pass that carries each
/// adjoint's tangent `delta'`. Cost: about two ordinary forward and backward passes, whatever
/// the input size. `l` is the **summed** softmax cross-entropy of the batch, as DPKit's loss.
///
/// Per step, with `a` the input, `y` the output, `delta = dl/dy` and `V`, `c` the direction's
/// weight and bias parts:
///
/// | step | forward tangent `y'` | backward tangent `delta_in'` |
/// |---|---|---|
/// | dense `y = a W^T + b` | `a' W^T + a V^T + c` | `delta' W + delta V` |
/// | convolution (im2col) | `W cols(a') + V cols(a) + c` | `col2im(W^T delta' + V^T delta)` |
/// | tanh | `(1 - y^2) a'` | `(1 - y^2) delta' - 2 y y' delta` |
/// | tempered sigmoid `f` | `f'(a) a'` | `f'(a) delta' + f''(a) a' delta` |
/// | ReLU | `1[a > 0] a'` | `1[a > 0] delta'` |
/// | max pooling | `a'` at each window's arg-max | `delta'` scattered to the arg-max |
/// | flatten | reshape | reshape |
/// | softmax cross-entropy | | `delta_z' = p . z' - p (p^T z')` per example |
///
/// The tangent is zero until the first layer with parameters (the data do not move). ReLU and
/// max pooling are piecewise linear: the derivative is that of the piece the input is on (as
/// in every automatic-differentiation system), exact away from ties.
///
/// Supported layers: ``Linear`` on one vector per example, ``Conv2d``, ``Tanh``,
/// ``TemperedSigmoid`` (so sigmoid), ``ReLU``, ``MaxPool2d`` and ``Flatten``: what DPKit's
/// `mlp`, `logistic-regression`, `cnn-tanh` and `cnn-tanh-tramer` are made of. Any other layer
/// is refused with an ``AuditError`` that names it.
///
/// Parameter-space tensors (gradients, directions) are arrays aligned with the model's
/// ``Sequential/parameters`` and of the same shapes.
public final class SecondOrderReplica {
    enum Step {
        case linear(weight: Tensor<Double>, bias: Tensor<Double>?, parameter: Int)
        /// `weight` viewed as `[Cout, Cin k^2]`.
        case convolution(weight: Tensor<Double>, bias: Tensor<Double>?, geometry: ConvGeometry, parameter: Int)
        case tanh
        case temperedSigmoid(scale: Double, temperature: Double, offset: Double)
        case relu
        case maxPool(kernel: Int, stride: Int)
        case flatten
    }

    let steps: [Step]
    /// One example's shape at the input of each step, and at the output of the last (`steps.count + 1`).
    let exampleShapes: [Shape]
    /// The shapes of the model's parameters, in order.
    public let parameterShapes: [Shape]
    public var exampleShape: Shape { exampleShapes[0] }
    public var classCount: Int { exampleShapes[exampleShapes.count - 1][0] }

    /// Copies `model`'s parameters (converted to Double) for examples of shape `exampleShape`.
    /// - Throws: ``AuditError`` naming the first layer this replica cannot differentiate twice,
    ///   or when the model does not end in one logit vector per example.
    public init(model: Sequential, exampleShape: Shape) throws {
        var steps: [Step] = []
        var shapes: [Shape] = [exampleShape]
        var parameterIndex = 0
        var shape = exampleShape
        for layer in model.layers {
            switch layer {
            case let l as Linear:
                guard shape.rank == 1 else {
                    throw AuditError(
                        "\(l.description) gets examples of shape \(shape): the second-order replica supports dense layers on one vector per example only"
                    )
                }
                steps.append(
                    .linear(
                        weight: Self.double(l.weight.value), bias: l.bias.map { Self.double($0.value) },
                        parameter: parameterIndex))
            case let c as Conv2d:
                let g = ConvGeometry(
                    channels: c.inChannels, height: shape[1], width: shape[2], kernel: c.kernel, stride: c.stride,
                    padding: c.padding)
                steps.append(
                    .convolution(
                        weight: Self.double(c.weight.value).reshaped([c.outChannels, c.patchSize]),
                        bias: c.bias.map { Self.double($0.value) }, geometry: g, parameter: parameterIndex))
            case is Tanh:
                steps.append(.tanh)
            case let s as TemperedSigmoid:
                steps.append(
                    .temperedSigmoid(
                        scale: Double(s.scale), temperature: Double(s.temperature), offset: Double(s.offset)))
            case is ReLU:
                steps.append(.relu)
            case let p as MaxPool2d:
                steps.append(.maxPool(kernel: p.kernel, stride: p.stride))
            case is Flatten:
                steps.append(.flatten)
            default:
                throw AuditError(
                    "gradient matching cannot differentiate \(layer.description) twice: the second-order replica supports Linear, Conv2d, Tanh, TemperedSigmoid, ReLU, MaxPool2d and Flatten (the layers of mlp, logistic-regression and cnn-tanh)"
                )
            }
            parameterIndex += layer.parameters.count
            shape = layer.outputShape(forExampleShape: shape)
            shapes.append(shape)
        }
        guard shape.rank == 1 else {
            throw AuditError(
                "the model gives outputs of shape \(shape) per example; gradient matching needs one logit vector")
        }
        self.steps = steps
        self.exampleShapes = shapes
        self.parameterShapes = model.parameters.map(\.value.shape)
    }

    static func double(_ t: Tensor<Float>) -> Tensor<Double> { Tensor(t.scalars.map(Double.init), shape: t.shape) }

    // MARK: - The primal pass

    /// What one forward and backward pass leaves for the tangent pass.
    public struct Pass {
        public let batchSize: Int
        /// The summed cross-entropy of the batch.
        public let loss: Double
        /// `grad_theta l`, aligned with the model's parameters.
        public let gradient: [Tensor<Double>]
        /// `grad_x l`, `[B] + exampleShape`.
        public let inputGradient: Tensor<Double>
        /// The logits, `[B, classes]`.
        public let logits: Tensor<Double>
        /// `activations[k]` is the input of step k; the last is the logits.
        let activations: [Tensor<Double>]
        /// `deltas[k] = dl/d activations[k]`.
        let deltas: [Tensor<Double>]
        /// The softmax probabilities `[B, classes]`.
        let probabilities: Tensor<Double>
        /// im2col columns of each convolution step's input, `[B, K, L]`, by step index.
        let columns: [Int: Tensor<Double>]
        /// Each max-pooling output's arg-max within its input plane, by step index.
        let argmax: [Int: [Int32]]
    }

    /// Forward and backward pass of the summed cross-entropy on `inputs` (`[B] + exampleShape`).
    public func evaluate(_ inputs: Tensor<Double>, labels: [Int]) -> Pass {
        precondition(
            inputs.shape == exampleShape.prepending(inputs.shape[0]),
            "SecondOrderReplica: inputs \(inputs.shape) should be [B] + \(exampleShape)")
        let batch = inputs.shape[0]
        precondition(labels.count == batch, "SecondOrderReplica: \(labels.count) labels for \(batch) examples")
        var activations = [inputs]
        var columns: [Int: Tensor<Double>] = [:]
        var argmax: [Int: [Int32]] = [:]
        var a = inputs
        for (k, step) in steps.enumerated() {
            let outShape = exampleShapes[k + 1].prepending(batch)
            switch step {
            case .linear(let w, let b, _):
                a = Self.dense(a, w, b)
            case .convolution(let w, let b, let g, _):
                var cols = Tensor<Double>(zeros: g.columnShape(batch: batch))
                im2col(a, geometry: g, into: &cols)
                a = Self.convolve(cols, w, b).reshaped(outShape)
                columns[k] = cols
            case .tanh:
                a = a.map { Foundation.tanh($0) }
            case .temperedSigmoid(let s, let t, let o):
                a = a.map { s * sigmoidScalar(t * $0) - o }
            case .relu:
                a = a.map { $0 > 0 ? $0 : 0 }
            case .maxPool(let kernel, let stride):
                let (y, indices) = Self.maxPool(a, kernel: kernel, stride: stride, outputShape: outShape)
                a = y
                argmax[k] = indices
            case .flatten:
                a = a.reshaped(outShape)
            }
            activations.append(a)
        }
        // Softmax cross-entropy, summed over the batch.
        let logits = a
        let classes = logits.shape[1]
        var probabilities = Tensor<Double>(zeros: logits.shape)
        softmax(logits, into: &probabilities)
        let logProbabilities = logSoftmax(logits)
        var loss = 0.0
        var delta = probabilities
        delta.withUnsafeMutableBufferPointer { d in
            logProbabilities.withUnsafeBufferPointer { lp in
                for i in 0..<batch {
                    loss -= lp[i * classes + labels[i]]
                    d[i * classes + labels[i]] -= 1
                }
            }
        }
        var deltas = [Tensor<Double>](repeating: delta, count: steps.count + 1)
        var gradient = parameterShapes.map { Tensor<Double>(zeros: $0) }
        for k in stride(from: steps.count - 1, through: 0, by: -1) {
            let input = activations[k], output = activations[k + 1]
            let inShape = exampleShapes[k].prepending(batch)
            switch steps[k] {
            case .linear(let w, let b, let p):
                gradient[p] = matmul(delta, transposed: true, input)
                if b != nil { gradient[p + 1] = delta.sum(alongAxis: 0) }
                delta = matmul(delta, w)
            case .convolution(let w, let b, let g, let p):
                let d = delta.reshaped([batch, w.shape[0], g.outputPositions])
                let cols = columns[k]!
                gradient[p] = Self.convolutionWeightGradient(d, cols).reshaped(parameterShapes[p])
                if b != nil { gradient[p + 1] = Self.convolutionBiasGradient(d) }
                delta = Self.convolutionInputGradient(w, d, geometry: g, inputShape: inShape)
            case .tanh:
                delta = Self.zip(delta, output) { d, y in d * (1 - y * y) }
            case .temperedSigmoid(let s, let t, _):
                delta = Self.zip(delta, input) { d, x in d * Self.temperedSigmoidDerivatives(x, s, t).first }
            case .relu:
                delta = Self.zip(delta, input) { d, x in x > 0 ? d : 0 }
            case .maxPool:
                delta = Self.scatter(delta, argmax[k]!, inputShape: inShape)
            case .flatten:
                delta = delta.reshaped(inShape)
            }
            deltas[k] = delta
        }
        return Pass(
            batchSize: batch, loss: loss, gradient: gradient, inputGradient: delta, logits: logits,
            activations: activations, deltas: deltas, probabilities: probabilities, columns: columns, argmax: argmax)
    }

    // MARK: - The R-operator

    /// `d/dx <grad_theta l(x), v>` at the inputs of `pass`, for a parameter-space direction `v`
    /// (aligned with the model's parameters): `[B] + exampleShape`. Exact (see the type).
    public func mixedDerivative(_ pass: Pass, direction v: [Tensor<Double>]) -> Tensor<Double> {
        precondition(
            v.map(\.shape) == parameterShapes,
            "SecondOrderReplica.mixedDerivative: direction shapes \(v.map(\.shape)) differ from the parameters' \(parameterShapes)"
        )
        let batch = pass.batchSize
        // Forward: tangents[k] is the tangent of activations[k]; nil while it is zero.
        var tangents = [Tensor<Double>?](repeating: nil, count: steps.count + 1)
        for (k, step) in steps.enumerated() {
            let t = tangents[k], input = pass.activations[k], output = pass.activations[k + 1]
            let outShape = exampleShapes[k + 1].prepending(batch)
            switch step {
            case .linear(let w, let b, let p):
                var y = Self.dense(input, v[p], b == nil ? nil : v[p + 1])
                if let t { y.add(matmul(t, transposed: false, w, transposed: true)) }
                tangents[k + 1] = y
            case .convolution(let w, let b, let g, let p):
                let vw = v[p].reshaped(w.shape)
                var y = Self.convolve(pass.columns[k]!, vw, b == nil ? nil : v[p + 1])
                if let t {
                    var cols = Tensor<Double>(zeros: g.columnShape(batch: batch))
                    im2col(t, geometry: g, into: &cols)
                    y.add(Self.convolve(cols, w, nil))
                }
                tangents[k + 1] = y.reshaped(outShape)
            case .tanh:
                tangents[k + 1] = t.map { Self.zip($0, output) { ta, y in ta * (1 - y * y) } }
            case .temperedSigmoid(let s, let temperature, _):
                tangents[k + 1] = t.map {
                    Self.zip($0, input) { ta, x in ta * Self.temperedSigmoidDerivatives(x, s, temperature).first }
                }
            case .relu:
                tangents[k + 1] = t.map { Self.zip($0, input) { ta, x in x > 0 ? ta : 0 } }
            case .maxPool:
                tangents[k + 1] = t.map { Self.gather($0, pass.argmax[k]!, outputShape: outShape) }
            case .flatten:
                tangents[k + 1] = t.map { $0.reshaped(outShape) }
            }
        }
        let inputShape = exampleShape.prepending(batch)
        guard let logitTangent = tangents[steps.count] else { return Tensor(zeros: inputShape) }
        // Softmax cross-entropy: delta_z = p - onehot, so delta_z' = p . z' - p (p^T z').
        let classes = logitTangent.shape[1]
        var deltaTangent = Tensor<Double>(zeros: logitTangent.shape)
        pass.probabilities.withUnsafeBufferPointer { p in
            logitTangent.withUnsafeBufferPointer { z in
                deltaTangent.withUnsafeMutableBufferPointer { d in
                    for i in 0..<batch {
                        let row = i * classes
                        var pz = 0.0
                        for j in 0..<classes { pz += p[row + j] * z[row + j] }
                        for j in 0..<classes { d[row + j] = p[row + j] * (z[row + j] - pz) }
                    }
                }
            }
        }
        // Backward: deltaTangent is the tangent of deltas[k + 1].
        for k in stride(from: steps.count - 1, through: 0, by: -1) {
            let input = pass.activations[k], output = pass.activations[k + 1]
            let delta = pass.deltas[k + 1]
            let inShape = exampleShapes[k].prepending(batch)
            switch steps[k] {
            case .linear(let w, _, let p):
                var d = matmul(deltaTangent, w)
                d.add(matmul(delta, v[p]))
                deltaTangent = d
            case .convolution(let w, _, let g, let p):
                let rows: Shape = [batch, w.shape[0], g.outputPositions]
                deltaTangent = Self.convolutionInputGradient(
                    w, deltaTangent.reshaped(rows), plus: (v[p].reshaped(w.shape), delta.reshaped(rows)), geometry: g,
                    inputShape: inShape)
            case .tanh:
                var d = Self.zip(deltaTangent, output) { dt, y in dt * (1 - y * y) }
                if let yt = tangents[k + 1] {
                    d.add(Self.zip(Self.zip(delta, output, *), yt) { dy, yt in -2 * dy * yt })
                }
                deltaTangent = d
            case .temperedSigmoid(let s, let temperature, _):
                var d = Self.zip(deltaTangent, input) { dt, x in
                    dt * Self.temperedSigmoidDerivatives(x, s, temperature).first
                }
                if let xt = tangents[k] {
                    let curvature = Self.zip(delta, input) { dd, x in
                        dd * Self.temperedSigmoidDerivatives(x, s, temperature).second
                    }
                    d.add(Self.zip(curvature, xt, *))
                }
                deltaTangent = d
            case .relu:
                deltaTangent = Self.zip(deltaTangent, input) { dt, x in x > 0 ? dt : 0 }
            case .maxPool:
                deltaTangent = Self.scatter(deltaTangent, pass.argmax[k]!, inputShape: inShape)
            case .flatten:
                deltaTangent = deltaTangent.reshaped(inShape)
            }
        }
        return deltaTangent
    }

    // MARK: - Kernels

    /// `a W^T + b` on `[B, in]`.
    static func dense(_ a: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>?) -> Tensor<Double> {
        var y = matmul(a, transposed: false, w, transposed: true)
        if let b { y.addRowVector(b) }
        return y
    }

    /// `W cols_i + b` for each example: `[B, C, L]` from columns `[B, K, L]` and `W` `[C, K]`.
    static func convolve(_ cols: Tensor<Double>, _ w: Tensor<Double>, _ b: Tensor<Double>?) -> Tensor<Double> {
        var y = Tensor<Double>(zeros: [cols.shape[0], w.shape[0], cols.shape[2]])
        convolutionForward(weight: w, columns: cols, bias: b, into: &y)
        return y
    }

    /// `sum_i D_i cols_i^T`: `[C, K]` from `D` `[B, C, L]` and columns `[B, K, L]`.
    static func convolutionWeightGradient(_ d: Tensor<Double>, _ cols: Tensor<Double>) -> Tensor<Double> {
        let batch = d.shape[0], c = d.shape[1], l = d.shape[2], k = cols.shape[1]
        var g = Tensor<Double>(zeros: [c, k])
        d.withUnsafeBufferPointer { pd in
            cols.withUnsafeBufferPointer { pc in
                g.withUnsafeMutableBufferPointer { pg in
                    for i in 0..<batch {
                        Double.blasGemm(
                            transA: false, transB: true, m: c, n: k, k: l, alpha: 1, a: pd.baseAddress! + i * c * l,
                            lda: l, b: pc.baseAddress! + i * k * l, ldb: l, beta: 1, c: pg.baseAddress!, ldc: k)
                    }
                }
            }
        }
        return g
    }

    /// `sum_{i, l} D[i, c, l]`: `[C]`.
    static func convolutionBiasGradient(_ d: Tensor<Double>) -> Tensor<Double> {
        d.sum(alongAxis: 2).sum(alongAxis: 0)
    }

    /// `col2im(W^T D_i (+ V^T E_i))`: the input gradient of a convolution, `inputShape`.
    static func convolutionInputGradient(
        _ w: Tensor<Double>, _ d: Tensor<Double>, plus extra: (Tensor<Double>, Tensor<Double>)? = nil,
        geometry g: ConvGeometry, inputShape: Shape
    ) -> Tensor<Double> {
        var cols = Tensor<Double>(zeros: [d.shape[0], w.shape[1], d.shape[2]])
        convolutionColumnGradient(weight: w, outputGradient: d, into: &cols)
        if let extra { convolutionColumnGradient(weight: extra.0, outputGradient: extra.1, beta: 1, into: &cols) }
        var dx = Tensor<Double>(zeros: inputShape)
        col2im(cols, geometry: g, into: &dx)
        return dx
    }

    /// Max pooling without padding, by ``maxPool2d(_:kernel:stride:into:argmax:)`` as in
    /// ``MaxPool2d`` (the first largest element of each window wins): the output and each
    /// output's arg-max within its input plane.
    static func maxPool(
        _ x: Tensor<Double>, kernel k: Int, stride s: Int, outputShape: Shape
    ) -> (Tensor<Double>, [Int32]) {
        var y = Tensor<Double>(zeros: outputShape)
        var indices = [Int32](repeating: 0, count: outputShape.scalarCount)
        maxPool2d(x, kernel: k, stride: s, into: &y, argmax: &indices)
        return (y, indices)
    }

    /// The values of `x` (`[B, C, H, W]`) at each pooling output's arg-max.
    static func gather(_ x: Tensor<Double>, _ argmax: [Int32], outputShape: Shape) -> Tensor<Double> {
        let planes = outputShape[0] * outputShape[1]
        let planeIn = x.shape[2] * x.shape[3], planeOut = outputShape[2] * outputShape[3]
        var y = Tensor<Double>(zeros: outputShape)
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                for plane in 0..<planes {
                    for j in 0..<planeOut {
                        py[plane * planeOut + j] = px[plane * planeIn + Int(argmax[plane * planeOut + j])]
                    }
                }
            }
        }
        return y
    }

    /// The adjoint of ``gather(_:_:outputShape:)``: each output's value added at its arg-max.
    static func scatter(_ d: Tensor<Double>, _ argmax: [Int32], inputShape: Shape) -> Tensor<Double> {
        var dx = Tensor<Double>(zeros: inputShape)
        maxPool2dBackward(d, argmax: argmax, into: &dx)
        return dx
    }

    /// `f'(x)` and `f''(x)` of `f(x) = s sigmoid(T x) - o`: `s T q (1 - q)` and
    /// `s T^2 q (1 - q) (1 - 2 q)`, `q = sigmoid(T x)`.
    @inline(__always)
    static func temperedSigmoidDerivatives(_ x: Double, _ s: Double, _ t: Double) -> (first: Double, second: Double) {
        let q = sigmoidScalar(t * x)
        let first = s * t * q * (1 - q)
        return (first, first * t * (1 - 2 * q))
    }

    /// Element-wise `f(a, b)` into a new tensor of `a`'s shape.
    @inline(__always)
    static func zip(
        _ a: Tensor<Double>, _ b: Tensor<Double>, _ f: (Double, Double) -> Double
    ) -> Tensor<Double> {
        precondition(a.scalarCount == b.scalarCount, "zip: \(a.shape) vs \(b.shape)")
        return a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                Tensor(unsafeUninitializedShape: a.shape) { out in
                    for i in 0..<out.count { out[i] = f(pa[i], pb[i]) }
                }
            }
        }
    }
}

// MARK: - Parameter-space vectors

/// Arithmetic on parameter-space vectors: arrays of tensors aligned with a model's parameters.
enum ParameterVector {
    static func dot(_ a: [Tensor<Double>], _ b: [Tensor<Double>]) -> Double {
        precondition(a.count == b.count, "ParameterVector.dot: \(a.count) vs \(b.count) tensors")
        return zip(a, b).reduce(0) { $0 + $1.0.dot($1.1) }
    }

    static func norm(_ a: [Tensor<Double>]) -> Double { dot(a, a).squareRoot() }

    /// `alpha a + beta b`.
    static func combination(
        _ alpha: Double, _ a: [Tensor<Double>], _ beta: Double, _ b: [Tensor<Double>]
    )
        -> [Tensor<Double>]
    {
        zip(a, b).map { x, y in
            var out = x
            out.scale(by: alpha)
            out.addScaled(y, by: beta)
            return out
        }
    }
}
