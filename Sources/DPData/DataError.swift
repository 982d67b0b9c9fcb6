/// A data error: a missing, corrupt or malformed file, or a bad dataset name or option.
///
/// Every message names the file (and line and column where there is one), states the problem
/// and gives the fix. Programmer mistakes (a batch index out of range) are preconditions, not
/// `DataError`s.
public enum DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file or folder does not exist; `fix` says how to get it.
    case missingFile(path: String, fix: String)
    /// The operating system refused to read the file.
    case unreadable(path: String, reason: String)
    /// The file is a DPKit envelope and no decryption key was given.
    case encrypted(path: String)
    /// The name ends in `.gz` but the file does not start with the gzip magic `1f 8b`.
    case notGzip(path: String)
    /// The gzip stream ends before its end marker.
    case truncatedGzip(path: String)
    /// zlib rejected the compressed data.
    case corruptGzip(path: String, reason: String)
    /// The first four bytes are not the IDX magic expected for this file.
    case badMagic(path: String, found: UInt32, expected: UInt32)
    /// The IDX dimensions are not the ones the dataset needs.
    case unexpectedDimensions(path: String, found: [Int], expected: String)
    /// The IDX payload is shorter than its dimensions say.
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// The IDX payload is longer than its dimensions say.
    case trailingBytes(path: String, expectedBytes: Int, actualBytes: Int)
    /// The image and label files hold different numbers of examples.
    case countMismatch(imagesPath: String, imageCount: Int, labelsPath: String, labelCount: Int)
    /// A label is outside `0..<classCount`.
    case labelOutOfRange(path: String, index: Int, label: Int, classCount: Int)
    /// A CSV file is malformed at `line` (1-based, the header is line 1) and `column`.
    case csv(path: String, line: Int, column: String?, problem: String, fix: String)
    /// The registry has no dataset of this name.
    case unknownDataset(name: String, valid: [String])
    /// A dataset option is not one the dataset accepts.
    case unknownOption(dataset: String, key: String, valid: [String])
    /// A dataset option has a value that cannot be used.
    case invalidOption(dataset: String, key: String, value: String, expected: String)

    public var description: String {
        switch self {
        case .missingFile(let path, let fix):
            return "\(path): not found. Fix: \(fix)"
        case .unreadable(let path, let reason):
            return "\(path): cannot be read (\(reason)). Fix: check the permissions and that it is a regular file."
        case .encrypted(let path):
            return "\(path): encrypted (a DPKit envelope), and no key was given. "
                + "Fix: set `dataset.decryption_key` to the private key (recipient.key.pem) it was encrypted for."
        case .notGzip(let path):
            return "\(path): not a gzip file (the name ends in .gz but the first bytes are not 1f 8b). "
                + "Fix: re-download the file, or rename it without .gz if it is raw."
        case .truncatedGzip(let path):
            return "\(path): truncated gzip stream (the file ends before the compressed data does). "
                + "Fix: re-download or reinstall the file."
        case .corruptGzip(let path, let reason):
            return "\(path): corrupt gzip data (zlib: \(reason)). Fix: re-download or reinstall the file."
        case .badMagic(let path, let found, let expected):
            return "\(path): bad IDX magic \(hex(found)), expected \(hex(expected)) (\(idxKind(expected))). "
                + "Fix: check that the file is the right one of the image/label pair and is not corrupt."
        case .unexpectedDimensions(let path, let found, let expected):
            return "\(path): IDX dimensions \(found), expected \(expected). Fix: use the matching dataset files."
        case .truncated(let path, let expected, let actual):
            return
                "\(path): truncated IDX file: the header's dimensions need \(expected) bytes, the file has \(actual). "
                + "Fix: re-download or reinstall the file."
        case .trailingBytes(let path, let expected, let actual):
            return "\(path): IDX file has \(actual - expected) bytes after the data its dimensions describe "
                + "(\(expected) expected, \(actual) found). Fix: re-download or reinstall the file."
        case .countMismatch(let imagesPath, let imageCount, let labelsPath, let labelCount):
            return "count mismatch: \(imagesPath) has \(imageCount) images but \(labelsPath) has \(labelCount) labels. "
                + "Fix: use the image and label files of the same split (train or t10k)."
        case .labelOutOfRange(let path, let index, let label, let classCount):
            return "\(path): label \(label) of example \(index) is out of range 0..<\(classCount). "
                + "Fix: check the label file, or the class count."
        case .csv(let path, let line, let column, let problem, let fix):
            let at = column.map { "line \(line), column \($0)" } ?? "line \(line)"
            return "\(path): \(at): \(problem). Fix: \(fix)"
        case .unknownDataset(let name, let valid):
            return "unknown dataset '\(name)'. Fix: use one of \(valid.joined(separator: ", "))."
        case .unknownOption(let dataset, let key, let valid):
            return "dataset '\(dataset)': unknown option '\(key)'. Fix: use one of \(valid.joined(separator: ", "))."
        case .invalidOption(let dataset, let key, let value, let expected):
            return "dataset '\(dataset)': option \(key)=\(value) is invalid. Fix: give \(expected)."
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - s.count)) + s
}

private func idxKind(_ magic: UInt32) -> String {
    switch magic {
    case IDX.labelMagic: return "unsigned-byte labels, 1 dimension"
    case IDX.imageMagic: return "unsigned-byte images, 3 dimensions"
    default: return "IDX"
    }
}
