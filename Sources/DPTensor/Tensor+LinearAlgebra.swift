// MARK: - BLAS level 3 and 2 on tensors

extension Tensor {
    /// Rows and columns of a rank-2 tensor.
    @inlinable var matrixSize: (rows: Int, columns: Int) {
        precondition(rank == 2, "Tensor: expected a matrix (rank 2), got shape \(shape)")
        return (shape[0], shape[1])
    }
}

/// `op(a) * op(b)` through `gemm`, with transposes passed to BLAS as flags (no copies).
///
/// - Precondition: `a` and `b` are matrices whose inner dimensions agree; the message names both shapes.
@inlinable
public func matmul<S: TensorScalar>(
    _ a: Tensor<S>, transposed ta: Bool = false,
    _ b: Tensor<S>, transposed tb: Bool = false
) -> Tensor<S> {
    let (ar, ac) = a.matrixSize
    let (br, bc) = b.matrixSize
    let m = ta ? ac : ar
    let n = tb ? br : bc
    var c = Tensor<S>(zeros: [m, n])
    gemm(a, transposed: ta, b, transposed: tb, into: &c)
    return c
}

/// `c = alpha * op(a) * op(b) + beta * c`, writing into an existing tensor (no allocation when
/// `c` is uniquely referenced).
@inlinable
public func gemm<S: TensorScalar>(
    _ a: Tensor<S>, transposed ta: Bool = false,
    _ b: Tensor<S>, transposed tb: Bool = false,
    alpha: S = 1, beta: S = 0, into c: inout Tensor<S>
) {
    let (ar, ac) = a.matrixSize
    let (br, bc) = b.matrixSize
    let m = ta ? ac : ar, k = ta ? ar : ac
    let kb = tb ? bc : br, n = tb ? br : bc
    precondition(k == kb, gemmShapeMessage(a: a.shape, transposed: ta, b: b.shape, transposed: tb, output: nil))
    precondition(
        c.rank == 2 && c.shape[0] == m && c.shape[1] == n,
        gemmShapeMessage(a: a.shape, transposed: ta, b: b.shape, transposed: tb, output: c.shape))
    if m == 0 || n == 0 { return }
    if k == 0 {
        if beta == 0 { c.fill(0) } else if beta != 1 { c.scale(by: beta) }
        return
    }
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            c.withUnsafeMutableBufferPointer { pc in
                S.blasGemm(
                    transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha,
                    a: pa.baseAddress!, lda: ac, b: pb.baseAddress!, ldb: bc,
                    beta: beta, c: pc.baseAddress!, ldc: n)
            }
        }
    }
}

/// The message of a `gemm` shape mismatch; names both operand shapes (with `ᵀ` for a transposed
/// operand) and, if given, the output shape. Kept apart so tests can check its text.
@usableFromInline
func gemmShapeMessage(a: Shape, transposed ta: Bool, b: Shape, transposed tb: Bool, output: Shape?) -> String {
    let operands = "a \(a)\(ta ? "ᵀ" : "") times b \(b)\(tb ? "ᵀ" : "")"
    guard let output else { return "gemm: inner dimensions differ: " + operands }
    let m = a.rank == 2 ? (ta ? a[1] : a[0]) : -1
    let n = b.rank == 2 ? (tb ? b[0] : b[1]) : -1
    return "gemm: output shape \(output) should be [\(m), \(n)] for " + operands
}

/// `y = alpha * op(a) * x + beta * y`.
@inlinable
public func gemv<S: TensorScalar>(
    _ a: Tensor<S>, transposed ta: Bool = false, _ x: Tensor<S>,
    alpha: S = 1, beta: S = 0, into y: inout Tensor<S>
) {
    let (m, n) = a.matrixSize
    let xn = ta ? m : n, yn = ta ? n : m
    precondition(
        x.scalarCount == xn && y.scalarCount == yn,
        "gemv: a \(a.shape)\(ta ? "ᵀ" : "") needs x of \(xn) and y of \(yn) scalars, got x \(x.shape) and y \(y.shape)")
    if yn == 0 { return }
    if xn == 0 {
        if beta == 0 { y.fill(0) } else { y.scale(by: beta) }
        return
    }
    a.withUnsafeBufferPointer { pa in
        x.withUnsafeBufferPointer { px in
            y.withUnsafeMutableBufferPointer { py in
                S.blasGemv(
                    trans: ta, m: m, n: n, alpha: alpha, a: pa.baseAddress!, lda: n,
                    x: px.baseAddress!, incx: 1, beta: beta, y: py.baseAddress!, incy: 1)
            }
        }
    }
}

extension Tensor {
    /// `self += alpha * x` (BLAS axpy); shapes must hold the same number of scalars.
    @inlinable public mutating func addScaled(_ x: Tensor, by alpha: Scalar) {
        precondition(x.scalarCount == scalarCount, "axpy: shapes \(shape) and \(x.shape) differ in size")
        if scalarCount == 0 { return }
        x.withUnsafeBufferPointer { px in
            withUnsafeMutableBufferPointer { py in
                Scalar.blasAxpy(n: px.count, alpha: alpha, x: px.baseAddress!, incx: 1, y: py.baseAddress!, incy: 1)
            }
        }
    }

    /// `self *= alpha` (BLAS scal).
    @inlinable public mutating func scale(by alpha: Scalar) {
        if scalarCount == 0 { return }
        withUnsafeMutableBufferPointer { p in Scalar.blasScal(n: p.count, alpha: alpha, x: p.baseAddress!, incx: 1) }
    }

    /// Sets every scalar to `value`.
    @inlinable public mutating func fill(_ value: Scalar) {
        withUnsafeMutableBufferPointer { p in
            if let base = p.baseAddress { base.update(repeating: value, count: p.count) }
        }
    }

    /// Copies the scalars of `source` (same count) into this tensor.
    @inlinable public mutating func assign(_ source: Tensor) {
        precondition(source.scalarCount == scalarCount, "assign: shapes \(shape) and \(source.shape) differ in size")
        if scalarCount == 0 { return }
        source.withUnsafeBufferPointer { s in
            withUnsafeMutableBufferPointer { d in d.baseAddress!.update(from: s.baseAddress!, count: s.count) }
        }
    }

    /// The dot product of all scalars (BLAS dot).
    @inlinable public func dot(_ other: Tensor) -> Scalar {
        precondition(other.scalarCount == scalarCount, "dot: shapes \(shape) and \(other.shape) differ in size")
        if scalarCount == 0 { return 0 }
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                Scalar.blasDot(n: a.count, x: a.baseAddress!, incx: 1, y: b.baseAddress!, incy: 1)
            }
        }
    }

    /// The Euclidean norm of all scalars (BLAS nrm2, no overflow).
    @inlinable public var norm: Scalar {
        if scalarCount == 0 { return 0 }
        return withUnsafeBufferPointer { Scalar.blasNrm2(n: $0.count, x: $0.baseAddress!, incx: 1) }
    }

    /// The squared Euclidean norm of each row (leading axis) written into `out` (`[rows]`).
    /// Computed with BLAS dot per row.
    @inlinable public func rowSquaredNorms(into out: inout Tensor) {
        precondition(rank >= 1, "rowSquaredNorms: rank-0 tensor")
        let rows = shape[0], cols = shape.trailingCount
        precondition(
            out.scalarCount == rows, "rowSquaredNorms: output \(out.shape) must hold \(rows) scalars for input \(shape)"
        )
        withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    o[r] =
                        cols == 0
                        ? 0
                        : Scalar.blasDot(
                            n: cols, x: a.baseAddress! + r * cols, incx: 1,
                            y: a.baseAddress! + r * cols, incy: 1)
                }
            }
        }
    }

    /// The squared Euclidean norm of each row (leading axis).
    @inlinable public func rowSquaredNorms() -> Tensor {
        var out = Tensor(zeros: [shape[0]])
        rowSquaredNorms(into: &out)
        return out
    }

    /// The transpose of a matrix (a copy; prefer BLAS transpose flags in hot paths).
    public func transposed() -> Tensor {
        let (r, c) = matrixSize
        var out = Tensor(zeros: [c, r])
        withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<r { for j in 0..<c { o[j * r + i] = a[i * c + j] } }
            }
        }
        return out
    }
}
