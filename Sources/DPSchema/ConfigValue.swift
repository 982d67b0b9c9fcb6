import Foundation

/// A dynamically typed configuration or JSON value whose maps keep their key order.
///
/// Parsed YAML becomes a `ConfigValue` tree before validation into typed structs; sweeps and
/// `include:` entries are applied to this tree, so a swept value is validated exactly like a
/// value written in the file. The same type carries opaque JSON (a run's privacy ledger).
public enum ConfigValue: Hashable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([ConfigValue])
    /// Key order is the order in the file; equality and hashing use `canonicalJSON` (order-free).
    case map([(key: String, value: ConfigValue)])

    public static func == (lhs: ConfigValue, rhs: ConfigValue) -> Bool {
        lhs.canonicalJSON == rhs.canonicalJSON
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(canonicalJSON) }
}

// MARK: - Access

extension ConfigValue {
    /// The value at `key` of a map, or nil.
    public subscript(key: String) -> ConfigValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first(where: { $0.key == key })?.value
    }

    /// The value at a dotted key path such as `privacy.noise_multiplier`, or nil.
    public func value(atPath path: String) -> ConfigValue? {
        var current: ConfigValue? = self
        for component in path.split(separator: ".", omittingEmptySubsequences: false) {
            current = current?[String(component)]
        }
        return current
    }

    /// Sets (or, for `.null`, removes) the value at a dotted key path, creating maps on the way.
    /// Returns false when a component on the way is not a map.
    @discardableResult
    public mutating func setValue(_ value: ConfigValue, atPath path: String) -> Bool {
        let components = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        return Self.set(value, components: components[...], in: &self)
    }

    private static func set(_ value: ConfigValue, components: ArraySlice<String>, in node: inout ConfigValue) -> Bool {
        guard let key = components.first else {
            node = value
            return true
        }
        if case .null = node { node = .map([]) }
        guard case .map(var pairs) = node else { return false }
        let index = pairs.firstIndex(where: { $0.key == key })
        if components.count == 1, case .null = value {
            if let index { pairs.remove(at: index) }
            node = .map(pairs)
            return true
        }
        var child = index.map { pairs[$0].value } ?? .null
        guard set(value, components: components.dropFirst(), in: &child) else { return false }
        if let index { pairs[index].value = child } else { pairs.append((key, child)) }
        node = .map(pairs)
        return true
    }

    /// The name of the value's type as used in error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int: return "an integer"
        case .double: return "a number"
        case .string: return "a string"
        case .list: return "a list"
        case .map: return "a map"
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var listValue: [ConfigValue]? {
        if case .list(let l) = self { return l }
        return nil
    }
}

// MARK: - Rendering

extension ConfigValue {
    /// Compact JSON with map keys sorted and numbers in Swift's shortest round-trip form.
    /// Config hashes are computed from this text: changing it changes every hash.
    public var canonicalJSON: String {
        var out = ""
        writeJSON(into: &out, sortKeys: true, indent: nil, level: 0)
        return out
    }

    /// JSON text; keys keep their order unless `sortKeys`.
    public func jsonText(sortKeys: Bool = false, pretty: Bool = true) -> String {
        var out = ""
        writeJSON(into: &out, sortKeys: sortKeys, indent: pretty ? "  " : nil, level: 0)
        return out
    }

    private func writeJSON(into out: inout String, sortKeys: Bool, indent: String?, level: Int) {
        let newline = indent == nil ? "" : "\n"
        let pad = { (n: Int) in indent.map { String(repeating: $0, count: n) } ?? "" }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            // JSON has no infinity or NaN; such values become null.
            out += d.isFinite ? Self.numberText(d) : "null"
        case .string(let s): out += Self.jsonQuoted(s)
        case .list(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "[" + newline
            for (i, item) in items.enumerated() {
                out += pad(level + 1)
                item.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
                out += (i + 1 < items.count ? "," : "") + newline
            }
            out += pad(level) + "]"
        case .map(let pairs):
            if pairs.isEmpty {
                out += "{}"
                return
            }
            let ordered = sortKeys ? pairs.sorted { $0.key < $1.key } : pairs
            out += "{" + newline
            for (i, pair) in ordered.enumerated() {
                out += pad(level + 1) + Self.jsonQuoted(pair.key) + (indent == nil ? ":" : ": ")
                pair.value.writeJSON(into: &out, sortKeys: sortKeys, indent: indent, level: level + 1)
                out += (i + 1 < ordered.count ? "," : "") + newline
            }
            out += pad(level) + "}"
        }
    }

    /// A double in Swift's shortest round-trip form, with integral values written without `.0`.
    public static func numberText(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(Int(d)) }
        return "\(d)"
    }

    public static func jsonQuoted(_ s: String) -> String {
        let body = s.replacingScalars { scalar in
            switch scalar {
            case "\"": "\\\""
            case "\\": "\\\\"
            case "\n": "\\n"
            case "\r": "\\r"
            case "\t": "\\t"
            case _ where scalar.value < 0x20: String(format: "\\u%04x", scalar.value)
            default: nil
            }
        }
        return "\"" + body + "\""
    }

    /// The value as it appears in a CSV cell or a table label: strings bare, numbers in shortest
    /// form, lists as `[a, b]`, null as the empty string.
    public var displayText: String {
        switch self {
        case .null: return ""
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return Self.numberText(d)
        case .string(let s): return s
        case .list(let items): return "[" + items.map(\.displayText).joined(separator: ", ") + "]"
        case .map: return canonicalJSON
        }
    }
}

// MARK: - Codable

/// A `ConfigValue` is encoded as the JSON value it stands for (maps as keyed containers, lists
/// as unkeyed ones) and decoded from any such value; a decoded map's keys are in sorted order.
extension ConfigValue: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .list(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .map(let pairs):
            var c = encoder.container(keyedBy: Key.self)
            for (key, value) in pairs { try c.encode(value, forKey: Key(stringValue: key)) }
        default:
            var c = encoder.singleValueContainer()
            switch self {
            case .bool(let b): try c.encode(b)
            case .int(let i): try c.encode(i)
            case .double(let d): try c.encode(d)
            case .string(let s): try c.encode(s)
            default: try c.encodeNil()
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        if let c = try? decoder.container(keyedBy: Key.self) {
            self = .map(
                try c.allKeys.sorted { $0.stringValue < $1.stringValue }.map {
                    ($0.stringValue, try c.decode(ConfigValue.self, forKey: $0))
                })
        } else if var c = try? decoder.unkeyedContainer() {
            var items: [ConfigValue] = []
            while !c.isAtEnd { items.append(try c.decode(ConfigValue.self)) }
            self = .list(items)
        } else {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? c.decode(Int.self) {
                self = .int(i)
            } else if let d = try? c.decode(Double.self) {
                self = .double(d)
            } else {
                self = .string(try c.decode(String.self))
            }
        }
    }
}
