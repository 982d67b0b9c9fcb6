/// Where values come from, for error messages.
struct ParseContext {
    var file: String
    /// Line of each key path in the file.
    var lines: [String: Int] = [:]
    /// Key paths whose value was set by a sweep or an include entry, and a note saying which.
    var origins: [String: String] = [:]
    var registries: PluginRegistries
    /// Every key path a reader accepted (shared by the readers of all runs), for `labels:`.
    var keyPaths = KeyPathRecorder()

    func error(_ path: String, _ message: String) -> ConfigError {
        var message = message
        var line = lines[path]
        // A value set by a sweep: point at the sweep entry.
        if let origin = origins.first(where: {
            path == $0.key || path.hasPrefix($0.key + ".") || path.hasPrefix($0.key + "[")
        }) {
            message += " (value from \(origin.value))"
            line = lines[origin.value.hasPrefix("sweep") ? "sweep.\(origin.key)" : "include"] ?? line
        }
        return ConfigError(file: file, path: path, line: line, message: message)
    }
}

/// The key paths that the readers of a config accepted.
final class KeyPathRecorder {
    private(set) var paths = Set<String>()
    func insert(_ path: String) { paths.insert(path) }
}

/// Reads one map of a config, checking types and ranges, remembering which keys are valid (for
/// the unknown-key check) and building the resolved map with defaults filled in.
final class MapReader {
    let context: ParseContext
    let path: String
    let pairs: [(key: String, value: ConfigValue)]
    private(set) var validKeys: [String] = []
    /// The resolved map: the keys read, in reading order, with defaults; the input of config hashes.
    var resolved: [(key: String, value: ConfigValue)] = []

    init(_ value: ConfigValue?, path: String, context: ParseContext) throws {
        self.context = context
        self.path = path
        switch value {
        case nil, .null?: pairs = []
        case .map(let p)?: pairs = p
        case let other?:
            throw context.error(path, "must be a map of keys to values, got \(other.typeName) \(other.displayText)")
        }
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ message: String) -> ConfigError { context.error(childPath(key), message) }

    /// The raw value of `key` (nil when absent or null); marks the key as valid.
    func raw(_ key: String) -> ConfigValue? {
        if !validKeys.contains(key) { validKeys.append(key) }
        context.keyPaths.insert(childPath(key))
        guard let value = pairs.first(where: { $0.key == key })?.value else { return nil }
        if case .null = value { return nil }
        return value
    }

    func has(_ key: String) -> Bool { raw(key) != nil }

    func record(_ key: String, _ value: ConfigValue?) {
        guard let value else { return }
        resolved.removeAll { $0.key == key }
        resolved.append((key, value))
    }

    /// Reads and validates one parameter; returns the value or its default, and records it.
    @discardableResult
    func read(_ spec: ParameterSpec, record shouldRecord: Bool = true) throws -> ConfigValue? {
        guard let value = raw(spec.name) else {
            if spec.required { throw error(spec.name, "is required; allowed: \(spec.allowedDescription)") }
            if shouldRecord { record(spec.name, spec.defaultValue) }
            return spec.defaultValue
        }
        let checked = try check(value, spec: spec, path: childPath(spec.name))
        if shouldRecord { record(spec.name, checked) }
        return checked
    }

    /// Checks a value against a spec; returns it normalised (integral numbers as `.int` for int kinds).
    func check(_ value: ConfigValue, spec: ParameterSpec, path: String) throws -> ConfigValue {
        func bad(_ what: String) -> ConfigError {
            context.error(path, "\(what); allowed: \(spec.allowedDescription)")
        }
        func number(_ v: ConfigValue, integral: Bool) throws -> ConfigValue {
            guard let d = v.doubleValue, !(integral && (d != d.rounded() || abs(d) > 1e15)) else {
                throw bad(
                    v == .string("")
                        ? "got an empty string"
                        : "got \(v.typeName) \(v.displayText.isEmpty ? "null" : "`\(v.displayText)`")")
            }
            // `.nan` and `.inf` are YAML floats; no parameter takes them.
            guard d.isFinite else { throw bad("got `\(v.displayText)`, which is not a finite number") }
            if let range = spec.range, !range.contains(d) {
                throw bad("\(v.displayText) is out of range")
            }
            return integral ? .int(Int(d)) : .double(d)
        }
        func list(_ element: (ConfigValue) throws -> ConfigValue) throws -> ConfigValue {
            let items: [ConfigValue]
            switch value {
            case .list(let l): items = l
            case .int, .double, .string: items = [value] // a scalar is a one-element list
            default: throw bad("got \(value.typeName)")
            }
            if let count = spec.count, items.count != count { throw bad("got \(items.count) values") }
            if items.isEmpty { throw bad("got an empty list") }
            return .list(try items.map(element))
        }
        switch spec.kind {
        case .bool:
            guard case .bool = value else { throw bad("got \(value.typeName) `\(value.displayText)`") }
            return value
        case .int: return try number(value, integral: true)
        case .double: return try number(value, integral: false)
        case .string:
            guard case .string = value else { throw bad("got \(value.typeName) `\(value.displayText)`") }
            return value
        case .choice(let options):
            guard case .string(let s) = value, options.contains(s) else {
                var message = "`\(value.displayText)` is not allowed"
                if let guess = closestMatch(to: value.displayText, in: options) {
                    message += " (did you mean `\(guess)`?)"
                }
                throw bad(message)
            }
            return value
        case .intList: return try list { try number($0, integral: true) }
        case .doubleList: return try list { try number($0, integral: false) }
        case .stringList:
            return try list { item in
                guard case .string = item else { throw bad("got \(item.typeName) `\(item.displayText)` in the list") }
                return item
            }
        }
    }

    // MARK: Typed shortcuts

    /// An optional number: nil when absent.
    func double(_ key: String, range: ValueRange? = nil) throws -> Double? {
        try read(ParameterSpec(key, .double, range: range))?.doubleValue
    }

    /// A number that is required, or has `default`.
    func requiredDouble(_ key: String, range: ValueRange? = nil, default value: Double? = nil) throws -> Double {
        let spec = ParameterSpec(
            key, .double, range: range, default: value.map(ConfigValue.double), required: value == nil)
        return try present(spec, read(spec)?.doubleValue)
    }

    /// An optional integer: nil when absent.
    func int(_ key: String, range: ValueRange? = nil) throws -> Int? {
        try read(ParameterSpec(key, .int, range: range))?.intValue
    }

    /// An integer that is required, or has `default`.
    func requiredInt(_ key: String, range: ValueRange? = nil, default value: Int? = nil) throws -> Int {
        let spec = ParameterSpec(key, .int, range: range, default: value.map(ConfigValue.int), required: value == nil)
        return try present(spec, read(spec)?.intValue)
    }

    /// A list of numbers that is required.
    func requiredDoubles(_ spec: ParameterSpec) throws -> [Double] {
        try present(spec, read(spec)?.listValue?.compactMap(\.doubleValue))
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard case .bool(let b)? = try read(ParameterSpec(key, .bool, default: .bool(value))) else { return value }
        return b
    }

    /// An optional string: nil when absent.
    func string(_ key: String) throws -> String? {
        try read(ParameterSpec(key, .string))?.stringValue
    }

    /// A string that is required, or has `default`.
    func requiredString(_ key: String, default value: String? = nil) throws -> String {
        let spec = ParameterSpec(key, .string, default: value.map(ConfigValue.string), required: value == nil)
        return try present(spec, read(spec)?.stringValue)
    }

    /// One of `options`, required or with `default`.
    func requiredChoice(_ key: String, _ options: [String], default value: String? = nil) throws -> String {
        let spec = ParameterSpec(key, .choice(options), default: value.map(ConfigValue.string), required: value == nil)
        return try present(spec, read(spec)?.stringValue)
    }

    /// A case of `E` by its raw value, with `default`.
    func requiredCase<E: RawRepresentable & CaseIterable>(_ key: String, default value: E) throws -> E
    where E.RawValue == String {
        let name = try requiredChoice(key, E.allCases.map(\.rawValue), default: value.rawValue)
        return E(rawValue: name) ?? value // the choice check admits raw values only
    }

    /// The value `read` returned for a required (or defaulted) spec: `read` throws for a missing
    /// required key and fills in the default, so nil here means the value had the wrong type.
    private func present<T>(_ spec: ParameterSpec, _ value: T?) throws -> T {
        guard let value else { throw error(spec.name, "is required; allowed: \(spec.allowedDescription)") }
        return value
    }

    /// Reads the name of a plugin from `registry`, with a suggestion for a misspelt one.
    func pluginName(_ key: String, _ registry: PluginRegistry, default value: String? = nil) throws -> PluginSpec {
        guard let raw = raw(key) else {
            if let value, let plugin = registry.plugin(named: value) {
                record(key, .string(value))
                return plugin
            }
            throw error(key, "is required; allowed: one of \(registry.names.joined(separator: ", "))")
        }
        guard case .string(let name) = raw else {
            throw error(
                key,
                "got \(raw.typeName) `\(raw.displayText)`; allowed: one of \(registry.names.joined(separator: ", "))")
        }
        if let reason = registry.refused[name] { throw error(key, "`\(name)` is refused: \(reason)") }
        guard let plugin = registry.plugin(named: name) else {
            var message = "unknown \(registry.kind) `\(name)`"
            if let guess = closestMatch(to: name, in: registry.names) { message += " (did you mean `\(guess)`?)" }
            throw error(key, message + "; allowed: one of \(registry.names.joined(separator: ", "))")
        }
        record(key, .string(name))
        return plugin
    }

    /// Reads the parameters of a plugin from `self` (all other keys must be known).
    func pluginParameters(_ plugin: PluginSpec, kind: String) throws -> [String: ConfigValue] {
        var options: [String: ConfigValue] = [:]
        for spec in plugin.parameters {
            if let value = try read(spec) { options[spec.name] = value }
        }
        try finish(what: "parameter of \(kind) `\(plugin.name)`")
        return options
    }

    /// A nested map reader; its resolved map is recorded under `key` by `close(_:)`.
    func section(_ key: String) throws -> MapReader {
        try MapReader(raw(key), path: childPath(key), context: context)
    }

    /// Records a finished nested reader's resolved map.
    func close(_ child: MapReader, as key: String) {
        record(key, .map(child.resolved))
    }

    /// Throws for the first key that was never read, suggesting the closest valid key.
    func finish(what: String = "key") throws {
        for (key, _) in pairs where !validKeys.contains(key) {
            var message = "unknown \(what) `\(key)`"
            if let guess = closestMatch(to: key, in: validKeys) { message += " (did you mean `\(guess)`?)" }
            message +=
                validKeys.isEmpty ? "; this map takes no keys" : "; valid keys: \(validKeys.joined(separator: ", "))"
            var error = ConfigError(
                file: context.file, path: childPath(key), line: context.lines[childPath(key)], message: message)
            error.isUnknownKey = true
            throw error
        }
    }
}
