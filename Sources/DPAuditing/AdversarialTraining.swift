import DPData
import DPLayers
import DPTensor
import DPTraining

/// PGD adversarial training (Madry et al. 2018) as a trainer's ``InputPerturbation``: every
/// example of every batch is replaced by its adversarial copy under ``attack`` against the
/// current model, and DP-SGD then clips and noises the per-example gradients at the copies.
///
/// Privacy: example `i`'s copy depends on example `i`, the current parameters and the random
/// start (from the run's seed, independent of the data), so each clipped per-example gradient
/// is still one example's contribution and the step's privacy event and accounting are
/// unchanged. Cost: a PGD-`s` attack adds `s` forward and backward passes (input gradients,
/// no per-example work) per batch, so a step costs about `s + 1` times an ordinary one; the
/// attack runs on the whole physical batch at once, through the same BLAS GEMMs (and threads)
/// as training.
///
/// The trainer's batches are scaled (the run's input transform): the budget is in raw input
/// units, so the batch is mapped back to raw values first, which needs an invertible scaling
/// (`none` or fixed statistics; per-example standardisation is refused).
public final class AdversarialTraining: InputPerturbation {
    public let attack: AdversarialAttack
    public let input: AdversarialInput
    let seed: UInt64
    private var lastStep = -1
    private var chunk: UInt64 = 0

    /// - Throws: ``AuditError`` when the input scaling cannot be inverted.
    public init(attack: AdversarialAttack, transform: InputTransform, exampleShape: Shape, seed: UInt64) throws {
        if case .perExample = transform {
            throw AuditError(
                "adversarial training needs the raw inputs back from the scaled ones, and per-example standardisation cannot be inverted; use dataset.normalize: none, fixed or private-standardize"
            )
        }
        self.attack = attack
        self.input = AdversarialInput(transform, exampleShape: exampleShape)
        self.seed = seed
    }

    public func perturb(_ batch: inout Tensor<Float>, labels: [Int], model: Sequential, step: Int) {
        if step != lastStep {
            lastStep = step
            chunk = 0
        }
        // The random starts of (step, chunk): reproducible, and the same after a resume.
        var random = PhiloxRandom(seed: seed &+ UInt64(step) &* 0x9e37_79b9, stream: 0xad7e_0000 &+ chunk)
        chunk += 1
        let raw = unscale(batch)
        let adversarial = attack.perturb(model: model, inputs: raw, labels: labels, input: input, random: &random)
        batch = input.forward(adversarial)
    }

    /// The raw values of a scaled batch (the inverse of the fixed scaling).
    func unscale(_ y: Tensor<Float>) -> Tensor<Float> {
        guard case .standardization(let s) = input.transform else { return y }
        var x = y
        let n = y.leadingCount, size = y.shape.trailingCount
        let groups = s.mean.count, block = size / groups
        x.withUnsafeMutableBufferPointer { p in
            for e in 0..<n {
                for g in 0..<groups {
                    let base = e * size + g * block, m = s.mean[g], sd = s.standardDeviation[g]
                    for j in 0..<block { p[base + j] = p[base + j] * sd + m }
                }
            }
        }
        return x
    }
}
