import DPLayers
import DPTensor
import Foundation

// MARK: - Learning-rate schedules

/// A learning rate as a function of the step (0-based). Post-processing: it sees only the step.
public enum LearningRateSchedule: Codable, Hashable, Sendable {
    case constant
    /// Multiply by `factor` every `everySteps` steps.
    case step(everySteps: Int, factor: Double)
    /// Linear warm-up over `warmupSteps` (step t uses `(t + 1) / warmupSteps` of the base rate),
    /// then cosine decay from the base rate to `minimumFactor` times it at `totalSteps`.
    case cosine(totalSteps: Int, minimumFactor: Double, warmupSteps: Int = 0)

    public func learningRate(base: Double, step: Int) -> Double {
        switch self {
        case .constant:
            return base
        case .step(let every, let factor):
            return base * Foundation.pow(factor, Double(step / max(1, every)))
        case .cosine(let total, let minimumFactor, let warmup):
            if step < warmup { return base * Double(step + 1) / Double(warmup) }
            let t = min(1, Double(step - warmup) / Double(max(1, total - warmup)))
            return base * (minimumFactor + (1 - minimumFactor) * 0.5 * (1 + Foundation.cos(Double.pi * t)))
        }
    }
}

// MARK: - Optimizers

/// An optimizer updates parameters from their (already private, already averaged) gradients.
/// It is post-processing under DP: it never sees a per-example quantity.
public protocol Optimizer: AnyObject {
    var learningRate: Double { get set }
    /// One update of every parameter from `parameter.gradient`.
    func step(_ parameters: [Parameter])
    /// The optimizer's state, for checkpoints (moment buffers, step count).
    var state: OptimizerState { get set }
}

/// Saved optimizer state: named buffers in parameter order plus the step count.
public struct OptimizerState: Codable, Equatable, Sendable {
    public var step: Int = 0
    public var buffers: [String: [[Float]]] = [:]
    public init() {}
}

/// Plain SGD with optional momentum (heavy ball, as PyTorch: v = mu v + g; p -= lr v)
/// and decoupled-from-nothing L2 weight decay added to the gradient.
public final class SGD: Optimizer {
    public var learningRate: Double
    public let momentum: Double
    public let weightDecay: Double
    private var velocity: [Tensor<Float>] = []
    private var steps = 0

    public init(learningRate: Double, momentum: Double = 0, weightDecay: Double = 0) {
        precondition(
            learningRate >= 0 && momentum >= 0 && momentum < 1 && weightDecay >= 0,
            "SGD: learning rate \(learningRate) must be >= 0, momentum \(momentum) in [0, 1), weight decay \(weightDecay) >= 0"
        )
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        if momentum > 0 && velocity.count != parameters.count {
            velocity = parameters.map { Tensor(zeros: $0.value.shape) }
        }
        let lr = Float(learningRate)
        for (i, p) in parameters.enumerated() {
            if weightDecay > 0 { p.gradient.addScaled(p.value, by: Float(weightDecay)) }
            if momentum > 0 {
                velocity[i].scale(by: Float(momentum))
                velocity[i].add(p.gradient)
                p.value.addScaled(velocity[i], by: -lr)
            } else {
                p.value.addScaled(p.gradient, by: -lr)
            }
        }
        steps += 1
    }

    public var state: OptimizerState {
        get {
            var s = OptimizerState()
            s.step = steps
            if !velocity.isEmpty { s.buffers["velocity"] = velocity.map(\.scalars) }
            return s
        }
        set {
            steps = newValue.step
            velocity = (newValue.buffers["velocity"] ?? []).map { Tensor($0) }
        }
    }
}

/// Adam (Kingma and Ba 2015) with bias correction.
public final class Adam: Optimizer {
    public var learningRate: Double
    public let beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double
    private var m: [Tensor<Float>] = []
    private var v: [Tensor<Float>] = []
    private var steps = 0

    public init(
        learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
        weightDecay: Double = 0
    ) {
        precondition(
            learningRate >= 0 && (0..<1).contains(beta1) && (0..<1).contains(beta2) && epsilon > 0,
            "Adam: learning rate \(learningRate) >= 0, betas (\(beta1), \(beta2)) in [0, 1), epsilon \(epsilon) > 0")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }

    public func step(_ parameters: [Parameter]) {
        if m.count != parameters.count {
            m = parameters.map { Tensor(zeros: $0.value.shape) }
            v = parameters.map { Tensor(zeros: $0.value.shape) }
        }
        steps += 1
        let b1 = Float(beta1), b2 = Float(beta2), eps = Float(epsilon)
        let c1 = Float(1 - Foundation.pow(beta1, Double(steps)))
        let c2 = Float(1 - Foundation.pow(beta2, Double(steps)))
        let lr = Float(learningRate)
        let wd = Float(weightDecay)
        for (i, p) in parameters.enumerated() {
            p.gradient.withUnsafeBufferPointer { g in
                m[i].withUnsafeMutableBufferPointer { mm in
                    v[i].withUnsafeMutableBufferPointer { vv in
                        p.value.withUnsafeMutableBufferPointer { w in
                            for j in 0..<g.count {
                                let gj = g[j] + wd * w[j]
                                mm[j] = b1 * mm[j] + (1 - b1) * gj
                                vv[j] = b2 * vv[j] + (1 - b2) * gj * gj
                                w[j] -= lr * (mm[j] / c1) / ((vv[j] / c2).squareRoot() + eps)
                            }
                        }
                    }
                }
            }
        }
    }

    public var state: OptimizerState {
        get {
            var s = OptimizerState()
            s.step = steps
            if !m.isEmpty {
                s.buffers["m"] = m.map(\.scalars)
                s.buffers["v"] = v.map(\.scalars)
            }
            return s
        }
        set {
            steps = newValue.step
            m = (newValue.buffers["m"] ?? []).map { Tensor($0) }
            v = (newValue.buffers["v"] ?? []).map { Tensor($0) }
        }
    }
}
