import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 4180 CSV as pandas `read_csv` reads it: comma separated, `\n` line ends, fields with a
/// comma, quote, or line break quoted with `"` and inner quotes doubled; an empty field is a
/// missing value.
public enum CSV {
    /// One line (with its `\n`) of quoted fields.
    public static func line(_ fields: [String]) -> String {
        fields.map(quote).joined(separator: ",") + "\n"
    }

    /// Quotes a field when it needs it.
    public static func quote(_ field: String) -> String {
        guard
            field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                || field.hasPrefix(" ") || field.hasSuffix(" ")
        else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Parses CSV text into rows of fields. A trailing line without `\n` is returned too.
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var inQuotes = false
        var fieldStarted = false
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending {
                pending = nil
                return p
            }
            return iterator.next()
        }
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" {
                            field.unicodeScalars.append("\"")
                        } else {
                            inQuotes = false
                            pending = n
                        }
                    } else {
                        inQuotes = false
                    }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty:
                inQuotes = true
                fieldStarted = true
            case ",":
                row.append(field)
                field = ""
                fieldStarted = true
            case "\r": break
            case "\n":
                row.append(field)
                rows.append(row)
                row = []
                field = ""
                fieldStarted = false
            default:
                field.unicodeScalars.append(c)
                fieldStarted = true
            }
        }
        if fieldStarted || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }

    /// Parses CSV text with a header into a header and rows keyed by column name.
    public static func table(_ text: String) -> (header: [String], rows: [[String: String]]) {
        let all = parse(text)
        guard let header = all.first else { return ([], []) }
        let rows = all.dropFirst().filter { $0 != [""] }.map { fields in
            Dictionary(zip(header, fields).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })
        }
        return (header, rows)
    }
}

/// A number as a CSV field: shortest round-trip form, `inf`/`-inf`/`nan` spelled as pandas reads
/// them, nil as the empty (missing) field.
public func csvNumber(_ value: Double?) -> String {
    guard let value else { return "" }
    if value.isNaN { return "nan" }
    if value.isInfinite { return value > 0 ? "inf" : "-inf" }
    return ConfigValue.numberText(value)
}

/// An error about results (not about a file's bytes: those are ``FileError``s).
public struct OutputError: Error, CustomStringConvertible, Sendable {
    /// What kind of problem; decides the exit status.
    public enum Kind: Sendable {
        /// The user asked for something the files cannot give (a missing column, a wrong folder).
        case usage
        /// The output folder holds other results, or files written with other columns.
        case cannotCreateOutput
        /// The files are inconsistent or cannot be written.
        case io
        /// No finished run to tabulate or plot yet.
        case nothingToShow
        /// Another dpkit process holds the output folder's lock.
        case locked

        var exitStatus: ExitStatus {
            switch self {
            case .usage: return .usage
            case .cannotCreateOutput: return .cannotCreateOutput
            case .io: return .ioError
            case .nothingToShow: return .failure
            case .locked: return .locked
            }
        }
    }

    public var description: String
    public var kind: Kind
    public init(_ description: String, kind: Kind = .io) {
        self.description = description
        self.kind = kind
    }
}

/// Append-only files whose every line is complete: one `write` call per complete line, `fsync`
/// after it, and a trailing partial line (left by a kill) cut off when the file is opened.
/// Every failure is a ``FileError`` naming the path and the reason in words.
public enum DurableFile {
    /// Cuts a trailing partial line; returns the number of bytes removed.
    @discardableResult
    public static func repairTrailingPartialLine(at url: URL) throws -> Int {
        guard let data = try FileIO.readBytes(url.path), !data.isEmpty, data.last != UInt8(ascii: "\n") else {
            return 0
        }
        let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let fd = open(url.path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FileError(.write, path: url.path, errno: errno, hint: "cutting off a partial last line")
        }
        defer { close(fd) }
        guard ftruncate(fd, off_t(keep)) == 0, fsync(fd) == 0 else {
            throw FileError(.write, path: url.path, errno: errno, hint: "cutting off a partial last line")
        }
        return data.count - keep
    }

    /// Appends complete lines with one `write` call and syncs them to disk.
    public static func append(_ text: String, to url: URL) throws {
        precondition(text.isEmpty || text.hasSuffix("\n"), "DurableFile.append takes complete lines")
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileError(.write, path: url.path, errno: errno) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            // A short write without an error is the device running full.
            let e = written < 0 ? errno : ENOSPC
            throw FileError(
                .write, path: url.path, errno: e,
                hint: written > 0
                    ? "\(written) of \(bytes.count) bytes written; the partial line is cut off at the next start" : nil)
        }
        guard fsync(fd) == 0 else { throw FileError(.write, path: url.path, errno: errno, hint: "fsync failed") }
    }

    /// Writes a file via a temporary file in the same directory, fsync and rename, so readers see
    /// the old or the new file, never a mix. On failure the old file is left as it was.
    public static func writeAtomically(_ text: String, to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        let kept =
            FileManager.default.fileExists(atPath: url.path) ? "the previous \(url.lastPathComponent) is kept" : nil
        unlink(temp.path)
        do {
            try append(text.isEmpty || text.hasSuffix("\n") ? text : text + "\n", to: temp)
        } catch var error as FileError {
            unlink(temp.path)
            error.path = url.path
            error.hint = kept // the partial temporary file is gone
            throw error
        }
        guard rename(temp.path, url.path) == 0 else {
            let e = errno
            unlink(temp.path)
            throw FileError(
                .write, path: url.path, errno: e,
                hint: ["renaming \(temp.lastPathComponent) over it failed", kept].compactMap { $0 }.joined(
                    separator: "; "))
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// Binary files (checkpoints, models): temporary file, one write, fsync, rename, fsync of
    /// the directory.
    public static func writeAtomically(_ data: Data, to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        try? FileManager.default.removeItem(at: temp)
        let fd = open(temp.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw OutputError("cannot create \(temp.path): \(String(cString: strerror(errno)))") }
        var offset = 0
        let ok = data.withUnsafeBytes { raw -> Bool in
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return fsync(fd) == 0
        }
        let failure = String(cString: strerror(errno))
        close(fd)
        guard ok else {
            try? FileManager.default.removeItem(at: temp)
            throw OutputError("cannot write \(temp.path) (\(offset) of \(data.count) bytes): \(failure)")
        }
        guard rename(temp.path, url.path) == 0 else {
            throw OutputError("cannot rename \(temp.path) to \(url.path): \(String(cString: strerror(errno)))")
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }
}
