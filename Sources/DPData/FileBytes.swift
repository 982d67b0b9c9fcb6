import CZlib
import DPCrypto

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Reading files

/// Whole-file reads, with transparent gzip decompression by zlib.
enum FileBytes {
    /// The bytes of `path`: decrypted in memory if it is a DPKit envelope (``DPCrypto/Envelope``,
    /// with `key`), then decompressed if they start with the gzip magic `1f 8b`.
    ///
    /// A name ending in `.gz` (before any `.dpkenc`) must hold gzip data
    /// (``DataError/notGzip(path:)`` otherwise); any other name may hold raw or gzip data.
    /// Decrypted bytes are never written to disk.
    /// - Throws: ``DataError/encrypted(path:)`` for an envelope without a key; the
    ///   ``DPCrypto/CryptoError`` of an envelope that does not open with `key`.
    static func read(_ path: String, missingFix: String, key: DecryptionKey? = nil) throws -> [UInt8] {
        var raw: [UInt8]
        var name = path
        if Envelope.isEnvelope(path: path) {
            guard let key else { throw DataError.encrypted(path: path) }
            raw = try Envelope.decryptFile(at: path, key: key)
            if name.hasSuffix("." + Envelope.fileExtension) { name.removeLast(Envelope.fileExtension.count + 1) }
        } else {
            raw = try readRaw(path, missingFix: missingFix)
        }
        let isGzip = raw.count >= 2 && raw[0] == 0x1f && raw[1] == 0x8b
        if isGzip { return try Gzip.decompress(raw, path: path) }
        if name.hasSuffix(".gz") { throw DataError.notGzip(path: path) }
        return raw
    }

    /// The bytes of `path` as stored.
    static func readRaw(_ path: String, missingFix: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { throw DataError.missingFile(path: path, fix: missingFix) }
            throw DataError.unreadable(path: path, reason: String(cString: strerror(e)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw DataError.unreadable(path: path, reason: "not a regular file")
        }
        let size = Int(st.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        let failure: Int32? = bytes.withUnsafeMutableBytes { p in
            while done < size {
                let n = Glibc.read(fd, p.baseAddress! + done, size - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                if n == 0 { break }
                done += n
            }
            return nil
        }
        if let e = failure { throw DataError.unreadable(path: path, reason: String(cString: strerror(e))) }
        if done < size { bytes.removeLast(size - done) }
        return bytes
    }

    /// Writes `bytes` to `path`, replacing it.
    static func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if fd < 0 { throw DataError.unreadable(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var done = 0
        let failure: Int32? = bytes.withUnsafeBytes { p in
            while done < p.count {
                let n = Glibc.write(fd, p.baseAddress! + done, p.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                done += n
            }
            return nil
        }
        if let e = failure { throw DataError.unreadable(path: path, reason: String(cString: strerror(e))) }
    }

    /// True if `path` exists.
    static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    /// True if `path` is an existing directory.
    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}

// MARK: - gzip

/// gzip (RFC 1952) compression and decompression through zlib.
public enum Gzip {
    /// Decompresses a gzip stream (several concatenated members are allowed) in large chunks.
    ///
    /// - Parameter path: the file name, for error messages only.
    /// - Throws: ``DataError/truncatedGzip(path:)`` when the data ends early,
    ///   ``DataError/corruptGzip(path:reason:)`` when zlib rejects it.
    public static func decompress(_ input: [UInt8], path: String = "<memory>") throws -> [UInt8] {
        guard input.count >= 18 else {
            if input.count >= 2 && input[0] == 0x1f && input[1] == 0x8b { throw DataError.truncatedGzip(path: path) }
            throw DataError.notGzip(path: path)
        }
        // The trailer's ISIZE (the size modulo 2^32) is a capacity hint; a wrong one only costs regrowth.
        let n = input.count
        let hint = Int(input[n - 4]) | Int(input[n - 3]) << 8 | Int(input[n - 2]) << 16 | Int(input[n - 1]) << 24
        var capacity = min(max(hint, 1 << 16), input.count * 1100 + (1 << 16))
        var output = [UInt8](repeating: 0, count: capacity)
        var produced = 0

        var stream = z_stream()
        var input = input
        var rc = inflateInit2_(&stream, 15 + 16, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw DataError.corruptGzip(path: path, reason: "inflateInit2 failed (\(rc))") }
        defer { inflateEnd(&stream) }

        try input.withUnsafeMutableBufferPointer { inp in
            stream.next_in = inp.baseAddress
            stream.avail_in = UInt32(inp.count)
            while true {
                if produced == capacity {
                    capacity *= 2
                    output.append(contentsOf: repeatElement(0, count: capacity - output.count))
                }
                rc = output.withUnsafeMutableBufferPointer { out -> Int32 in
                    stream.next_out = out.baseAddress! + produced
                    let room = min(capacity - produced, Int(UInt32.max))
                    stream.avail_out = UInt32(room)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return r
                }
                switch rc {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    // Another gzip member may follow; anything else after the end is ignored, as gzip does.
                    let left = Int(stream.avail_in)
                    let next = stream.next_in!
                    if left >= 2 && next[0] == 0x1f && next[1] == 0x8b {
                        inflateReset(&stream)
                        continue
                    }
                    return
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 { throw DataError.truncatedGzip(path: path) }
                    continue // no room left in the output: grow and go on
                default:
                    let reason = stream.msg.map { String(cString: $0) } ?? "error \(rc)"
                    throw DataError.corruptGzip(path: path, reason: reason)
                }
            }
        }
        output.removeLast(output.count - produced)
        return output
    }

    /// Compresses `input` into one gzip member (for writing test files and caches).
    public static func compress(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(
            &stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
            zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK, "Gzip.compress: deflateInit2 failed (\(rc))")
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, UInt(input.count))) + 64
        var output = [UInt8](repeating: 0, count: bound)
        var input = input
        let written: Int = input.withUnsafeMutableBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                stream.next_in = inp.baseAddress
                stream.avail_in = UInt32(inp.count)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                let r = deflate(&stream, Z_FINISH)
                precondition(r == Z_STREAM_END, "Gzip.compress: deflate did not finish (\(r))")
                return out.count - Int(stream.avail_out)
            }
        }
        output.removeLast(output.count - written)
        return output
    }
}
