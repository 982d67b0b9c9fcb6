/// The shape of a tensor: up to ``Shape/maxRank`` dimensions, stored inline so that making
/// a shape (for a slice or a reshape) never allocates.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral,
    RandomAccessCollection
{
    public static let maxRank = 6
    @usableFromInline var dims: (Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0)
    public private(set) var rank: Int = 0

    @inlinable public var startIndex: Int { 0 }
    @inlinable public var endIndex: Int { rank }

    public init(_ dimensions: [Int]) {
        precondition(
            dimensions.count <= Shape.maxRank,
            "Shape: rank \(dimensions.count) exceeds the maximum \(Shape.maxRank)")
        for d in dimensions { precondition(d >= 0, "Shape: negative dimension in \(dimensions)") }
        rank = dimensions.count
        withUnsafeMutableBytes(of: &dims) { raw in
            let p = raw.bindMemory(to: Int.self)
            for (i, d) in dimensions.enumerated() { p[i] = d }
        }
    }

    public init(arrayLiteral elements: Int...) { self.init(elements) }

    @inlinable public subscript(i: Int) -> Int {
        get {
            precondition(i >= 0 && i < rank, "Shape: axis \(i) out of range for rank \(rank)")
            return withUnsafeBytes(of: dims) { $0.load(fromByteOffset: i * MemoryLayout<Int>.stride, as: Int.self) }
        }
        set {
            precondition(i >= 0 && i < rank, "Shape: axis \(i) out of range for rank \(rank)")
            precondition(newValue >= 0, "Shape: negative dimension \(newValue)")
            withUnsafeMutableBytes(of: &dims) {
                $0.storeBytes(of: newValue, toByteOffset: i * MemoryLayout<Int>.stride, as: Int.self)
            }
        }
    }

    /// The number of scalars: the product of the dimensions (1 for rank 0).
    @inlinable public var scalarCount: Int {
        var n = 1
        for i in 0..<rank { n &*= self[i] }
        return n
    }

    /// The shape with its leading dimension replaced.
    @inlinable public func withLeading(_ n: Int) -> Shape {
        var s = self
        s[0] = n
        return s
    }

    /// The dimensions after the leading one, multiplied: the size of one example.
    @inlinable public var trailingCount: Int {
        var n = 1
        var i = 1
        while i < rank {
            n &*= self[i]
            i += 1
        }
        return n
    }

    public var array: [Int] { Array(self) }

    public static func == (a: Shape, b: Shape) -> Bool {
        guard a.rank == b.rank else { return false }
        for i in 0..<a.rank where a[i] != b[i] { return false }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(rank)
        for d in self { hasher.combine(d) }
    }

    public var description: String { "[" + map(String.init).joined(separator: ", ") + "]" }
}
