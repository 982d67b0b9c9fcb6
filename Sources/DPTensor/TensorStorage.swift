/// The heap buffer behind a ``Tensor``: 64-byte aligned so BLAS and SIMD loads are aligned.
public final class TensorStorage<Scalar: TensorScalar>: @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Scalar>

    /// Uninitialised scalars are zeroed: a buffer never exposes garbage.
    public init(count: Int) {
        self.count = count
        let bytes = max(1, count) * MemoryLayout<Scalar>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
    }

    /// A buffer whose scalars are not initialised: the caller writes every one before anything
    /// reads them (``Tensor/init(unsafeUninitializedShape:initializingWith:)``).
    @usableFromInline init(uninitializedCount count: Int) {
        self.count = count
        let bytes = max(1, count) * MemoryLayout<Scalar>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        if count == 0 { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
    }

    /// A buffer holding a copy of `count` scalars at `source`: written once, never zeroed first.
    @usableFromInline init(copying source: UnsafePointer<Scalar>, count: Int) {
        self.count = count
        let bytes = max(1, count) * MemoryLayout<Scalar>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        if count == 0 { raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes) }
        pointer = raw.bindMemory(to: Scalar.self, capacity: max(1, count))
        if count > 0 { pointer.initialize(from: source, count: count) }
    }

    public func copy() -> TensorStorage {
        TensorStorage(copying: pointer, count: count)
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}
