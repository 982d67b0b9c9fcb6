import DPCrypto
import DPTensor

/// Tabular data from a CSV file: a header row of column names, one named label column and
/// numeric features in every other column, one example per row.
///
/// Labels are integer classes (`0, 1, ...`; the class count is the largest plus one) or
/// strings, mapped to indices in sorted order; the mapping is ``Dataset/classNames``. Fields
/// are separated by commas and may be surrounded by spaces or double quotes (quoted commas
/// are not supported). Blank lines are skipped; `\r\n` line ends are accepted.
public enum CSVDataset {
    /// The most classes integer labels may make (`0...largest label`).
    public static let maxIntegerClasses = 100_000

    /// Reads `path`.
    ///
    /// - Parameters:
    ///   - labelColumn: the header name of the label column.
    ///   - classNames: the mapping to use (the training set's ``Dataset/classNames`` when
    ///     reading its test set); `nil` infers it from this file.
    ///   - featureColumns: the feature columns required, in order (the training set's, when
    ///     reading its test set); `nil` takes every column but the label.
    /// - Throws: ``DataError`` naming the file, line and column: a missing label column, a
    ///   ragged row, a field that is not a finite number, an unknown label.
    public static func load(
        _ path: String, labelColumn: String = "label", classNames: [String]? = nil,
        featureColumns: [String]? = nil, name: String? = nil, key: DecryptionKey? = nil
    ) throws -> (dataset: Dataset, featureColumns: [String]) {
        let bytes = try FileBytes.read(path, missingFix: "check the path of the CSV file.", key: key)
        return try parse(
            String(decoding: bytes, as: UTF8.self), path: path, labelColumn: labelColumn,
            classNames: classNames, featureColumns: featureColumns, name: name ?? path)
    }

    /// The number of examples in `path` (its non-blank lines after the header), without parsing them.
    public static func rowCount(_ path: String, key: DecryptionKey? = nil) throws -> Int {
        let bytes = try FileBytes.read(path, missingFix: "check the path of the CSV file.", key: key)
        let lines = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
        return max(0, lines.filter { !clean($0).isEmpty }.count - 1)
    }

    /// Parses CSV text (see ``load(_:labelColumn:classNames:featureColumns:name:)``); `path` names it in errors.
    public static func parse(
        _ text: String, path: String, labelColumn: String = "label", classNames: [String]? = nil,
        featureColumns: [String]? = nil, name: String
    ) throws -> (dataset: Dataset, featureColumns: [String]) {
        // `isNewline` splits `\n`, `\r\n` (one Character in Swift) and `\r`.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var lineIndex = 0
        while lineIndex < lines.count && clean(lines[lineIndex]).isEmpty { lineIndex += 1 }
        guard lineIndex < lines.count else {
            throw DataError.csv(
                path: path, line: 1, column: nil, problem: "the file is empty",
                fix: "write a header row of column names, then one row per example.")
        }
        let headerLine = lineIndex + 1
        let header = fields(lines[lineIndex]).map(String.init)
        guard let labelIndex = header.firstIndex(of: labelColumn) else {
            throw DataError.csv(
                path: path, line: headerLine, column: nil,
                problem: "no label column '\(labelColumn)' in the header (columns: \(header.joined(separator: ", ")))",
                fix: "name the label column '\(labelColumn)' or pass the name of the label column.")
        }
        let features = header.indices.filter { $0 != labelIndex }
        let names = features.map { header[$0] }
        if let required = featureColumns, required != names {
            throw DataError.csv(
                path: path, line: headerLine, column: nil,
                problem:
                    "feature columns [\(names.joined(separator: ", "))] differ from the training set's [\(required.joined(separator: ", "))]",
                fix: "give the test file the same columns in the same order as the training file.")
        }

        var values: [Float] = []
        var rawLabels: [Substring] = []
        var labelLines: [Int] = []
        for li in (lineIndex + 1)..<lines.count {
            let line = lines[li]
            if clean(line).isEmpty { continue }
            let row = fields(line)
            guard row.count == header.count else {
                throw DataError.csv(
                    path: path, line: li + 1, column: nil,
                    problem: "ragged row: \(row.count) fields, the header has \(header.count)",
                    fix: "give every row one field per header column.")
            }
            for j in features {
                guard let v = Float(row[j]), v.isFinite else {
                    throw DataError.csv(
                        path: path, line: li + 1, column: "'\(header[j])' (\(j + 1))",
                        problem: "'\(row[j])' is not a finite number",
                        fix: "write a decimal number; fill or drop missing values before loading.")
                }
                values.append(v)
            }
            rawLabels.append(row[labelIndex])
            labelLines.append(li + 1)
        }
        guard !rawLabels.isEmpty else {
            throw DataError.csv(
                path: path, line: headerLine, column: nil, problem: "no data rows after the header",
                fix: "add one row per example.")
        }

        let labelColumnName = "'\(labelColumn)' (\(labelIndex + 1))"
        let mapping: [String]
        if let given = classNames {
            mapping = given
        } else if rawLabels.allSatisfy({ Int($0) != nil }) {
            var largest = 0
            for (k, s) in rawLabels.enumerated() {
                let y = Int(s)!
                guard y >= 0 else {
                    throw DataError.csv(
                        path: path, line: labelLines[k], column: labelColumnName,
                        problem: "integer label \(y) is negative",
                        fix: "number the classes 0, 1, 2, ...")
                }
                // Integer labels make classes 0...largest: a stray huge label would make that many.
                guard y < maxIntegerClasses else {
                    throw DataError.csv(
                        path: path, line: labelLines[k], column: labelColumnName,
                        problem:
                            "integer label \(y) would make \(y + 1) classes; at most \(maxIntegerClasses) are allowed",
                        fix:
                            "number the classes 0, 1, 2, ... (or write the labels as names, which are mapped in sorted order)."
                    )
                }
                largest = max(largest, y)
            }
            mapping = (0...largest).map(String.init)
        } else {
            mapping = Set(rawLabels.map(String.init)).sorted()
        }
        var index: [String: Int] = [:]
        for (k, c) in mapping.enumerated() { index[c] = k }
        var labels: [Int] = []
        labels.reserveCapacity(rawLabels.count)
        for (k, s) in rawLabels.enumerated() {
            guard let y = index[String(s)] else {
                throw DataError.csv(
                    path: path, line: labelLines[k], column: labelColumnName,
                    problem: "label '\(s)' is not one of the training classes [\(mapping.joined(separator: ", "))]",
                    fix: "use only the classes of the training file.")
            }
            labels.append(y)
        }
        let tensor = Tensor(values, shape: [labels.count, names.count])
        return (
            Dataset(name: name, features: tensor, labels: labels, classCount: mapping.count, classNames: mapping), names
        )
    }

    private static func clean(_ line: Substring) -> Substring {
        line.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
    }

    /// The fields of a line, trimmed of spaces, `\r` and one pair of surrounding double quotes.
    private static func fields(_ line: Substring) -> [Substring] {
        line.split(separator: ",", omittingEmptySubsequences: false).map { f in
            var s = f
            while let c = s.first, c == " " || c == "\t" { s = s.dropFirst() }
            while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
            if s.count >= 2 && s.first == "\"" && s.last == "\"" { s = s.dropFirst().dropLast() }
            return s
        }
    }
}
