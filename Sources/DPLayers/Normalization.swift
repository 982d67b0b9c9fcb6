import DPTensor

// MARK: - Shared per-row normalisation (GroupNorm, LayerNorm)

/// Normalises each of `rows` contiguous rows of `n` scalars: `xhat = (x - mean) / sqrt(var + eps)`
/// with the biased variance; writes `xhat` and `1 / sqrt(var + eps)` per row. Moments are
/// accumulated in Double. Each row lies within one example, so no example affects another.
func normalizeRows(
    _ x: UnsafePointer<Float>, rows: Int, count n: Int, eps: Float,
    normalized xhat: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>
) {
    for r in 0..<rows {
        let xr = x + r * n, hr = xhat + r * n
        var sum = 0.0
        for j in 0..<n { sum += Double(xr[j]) }
        let mean = sum / Double(n)
        var ss = 0.0
        for j in 0..<n {
            let d = Double(xr[j]) - mean
            ss += d * d
        }
        let inv = 1 / (ss / Double(n) + Double(eps)).squareRoot()
        inverseStd[r] = Float(inv)
        for j in 0..<n { hr[j] = Float((Double(xr[j]) - mean) * inv) }
    }
}

/// The input gradient of ``normalizeRows``, in place on `g` (holding `dL/dxhat` on entry):
/// `dx = invStd (g - mean(g) - xhat mean(g xhat))` per row.
func normalizeRowsBackward(
    _ g: UnsafeMutablePointer<Float>, normalized xhat: UnsafePointer<Float>,
    inverseStd: UnsafePointer<Float>, rows: Int, count n: Int
) {
    for r in 0..<rows {
        let gr = g + r * n, hr = xhat + r * n
        var sg = 0.0, sgh = 0.0
        for j in 0..<n {
            sg += Double(gr[j])
            sgh += Double(gr[j]) * Double(hr[j])
        }
        let mg = Float(sg / Double(n)), mgh = Float(sgh / Double(n)), inv = inverseStd[r]
        for j in 0..<n { gr[j] = inv * (gr[j] - mg - hr[j] * mgh) }
    }
}

/// Per-example affine gradients `[B, P]` (for gamma and beta of `P` scalars), materialised:
/// cheap, since `P` is the channel count or the normalised shape. Norms are their row norms;
/// accumulation is one GEMV each, `grad += G^T w`.
final class AffineGradients {
    var gamma = Tensor<Float>(zeros: [0, 0])
    var beta = Tensor<Float>(zeros: [0, 0])
    var ones = Tensor<Float>(zeros: [0])
    var rowNorms = Tensor<Float>(zeros: [0])

    func prepare(batch: Int, parameters p: Int) {
        ensureShape(&gamma, [batch, p])
        ensureShape(&beta, [batch, p])
        gamma.fill(0)
        beta.fill(0)
    }

    func addSquaredNorms(into norms: inout Tensor<Float>) {
        let batch = gamma.shape[0]
        if batch == 0 { return }
        ensureShape(&rowNorms, [batch])
        gamma.rowSquaredNorms(into: &rowNorms)
        norms.add(rowNorms)
        beta.rowSquaredNorms(into: &rowNorms)
        norms.add(rowNorms)
    }

    func accumulate(exampleWeights: Tensor<Float>?, gamma g: Parameter, beta b: Parameter) {
        let batch = gamma.shape[0]
        if batch == 0 { return }
        let w: Tensor<Float>
        if let given = exampleWeights {
            w = given
        } else {
            if ones.shape != [batch] { ones = Tensor(repeating: 1, shape: [batch]) }
            w = ones
        }
        gemv(gamma, transposed: true, w, beta: 1, into: &g.gradient)
        gemv(beta, transposed: true, w, beta: 1, into: &b.gradient)
    }
}
