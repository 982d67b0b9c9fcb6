import DPLayers

/// A white-box privacy audit inside DP-SGD (Nasr et al. 2021; Steinke, Nasr and Jagielski
/// 2023): it adds canary gradients to a step as if they were examples of the batch, and reads
/// the gradient sum the step releases.
///
/// The trainer calls ``addCanaryGradients(step:clippingNorm:parameters:)`` after the batch's
/// clipped gradients are summed and before the noise, and
/// ``observeReleasedGradient(step:parameters:)`` after the noise and before the sum is scaled
/// and handed to the optimizer: what it observes is exactly the noisy clipped sum that the
/// privacy analysis assumes is published at every step. A canary gradient must have norm at
/// most `clippingNorm` and must join a step with the same probability as an example of the
/// training set (the step's sampling probability), so that each canary is covered by the
/// accounted guarantee like any other example.
public protocol GradientAuditor: AnyObject {
    /// Adds this step's sampled canary gradients (norm at most `clippingNorm`) to `gradient`.
    func addCanaryGradients(step: Int, clippingNorm: Double, parameters: [Parameter])
    /// Reads the released (clipped, summed, noised) gradient of the step.
    func observeReleasedGradient(step: Int, parameters: [Parameter])
}
