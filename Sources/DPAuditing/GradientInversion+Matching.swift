import DPLayers
import DPTensor
import Foundation

/// Gradient matching: dummy inputs optimised until their gradient points where the observed
/// one does ("Deep Leakage from Gradients", Zhu, Liu and Han 2019, NeurIPS), with the loss of
/// "Inverting Gradients", Geiping, Bauermeister, Droge and Moeller 2020 (NeurIPS): one minus
/// the cosine similarity of the gradients, plus a total-variation prior,
///
///     L(x') = 1 - <g(x'), g*> / (||g(x')|| ||g*||)  +  lambda TV(x'),
///
/// over all parameters, where `g*` is the observed gradient and `g(x')` the dummy batch's
/// gradient **clipped as DP-SGD clips it**, `sum_i min(1, C / ||g_i||) g_i` with the
/// per-example gradients `g_i` of the dummy examples and their labels (the attacker knows C:
/// DP-SGD's hyperparameters are public). Without this, per-example clipping would reweight the
/// examples of the observed sum and an attacker who ignored it would match the wrong blend;
/// for one example the factor is a scale, which the cosine does not see. `TV` is the mean over
/// pixels of `phi(x[h, w+1] - x[h, w]) + phi(x[h+1, w] - x[h, w])` with the smooth absolute
/// value `phi(d) = sqrt(d^2 + eps^2) - eps`, `eps = 1e-3` (Charbonnier), for image examples
/// `[C, H, W]`; 0 for vectors.
///
/// **The gradient of L with respect to x'.** DPKit's layers have no double backpropagation, and
/// `dL/dx'` needs the derivative of a gradient. With `v = g* / (||g|| ||g*||) - cos g / ||g||^2`,
///
///     d cos / dx' = d/dx' <g(x'), v>   (v held fixed),
///
/// a mixed second derivative, which ``SecondOrderReplica`` computes **exactly** by the
/// R-operator (one forward-and-backward pass with tangents, in Double precision). Chosen over
/// finite differences over the input dimensions (784 pairs of passes per step for a 28x28
/// image, and float32 rounding) and over derivative-free optimisers (which do not reach the
/// exact reconstructions of a gradient method in a few hundred steps); it is checked against
/// central finite differences in the tests. With clipping, example i's weight
/// `w_i = C / ||g_i||` (when `||g_i|| > C`) moves with `x'_i` too, and
/// `d/dx'_i <w_i g_i, v> = d/dx'_i <g_i, w_i v - (C <g_i, v> / ||g_i||^3) g_i>` (directions held
/// fixed): one R-operator pass per example. It covers the layers of `mlp`,
/// `logistic-regression` and the tanh CNNs.
///
/// **Optimiser** (Geiping et al.'s): Adam on `x'` with learning rate `learningRate`, divided by
/// 10 at 3/8, 5/8 and 7/8 of the iterations, each step projected onto the pixel range (the
/// attacker knows images lie in `[0, 1]`). Starts are uniform in the range; with several
/// `restarts` the one with the lowest matching loss is kept. The reconstruction returned is the
/// iterate with the lowest matching loss (the attacker's own criterion: no original is
/// consulted).
///
/// **Labels.** For one example they are inferred from the observed gradient (iDLG, Zhao, Mopuri
/// and Bilen 2020): the last layer's bias gradient is `p - onehot(y)`, negative only at the
/// label, so the label is the index of its smallest entry (``inferLabel(observed:model:)``).
/// Noise can make this guess wrong, and the reconstruction then uses the wrong label. For
/// batches the labels are **assumed known** (the attacker has the multiset of labels; the
/// dummy examples carry them), a common and favourable assumption for the attacker.
public struct GradientMatching: Sendable {
    /// Optimisation steps per start.
    public var iterations: Int
    /// Adam's step size, in pixel units.
    public var learningRate: Double
    /// lambda, the weight of the total-variation prior.
    public var totalVariationWeight: Double
    /// Independent starts; the one with the lowest matching loss is kept.
    public var restarts: Int
    /// The pixel range the dummy inputs are kept in.
    public var range: ClosedRange<Double>
    /// Seeds the starting points.
    public var seed: UInt64

    public init(
        iterations: Int = 300, learningRate: Double = 0.1, totalVariationWeight: Double = 1e-2, restarts: Int = 1,
        range: ClosedRange<Double> = 0...1, seed: UInt64 = 0
    ) {
        self.iterations = iterations
        self.learningRate = learningRate
        self.totalVariationWeight = totalVariationWeight
        self.restarts = restarts
        self.range = range
        self.seed = seed
    }

    /// - Throws: ``AuditError`` naming the value and its valid range.
    public func validate() throws {
        guard iterations >= 1 else { throw AuditError("gradient matching: iterations \(iterations) must be >= 1") }
        guard learningRate > 0, learningRate.isFinite else {
            throw AuditError("gradient matching: learning rate \(learningRate) must be > 0")
        }
        guard totalVariationWeight >= 0, totalVariationWeight.isFinite else {
            throw AuditError("gradient matching: total-variation weight \(totalVariationWeight) must be >= 0")
        }
        guard restarts >= 1 else { throw AuditError("gradient matching: restarts \(restarts) must be >= 1") }
        guard range.upperBound > range.lowerBound else {
            throw AuditError("gradient matching: the pixel range \(range) is empty")
        }
    }

    /// What ``reconstruct(model:observed:labels:exampleShape:)`` found.
    public struct Result {
        /// The reconstructed batch, `[B] + exampleShape`, in the order of `labels`.
        public var inputs: Tensor<Float>
        /// The matching loss of `inputs` (`1 - cos + lambda TV`).
        public var loss: Double
        /// The cosine similarity of their gradient with the observed one.
        public var cosine: Double
    }

    /// Reconstructs `labels.count` examples of shape `exampleShape` from `observed`.
    /// - Throws: ``AuditError`` when the model has a layer the replica cannot differentiate
    ///   twice, the observed gradient is zero, or the settings are invalid.
    public func reconstruct(
        model: Sequential, observed: ObservedGradient, labels: [Int], exampleShape: Shape
    ) throws -> Result {
        try validate()
        guard labels.count == observed.batchSize else {
            throw AuditError(
                "gradient matching: \(labels.count) labels for a gradient of \(observed.batchSize) examples")
        }
        let replica = try SecondOrderReplica(model: model, exampleShape: exampleShape)
        let objective = try GradientMatchingObjective(
            replica: replica, observed: observed.parameters, labels: labels,
            totalVariationWeight: totalVariationWeight, clippingNorm: observed.defence.clippingNorm)
        let shape = exampleShape.prepending(labels.count)
        var best: (x: Tensor<Double>, loss: Double)?
        for start in 0..<restarts {
            var rng = PhiloxRandom(seed: seed, stream: 0x1DE6_0000 + UInt64(start))
            var x = Tensor<Double>(uniform: shape, in: range, using: &rng)
            let found = optimise(objective, from: &x)
            if best == nil || found.loss < best!.loss { best = found }
        }
        let x = best!.x
        let cosine = objective.cosine(objective.clippedGradient(x).sum)
        return Result(inputs: Tensor(x.scalars.map(Float.init), shape: shape), loss: best!.loss, cosine: cosine)
    }

    /// The fractions of the iterations after which the learning rate is divided by 10.
    static let decayPoints: [Double] = [3.0 / 8, 5.0 / 8, 7.0 / 8]

    /// Adam with the step decay and the projection; returns the iterate of lowest loss.
    func optimise(
        _ objective: GradientMatchingObjective, from x: inout Tensor<Double>
    ) -> (
        x: Tensor<Double>, loss: Double
    ) {
        let n = x.scalarCount
        var m = [Double](repeating: 0, count: n), s = [Double](repeating: 0, count: n)
        let beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8
        var best = (x: x, loss: Double.infinity)
        for t in 1...iterations {
            let (loss, gradient) = objective.valueAndGradient(x)
            if loss < best.loss { best = (x, loss) }
            let progress = Double(t - 1) / Double(iterations)
            let decays = Self.decayPoints.filter { progress >= $0 }.count
            let rate: Double = learningRate * Foundation.pow(0.1, Double(decays))
            let c1: Double = 1 - Foundation.pow(beta1, Double(t))
            let c2: Double = 1 - Foundation.pow(beta2, Double(t))
            let lower = range.lowerBound, upper = range.upperBound
            gradient.withUnsafeBufferPointer { g in
                x.withUnsafeMutableBufferPointer { p in
                    for i in 0..<n {
                        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
                        s[i] = beta2 * s[i] + (1 - beta2) * g[i] * g[i]
                        let step = rate * (m[i] / c1) / ((s[i] / c2).squareRoot() + epsilon)
                        p[i] = min(max(p[i] - step, lower), upper)
                    }
                }
            }
        }
        let last = objective.value(x)
        if last < best.loss { best = (x, last) }
        return best
    }

    /// The label of a one-example gradient by iDLG (Zhao et al. 2020): the index of the
    /// smallest entry of the last layer's bias gradient, `p - onehot(y)` up to the clipping
    /// factor and the noise (negative at the label only, without noise).
    /// - Throws: ``AuditError`` when the gradient is of more than one example or the last layer
    ///   with parameters is not dense with a bias.
    public static func inferLabel(observed: ObservedGradient, model: Sequential) throws -> Int {
        guard observed.batchSize == 1 else {
            throw AuditError(
                "labels are inferred from the gradient for one example only (iDLG); this gradient is of \(observed.batchSize): give the labels"
            )
        }
        guard let last = model.trainableLayers.last as? Linear, last.bias != nil else {
            throw AuditError(
                "iDLG reads the last layer's bias gradient: the model's last layer with parameters must be dense with a bias"
            )
        }
        return observed.parameters[observed.parameters.count - 1].argmax(smallest: true)
    }
}

/// The matching loss `1 - cos(g(x'), g*) + lambda TV(x')` and its exact gradient with respect
/// to the dummy inputs `x'` (see ``GradientMatching``), with `g(x') = sum_i min(1, C / ||g_i||) g_i`
/// (the plain sum when C is infinite).
public struct GradientMatchingObjective {
    public let replica: SecondOrderReplica
    /// g*, in Double.
    public let target: [Tensor<Double>]
    public let targetNorm: Double
    public let labels: [Int]
    public let totalVariationWeight: Double
    /// C, the per-example clipping norm the dummy gradient is clipped to (`.infinity`: none).
    public let clippingNorm: Double
    /// The smoothing of the total variation's absolute value.
    public static let totalVariationSmoothing = 1e-3

    /// - Throws: ``AuditError`` if the observed gradient is zero (nothing to match) or does not
    ///   fit the model's parameters.
    public init(
        replica: SecondOrderReplica, observed: [Tensor<Float>], labels: [Int], totalVariationWeight: Double,
        clippingNorm: Double = .infinity
    ) throws {
        guard observed.map(\.shape) == replica.parameterShapes else {
            throw AuditError(
                "the observed gradient's shapes \(observed.map(\.shape)) do not fit the model's parameters \(replica.parameterShapes)"
            )
        }
        self.replica = replica
        self.target = observed.map(SecondOrderReplica.double)
        self.targetNorm = ParameterVector.norm(target)
        guard targetNorm > 0, targetNorm.isFinite else {
            throw AuditError(
                "the observed gradient is zero or not finite (norm \(targetNorm)): there is nothing to match")
        }
        self.labels = labels
        self.totalVariationWeight = totalVariationWeight
        self.clippingNorm = clippingNorm
    }

    /// `cos(g, g*)`.
    func cosine(_ g: [Tensor<Double>]) -> Double {
        let norm = ParameterVector.norm(g)
        return norm > 0 ? ParameterVector.dot(g, target) / (norm * targetNorm) : 0
    }

    /// What the clipped dummy gradient is made of: the sum `sum_i w_i g_i`, and, when C is
    /// finite, each example's pass, gradient norm and weight `w_i = min(1, C / ||g_i||)`.
    struct ClippedGradient {
        var sum: [Tensor<Double>]
        /// Nil without clipping (one batched pass, all weights 1).
        var batch: SecondOrderReplica.Pass?
        var examples: [(pass: SecondOrderReplica.Pass, norm: Double, weight: Double)]
    }

    func clippedGradient(_ x: Tensor<Double>) -> ClippedGradient {
        guard clippingNorm.isFinite else {
            let pass = replica.evaluate(x, labels: labels)
            return ClippedGradient(sum: pass.gradient, batch: pass, examples: [])
        }
        var sum = replica.parameterShapes.map { Tensor<Double>(zeros: $0) }
        var examples: [(pass: SecondOrderReplica.Pass, norm: Double, weight: Double)] = []
        for (i, label) in labels.enumerated() {
            let pass = replica.evaluate(x.rows(i..<(i + 1)), labels: [label])
            let norm = ParameterVector.norm(pass.gradient)
            let weight = norm > clippingNorm ? clippingNorm / norm : 1
            sum = ParameterVector.combination(1, sum, weight, pass.gradient)
            examples.append((pass, norm, weight))
        }
        return ClippedGradient(sum: sum, batch: nil, examples: examples)
    }

    /// `L(x)`.
    public func value(_ x: Tensor<Double>) -> Double {
        1 - cosine(clippedGradient(x).sum) + totalVariationWeight * Self.totalVariation(x, gradient: false).value
    }

    /// `L(x)` and `dL/dx`.
    public func valueAndGradient(_ x: Tensor<Double>) -> (value: Double, gradient: Tensor<Double>) {
        let clipped = clippedGradient(x)
        let g = clipped.sum
        let norm = ParameterVector.norm(g)
        let tv = Self.totalVariation(x, gradient: totalVariationWeight > 0)
        var value = 1 + totalVariationWeight * tv.value
        var gradient = Tensor<Double>(zeros: x.shape)
        if norm > 0 {
            let cos = ParameterVector.dot(g, target) / (norm * targetNorm)
            value -= cos
            // d cos / dx = d/dx <g(x), v>, v = g* / (|g| |g*|) - cos g / |g|^2.
            let v = ParameterVector.combination(1 / (norm * targetNorm), target, -cos / (norm * norm), g)
            if let batch = clipped.batch {
                gradient = replica.mixedDerivative(batch, direction: v)
            } else {
                // Example i: d/dx_i <w_i g_i, v> = R_i(w_i v - [clipped] (C <g_i, v> / n_i^3) g_i).
                let rows = x.scalarCount / max(1, labels.count)
                gradient.withUnsafeMutableBufferPointer { out in
                    for (i, e) in clipped.examples.enumerated() {
                        var direction = v
                        if e.weight < 1 {
                            let c = clippingNorm * ParameterVector.dot(e.pass.gradient, v) / (e.norm * e.norm * e.norm)
                            direction = ParameterVector.combination(e.weight, v, -c, e.pass.gradient)
                        }
                        let row = replica.mixedDerivative(e.pass, direction: direction)
                        row.withUnsafeBufferPointer { r in
                            for k in 0..<rows { out[i * rows + k] = r[k] }
                        }
                    }
                }
            }
            gradient.scale(by: -1)
        }
        if let tvGradient = tv.gradient { gradient.addScaled(tvGradient, by: totalVariationWeight) }
        return (value, gradient)
    }

    /// The smoothed anisotropic total variation of image examples (`[B, C, H, W]`), mean over
    /// pixels, and its gradient; 0 (and no gradient) for other shapes.
    static func totalVariation(_ x: Tensor<Double>, gradient wanted: Bool) -> (value: Double, gradient: Tensor<Double>?)
    {
        guard x.rank == 4 else { return (0, nil) }
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let eps = totalVariationSmoothing, scale = 1 / Double(x.scalarCount)
        var total = 0.0
        var grad = wanted ? Tensor<Double>(zeros: x.shape) : nil
        x.withUnsafeBufferPointer { p in
            func term(_ a: Int, _ b: Int, _ g: UnsafeMutableBufferPointer<Double>?) {
                let d = p[b] - p[a]
                let r = (d * d + eps * eps).squareRoot()
                total += r - eps
                if let g {
                    g[b] += scale * d / r
                    g[a] -= scale * d / r
                }
            }
            func all(_ g: UnsafeMutableBufferPointer<Double>?) {
                for plane in 0..<planes {
                    let base = plane * h * w
                    for i in 0..<h {
                        for j in 0..<w {
                            let k = base + i * w + j
                            if j + 1 < w { term(k, k + 1, g) }
                            if i + 1 < h { term(k, k + w, g) }
                        }
                    }
                }
            }
            if grad != nil {
                grad!.withUnsafeMutableBufferPointer { all($0) }
            } else {
                all(nil)
            }
        }
        return (total * scale, grad)
    }
}

extension Tensor where Scalar == Float {
    /// The index of the smallest (or largest) scalar; the first on ties.
    func argmax(smallest: Bool) -> Int {
        let s = scalars
        var best = 0
        for i in 1..<s.count where smallest ? s[i] < s[best] : s[i] > s[best] { best = i }
        return best
    }
}
