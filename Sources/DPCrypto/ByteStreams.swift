import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Sources

/// Bytes read in order, from a file or from memory.
protocol ByteSource {
    /// Fills `buffer` from its start; fewer bytes than its size only at the end. Returns the count.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteSource {
    /// Up to `count` bytes (fewer only at the end).
    mutating func read(count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try bytes.withUnsafeMutableBytes { try read(into: $0) }
        bytes.removeLast(count - n)
        return bytes
    }
}

/// A file read through its descriptor.
struct FileSource: ByteSource {
    let fd: Int32
    let path: String

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw CryptoError.io(path: path, action: "read", reason: posixReason(errno))
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// Bytes in memory.
struct MemorySource: ByteSource {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset)
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
        }
        offset += n
        return n
    }
}

/// Bytes from a closure that fills a buffer and returns the count (fewer only at the end).
struct ClosureSource: ByteSource {
    let body: (UnsafeMutableRawBufferPointer) throws -> Int

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try body(UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }
}

// MARK: - Sinks

/// Bytes handed to a closure.
struct ClosureSink: ByteSink {
    let body: (UnsafeRawBufferPointer) throws -> Void

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws { try body(bytes) }
}

/// Where bytes go, in order.
protocol ByteSink {
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

extension ByteSink {
    mutating func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }
    mutating func write(_ data: Data) throws { try data.withUnsafeBytes { try write($0) } }
}

struct FileSink: ByteSink {
    let fd: Int32
    let path: String

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try writeAll(fd, bytes, path: path)
    }
}

struct MemorySink: ByteSink {
    var bytes: [UInt8] = []

    mutating func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
}

// MARK: - Files

/// Opens `path` for reading.
func openForReading(_ path: String) throws -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        let e = errno
        throw CryptoError.io(
            path: path, action: "read", reason: e == ENOENT ? "no such file or folder" : posixReason(e))
    }
    var st = stat()
    if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
        close(fd)
        throw CryptoError.io(path: path, action: "read", reason: "is a folder, not a file")
    }
    return fd
}

/// The size of the open file `fd`, or nil when it is not a regular file.
func regularFileSize(_ fd: Int32) -> Int? {
    var st = stat()
    guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int(st.st_size)
}

/// A file written whole or not at all: the bytes go to a temporary file beside `path`
/// (created with `mode`), which ``commit()`` syncs and links to `path` (never replacing a file
/// there); ``discard()`` (or a failure) removes it.
struct AtomicOutput {
    let path: String
    let temporaryPath: String
    let fd: Int32

    init(path: String, mode: mode_t) throws {
        self.path = path
        var st = stat()
        if lstat(path, &st) == 0 { throw CryptoError.outputExists(path: path) }
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CryptoError.io(path: path, action: "create", reason: "the folder \(folder) does not exist")
        }
        var fd: Int32 = -1
        var candidate = ""
        for _ in 0..<16 {
            let suffix = (0..<8).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.joined()
            candidate = folder + "/." + url.lastPathComponent + ".tmp-" + suffix
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            if fd >= 0 || errno != EEXIST { break }
        }
        if fd < 0 { throw CryptoError.io(path: path, action: "create", reason: posixReason(errno)) }
        fchmod(fd, mode)
        temporaryPath = candidate
        self.fd = fd
    }

    var sink: FileSink { FileSink(fd: fd, path: path) }

    /// Syncs the file and gives it its name; fails if `path` appeared meanwhile.
    func commit() throws {
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            let e = errno
            unlink(temporaryPath)
            throw CryptoError.io(path: path, action: "write", reason: posixReason(e))
        }
        // link(2) fails when `path` exists, so a file that appeared meanwhile is never replaced.
        if link(temporaryPath, path) == 0 {
            unlink(temporaryPath)
        } else {
            let e = errno
            var st = stat()
            // A file system without hard links: rename, after checking that the name is free.
            if e == EPERM || e == EOPNOTSUPP || e == ENOSYS, lstat(path, &st) != 0, rename(temporaryPath, path) == 0 {
            } else {
                unlink(temporaryPath)
                if e == EEXIST { throw CryptoError.outputExists(path: path) }
                throw CryptoError.io(path: path, action: "create", reason: posixReason(e))
            }
        }
        // The new name is durable once its folder is synced.
        let dirfd = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_CLOEXEC)
        if dirfd >= 0 {
            fsync(dirfd)
            close(dirfd)
        }
    }

    func discard() {
        close(fd)
        unlink(temporaryPath)
    }
}
