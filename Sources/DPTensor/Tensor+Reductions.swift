// MARK: - Reductions and softmax

extension Tensor {
    /// The sum of all scalars, accumulated in `Double` (eight independent partial sums, so
    /// the loop vectorises).
    @inlinable public func sum() -> Scalar {
        withUnsafeBufferPointer { p in
            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
            var i = 0
            let n = p.count
            while i + 8 <= n {
                s0 += Double(p[i])
                s1 += Double(p[i + 1])
                s2 += Double(p[i + 2])
                s3 += Double(p[i + 3])
                s4 += Double(p[i + 4])
                s5 += Double(p[i + 5])
                s6 += Double(p[i + 6])
                s7 += Double(p[i + 7])
                i += 8
            }
            while i < n {
                s0 += Double(p[i])
                i += 1
            }
            return Scalar(((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)))
        }
    }

    /// The mean of all scalars; NaN for an empty tensor.
    @inlinable public func mean() -> Scalar { scalarCount == 0 ? .nan : Scalar(Double(sum()) / Double(scalarCount)) }

    /// The largest scalar; precondition: not empty.
    @inlinable public func max() -> Scalar {
        precondition(scalarCount > 0, "Tensor.max: empty tensor \(shape)")
        return withUnsafeBufferPointer { p in p.max()! }
    }

    /// The flat index of the largest scalar (the first one on ties).
    @inlinable public func argmax() -> Int {
        precondition(scalarCount > 0, "Tensor.argmax: empty tensor \(shape)")
        return withUnsafeBufferPointer { p in
            var best = 0
            for i in 1..<p.count where p[i] > p[best] { best = i }
            return best
        }
    }

    /// The sum over `axis`, which is removed from the shape.
    @inlinable public func sum(alongAxis axis: Int) -> Tensor {
        precondition(axis >= 0 && axis < rank, "Tensor.sum: axis \(axis) out of range for shape \(shape)")
        var outer = 1, inner = 1
        for i in 0..<axis { outer *= shape[i] }
        for i in (axis + 1)..<rank { inner *= shape[i] }
        let n = shape[axis]
        var outShape = shape.array
        outShape.remove(at: axis)
        var out = Tensor(zeros: Shape(outShape))
        withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<outer {
                    for k in 0..<n {
                        let base = (i * n + k) * inner
                        for j in 0..<inner { o[i * inner + j] += a[base + j] }
                    }
                }
            }
        }
        return out
    }

    /// The mean over `axis`, which is removed from the shape (NaN where the axis is empty).
    @inlinable public func mean(alongAxis axis: Int) -> Tensor {
        let n = shape[axis]
        var s = sum(alongAxis: axis)
        if n == 0 { s.fill(.nan) } else { s.scale(by: 1 / Scalar(n)) }
        return s
    }

    /// The index of the largest scalar of each row (over the trailing dimensions).
    @inlinable public func argmaxRows() -> [Int] {
        let rows = shape[0], cols = shape.trailingCount
        precondition(cols > 0 || rows == 0, "argmaxRows: rows of shape \(shape) are empty")
        return withUnsafeBufferPointer { a in
            (0..<rows).map { r in
                var best = 0
                for j in 1..<cols where a[r * cols + j] > a[r * cols + best] { best = j }
                return best
            }
        }
    }
}

/// Row-wise log-softmax of `logits` (`[rows, classes]`), written into `out`:
/// `x_j - max - log(sum_k exp(x_k - max))`, which never overflows.
@inlinable
public func logSoftmax<S: TensorScalar>(_ logits: Tensor<S>, into out: inout Tensor<S>) {
    let rows = logits.shape[0], cols = logits.shape.trailingCount
    precondition(out.shape == logits.shape, "logSoftmax: output \(out.shape) differs from input \(logits.shape)")
    logits.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows where cols > 0 {
                let base = r * cols
                var m = x[base]
                for j in 1..<cols where x[base + j] > m { m = x[base + j] }
                var s: S = 0
                for j in 0..<cols { s += S.exp(x[base + j] - m) }
                let lse = m + S.log(s)
                for j in 0..<cols { o[base + j] = x[base + j] - lse }
            }
        }
    }
}

/// Row-wise softmax of `logits`, written into `out`.
@inlinable
public func softmax<S: TensorScalar>(_ logits: Tensor<S>, into out: inout Tensor<S>) {
    logSoftmax(logits, into: &out)
    out.applyExp()
}

public func logSoftmax<S: TensorScalar>(_ logits: Tensor<S>) -> Tensor<S> {
    var out = Tensor<S>(zeros: logits.shape)
    logSoftmax(logits, into: &out)
    return out
}

public func softmax<S: TensorScalar>(_ logits: Tensor<S>) -> Tensor<S> {
    var out = Tensor<S>(zeros: logits.shape)
    softmax(logits, into: &out)
    return out
}
