/// User-facing training errors: each names the value and the fix.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    /// The loss became NaN or infinite; nothing of the step is applied or composed, and results
    /// written so far are kept. (Whether training stops depends on the data, which no accountant
    /// covers: treat a NaN as a bug to fix and rerun, not as a released result.)
    case nonFiniteLoss(step: Int, loss: Double)
    /// The privacy budget would be exceeded by the next step.
    case budgetExhausted(step: Int, epsilon: Double)
    case checkpoint(String)

    public var description: String {
        switch self {
        case .invalidSetting(let s): return s
        case .nonFiniteLoss(let step, let loss):
            return "the training loss is \(loss) at step \(step): lower the learning rate or the clipping norm, or check the inputs for NaN (results written so far are kept)"
        case .budgetExhausted(let step, let eps):
            return "stopped at step \(step), epsilon \(eps): the next step would exceed the privacy budget"
        case .checkpoint(let s): return "checkpoint: \(s)"
        }
    }
}
