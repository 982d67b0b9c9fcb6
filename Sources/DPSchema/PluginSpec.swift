// MARK: - Parameter schemas

/// The allowed range of a numeric parameter, with open or closed ends.
public struct ValueRange: Hashable, Sendable, CustomStringConvertible {
    public var lower: Double?
    public var lowerInclusive: Bool
    public var upper: Double?
    public var upperInclusive: Bool

    public init(lower: Double? = nil, lowerInclusive: Bool = true, upper: Double? = nil, upperInclusive: Bool = true) {
        self.lower = lower
        self.lowerInclusive = lowerInclusive
        self.upper = upper
        self.upperInclusive = upperInclusive
    }

    /// `> 0`
    public static let positive = ValueRange(lower: 0, lowerInclusive: false)
    /// `>= 0`
    public static let nonNegative = ValueRange(lower: 0)
    /// `in (0, 1)`
    public static let openUnit = ValueRange(lower: 0, lowerInclusive: false, upper: 1, upperInclusive: false)
    /// `in [0, 1)`
    public static let halfOpenUnit = ValueRange(lower: 0, upper: 1, upperInclusive: false)
    /// `in (0, 1]`
    public static let unitExcludingZero = ValueRange(lower: 0, lowerInclusive: false, upper: 1)
    /// `>= n`
    public static func atLeast(_ n: Double) -> ValueRange { ValueRange(lower: n) }
    /// `in [a, b]`
    public static func closed(_ a: Double, _ b: Double) -> ValueRange { ValueRange(lower: a, upper: b) }

    public func contains(_ x: Double) -> Bool {
        guard x.isFinite else { return false }
        if let lower, lowerInclusive ? x < lower : x <= lower { return false }
        if let upper, upperInclusive ? x > upper : x >= upper { return false }
        return true
    }

    public var description: String {
        let lo = lower.map(ConfigValue.numberText), hi = upper.map(ConfigValue.numberText)
        switch (lo, hi) {
        case (let lo?, let hi?): return "in \(lowerInclusive ? "[" : "(")\(lo), \(hi)\(upperInclusive ? "]" : ")")"
        case (let lo?, nil): return lowerInclusive ? ">= \(lo)" : "> \(lo)"
        case (nil, let hi?): return upperInclusive ? "<= \(hi)" : "< \(hi)"
        case (nil, nil): return "finite"
        }
    }
}

/// One parameter of a plugin (or one key of a config section): its type, range and default.
public struct ParameterSpec: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case bool, int, double, string
        case choice([String])
        case intList, doubleList, stringList

        public var description: String {
            switch self {
            case .bool: return "true or false"
            case .int: return "an integer"
            case .double: return "a number"
            case .string: return "a string"
            case .choice(let options): return "one of " + options.joined(separator: ", ")
            case .intList: return "a list of integers"
            case .doubleList: return "a list of numbers"
            case .stringList: return "a list of strings"
            }
        }
    }

    public var name: String
    public var kind: Kind
    /// Range of the number, or of every element of a numeric list.
    public var range: ValueRange?
    /// Required list length, if fixed.
    public var count: Int?
    /// Filled in when the key is absent; nil means optional without default (or `required`).
    public var defaultValue: ConfigValue?
    public var required: Bool
    public var summary: String

    public init(
        _ name: String, _ kind: Kind, range: ValueRange? = nil, count: Int? = nil,
        default defaultValue: ConfigValue? = nil, required: Bool = false, _ summary: String = ""
    ) {
        self.name = name
        self.kind = kind
        self.range = range
        self.count = count
        self.defaultValue = defaultValue
        self.required = required
        self.summary = summary
    }

    /// What is allowed, for error messages and docs: `a number > 0`.
    public var allowedDescription: String {
        var text = kind.description
        if let count { text += " of length \(count)" }
        if let range { text += (kind == .intList || kind == .doubleList ? ", each " : " ") + range.description }
        return text
    }
}

// MARK: - Plugins

/// A named plugin (a dataset, model, optimizer, schedule, clipping mode, accountant, sampler or
/// layer type) and the schema of its parameters.
public struct PluginSpec: Hashable, Sendable {
    public var name: String
    public var summary: String
    public var parameters: [ParameterSpec]
    /// Whether `dataset.path` must be given (datasets only).
    public var requiresPath: Bool

    public init(_ name: String, _ summary: String = "", parameters: [ParameterSpec] = [], requiresPath: Bool = false) {
        self.name = name
        self.summary = summary
        self.parameters = parameters
        self.requiresPath = requiresPath
    }
}

/// A list of known plugin names of one kind, with their parameter schemas.
///
/// Adding a plugin is one line in `PluginRegistries.standard` (or `registries.models.register(...)`
/// at run time); the config validator then accepts the name and checks its options.
public struct PluginRegistry: Hashable, Sendable {
    /// What the plugins are, for messages: `dataset`, `model`, `clipping mode`.
    public var kind: String
    public private(set) var plugins: [PluginSpec]
    /// Names that are refused with a reason (for example layers that mix examples in a batch).
    public var refused: [String: String]

    public init(kind: String, _ plugins: [PluginSpec], refused: [String: String] = [:]) {
        self.kind = kind
        self.plugins = plugins
        self.refused = refused
    }

    public var names: [String] { plugins.map(\.name) }

    public func plugin(named name: String) -> PluginSpec? { plugins.first { $0.name == name } }

    /// Adds a plugin, replacing one of the same name.
    public mutating func register(_ plugin: PluginSpec) {
        plugins.removeAll { $0.name == plugin.name }
        plugins.append(plugin)
    }
}

// MARK: - Values

/// The parameter values of one plugin, with the schema's defaults filled in: what a module's
/// registry entry (a dataset loader, a model, a clipping mode) reads its settings from.
///
/// The config reader validates values against the plugin's ``ParameterSpec``s before they get
/// here; the accessors then only convert. Asking for a parameter that the plugin does not
/// declare, or a non-optional one that has neither a value nor a default, is a programmer
/// mistake in the plugin and stops with a message.
public struct Parameters: Hashable, Sendable {
    public let plugin: PluginSpec
    /// Given values, then defaults for the parameters that were not given.
    public let values: [String: ConfigValue]

    /// `given` with the defaults of `plugin` filled in.
    public init(_ plugin: PluginSpec, _ given: [String: ConfigValue] = [:]) {
        self.plugin = plugin
        var values = given
        for p in plugin.parameters where values[p.name] == nil {
            if let d = p.defaultValue { values[p.name] = d }
        }
        self.values = values
    }

    private func value(_ name: String) -> ConfigValue? {
        precondition(
            plugin.parameters.contains { $0.name == name },
            "`\(plugin.name)` declares no parameter `\(name)`")
        return values[name]
    }

    private func present<T>(_ name: String, _ read: (ConfigValue) -> T?) -> T {
        guard let v = value(name).flatMap(read) else {
            preconditionFailure("parameter `\(name)` of `\(plugin.name)` has no value and no default")
        }
        return v
    }

    public func int(_ name: String) -> Int { present(name, \.intValue) }
    public func double(_ name: String) -> Double { present(name, \.doubleValue) }
    public func string(_ name: String) -> String { present(name, \.stringValue) }
    public func intList(_ name: String) -> [Int] { present(name, \.intListValue) }

    /// A parameter without default, such as csv's `test_path`.
    public func optionalBool(_ name: String) -> Bool? { value(name)?.boolValue }
    public func optionalInt(_ name: String) -> Int? { value(name)?.intValue }
    public func optionalDouble(_ name: String) -> Double? { value(name)?.doubleValue }
    public func optionalString(_ name: String) -> String? { value(name)?.stringValue }
    public func optionalDoubleList(_ name: String) -> [Double]? {
        value(name)?.listValue.map { $0.compactMap(\.doubleValue) }
    }
}

extension Parameters {
    /// `given` with the defaults of `plugin` filled in, checked as values read back from a file
    /// (a model's architecture) are: every name a parameter of `plugin`, every value of the
    /// parameter's kind, every required parameter present, so that the accessors never stop.
    /// Ranges are left to the code that uses the values (``ParameterSpec/range`` is for configs,
    /// whose reader checks everything with the line and key path of the value).
    /// - Throws: ``ParameterError`` naming the first parameter that is not right.
    public init(checking given: [String: ConfigValue], for plugin: PluginSpec) throws {
        for name in given.keys.sorted() where !plugin.parameters.contains(where: { $0.name == name }) {
            throw ParameterError(plugin: plugin.name, parameter: name, "is not a parameter")
        }
        for p in plugin.parameters {
            if let value = given[p.name] {
                guard p.kind.accepts(value) else {
                    throw ParameterError(plugin: plugin.name, parameter: p.name, "is not \(p.kind.description)")
                }
            } else if p.required {
                throw ParameterError(plugin: plugin.name, parameter: p.name, "is required")
            }
        }
        self.init(plugin, given)
    }
}

/// A parameter that is not one of its plugin's, or not of its kind (``Parameters/init(checking:for:)``).
public struct ParameterError: Error, Equatable, Sendable, CustomStringConvertible {
    public var plugin: String
    public var parameter: String
    public var message: String

    public init(plugin: String, parameter: String, _ message: String) {
        self.plugin = plugin
        self.parameter = parameter
        self.message = message
    }

    public var description: String { "`\(parameter)` of `\(plugin)` \(message)" }
}

extension ParameterSpec.Kind {
    /// Whether `value` reads as this kind, as ``Parameters``' accessors read it.
    public func accepts(_ value: ConfigValue) -> Bool {
        switch self {
        case .bool: value.boolValue != nil
        case .int: value.intValue != nil
        case .double: value.doubleValue != nil
        case .string: value.stringValue != nil
        case .choice(let options): value.stringValue.map(options.contains) ?? false
        case .intList: value.intListValue != nil
        case .doubleList: value.listValue?.allSatisfy { $0.doubleValue != nil } ?? false
        case .stringList: value.listValue?.allSatisfy { $0.stringValue != nil } ?? false
        }
    }
}

extension ConfigValue {
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// An integer, or a number with no fractional part.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 1e15: return Int(d)
        default: return nil
        }
    }

    /// A list of integers (nil when any element is not one).
    public var intListValue: [Int]? {
        guard case .list(let items) = self else { return nil }
        let ints = items.compactMap(\.intValue)
        return ints.count == items.count ? ints : nil
    }
}

// MARK: - Registries of buildable plugins

/// A plugin a module can build: its schema plus whatever the module needs to make it (a
/// dataset loader, a model's layers, a layer spec).
public protocol Plugin: Sendable {
    var spec: PluginSpec { get }
    /// The owning module's error for a name that no plugin of this kind has, listing the valid
    /// names: what ``Registry/plugin(_:)`` throws.
    static func unknownName(_ name: String, valid: [String]) -> any Error
}

/// The plugins of one kind that a module owns, by name: DPData's datasets, DPLayers' models
/// and layer types. ``schema`` is what config validation and the plugin reference read, so a
/// name validates exactly when the module can build it.
public struct Registry<Entry: Plugin>: Sendable {
    /// What the plugins are, for messages: `dataset`, `model`, `layer type`.
    public let kind: String
    public private(set) var plugins: [Entry]
    /// Names that are refused with a reason (for example layers that mix examples in a batch).
    public var refused: [String: String]

    public init(kind: String, _ plugins: [Entry], refused: [String: String] = [:]) {
        self.kind = kind
        self.plugins = []
        self.refused = refused
        for p in plugins { register(p) }
    }

    /// Adds a plugin, replacing one of the same name.
    public mutating func register(_ plugin: Entry) {
        plugins.removeAll { $0.spec.name == plugin.spec.name }
        plugins.append(plugin)
    }

    /// The names, in registration order.
    public var names: [String] { plugins.map(\.spec.name) }

    /// The schemas, for config validation and the plugin reference.
    public var schema: PluginRegistry { PluginRegistry(kind: kind, plugins.map(\.spec), refused: refused) }

    public func plugin(named name: String) -> Entry? { plugins.first { $0.spec.name == name } }

    /// The plugin `name`.
    /// - Throws: `Entry.unknownName(name, valid: names)` (``Plugin/unknownName(_:valid:)``).
    public func plugin(_ name: String) throws -> Entry {
        guard let p = plugin(named: name) else { throw Entry.unknownName(name, valid: names) }
        return p
    }

    /// The plugin `name` and its parameters: `given` with the defaults of its schema filled in.
    /// - Throws: `Entry.unknownName(name, valid: names)` (``Plugin/unknownName(_:valid:)``).
    public func plugin(
        _ name: String, parameters given: [String: ConfigValue]
    ) throws -> (plugin: Entry, parameters: Parameters) {
        let p = try plugin(name)
        return (p, Parameters(p.spec, given))
    }
}
