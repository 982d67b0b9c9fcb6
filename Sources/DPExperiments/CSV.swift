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
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
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
            if let p = pending { pending = nil; return p }
            return iterator.next()
        }
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; pending = n }
                    } else { inQuotes = false }
                } else {
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty: inQuotes = true; fieldStarted = true
            case ",": row.append(field); field = ""; fieldStarted = true
            case "\r": break
            case "\n":
                row.append(field)
                rows.append(row)
                row = []; field = ""; fieldStarted = false
            default: field.unicodeScalars.append(c); fieldStarted = true
            }
        }
        if fieldStarted || !row.isEmpty { row.append(field); rows.append(row) }
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

/// Error of file output.
public struct OutputError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Append-only files whose every line is complete: one `write` call per complete line, `fsync`
/// after it, and a trailing partial line (left by a kill) cut off when the file is opened.
public enum DurableFile {
    /// Cuts a trailing partial line; returns the number of bytes removed.
    @discardableResult
    public static func repairTrailingPartialLine(at url: URL) throws -> Int {
        guard let data = FileManager.default.contents(atPath: url.path), !data.isEmpty, data.last != UInt8(ascii: "\n") else {
            return 0
        }
        let keep = data.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let fd = open(url.path, O_WRONLY)
        guard fd >= 0 else { throw OutputError("cannot open \(url.path) to repair it: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(keep)) == 0, fsync(fd) == 0 else {
            throw OutputError("cannot truncate \(url.path): \(String(cString: strerror(errno)))")
        }
        return data.count - keep
    }

    /// Appends complete lines with one `write` call and syncs them to disk.
    public static func append(_ text: String, to url: URL) throws {
        precondition(text.isEmpty || text.hasSuffix("\n"), "DurableFile.append takes complete lines")
        let fd = open(url.path, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard fd >= 0 else { throw OutputError("cannot open \(url.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw OutputError("short write to \(url.path) (\(written) of \(bytes.count) bytes): \(String(cString: strerror(errno)))")
        }
        guard fsync(fd) == 0 else { throw OutputError("fsync of \(url.path) failed: \(String(cString: strerror(errno)))") }
    }

    /// Writes a file via a temporary file in the same directory, fsync and rename, so readers see
    /// the old or the new file, never a mix.
    public static func writeAtomically(_ text: String, to url: URL) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        try? FileManager.default.removeItem(at: temp)
        try append(text.isEmpty || text.hasSuffix("\n") ? text : text + "\n", to: temp)
        guard rename(temp.path, url.path) == 0 else {
            throw OutputError("cannot rename \(temp.path) to \(url.path): \(String(cString: strerror(errno)))")
        }
        let dir = open(url.deletingLastPathComponent().path, O_RDONLY)
        if dir >= 0 { _ = fsync(dir); close(dir) }
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
                if n < 0 { if errno == EINTR { continue }; return false }
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
        if dir >= 0 { _ = fsync(dir); close(dir) }
    }
}
