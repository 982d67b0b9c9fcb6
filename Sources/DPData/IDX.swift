import DPCrypto

// MARK: - IDX files

/// The IDX format of MNIST and Fashion-MNIST (LeCun et al., http://yann.lecun.com/exdb/mnist/):
/// a big-endian magic `00 00 tt nn` (`tt` the element type, `0x08` for unsigned bytes; `nn`
/// the number of dimensions), `nn` big-endian 32-bit dimensions, then the elements in
/// row-major order. Only unsigned-byte files are read.
public struct IDX: Sendable, Equatable {
    /// Magic of an unsigned-byte vector (labels): `0x00000801`.
    public static let labelMagic: UInt32 = 0x0000_0801
    /// Magic of an unsigned-byte rank-3 array (images): `0x00000803`.
    public static let imageMagic: UInt32 = 0x0000_0803

    /// The dimensions from the header.
    public var dimensions: [Int]
    /// The elements, row-major; `bytes.count` is the product of `dimensions`.
    public var bytes: [UInt8]

    public init(dimensions: [Int], bytes: [UInt8]) {
        precondition(
            dimensions.reduce(1, *) == bytes.count,
            "IDX: dimensions \(dimensions) need \(dimensions.reduce(1, *)) bytes, got \(bytes.count)")
        self.dimensions = dimensions
        self.bytes = bytes
    }

    /// The magic of an unsigned-byte IDX file with this many dimensions.
    public static func magic(rank: Int) -> UInt32 { 0x0000_0800 | UInt32(rank) }

    // MARK: Reading

    /// Reads an unsigned-byte IDX file, gzip-compressed or raw.
    ///
    /// - Parameters:
    ///   - path: the file; a name ending in `.gz` must hold gzip data.
    ///   - magic: the expected magic (``labelMagic`` or ``imageMagic``), which fixes the rank.
    ///   - missingFix: the fix to print if the file does not exist.
    ///   - key: opens the file if it is a DPKit envelope (decrypted in memory).
    /// - Throws: ``DataError`` naming the file: missing, encrypted without a key, not gzip,
    ///   truncated or corrupt gzip, bad magic, or a length that does not match the dimensions;
    ///   ``DPCrypto/CryptoError`` for an envelope that does not open with `key`.
    public static func read(
        _ path: String, magic: UInt32,
        missingFix: String = "check the path.", key: DecryptionKey? = nil
    ) throws -> IDX {
        let data = try FileBytes.read(path, missingFix: missingFix, key: key)
        return try parse(data, path: path, magic: magic)
    }

    /// Parses the bytes of an uncompressed IDX file (see ``read(_:magic:missingFix:)``).
    public static func parse(_ data: [UInt8], path: String, magic: UInt32) throws -> IDX {
        guard data.count >= 4 else {
            throw DataError.truncated(path: path, expectedBytes: 4, actualBytes: data.count)
        }
        let found = bigEndian32(data, at: 0)
        guard found == magic else { throw DataError.badMagic(path: path, found: found, expected: magic) }
        let rank = Int(magic & 0xff)
        let headerBytes = 4 + 4 * rank
        guard data.count >= headerBytes else {
            throw DataError.truncated(path: path, expectedBytes: headerBytes, actualBytes: data.count)
        }
        var dimensions: [Int] = []
        var payload = 1
        for axis in 0..<rank {
            let d = Int(bigEndian32(data, at: 4 + 4 * axis))
            dimensions.append(d)
            payload = payload.multipliedReportingOverflow(by: d).overflow ? Int.max / 2 : payload * d
        }
        let expected = headerBytes + payload
        if data.count < expected {
            throw DataError.truncated(path: path, expectedBytes: expected, actualBytes: data.count)
        }
        if data.count > expected {
            throw DataError.trailingBytes(path: path, expectedBytes: expected, actualBytes: data.count)
        }
        return IDX(dimensions: dimensions, bytes: Array(data[headerBytes...]))
    }

    // MARK: Writing

    /// The file bytes of this array: header then elements (uncompressed).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(4 + 4 * dimensions.count + bytes.count)
        appendBigEndian32(IDX.magic(rank: dimensions.count), to: &out)
        for d in dimensions { appendBigEndian32(UInt32(d), to: &out) }
        out.append(contentsOf: bytes)
        return out
    }

    /// Writes the file, gzip-compressed if `gzip` is true.
    public func write(to path: String, gzip: Bool) throws {
        let raw = encoded()
        try FileBytes.write(gzip ? Gzip.compress(raw) : raw, to: path)
    }
}

@inline(__always) private func bigEndian32(_ b: [UInt8], at i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}

private func appendBigEndian32(_ v: UInt32, to out: inout [UInt8]) {
    out.append(UInt8(truncatingIfNeeded: v >> 24))
    out.append(UInt8(truncatingIfNeeded: v >> 16))
    out.append(UInt8(truncatingIfNeeded: v >> 8))
    out.append(UInt8(truncatingIfNeeded: v))
}
