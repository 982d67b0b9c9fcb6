import DPTensor

/// The softmax cross-entropy loss on logits `[B, classes]` and integer labels.
///
/// Example `i`'s loss is `-log softmax(z_i)[y_i] = logsumexp(z_i) - z_i[y_i]`, computed from a
/// max-shifted log-softmax so it never overflows. The gradient returned is that of the SUM of
/// the per-example losses w.r.t. the logits, `softmax(z_i) - onehot(y_i)` in row `i`: each
/// row is exactly example `i`'s own gradient, which is what per-example clipping needs (a
/// mean would couple the scale to the batch size).
public struct SoftmaxCrossEntropy: Sendable {
    public init() {}

    /// Per-example losses `[B]` and the gradient of their sum w.r.t. `logits` (`[B, classes]`).
    ///
    /// - Precondition: `labels.count == B` and every label is in `0..<classes`.
    public func callAsFunction(
        logits: Tensor<Float>, labels: [Int]
    ) -> (losses: Tensor<Float>, logitGradient: Tensor<Float>) {
        precondition(logits.rank == 2, "SoftmaxCrossEntropy: logits \(logits.shape) should be [B, classes]")
        let batch = logits.shape[0], classes = logits.shape[1]
        precondition(labels.count == batch, "SoftmaxCrossEntropy: \(labels.count) labels for \(batch) logit rows")
        var gradient = Tensor<Float>(zeros: logits.shape)
        logSoftmax(logits, into: &gradient)
        var losses = Tensor<Float>(zeros: [batch])
        gradient.withUnsafeMutableBufferPointer { g in
            losses.withUnsafeMutableBufferPointer { l in
                for i in 0..<batch {
                    let y = labels[i]
                    precondition(
                        y >= 0 && y < classes,
                        "SoftmaxCrossEntropy: label \(y) of example \(i) is not in 0..<\(classes)")
                    l[i] = -g[i * classes + y]
                    for j in 0..<classes { g[i * classes + j] = Float.exp(g[i * classes + j]) }
                    g[i * classes + y] -= 1
                }
            }
        }
        return (losses, gradient)
    }

    /// Per-example losses only.
    public func losses(logits: Tensor<Float>, labels: [Int]) -> Tensor<Float> {
        self(logits: logits, labels: labels).losses
    }
}
