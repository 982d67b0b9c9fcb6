import DPLayers
import DPTensor

/// The norm that bounds an adversarial perturbation.
public enum PerturbationNorm: String, Sendable, CaseIterable, Codable {
    /// `max_j |delta_j| <= epsilon`.
    case linf
    /// `sqrt(sum_j delta_j^2) <= epsilon` (over the whole example).
    case l2
}

/// How the adversarial input is found.
public enum AdversarialMethod: String, Sendable, CaseIterable, Codable {
    /// Fast gradient (sign) method, one step of size epsilon (Goodfellow et al. 2015):
    /// L-inf `x + eps sign(g)`, L2 `x + eps g / ||g||` (the fast gradient method).
    case fgsm
    /// Projected gradient descent on the loss (Madry et al. 2018): `steps` steps of size
    /// `stepSize` (L-inf: `sign(g)`, L2: `g / ||g||`), each followed by the projection onto the
    /// epsilon ball around the clean input and the clip to the valid range; a random start in
    /// the ball; `restarts` independent starts, keeping per example the one that misclassifies,
    /// else the one of highest loss.
    case pgd
    /// Square Attack (Andriushchenko et al. 2020), L-inf only: a gradient-free random search
    /// that uses only the model's logits, so it is the check against gradient masking (a
    /// defence that breaks gradients but not the decision). `steps` is the number of queries
    /// per example (default 1000), `restarts` independent runs; see `SquareAttack.swift`.
    case square
}

/// An evasion attack with a budget in the raw input space.
///
/// The budget `epsilon` is measured on raw inputs (pixels in [0, 1]) *before* the model's input
/// scaling, and the adversarial input is clipped to `validRange`, so budgets compare with the
/// literature (Fashion-MNIST L-inf 0.1 means a tenth of the pixel range, whatever the model's
/// normalisation). The scaling (``AdversarialInput``) is part of the attacked function, and
/// gradients flow through it.
///
/// The loss is the softmax cross-entropy of the true label (untargeted attack). A zero gradient
/// coordinate gives a zero step (`sign(0) = 0`, as `torch.sign`).
public struct AdversarialAttack: Hashable, Sendable, Codable {
    public var method: AdversarialMethod
    public var norm: PerturbationNorm
    public var epsilon: Double
    /// PGD iterations (1 for FGSM); the Square Attack's queries per example.
    public var steps: Int
    /// PGD step size (FGSM: epsilon; the Square Attack: not used, 0).
    public var stepSize: Double
    /// PGD or Square Attack random starts (1 for FGSM).
    public var restarts: Int
    /// PGD starts at a uniformly random point of the ball (L-inf) or at a random direction with
    /// a uniform radius (L2); `false` starts at the clean input.
    public var randomStart: Bool
    /// The valid raw input range (nil: unbounded, as for tabular data).
    public var validRange: ClosedRange<Float>?

    /// - Parameters:
    ///   - steps: PGD steps (default 40) or Square Attack queries (default 1000); FGSM: 1.
    ///   - stepSize: default `2.5 epsilon / steps` (Madry et al. 2018); refused for the Square Attack.
    /// - Throws: ``AuditError`` naming the bad value and the fix.
    public init(
        method: AdversarialMethod, norm: PerturbationNorm, epsilon: Double, steps: Int? = nil,
        stepSize: Double? = nil, restarts: Int = 1, randomStart: Bool = true,
        validRange: ClosedRange<Float>? = 0...1
    ) throws {
        guard epsilon.isFinite, epsilon >= 0 else {
            throw AuditError(
                "adversarial budget epsilon \(epsilon) is not allowed: give a number >= 0 in raw input units (pixels in [0, 1]), e.g. --epsilon 0.1"
            )
        }
        if method == .square {
            guard norm == .linf else {
                throw AuditError(
                    "the square attack supports only the linf norm (its L2 variant is not implemented); use pgd for l2")
            }
            guard stepSize == nil else {
                throw AuditError(
                    "the square attack has no step size (its square sizes follow the query schedule): leave the step size out"
                )
            }
        }
        let s = method == .fgsm ? 1 : (steps ?? (method == .square ? 1000 : 40))
        guard s >= 1 else { throw AuditError("\(method.rawValue) steps \(s) must be >= 1, e.g. --steps 40") }
        guard restarts >= 1 else { throw AuditError("restarts \(restarts) must be >= 1 (1: a single start)") }
        let a = method == .fgsm ? epsilon : method == .square ? 0 : (stepSize ?? 2.5 * epsilon / Double(s))
        guard a.isFinite, a >= 0 else {
            throw AuditError("step size \(a) must be a number >= 0, e.g. --step-size 0.01")
        }
        self.method = method
        self.norm = norm
        self.epsilon = epsilon
        self.steps = s
        self.stepSize = a
        self.restarts = method == .fgsm ? 1 : restarts
        self.randomStart = method == .pgd && randomStart
        self.validRange = validRange
    }

    /// A short name: `fgsm-linf-0.1`, `pgd40-l2-1.5`, `square1000-linf-0.1`.
    public var label: String {
        let m = method == .fgsm ? "fgsm" : "\(method.rawValue)\(steps)"
        return "\(m)-\(norm.rawValue)-\(Self.number(epsilon))"
    }

    static func number(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
    }
}

// MARK: - The attack

/// An attack's outcome on a set of examples.
public struct AdversarialOutcome: Sendable {
    /// The adversarial raw inputs, shaped as the clean inputs.
    public var adversarial: Tensor<Float>
    public var labels: [Int]
    public var cleanPredictions: [Int]
    public var adversarialPredictions: [Int]
    /// Each example's perturbation norm in the attack's norm (raw space).
    public var perturbationNorms: [Double]

    public var cleanAccuracy: Double { Self.fraction(zip(cleanPredictions, labels).map { $0 == $1 }) }
    /// The fraction of examples still classified correctly under the attack.
    public var robustAccuracy: Double { Self.fraction(zip(adversarialPredictions, labels).map { $0 == $1 }) }

    static func fraction(_ hits: [Bool]) -> Double {
        hits.isEmpty ? .nan : Double(hits.filter { $0 }.count) / Double(hits.count)
    }
}

extension AdversarialAttack {
    /// Attacks `inputs` (raw, `[n, ...]`) with their `labels`, `batchSize` examples at a time.
    /// The model runs in evaluation mode; its `needsInputGradient` is restored afterwards.
    /// - Parameter random: the random starts' stream (one stream per call keeps runs reproducible).
    public func run(
        model: Sequential, inputs: Tensor<Float>, labels: [Int], input: AdversarialInput,
        random: inout PhiloxRandom, batchSize: Int = 256
    ) -> AdversarialOutcome {
        precondition(
            labels.count == inputs.leadingCount, "AdversarialAttack: \(labels.count) labels for \(inputs.shape)")
        let n = inputs.leadingCount
        var adversarial = inputs
        var clean: [Int] = [], attacked: [Int] = []
        var start = 0
        while start < n {
            let end = min(n, start + batchSize)
            let x = inputs.rows(start..<end)
            let y = Array(labels[start..<end])
            clean += model(input.forward(x)).argmaxRows()
            let xAdv = perturb(model: model, inputs: x, labels: y, input: input, random: &random)
            attacked += model(input.forward(xAdv)).argmaxRows()
            adversarial.withUnsafeMutableBufferPointer { out in
                xAdv.withUnsafeBufferPointer { src in
                    let offset = start * inputs.shape.trailingCount
                    for i in 0..<src.count { out[offset + i] = src[i] }
                }
            }
            start = end
        }
        let size = inputs.shape.trailingCount
        var norms = [Double](repeating: 0, count: n)
        inputs.withUnsafeBufferPointer { a in
            adversarial.withUnsafeBufferPointer { b in
                for e in 0..<n {
                    var m = 0.0, s = 0.0
                    for j in (e * size)..<((e + 1) * size) {
                        let d = Double(b[j]) - Double(a[j])
                        m = max(m, abs(d))
                        s += d * d
                    }
                    norms[e] = norm == .linf ? m : s.squareRoot()
                }
            }
        }
        return AdversarialOutcome(
            adversarial: adversarial, labels: labels, cleanPredictions: clean, adversarialPredictions: attacked,
            perturbationNorms: norms)
    }

    /// The adversarial inputs of one batch (raw space), within the budget and the valid range.
    public func perturb(
        model: Sequential, inputs x0: Tensor<Float>, labels: [Int], input: AdversarialInput,
        random: inout PhiloxRandom
    ) -> Tensor<Float> {
        if method == .square {
            return epsilon == 0
                ? x0 : squarePerturb(model: model, inputs: x0, labels: labels, input: input, random: &random)
        }
        let saved = model.needsInputGradient
        model.needsInputGradient = true
        defer { model.needsInputGradient = saved }
        if epsilon == 0 { return x0 }
        if method == .fgsm {
            let (_, g) = lossAndGradient(model: model, x: x0, labels: labels, input: input)
            var x = x0
            step(&x, gradient: g, size: Float(epsilon))
            project(&x, around: x0)
            return x
        }
        var best = x0
        var bestScore: [(Bool, Float)] = []
        for _ in 0..<restarts {
            var x = x0
            if randomStart { randomise(&x, around: x0, random: &random) }
            for _ in 0..<steps {
                let (_, g) = lossAndGradient(model: model, x: x, labels: labels, input: input)
                step(&x, gradient: g, size: Float(stepSize))
                project(&x, around: x0)
            }
            if restarts == 1 { return x }
            let (losses, logits) = lossesAndLogits(model: model, x: x, labels: labels, input: input)
            let predicted = logits.argmaxRows()
            let score = labels.indices.map { (predicted[$0] != labels[$0], losses[$0]) }
            if bestScore.isEmpty {
                best = x
                bestScore = score
                continue
            }
            let size = x0.shape.trailingCount
            best.withUnsafeMutableBufferPointer { b in
                x.withUnsafeBufferPointer { c in
                    for e in labels.indices {
                        let (wrong, loss) = score[e], (bestWrong, bestLoss) = bestScore[e]
                        if (wrong && !bestWrong) || (wrong == bestWrong && loss > bestLoss) {
                            for j in (e * size)..<((e + 1) * size) { b[j] = c[j] }
                            bestScore[e] = score[e]
                        }
                    }
                }
            }
        }
        return best
    }

    // MARK: - Steps

    /// Per-example losses and the gradient of their sum w.r.t. the raw batch.
    func lossAndGradient(
        model: Sequential, x: Tensor<Float>, labels: [Int], input: AdversarialInput
    ) -> (losses: [Float], gradient: Tensor<Float>) {
        var context = ForwardContext(training: false)
        let logits = model.forward(input.forward(x), context: &context)
        let (losses, dLogits) = Self.crossEntropyGradient(logits: logits, labels: labels)
        let dScaled = model.backward(dLogits)
        return (losses, input.backward(input: x, outputGradient: dScaled))
    }

    /// Per-example cross-entropy and its gradient w.r.t. the logits, `softmax(z) - onehot(y)`,
    /// in Double, with the true class's entry written as `-sum_{k != y} p_k`: for a confident
    /// example `p_y - 1` rounds to 0 in Float while the other entries do not, which would turn the
    /// gradient's direction (all FGSM looks at) away from the true one.
    static func crossEntropyGradient(logits: Tensor<Float>, labels: [Int]) -> (losses: [Float], gradient: Tensor<Float>)
    {
        let n = logits.shape[0], c = logits.shape[1]
        var g = Tensor<Float>(zeros: logits.shape)
        var losses = [Float](repeating: 0, count: n)
        logits.withUnsafeBufferPointer { z in
            g.withUnsafeMutableBufferPointer { out in
                var p = [Double](repeating: 0, count: c)
                for i in 0..<n {
                    let y = labels[i]
                    var m = -Double.infinity
                    for k in 0..<c { m = max(m, Double(z[i * c + k])) }
                    var total = 0.0
                    for k in 0..<c {
                        p[k] = Double.exp(Double(z[i * c + k]) - m)
                        total += p[k]
                    }
                    var others = 0.0
                    for k in 0..<c where k != y {
                        p[k] /= total
                        others += p[k]
                        out[i * c + k] = Float(p[k])
                    }
                    out[i * c + y] = Float(-others)
                    losses[i] = Float(m + Double.log(total) - Double(z[i * c + y]))
                }
            }
        }
        return (losses, g)
    }

    func lossesAndLogits(
        model: Sequential, x: Tensor<Float>, labels: [Int], input: AdversarialInput
    ) -> (losses: [Float], logits: Tensor<Float>) {
        let logits = model(input.forward(x))
        return (Self.crossEntropyGradient(logits: logits, labels: labels).losses, logits)
    }

    /// `x += size * direction(g)`: the sign for L-inf, the unit vector per example for L2.
    func step(_ x: inout Tensor<Float>, gradient g: Tensor<Float>, size: Float) {
        let n = x.leadingCount, d = x.shape.trailingCount
        x.withUnsafeMutableBufferPointer { p in
            g.withUnsafeBufferPointer { q in
                for e in 0..<n {
                    let r = (e * d)..<((e + 1) * d)
                    switch norm {
                    case .linf:
                        for j in r where q[j] != 0 { p[j] += q[j] > 0 ? size : -size }
                    case .l2:
                        var s: Float = 0
                        for j in r { s += q[j] * q[j] }
                        let length = s.squareRoot()
                        guard length > 0 else { continue }
                        let f = size / length
                        for j in r { p[j] += f * q[j] }
                    }
                }
            }
        }
    }

    /// Projects `x` onto the epsilon ball around `x0`, then clips it to the valid range (which
    /// only shortens a perturbation, as `x0` lies in the range: both constraints hold after).
    func project(_ x: inout Tensor<Float>, around x0: Tensor<Float>) {
        let n = x.leadingCount, d = x.shape.trailingCount
        let eps = Float(epsilon)
        x.withUnsafeMutableBufferPointer { p in
            x0.withUnsafeBufferPointer { c in
                for e in 0..<n {
                    let r = (e * d)..<((e + 1) * d)
                    switch norm {
                    case .linf:
                        for j in r { p[j] = min(max(p[j], c[j] - eps), c[j] + eps) }
                    case .l2:
                        var s: Float = 0
                        for j in r { s += (p[j] - c[j]) * (p[j] - c[j]) }
                        let length = s.squareRoot()
                        if length > eps {
                            let f = eps / length
                            for j in r { p[j] = c[j] + f * (p[j] - c[j]) }
                        }
                    }
                    if let v = validRange {
                        for j in r { p[j] = min(max(p[j], v.lowerBound), v.upperBound) }
                    }
                }
            }
        }
    }

    /// A random start: uniform in the L-inf box, or a uniformly random direction with a radius
    /// uniform in [0, epsilon] for L2; then clipped to the valid range.
    func randomise(_ x: inout Tensor<Float>, around x0: Tensor<Float>, random: inout PhiloxRandom) {
        let n = x.leadingCount, d = x.shape.trailingCount
        let eps = Float(epsilon)
        var noise = Tensor<Float>(zeros: x.shape)
        switch norm {
        case .linf: noise.fillUniform(in: -eps, eps, using: &random)
        case .l2:
            noise.fillNormal(using: &random)
            noise.withUnsafeMutableBufferPointer { p in
                for e in 0..<n {
                    var s: Float = 0
                    for j in (e * d)..<((e + 1) * d) { s += p[j] * p[j] }
                    let f = s > 0 ? eps * random.nextOpenUnitFloat() / s.squareRoot() : 0
                    for j in (e * d)..<((e + 1) * d) { p[j] *= f }
                }
            }
        }
        x.withUnsafeMutableBufferPointer { p in
            noise.withUnsafeBufferPointer { q in for j in 0..<p.count { p[j] += q[j] } }
        }
        project(&x, around: x0)
    }
}
