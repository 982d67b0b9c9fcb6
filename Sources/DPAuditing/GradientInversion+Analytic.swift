import DPLayers
import DPTensor

/// The analytic reconstruction of an input from the gradient of a first dense layer with bias
/// (Phong et al. 2017, "Privacy-preserving deep learning via additively homomorphic
/// encryption", section 3; Geiping et al. 2020, Proposition 3.1; Fowl et al. 2022).
///
/// For `y = W x + b` and one example, `dL/dW = (dL/dy) x^T` and `dL/db = dL/dy`, so every row
/// `j` with `dL/db_j != 0` gives the input exactly:
///
///     x = (dL/dW)_j / (dL/db)_j.
///
/// **Clipping alone does not stop it.** DP-SGD multiplies the example's whole gradient by one
/// factor `min(1, C / ||g||)`, which cancels in the ratio: the reconstruction is exact at every
/// clipping norm. The division by the batch size cancels too. **Noise does**: with `N(0,
/// (sigma C)^2)` on every coordinate, both the rows and the bias entries are noisy, and after
/// clipping to C the whole first-layer signal has norm at most C while the noise on the bias
/// alone has norm about `sigma C sqrt(h)` (h rows).
///
/// With noise, one row is a poor estimate; ``leastSquares(weightGradient:biasGradient:)`` uses
/// every row, `x_hat = sum_j b_j W_j / sum_j b_j^2` (the least-squares solution of
/// `W_j = b_j x`), which is exact without noise and averages the noise over the rows.
///
/// **A batch of B > 1 examples** gives `dL/dW_j = sum_i d_ij x_i` and `dL/db_j = sum_i d_ij`
/// (`d_ij = dL/dy_ij` of example i), so row j recovers the **mixture**
///
///     r_j = sum_i alpha_ij x_i,   alpha_ij = d_ij / sum_k d_kj,   sum_i alpha_ij = 1,
///
/// an affine combination of the batch, one per row, with weights that differ from row to row
/// (they may be negative or above 1). A row is one example only when the other examples'
/// `d_ij` vanish (a ReLU unit active for one example only, or a row where one example
/// dominates); with tanh none vanish, and rows are blends. Per-example clipping rescales each
/// example's `d_ij` by its own factor, so it changes the weights, not the nature of the blend.
/// ``rowReconstructions(weightGradient:biasGradient:)`` returns every row's mixture; the
/// experiment reports, for each original, the closest of them (an upper bound on what an
/// attacker who cannot tell which row is cleanest achieves).
public enum AnalyticInversion {
    /// Where the attack reads the gradient: the indices of the first dense layer's weight and
    /// bias in the model's ``Sequential/parameters``.
    public struct Target: Equatable, Sendable {
        public var weightIndex: Int
        public var biasIndex: Int
        /// The layer's input size (the example's scalar count).
        public var inputs: Int
        public var outputs: Int
    }

    /// The first layer with parameters, which must be a dense layer with bias that sees the
    /// example itself (only ``Flatten`` before it).
    /// - Throws: ``AuditError`` naming the layer and the fix (gradient matching) otherwise.
    public static func target(in model: Sequential) throws -> Target {
        for layer in model.layers {
            if layer is Flatten { continue }
            guard let dense = layer as? Linear else {
                throw AuditError(
                    "analytic inversion needs a model whose first layer is dense with a bias (mlp, logistic-regression); this model starts with \(layer.description): use the matching method"
                )
            }
            guard dense.bias != nil else {
                throw AuditError(
                    "analytic inversion needs the first dense layer's bias gradient; \(dense.description) has no bias: use the matching method"
                )
            }
            return Target(weightIndex: 0, biasIndex: 1, inputs: dense.inputCount, outputs: dense.outputCount)
        }
        throw AuditError("analytic inversion needs a dense layer with a bias; the model has none")
    }

    /// Row `j`'s reconstruction `(dL/dW)_j / (dL/db)_j`; nil when `(dL/db)_j == 0`.
    /// - Parameters:
    ///   - weightGradient: `[outputs, inputs]`.
    ///   - biasGradient: `[outputs]`.
    public static func row(_ j: Int, weightGradient: Tensor<Float>, biasGradient: Tensor<Float>) -> [Double]? {
        let b = Double(biasGradient.scalars[j])
        guard b != 0 else { return nil }
        return weightGradient[row: j].scalars.map { Double($0) / b }
    }

    /// Every row's reconstruction (rows with a zero bias gradient left out): one example's input
    /// repeated for a batch of one without noise, mixtures of the batch otherwise.
    public static func rowReconstructions(weightGradient: Tensor<Float>, biasGradient: Tensor<Float>) -> [[Double]] {
        (0..<biasGradient.scalarCount).compactMap {
            row($0, weightGradient: weightGradient, biasGradient: biasGradient)
        }
    }

    /// `x_hat = sum_j b_j W_j / sum_j b_j^2` over all rows; nil when every bias gradient is 0.
    public static func leastSquares(weightGradient: Tensor<Float>, biasGradient: Tensor<Float>) -> [Double]? {
        let bias = biasGradient.scalars.map(Double.init)
        let denominator = bias.reduce(0) { $0 + $1 * $1 }
        guard denominator > 0 else { return nil }
        let inputs = weightGradient.shape[1]
        var x = [Double](repeating: 0, count: inputs)
        weightGradient.withUnsafeBufferPointer { w in
            for (j, b) in bias.enumerated() where b != 0 {
                for k in 0..<inputs { x[k] += b * Double(w[j * inputs + k]) }
            }
        }
        return x.map { $0 / denominator }
    }
}
