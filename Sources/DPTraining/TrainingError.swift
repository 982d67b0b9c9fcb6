/// User-facing training errors: each names the value and the fix.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    /// The loss became NaN or infinite; nothing of the step is applied or composed, and results
    /// written so far are kept. (Whether training stops depends on the data, which no accountant
    /// covers: treat a NaN as a bug to fix and rerun, not as a released result.)
    case nonFiniteLoss(step: Int, loss: Double)
    /// A per-example gradient norm is NaN or infinite: clipping cannot bound it, so the step
    /// stops before anything is accumulated, updated or composed.
    case nonFiniteGradientNorm(step: Int, exampleInBatch: Int, squaredNorm: Double)
    /// The privacy budget would be exceeded by the next step.
    case budgetExhausted(step: Int, epsilon: Double)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .invalidSetting(let s): return s
        case .nonFiniteLoss(let step, let loss):
            return
                "the training loss is \(loss) at step \(step): lower the learning rate or the clipping norm, or check the inputs for NaN (results written so far are kept)"
        case .nonFiniteGradientNorm(let step, let i, let v):
            return
                "the squared gradient norm of example \(i) of the batch is \(v) at step \(step): clipping cannot bound a non-finite gradient, so the step was not applied; check the inputs for NaN or infinity, or lower the learning rate (results written so far are kept)"
        case .budgetExhausted(let step, let eps):
            return "stopped at step \(step), epsilon \(eps): the next step would exceed the privacy budget"
        case .checkpoint(let s): return "checkpoint: \(s)"
        }
    }
}
