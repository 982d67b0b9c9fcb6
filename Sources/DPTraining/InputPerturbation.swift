import DPLayers
import DPTensor

/// Replaces each example of a batch by a perturbed copy before the gradient is taken: the inner
/// maximisation of adversarial training (Madry et al. 2018).
///
/// The trainer calls ``perturb(_:labels:model:step:)`` on every physical batch after it is
/// gathered and before the forward pass whose per-example gradients are clipped and noised.
/// DP-SGD's guarantee and its accounting stay as they are if the perturbed copy of example `i`
/// is a function of example `i`, the current parameters (themselves released by earlier
/// steps) and randomness independent of the data only: the per-example gradient at the perturbed
/// copy is then still one example's contribution, clipped to the clipping norm, so the
/// sensitivity of the step is unchanged. A perturbation that mixes examples (batch statistics)
/// would break this and must not conform.
public protocol InputPerturbation: AnyObject {
    /// Perturbs `batch` (the scaled inputs the model sees, `[m, ...]`) in place, example by example.
    func perturb(_ batch: inout Tensor<Float>, labels: [Int], model: Sequential, step: Int)
}
