import DPData
import DPTensor

/// A model's input scaling as a differentiable function of the raw input, so that an attack
/// perturbs raw values (pixels in [0, 1]) and its gradients flow through the scaling the model
/// was trained with (``InputTransform``).
///
/// - `.none`: `y = x`.
/// - `.standardization(m, s)`: `y = (x - m_g) / s_g` per group `g` (one group, or one per
///   channel); `dL/dx = (dL/dy) / s_g`.
/// - `.perExample`: each group of each example standardised by its own mean and (population)
///   deviation, `y = (x - mu) / sd`; with `n` values in the group,
///   `dL/dx = (g - mean(g) - y mean(g y)) / sd` for `g = dL/dy` (the normalisation backward of
///   Ba et al. 2016, without gain); a constant group (sd below 1e-6) is only centred, as in
///   ``Dataset/standardizePerExample()``, and `dL/dx = g - mean(g)`.
public struct AdversarialInput: Sendable {
    public let transform: InputTransform
    public let exampleShape: Shape

    public init(_ transform: InputTransform, exampleShape: Shape) {
        self.transform = transform
        self.exampleShape = exampleShape
    }

    /// Groups per example and values per group.
    private var layout: (groups: Int, block: Int) {
        let size = exampleShape.array.reduce(1, *)
        switch transform {
        case .none: return (1, size)
        case .perExample:
            let g = exampleShape.rank == 3 ? exampleShape[0] : 1
            return (g, size / g)
        case .standardization(let s):
            return (s.mean.count, size / s.mean.count)
        }
    }

    /// The scaled batch the model sees.
    public func forward(_ x: Tensor<Float>) -> Tensor<Float> {
        switch transform {
        case .none: return x
        case .standardization(let s):
            var d = Dataset(name: "", features: x, labels: Array(repeating: 0, count: x.leadingCount), classCount: 1)
            s.apply(to: &d)
            return d.features
        case .perExample:
            var d = Dataset(name: "", features: x, labels: Array(repeating: 0, count: x.leadingCount), classCount: 1)
            d.standardizePerExample()
            return d.features
        }
    }

    /// The gradient w.r.t. the raw batch `x`, given the gradient w.r.t. the scaled batch.
    public func backward(input x: Tensor<Float>, outputGradient g: Tensor<Float>) -> Tensor<Float> {
        switch transform {
        case .none: return g
        case .standardization(let s):
            let (groups, block) = layout
            var out = g
            let n = x.leadingCount
            let inverse = s.standardDeviation.map { 1 / $0 }
            out.withUnsafeMutableBufferPointer { p in
                for e in 0..<n {
                    for k in 0..<groups {
                        let base = (e * groups + k) * block, r = inverse[k]
                        for j in 0..<block { p[base + j] *= r }
                    }
                }
            }
            return out
        case .perExample:
            let (groups, block) = layout
            var out = g
            let n = x.leadingCount
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { p in
                    for i in 0..<(n * groups) {
                        let base = i * block
                        var s = 0.0, q = 0.0
                        for j in 0..<block {
                            let v = Double(xp[base + j])
                            s += v
                            q += v * v
                        }
                        let mu = s / Double(block)
                        let sd = max(0, q / Double(block) - mu * mu).squareRoot()
                        var gMean = 0.0, gyMean = 0.0
                        let r = sd < 1e-6 ? 1.0 : 1 / sd
                        for j in 0..<block {
                            let gj = Double(p[base + j])
                            gMean += gj
                            gyMean += gj * (Double(xp[base + j]) - mu) * r
                        }
                        gMean /= Double(block)
                        gyMean /= Double(block)
                        for j in 0..<block {
                            let y = (Double(xp[base + j]) - mu) * r
                            let gj = Double(p[base + j])
                            p[base + j] = Float(sd < 1e-6 ? gj - gMean : (gj - gMean - y * gyMean) * r)
                        }
                    }
                }
            }
            return out
        }
    }
}
