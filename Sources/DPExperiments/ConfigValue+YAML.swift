import Foundation
import Yams

// MARK: - Conversion from YAML and JSON

extension ConfigValue {
    /// Parses YAML text and records the line of every key path in `lines` (for error messages).
    /// - Throws: `ConfigError` for malformed YAML, non-string keys and duplicate keys.
    public static func parseYAML(_ text: String, file: String) throws -> (value: ConfigValue, lines: [String: Int]) {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(file: file, path: "", message: "is not valid YAML: \(error)")
        }
        var lines: [String: Int] = [:]
        guard let node else { return (.map([]), lines) }
        let value = try convert(node, path: "", file: file, lines: &lines)
        return (value, lines)
    }

    private static func convert(
        _ node: Node, path: String, file: String, lines: inout [String: Int]
    ) throws -> ConfigValue {
        if let line = node.mark?.line, lines[path] == nil { lines[path] = line }
        switch node {
        case .scalar(let scalar):
            let tag = Tag.Name(rawValue: node.tag.description)
            if tag == .null { return .null }
            if tag == .bool, let b = node.bool { return .bool(b) }
            if tag == .int, let i = node.int { return .int(i) }
            if tag == .float, let d = node.float { return .double(d) }
            // YAML 1.1 resolves `1e-5` (no dot) as a string; read plain scalars that are numbers as numbers.
            if scalar.style == .plain || scalar.style == .any {
                if let i = Int(scalar.string) { return .int(i) }
                if let d = Double(scalar.string), d.isFinite { return .double(d) }
            }
            return .string(scalar.string)
        case .sequence(let sequence):
            return .list(
                try sequence.enumerated().map { i, item in
                    try convert(item, path: "\(path)[\(i)]", file: file, lines: &lines)
                })
        case .mapping(let mapping):
            var pairs: [(key: String, value: ConfigValue)] = []
            for (keyNode, valueNode) in mapping {
                guard let key = keyNode.string else {
                    throw ConfigError(
                        file: file, path: path, line: keyNode.mark?.line, message: "has a key that is not a string")
                }
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                if pairs.contains(where: { $0.key == key }) {
                    throw ConfigError(
                        file: file, path: childPath, line: keyNode.mark?.line,
                        message: "appears twice; each key may appear once")
                }
                if let line = keyNode.mark?.line { lines[childPath] = line }
                pairs.append((key, try convert(valueNode, path: childPath, file: file, lines: &lines)))
            }
            return .map(pairs)
        }
    }

    /// Converts an object from `JSONSerialization` (for the opaque privacy ledger).
    public init(jsonObject: Any) {
        switch jsonObject {
        case let b as Bool where type(of: jsonObject) == Bool.self: self = .bool(b)
        case let n as NSNumber:
            if String(cString: n.objCType) == "c" {
                self = .bool(n.boolValue)
            } else if let i = Int(exactly: n.doubleValue), !String(cString: n.objCType).contains("d") {
                self = .int(i)
            } else {
                self = .double(n.doubleValue)
            }
        case let i as Int: self = .int(i)
        case let d as Double: self = .double(d)
        case let s as String: self = .string(s)
        case let a as [Any]: self = .list(a.map(ConfigValue.init(jsonObject:)))
        case let m as [String: Any]:
            self = .map(m.keys.sorted().map { ($0, ConfigValue(jsonObject: m[$0]!)) })
        default: self = .null
        }
    }

    /// Parses JSON data (for the opaque privacy ledger).
    public init(jsonData: Data) throws {
        self.init(jsonObject: try JSONSerialization.jsonObject(with: jsonData, options: [.fragmentsAllowed]))
    }
}
