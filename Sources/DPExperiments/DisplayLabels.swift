import Foundation

/// Display names for config keys and their values: what tables and figures print instead of
/// raw key paths (`privacy.target_epsilon`) and values (`cnn-tanh`).
///
/// They come from the `labels:` map at the top of an experiment config,
/// `labels: {privacy.target_epsilon: "target ε", model.name: {cnn-tanh: "tanh CNN"}}`, which
/// names a key (a string) or its values (a map from value to name). The config reader checks
/// every key path; the manifest records the map, and `dpkit table` and `dpkit plot` read it
/// from there.
public struct DisplayLabels: Hashable, Sendable {
    /// Key path or output column → display name.
    public var keys: [String: String]
    /// Key path or output column → (value as written in runs.csv → display name).
    public var values: [String: [String: String]]

    public init(keys: [String: String] = [:], values: [String: [String: String]] = [:]) {
        self.keys = keys
        self.values = values.mapValues { map in
            Dictionary(map.map { (Self.normalized($0.key), $0.value) }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Names used when the config gives none.
    static let builtInKeys = [
        "privacy.target_epsilon": "target ε", "privacy.noise_multiplier": "σ",
        "test_accuracy": "test accuracy", "train_accuracy": "train accuracy", "test_loss": "test loss",
        "train_loss": "train loss",
    ]

    /// runs.csv columns that hold a config key's value, and the key paths whose labels they take.
    static let aliases = [
        "model": ["model.label", "model.name"], "dataset": ["dataset.name"],
        "target_epsilon": ["privacy.target_epsilon"],
    ]

    /// Keys whose values name themselves: shown bare, without `key = `.
    static let namingKeys: Set<String> = ["model", "model.name", "model.label", "dataset", "dataset.name", "kind"]

    /// A value as runs.csv writes it: numbers in shortest form (`1.0` and `1` are one value).
    static func normalized(_ value: String) -> String {
        if Int(value) == nil, let d = Double(value), d.isFinite { return ConfigValue.numberText(d) }
        return value
    }

    /// The display name of a key path or column: its label, its alias's label, a built-in name
    /// (`target ε`, `σ`, `test accuracy`), or the key itself.
    public func key(_ key: String) -> String {
        for candidate in [key] + (Self.aliases[key] ?? []) {
            if let name = keys[candidate] { return name }
        }
        return Self.builtInKeys[key] ?? key
    }

    /// The label of a value of `key`, nil when the config names none.
    public func valueLabel(_ value: String, of key: String) -> String? {
        let v = Self.normalized(value)
        for candidate in [key] + (Self.aliases[key] ?? []) {
            if let name = values[candidate]?[v] { return name }
        }
        return nil
    }

    /// A value as shown: its label, else the value itself.
    public func value(_ value: String, of key: String) -> String {
        valueLabel(value, of: key) ?? value
    }

    /// `key = value` as shown: the value's label alone when it has one, the bare value of a
    /// naming key (`model.name`), else `target ε = 1`.
    public func assignment(_ key: String, _ value: String) -> String {
        if let name = valueLabel(value, of: key) { return name }
        if Self.namingKeys.contains(key) { return value }
        return "\(self.key(key)) = \(value)"
    }

    /// The name of a control kind: its label under `kind`, else `non-private` or `clip-only, σ = 0`.
    public func control(_ kind: RunKind) -> String {
        if let name = valueLabel(kind.rawValue, of: "kind") { return name }
        switch kind {
        case .nonPrivate: return "non-private"
        case .clipOnly: return "clip-only, σ = 0"
        case .private: return "private"
        }
    }

    // MARK: Manifest

    /// The labels as the manifest records them: `{key: name}` or `{key: {value: name}}`, keys sorted.
    public var manifestValue: ConfigValue {
        let all = Set(keys.keys).union(values.keys).sorted()
        return .map(
            all.map { key in
                if let name = keys[key] { return (key, .string(name)) }
                return (key, .map(values[key]!.keys.sorted().map { ($0, .string(values[key]![$0]!)) }))
            })
    }

    /// The labels a manifest records (none for a manifest written before labels existed).
    public init(manifest: ConfigValue?) {
        self.init()
        guard case .map(let pairs)? = manifest?["labels"] else { return }
        for (key, value) in pairs {
            switch value {
            case .string(let name): keys[key] = name
            case .map(let names):
                values[key] = Dictionary(
                    names.compactMap { pair in pair.value.stringValue.map { (Self.normalized(pair.key), $0) } },
                    uniquingKeysWith: { a, _ in a })
            default: continue
            }
        }
    }

    /// The labels of a manifest's JSON text (none when it is not JSON).
    public init(manifestJSON text: String?) {
        self.init(manifest: text.flatMap { try? ConfigValue(jsonData: Data($0.utf8)) })
    }
}

// MARK: - Config

extension DisplayLabels {
    /// Columns of epochs.csv and runs.csv that a label may name, beside config key paths.
    static var outputColumns: [String] {
        OutputSchema.leadingColumns + OutputSchema.runColumns + OutputSchema.epochColumns
    }

    /// Validates the `labels:` map of a config.
    /// - Parameters:
    ///   - knownPaths: the key paths the config reader accepts in the run sections (for every run).
    ///   - runValues: for each config key path, the values the runs take (as runs.csv writes them).
    /// - Throws: `ConfigError` at `labels.<key>` with its line for an unknown key path, a
    ///   display name that is not a non-empty string, or a value that no run takes.
    static func parse(
        _ value: ConfigValue?, knownPaths: Set<String>, runValues: (String) -> Set<String>?,
        file: String, lines: [String: Int]
    ) throws -> DisplayLabels {
        var labels = DisplayLabels()
        guard let value else { return labels }
        func error(_ path: String, _ message: String) -> ConfigError {
            ConfigError(file: file, path: path, line: lines[path] ?? lines["labels"], message: message)
        }
        guard case .map(let pairs) = value else {
            throw error(
                "labels",
                "must be a map from key paths to display names, such as `{privacy.target_epsilon: \"target ε\", model.name: {cnn-tanh: \"tanh CNN\"}}`; got \(value.typeName)"
            )
        }
        let columns = Set(outputColumns)
        for (key, entry) in pairs {
            let path = "labels.\(key)"
            guard knownPaths.contains(key) || columns.contains(key) else {
                var message = "unknown key path `\(key)`"
                if let guess = closestMatch(to: key, in: knownPaths.sorted() + outputColumns) {
                    message += " (did you mean `\(guess)`?)"
                }
                throw error(
                    path,
                    message
                        + "; a label names a config key path (privacy.target_epsilon, model.name), seed, or a runs.csv or epochs.csv column (test_accuracy, model, kind)"
                )
            }
            switch entry {
            case .string(let name):
                guard !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                    throw error(path, "is an empty display name")
                }
                labels.keys[key] = name
            case .map(let names) where !names.isEmpty:
                let taken = runValues(key)
                var map: [String: String] = [:]
                for (raw, nameValue) in names {
                    let valuePath = "\(path).\(raw)"
                    guard case .string(let name) = nameValue, !name.trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw error(
                            valuePath,
                            "must be a display name (a non-empty string), got \(nameValue.typeName) `\(nameValue.displayText)`"
                        )
                    }
                    let v = normalized(raw)
                    if let taken, !taken.contains(v) {
                        var message = "no run has \(key) = `\(raw)`"
                        if let guess = closestMatch(to: v, in: taken.sorted()) {
                            message += " (did you mean `\(guess)`?)"
                        }
                        throw error(valuePath, message + "; its values: \(taken.sorted().joined(separator: ", "))")
                    }
                    map[v] = name
                }
                labels.values[key] = map
            default:
                throw error(
                    path,
                    "must be a display name (a string) or a map from values to display names, got \(entry.typeName) `\(entry.displayText)`"
                )
            }
        }
        return labels
    }
}
