// MARK: - Element-wise arithmetic and activations
//
// In-place forms (`add(_:)`, `applyRelu()`, ...) write into `self` and allocate nothing when the
// storage is uniquely referenced; the operator and `relu(_:)` forms return new tensors.

extension Tensor {
    /// Applies `f` to each scalar in place.
    @inlinable public mutating func apply(_ f: (Scalar) -> Scalar) {
        withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = f(p[i]) } }
    }

    /// `self[i] = f(self[i], other[i])` in place; same number of scalars.
    @inlinable public mutating func combine(_ other: Tensor, _ f: (Scalar, Scalar) -> Scalar) {
        precondition(
            other.scalarCount == scalarCount,
            "element-wise: shapes \(shape) and \(other.shape) differ in size")
        other.withUnsafeBufferPointer { b in
            withUnsafeMutableBufferPointer { a in for i in 0..<a.count { a[i] = f(a[i], b[i]) } }
        }
    }

    /// A new tensor with `f` applied to each scalar.
    @inlinable public func map(_ f: (Scalar) -> Scalar) -> Tensor {
        withUnsafeBufferPointer { a in
            Tensor(unsafeUninitializedShape: shape) { o in for i in 0..<a.count { o[i] = f(a[i]) } }
        }
    }

    @inlinable public mutating func add(_ other: Tensor) { combine(other, +) }
    @inlinable public mutating func subtract(_ other: Tensor) { combine(other, -) }
    @inlinable public mutating func multiply(_ other: Tensor) { combine(other, *) }
    @inlinable public mutating func divide(_ other: Tensor) { combine(other, /) }
    @inlinable public mutating func add(_ value: Scalar) { apply { $0 + value } }

    /// Adds `row` (`[columns]`) to every row of a matrix-shaped tensor (bias broadcast).
    @inlinable public mutating func addRowVector(_ row: Tensor) {
        let rows = shape[0], cols = shape.trailingCount
        precondition(row.scalarCount == cols, "addRowVector: row \(row.shape) does not match the rows of \(shape)")
        row.withUnsafeBufferPointer { r in
            withUnsafeMutableBufferPointer { a in
                for i in 0..<rows {
                    let base = i * cols
                    for j in 0..<cols { a[base + j] += r[j] }
                }
            }
        }
    }

    /// Multiplies row `i` by `factors[i]` in place.
    @inlinable public mutating func scaleRows(by factors: Tensor) {
        let rows = shape[0], cols = shape.trailingCount
        precondition(
            factors.scalarCount == rows, "scaleRows: factors \(factors.shape) do not match the rows of \(shape)")
        factors.withUnsafeBufferPointer { f in
            withUnsafeMutableBufferPointer { a in
                for i in 0..<rows where cols > 0 {
                    Scalar.blasScal(n: cols, alpha: f[i], x: a.baseAddress! + i * cols, incx: 1)
                }
            }
        }
    }

    public static func + (a: Tensor, b: Tensor) -> Tensor {
        checkSame(a, b, "+")
        var c = a
        c.add(b)
        return c
    }
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        checkSame(a, b, "-")
        var c = a
        c.subtract(b)
        return c
    }
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        checkSame(a, b, "*")
        var c = a
        c.multiply(b)
        return c
    }
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        checkSame(a, b, "/")
        var c = a
        c.divide(b)
        return c
    }
    public static func * (a: Tensor, s: Scalar) -> Tensor { a.map { $0 * s } }
    public static func * (s: Scalar, a: Tensor) -> Tensor { a.map { $0 * s } }
    public static func + (a: Tensor, s: Scalar) -> Tensor { a.map { $0 + s } }
    public static func - (a: Tensor, s: Scalar) -> Tensor { a.map { $0 - s } }
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }

    @usableFromInline static func checkSame(_ a: Tensor, _ b: Tensor, _ op: String) {
        precondition(a.shape == b.shape, shapeMismatchMessage(op, a.shape, b.shape))
    }

    /// The message of an element-wise shape mismatch, naming both shapes.
    @usableFromInline static func shapeMismatchMessage(_ op: String, _ a: Shape, _ b: Shape) -> String {
        "Tensor \(op): shapes \(a) and \(b) differ"
    }

    // MARK: Activations, in place

    @inlinable public mutating func applyRelu() { apply { $0 > 0 ? $0 : 0 } }
    /// For Float, ``Float/vectorizableTanh(_:)`` (within 2 ulp of libm, vectorised).
    @inlinable public mutating func applyTanh() {
        if Scalar.self == Float.self {
            withUnsafeMutableBufferPointer { p in
                p.withMemoryRebound(to: Float.self) { f in
                    guard let base = f.baseAddress else { return }
                    Float.vectorizableTanh(base, into: base, count: f.count)
                }
            }
        } else {
            apply { Scalar.tanh($0) }
        }
    }
    /// The logistic sigmoid `1 / (1 + exp(-x))`, evaluated without overflow for large |x|.
    @inlinable public mutating func applySigmoid() { apply { sigmoidScalar($0) } }
    @inlinable public mutating func applyExp() { apply { Scalar.exp($0) } }
    @inlinable public mutating func applyLog() { apply { Scalar.log($0) } }
}

/// The logistic sigmoid of one scalar, stable for large |x|.
@inlinable public func sigmoidScalar<S: TensorScalar>(_ x: S) -> S {
    if x >= 0 { return 1 / (1 + S.exp(-x)) }
    let e = S.exp(x)
    return e / (1 + e)
}

@inlinable public func relu<S: TensorScalar>(_ x: Tensor<S>) -> Tensor<S> { x.map { $0 > 0 ? $0 : 0 } }
/// For Float, ``Float/vectorizableTanh(_:)`` (within 2 ulp of libm, vectorised).
@inlinable public func tanh<S: TensorScalar>(_ x: Tensor<S>) -> Tensor<S> {
    if S.self == Float.self {
        return x.withUnsafeBufferPointer { a in
            Tensor<S>(unsafeUninitializedShape: x.shape) { o in
                a.withMemoryRebound(to: Float.self) { af in
                    o.withMemoryRebound(to: Float.self) { of in
                        guard let src = af.baseAddress, let dst = of.baseAddress else { return }
                        Float.vectorizableTanh(src, into: dst, count: af.count)
                    }
                }
            }
        }
    }
    return x.map { S.tanh($0) }
}
@inlinable public func sigmoid<S: TensorScalar>(_ x: Tensor<S>) -> Tensor<S> { x.map { sigmoidScalar($0) } }
@inlinable public func exp<S: TensorScalar>(_ x: Tensor<S>) -> Tensor<S> { x.map { S.exp($0) } }
@inlinable public func log<S: TensorScalar>(_ x: Tensor<S>) -> Tensor<S> { x.map { S.log($0) } }
