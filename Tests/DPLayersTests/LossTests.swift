import DPTensor
import Testing

@testable import DPLayers

@Test func softmaxCrossEntropyLossesAndGradient() {
    let logits = Tensor<Float>([1, 2, 3, -1, 0, 1000], shape: [2, 3])
    let (losses, g) = SoftmaxCrossEntropy()(logits: logits, labels: [2, 0])
    // Example 0: logsumexp(1, 2, 3) - 3; example 1: 1001 exactly (stable, no overflow).
    let lse0 = Double.log(Double.exp(1) + Double.exp(2) + Double.exp(3))
    #expect(abs(Double(losses.scalars[0]) - (lse0 - 3)) < 1e-5)
    #expect(abs(losses.scalars[1] - 1001) < 1e-2)
    #expect(losses.scalars.allSatisfy { $0.isFinite })
    // Gradient rows: softmax - onehot, summing to zero.
    let p0: [Float] = [1.0, 2.0, 3.0].map { Float(Double.exp($0 - lse0)) }
    expectClose(g.rows(0..<1).reshaped([3]), Tensor([p0[0], p0[1], p0[2] - 1]), "row 0")
    expectClose(g.rows(1..<2).reshaped([3]), Tensor([-1, 0, 1]), "row 1")
}

@Test func softmaxCrossEntropyGradientMatchesFiniteDifferences() {
    let logits = randomTensor([3, 4], seed: 8, in: -2...2)
    let labels = [0, 3, 1]
    let (_, g) = SoftmaxCrossEntropy()(logits: logits, labels: labels)
    var numeric = Tensor<Float>(zeros: logits.shape)
    let eps: Float = 1e-2
    for j in 0..<logits.scalarCount {
        var p = logits, m = logits
        p.withUnsafeMutableBufferPointer { $0[j] += eps }
        m.withUnsafeMutableBufferPointer { $0[j] -= eps }
        let lp = SoftmaxCrossEntropy().losses(logits: p, labels: labels).scalars.reduce(0.0) { $0 + Double($1) }
        let lm = SoftmaxCrossEntropy().losses(logits: m, labels: labels).scalars.reduce(0.0) { $0 + Double($1) }
        numeric.withUnsafeMutableBufferPointer { $0[j] = Float((lp - lm) / (2 * Double(eps))) }
    }
    expectClose(g, numeric, tolerance: 1e-2, "cross-entropy gradient")
}

@Test func softmaxCrossEntropyEmptyBatch() {
    let (losses, g) = SoftmaxCrossEntropy()(logits: Tensor(zeros: [0, 5]), labels: [])
    #expect(losses.shape == [0] && g.shape == [0, 5])
}
