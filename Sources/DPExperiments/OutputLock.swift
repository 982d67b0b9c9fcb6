import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on an output folder, held while `dpkit run` writes into it, so two
/// processes never write the same results (every run twice, `n = 4` for 2 seeds).
///
/// The lock is `flock(LOCK_EX)` on `DIR/dpkit.lock`. The kernel releases a `flock` when the
/// process ends however it ends (exit, crash, `kill -9`), so a killed run never leaves a stale
/// lock: the file may remain, but only a live process holds the lock. The holder writes its pid,
/// host, start time and command into the file; a second process reads them for its error.
/// The descriptor is close-on-exec, so a child process (`git`) never inherits the lock.
///
/// `flock` locks are per open file description, so two `OutputLock`s in one process exclude
/// each other as two processes do (the tests rely on it). Network file systems may not honour
/// `flock` across hosts.
public final class OutputLock {
    public static let fileName = "dpkit.lock"

    /// Who holds a lock, as written in the lock file.
    public struct Holder: Hashable, Sendable {
        public var pid: Int32
        public var host: String
        /// ISO 8601, UTC.
        public var started: String
        public var command: String

        public init(pid: Int32, host: String, started: String, command: String) {
            self.pid = pid
            self.host = host
            self.started = started
            self.command = command
        }

        /// This process, now.
        public static func current(command: String, now: Date = Date()) -> Holder {
            let formatter = ISO8601DateFormatter()
            return Holder(pid: getpid(), host: hostName(), started: formatter.string(from: now), command: command)
        }

        /// `gethostname`, without the DNS lookup `ProcessInfo.hostName` may make.
        static func hostName() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        var text: String { "pid: \(pid)\nhost: \(host)\nstarted: \(started)\ncommand: \(command)\n" }

        /// Parses the lock file's text; nil when it is empty or incomplete.
        init?(text: String) {
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            guard let pid = fields["pid"].flatMap({ Int32($0) }), let host = fields["host"] else { return nil }
            self.init(pid: pid, host: host, started: fields["started"] ?? "?", command: fields["command"] ?? "?")
        }
    }

    public let url: URL
    public let holder: Holder
    private var descriptor: Int32

    /// Takes the lock of `directory` (which must exist) without waiting.
    /// - Throws: ``OutputError`` of kind ``OutputError/Kind/locked`` naming the holder when another
    ///   process (or another `OutputLock`) holds it; ``FileError`` when the lock file cannot be
    ///   created (permission denied, read-only file system, ...).
    public init(directory: URL, holder: Holder) throws {
        url = directory.appendingPathComponent(Self.fileName)
        self.holder = holder
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FileError(
                .createOutput, path: directory.path, errno: errno, hint: "creating its lock file \(Self.fileName)")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            if e == EINTR { continue }
            close(fd)
            guard e == EWOULDBLOCK else {
                throw FileError(.createOutput, path: directory.path, errno: e, hint: "locking \(Self.fileName)")
            }
            let text = (try? FileIO.readText(url.path)) ?? nil
            throw OutputError(
                Self.lockedMessage(directory: directory, holder: text.flatMap(Holder.init(text:))), kind: .locked)
        }
        descriptor = fd
        // Who holds it, for the error of the next process. The lock is ours even if this fails.
        let bytes = Array(holder.text.utf8)
        if ftruncate(fd, 0) == 0 {
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            _ = fsync(fd)
        }
    }

    static func lockedMessage(directory: URL, holder: Holder?) -> String {
        let who =
            holder.map { h in
                "pid \(h.pid) on host \(h.host), started \(h.started), command `\(h.command)`"
            } ?? "a process that has not written its details yet"
        return "\(directory.path) is in use by another dpkit process (\(who)); "
            + "wait for it to end or choose another output folder. Its lock is released when it ends, also when it is killed"
    }

    /// Releases the lock (also done on deinit and, by the kernel, when the process ends).
    public func release() {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        _ = flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
