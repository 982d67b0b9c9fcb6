import DPCrypto
import DPTraining
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - File errors

/// A filesystem or encoding failure, in words: the path, what DPKit was doing, and why it failed.
///
/// `description` reads like `cannot create the output folder /data/out: read-only file system`,
/// never like `NSCocoaErrorDomain Code=513`. Every Foundation or POSIX error that reaches the
/// user goes through ``FileError/Reason/init(_:)``.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What DPKit was doing; decides the exit status.
    public enum Action: String, Sendable {
        case readConfig = "cannot read the config"
        case createOutput = "cannot create the output folder"
        case createFile = "cannot create"
        case read = "cannot read"
        case write = "cannot write"
    }

    /// Why, in words.
    public enum Reason: Equatable, Sendable {
        case permissionDenied
        /// The path, or a folder on the way to it, is a file.
        case notADirectory
        /// A file was expected and the path is a folder.
        case isADirectory
        case readOnlyFileSystem
        /// No space left on the device, or the disk quota is used up.
        case diskFull
        case notFound
        /// The bytes are not UTF-8; the detail names the first bad byte and where it is.
        case notUTF8(String)
        /// Any other errno, as the C library words it.
        case other(String)

        /// The errno of a failed system call.
        public init(errno code: Int32) {
            switch code {
            case EACCES, EPERM: self = .permissionDenied
            case ENOTDIR: self = .notADirectory
            case EISDIR: self = .isADirectory
            case EROFS: self = .readOnlyFileSystem
            case ENOSPC, EDQUOT: self = .diskFull
            case ENOENT: self = .notFound
            default: self = .other(String(cString: strerror(code)).lowercased())
            }
        }

        /// The reason of any error Foundation or the C library throws: the POSIX code when the
        /// error carries one (directly or as its underlying error), else the Cocoa file error
        /// code, else the error's own text.
        public init(_ error: Error) {
            if let file = error as? FileError {
                self = file.reason
                return
            }
            if let posix = error as? POSIXError {
                self.init(errno: posix.code.rawValue)
                return
            }
            let ns = error as NSError
            if ns.domain == NSPOSIXErrorDomain {
                self.init(errno: Int32(ns.code))
                return
            }
            if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
                self.init(errno: Int32(underlying.code))
                return
            }
            if ns.domain == NSCocoaErrorDomain {
                switch CocoaError.Code(rawValue: ns.code) {
                case .fileReadNoPermission, .fileWriteNoPermission:
                    self = .permissionDenied
                    return
                case .fileWriteVolumeReadOnly:
                    self = .readOnlyFileSystem
                    return
                case .fileWriteOutOfSpace:
                    self = .diskFull
                    return
                case .fileNoSuchFile, .fileReadNoSuchFile:
                    self = .notFound
                    return
                case .fileReadInapplicableStringEncoding, .fileReadUnknownStringEncoding,
                    .fileWriteInapplicableStringEncoding:
                    self = .notUTF8("not UTF-8 text")
                    return
                default: break
                }
            }
            self = .other("\(error)")
        }

        public var text: String {
            switch self {
            case .permissionDenied: return "permission denied"
            case .notADirectory: return "not a directory"
            case .isADirectory: return "is a folder, not a file"
            case .readOnlyFileSystem: return "read-only file system"
            case .diskFull: return "disk full (no space left on the device)"
            case .notFound: return "no such file or folder"
            case .notUTF8(let detail): return detail
            case .other(let text): return text
            }
        }
    }

    public var path: String
    public var action: Action
    public var reason: Reason
    /// What to do about it, when DPKit knows.
    public var hint: String?

    public init(_ action: Action, path: String, reason: Reason, hint: String? = nil) {
        self.action = action
        self.path = path
        self.reason = reason
        self.hint = hint
    }

    /// A failure of a system call that set `errno`.
    public init(_ action: Action, path: String, errno code: Int32, hint: String? = nil) {
        self.init(action, path: path, reason: Reason(errno: code), hint: hint)
    }

    public var description: String {
        "\(action.rawValue) \(path): \(reason.text)" + (hint.map { "; \($0)" } ?? "")
    }
}

// MARK: - Exit status

/// The exit status of every `dpkit` command, one per kind of outcome (the `sysexits.h` numbers
/// where one fits). `dpkit --help` prints ``documentation``.
public enum ExitStatus: Int32, CaseIterable, Sendable {
    case ok = 0
    /// A run failed (the others' results are kept), or there is nothing to show yet.
    case failure = 1
    /// A bad flag or option, or a config that cannot be read or is invalid (EX_USAGE).
    case usage = 64
    /// An encrypted file that fails authentication or is not for the given key, or a signed
    /// folder that does not verify (EX_DATAERR).
    case dataError = 65
    /// The output folder or file cannot be created, or already holds other results (EX_CANTCREAT).
    case cannotCreateOutput = 73
    /// Reading or writing results failed: disk full, permission denied, not UTF-8 (EX_IOERR).
    case ioError = 74
    /// Another dpkit process holds the output folder's lock (EX_TEMPFAIL: try again later).
    case locked = 75

    /// The exit status an error leads to.
    public init(for error: Error) {
        switch error {
        case is ConfigError: self = .usage
        case let e as FileError:
            switch e.action {
            case .readConfig: self = .usage
            case .createOutput, .createFile: self = .cannotCreateOutput
            case .read, .write: self = .ioError
            }
        case let e as OutputError: self = e.kind.exitStatus
        case let e as CryptoError: self = ExitStatus(for: e)
        case TrainingError.invalidSetting: self = .usage
        default:
            let ns = error as NSError
            self =
                ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain || error is POSIXError
                ? .ioError : .failure
        }
    }

    /// The table printed by `dpkit --help`.
    public static var documentation: String {
        """
        Exit status:
          0   success
          1   a run failed (the other results are kept; --resume redoes it),
              or a table or plot has no finished run to show yet
          64  usage or config error: a bad flag, a config file that is
              missing, a folder, not UTF-8 or invalid, or a run that cannot
              be planned (a target epsilon no noise reaches)
          65  data error: an encrypted file fails authentication (modified,
              truncated, reordered) or is not for the given key, or a signed
              folder does not verify
          73  cannot create output: the output path (or a folder on the way)
              is a file, permission denied, read-only file system, or the
              folder already holds results (use --resume)
          74  I/O error reading or writing results: disk full, permission
              denied, not UTF-8 (results already written are kept)
          75  the output folder is locked by another dpkit process (the
              message names it); run again when it has ended
        """
    }
}

extension ExitStatus {
    /// Key and setting problems are usage errors; files that do not authenticate, data errors.
    init(for error: CryptoError) {
        switch error {
        case .keyFileMissing, .keyFileTooOpen, .notAKey, .keyTooSmall, .invalidSetting: self = .usage
        case .outputExists, .keyFileExists: self = .cannotCreateOutput
        case .io: self = .ioError
        case .notAnEnvelope, .unsupportedVersion, .malformedHeader, .notARecipient, .noPassphraseEntry,
            .wrongPassphrase, .keyUnwrapFailed, .chunkAuthenticationFailed, .truncated, .trailingData, .unsigned,
            .malformedSignature:
            self = .dataError
        }
    }
}

/// The text to show for any error: its own description for DPKit's errors, the path and the
/// reason in words for Foundation's file errors (never `NSCocoaErrorDomain Code=...`).
public func plainDescription(of error: Error) -> String {
    if let e = error as? FileError { return e.description }
    if let e = error as? OutputError { return e.description }
    if let e = error as? ConfigError { return e.description }
    if let e = error as? TrainingError { return e.description }
    if let e = error as? CryptoError { return e.description }
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain || error is POSIXError else {
        return "\(error)"
    }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    let reason = FileError.Reason(error).text
    return path.map { "\($0): \(reason)" } ?? reason
}

// MARK: - Reading and creating

/// File operations whose every failure is a ``FileError``.
public enum FileIO {
    /// The bytes of a regular file, or nil when it does not exist.
    public static func readBytes(_ path: String, action: FileError.Action = .read) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return nil }
            throw FileError(action, path: path, errno: e)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(action, path: path, errno: errno) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw FileError(action, path: path, reason: .isADirectory) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(action, path: path, errno: errno)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// The text of a UTF-8 file (a leading byte-order mark dropped), or nil when it does not exist.
    /// - Throws: ``FileError`` with ``FileError/Reason/notUTF8(_:)`` naming the line and column
    ///   of the first byte that is not UTF-8.
    public static func readText(_ path: String, action: FileError.Action = .read) throws -> String? {
        guard var bytes = try readBytes(path, action: action) else { return nil }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        return try decodeUTF8(bytes, path: path, action: action)
    }

    /// `bytes` as UTF-8 text.
    /// - Throws: ``FileError`` naming the first byte that is not UTF-8, its line and column.
    public static func decodeUTF8(_ bytes: [UInt8], path: String, action: FileError.Action = .read) throws -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        loop: while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: break loop
            case .error:
                let before = bytes[..<offset]
                let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
                let column = offset - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
                let byte = String(format: "0x%02X", bytes[offset])
                throw FileError(
                    action, path: path,
                    reason: .notUTF8(
                        "not UTF-8 text: byte \(byte) at line \(line), column \(column) (Latin-1 or Windows-1252?)"),
                    hint: "save it as UTF-8, e.g. `iconv -f latin1 -t utf-8 \(path) > fixed.yaml`")
            }
        }
        throw FileError(action, path: path, reason: .notUTF8("not UTF-8 text"))
    }

    /// Creates a folder and the folders on the way (`mkdir -p`).
    /// - Throws: ``FileError`` (``FileError/Action/createOutput``) naming the part of the path
    ///   that is a file, or the reason `mkdir` gave.
    public static func createDirectory(_ url: URL) throws {
        let path = url.standardizedFileURL.path
        var st = stat()
        var prefix = ""
        // Every folder on the way, the path last: an existing one must be a folder, a missing one is made.
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += "/" + component
            if stat(prefix, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFDIR else {
                    throw FileError(
                        .createOutput, path: path, reason: .notADirectory,
                        hint: prefix == path
                            ? "it is a file; choose another output folder"
                            : "\(prefix) is a file, not a folder; choose another output folder")
                }
                continue
            }
            if mkdir(prefix, 0o755) != 0, errno != EEXIST {
                let e = errno
                throw FileError(.createOutput, path: path, errno: e, hint: prefix == path ? nil : "creating \(prefix)")
            }
        }
    }
}
