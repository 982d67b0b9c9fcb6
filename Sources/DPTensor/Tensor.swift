/// A contiguous, row-major, value-semantic tensor with copy-on-write storage.
///
/// Slicing the leading (batch) axis with ``rows(_:)`` and ``reshaped(_:)`` share storage and
/// copy nothing; mutation through ``withUnsafeMutableBufferPointer(_:)`` (and every in-place
/// operation built on it) copies first only if the storage is shared.
///
/// Shape mismatches are programmer errors: they stop with a message naming both shapes.
public struct Tensor<Scalar: TensorScalar>: @unchecked Sendable {
    @usableFromInline var storage: TensorStorage<Scalar>
    @usableFromInline var offset: Int
    public private(set) var shape: Shape

    // MARK: - Creation

    /// A tensor of zeros.
    public init(zeros shape: Shape) {
        self.storage = TensorStorage(count: shape.scalarCount)
        self.offset = 0
        self.shape = shape
    }

    /// A tensor with every scalar equal to `value`.
    public init(repeating value: Scalar, shape: Shape) {
        self.init(zeros: shape)
        if value != 0 { storage.pointer.update(repeating: value, count: shape.scalarCount) }
    }

    /// A tensor whose scalars `body` writes, without zeroing them first (for outputs a kernel
    /// overwrites completely, such as a GEMM with `beta = 0`).
    ///
    /// - Precondition: `body` writes every scalar; reading one before it is written reads
    ///   garbage. If `body` throws, the scalars are zeroed before the error propagates.
    @inlinable
    public init(
        unsafeUninitializedShape shape: Shape,
        initializingWith body: (UnsafeMutableBufferPointer<Scalar>) throws -> Void
    ) rethrows {
        let storage = TensorStorage<Scalar>(uninitializedCount: shape.scalarCount)
        self.init(storage: storage, offset: 0, shape: shape)
        let buffer = UnsafeMutableBufferPointer(start: storage.pointer, count: shape.scalarCount)
        do { try body(buffer) } catch {
            buffer.update(repeating: 0)
            throw error
        }
    }

    /// A tensor from scalars in row-major order.
    public init(_ scalars: [Scalar], shape: Shape) {
        precondition(
            scalars.count == shape.scalarCount,
            "Tensor: \(scalars.count) scalars do not fill shape \(shape) (\(shape.scalarCount) needed)")
        self.init(zeros: shape)
        scalars.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: $0.count) }
    }

    /// A rank-1 tensor from scalars.
    public init(_ scalars: [Scalar]) { self.init(scalars, shape: [scalars.count]) }

    /// A rank-0 tensor.
    public init(scalar: Scalar) { self.init([scalar], shape: Shape([])) }

    @usableFromInline init(storage: TensorStorage<Scalar>, offset: Int, shape: Shape) {
        self.storage = storage
        self.offset = offset
        self.shape = shape
    }

    // MARK: - Size

    @inlinable public var scalarCount: Int { shape.scalarCount }
    @inlinable public var rank: Int { shape.rank }
    /// The size of the leading (batch) axis.
    @inlinable public var leadingCount: Int { shape[0] }

    /// The scalars in row-major order (a copy).
    public var scalars: [Scalar] {
        withUnsafeBufferPointer { Array($0) }
    }

    /// The single scalar of a one-element tensor.
    public var scalar: Scalar {
        precondition(scalarCount == 1, "Tensor.scalar: shape \(shape) has \(scalarCount) scalars, not 1")
        return storage.pointer[offset]
    }

    // MARK: - Views

    /// A tensor with the same scalars and another shape of the same count; copies nothing.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(
            newShape.scalarCount == scalarCount,
            "Tensor.reshaped: cannot reshape \(shape) (\(scalarCount) scalars) to \(newShape) (\(newShape.scalarCount) scalars)"
        )
        return Tensor(storage: storage, offset: offset, shape: newShape)
    }

    /// The rows `range` of the leading axis; copies nothing.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1, "Tensor.rows: a rank-0 tensor has no rows")
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[0],
            "Tensor.rows: range \(range) out of bounds for shape \(shape)")
        let stride = shape.trailingCount
        return Tensor(
            storage: storage, offset: offset + range.lowerBound * stride,
            shape: shape.withLeading(range.count))
    }

    /// Row `i` of the leading axis, with that axis dropped; copies nothing.
    public subscript(row i: Int) -> Tensor {
        precondition(rank >= 1 && i >= 0 && i < shape[0], "Tensor: row \(i) out of bounds for shape \(shape)")
        let stride = shape.trailingCount
        return Tensor(storage: storage, offset: offset + i * stride, shape: Shape(Array(shape.dropFirst())))
    }

    /// Element access by multi-index (slow path, for tests and small work).
    public subscript(index: Int...) -> Scalar {
        get { storage.pointer[offset + linearIndex(index)] }
        set {
            let li = linearIndex(index)
            withUnsafeMutableBufferPointer { $0[li] = newValue }
        }
    }

    @usableFromInline func linearIndex(_ index: [Int]) -> Int {
        precondition(
            index.count == rank, "Tensor: index \(index) has rank \(index.count), shape \(shape) has rank \(rank)")
        var li = 0
        for (axis, i) in index.enumerated() {
            precondition(i >= 0 && i < shape[axis], "Tensor: index \(index) out of bounds for shape \(shape)")
            li = li * shape[axis] + i
        }
        return li
    }

    // MARK: - Raw access

    @inlinable public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Scalar>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer + offset, count: scalarCount))
    }

    /// Mutable access; copies the storage first if another tensor shares it.
    @inlinable public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Scalar>) throws -> R
    ) rethrows -> R {
        ensureUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer + offset, count: scalarCount))
    }

    @inlinable public mutating func ensureUnique() {
        if !isKnownUniquelyReferenced(&storage) { makeUniqueCopy() }
    }

    @usableFromInline mutating func makeUniqueCopy() {
        storage = TensorStorage<Scalar>(copying: storage.pointer + offset, count: scalarCount)
        offset = 0
    }

    /// Gives `self` the shape `newShape` for a kernel that then overwrites every scalar: the
    /// storage is kept when nothing else shares it and it holds exactly that many scalars;
    /// otherwise new storage is allocated, neither zeroed nor copied. Layers call it on the
    /// buffers they own so that a steady-state step allocates nothing; the old scalars are
    /// garbage afterwards.
    public mutating func reuseForOverwrite(shape newShape: Shape) {
        if offset == 0 && storage.count == newShape.scalarCount && isKnownUniquelyReferenced(&storage) {
            shape = newShape
            return
        }
        self = Tensor(storage: TensorStorage(uninitializedCount: newShape.scalarCount), offset: 0, shape: newShape)
    }

    /// ``reuseForOverwrite(shape:)`` for a layer output that the next layer keeps (as its input)
    /// until that layer's own forward pass, which comes after this one's: if this buffer is still
    /// shared, `self` and `spare` swap first, so a layer that alternates between two buffers
    /// allocates nothing in the steady state. Whatever still holds the old buffer keeps it intact.
    public mutating func reuseForOverwrite(shape newShape: Shape, alternatingWith spare: inout Tensor) {
        let reusable = offset == 0 && storage.count == newShape.scalarCount && isKnownUniquelyReferenced(&storage)
        if !reusable { swap(&self, &spare) }
        reuseForOverwrite(shape: newShape)
    }

    /// True if the two tensors view the same storage (for tests of no-copy views).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor: Equatable {
    /// Exact equality of shapes and scalars (use ``isApproximatelyEqual(to:relativeTolerance:absoluteTolerance:)`` for results of arithmetic).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        a.shape == b.shape
            && a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.elementsEqual(pb) } }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let s = scalars
        let shown = s.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor\(shape)(\(shown)\(s.count > 8 ? ", ..." : ""))"
    }
}

extension Tensor {
    /// `|a - b| <= absoluteTolerance + relativeTolerance * |b|` element-wise, same shape.
    public func isApproximatelyEqual(
        to other: Tensor, relativeTolerance: Scalar = 1e-4, absoluteTolerance: Scalar = 1e-5
    ) -> Bool {
        guard shape == other.shape else { return false }
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                for i in 0..<a.count {
                    let d = abs(a[i] - b[i])
                    if !(d <= absoluteTolerance + relativeTolerance * abs(b[i])) { return false }
                }
                return true
            }
        }
    }
}
