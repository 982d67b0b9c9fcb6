import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// A fuzz test of the path from a config file to a model: the shipped configs
// (experiments/*.yaml), mutated a few thousand times with a fixed seed. Every mutation must
// either validate, and then build a model whose inferred shapes a real forward pass on a batch
// of two zero examples agrees with (for small models), or fail with a ConfigError that names
// the file. A trap anywhere on the way (precondition, fatalError, force-unwrap, index out of
// range) kills the test process, so it fails too.

// MARK: - Deterministic randomness

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator whose sequence never changes.
struct FuzzRandom {
    var state: UInt64

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    mutating func pick<T>(_ items: [T]) -> T { items[int(items.count)] }
}

// MARK: - Trees

/// One step of a path into a config tree.
enum TreeStep: Hashable { case key(String), index(Int) }

/// Every path in `value` (maps, lists and leaves), the root excluded.
func treePaths(_ value: ConfigValue, prefix: [TreeStep] = []) -> [[TreeStep]] {
    switch value {
    case .map(let pairs):
        return pairs.flatMap { [prefix + [.key($0.key)]] + treePaths($0.value, prefix: prefix + [.key($0.key)]) }
    case .list(let items):
        return items.indices.flatMap { [prefix + [.index($0)]] + treePaths(items[$0], prefix: prefix + [.index($0)]) }
    default:
        return []
    }
}

/// `value` with the node at `path` replaced by `new` (nil: removed). Paths that do not exist change nothing.
func replacing(_ value: ConfigValue, at path: ArraySlice<TreeStep>, with new: ConfigValue?) -> ConfigValue {
    guard let step = path.first else { return new ?? .null }
    switch (step, value) {
    case (.key(let k), .map(var pairs)):
        if let i = pairs.firstIndex(where: { $0.key == k }) {
            if path.count == 1 && new == nil {
                pairs.remove(at: i)
            } else {
                pairs[i].value = replacing(pairs[i].value, at: path.dropFirst(), with: new)
            }
        } else if path.count == 1, let new {
            pairs.append((k, new))
        }
        return .map(pairs)
    case (.index(let i), .list(var items)) where items.indices.contains(i):
        if path.count == 1 && new == nil {
            items.remove(at: i)
        } else {
            items[i] = replacing(items[i], at: path.dropFirst(), with: new)
        }
        return .list(items)
    default:
        return value
    }
}

func node(_ value: ConfigValue, at path: [TreeStep]) -> ConfigValue? {
    var current: ConfigValue? = value
    for step in path {
        switch (step, current) {
        case (.key(let k), .map(let pairs)?): current = pairs.first { $0.key == k }?.value
        case (.index(let i), .list(let items)?) where items.indices.contains(i): current = items[i]
        default: return nil
        }
    }
    return current
}

/// A string written into the YAML unquoted: a raw YAML scalar such as `.nan`.
func raw(_ text: String) -> ConfigValue { .string("\u{1}" + text) }

/// YAML flow text of a tree: maps `{k: v}`, lists `[a, b]`, strings double-quoted (JSON
/// escapes are YAML escapes), and ``raw(_:)`` scalars as written.
func flowYAML(_ value: ConfigValue) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .double(let d): return d.isFinite ? "\(d)" : (d.isNaN ? ".nan" : (d > 0 ? ".inf" : "-.inf"))
    case .string(let s): return s.hasPrefix("\u{1}") ? String(s.dropFirst()) : ConfigValue.jsonQuoted(s)
    case .list(let items): return "[" + items.map(flowYAML).joined(separator: ", ") + "]"
    case .map(let pairs):
        return "{" + pairs.map { ConfigValue.jsonQuoted($0.key) + ": " + flowYAML($0.value) }.joined(separator: ", ")
            + "}"
    }
}

// MARK: - Mutations

/// Values of every type and range: zero, negative, huge, non-integral, NaN-like strings, raw
/// YAML floats, and containers where scalars belong.
let fuzzValues: [ConfigValue] = [
    .int(0), .int(1), .int(2), .int(3), .int(-1), .int(7), .int(10), .int(28), .int(1_000_000),
    .int(1_000_000_000_000_000),
    .int(Int.max), .int(Int.min), .double(0.5), .double(-0.5), .double(2.5), .double(1e300), .double(1e-300),
    .double(0.999999999999),
    .string(""), .string("abc"), .string("NaN"), .string("-1"), .string("1e-5"), .bool(true), .bool(false), .null,
    raw(".nan"), raw(".inf"), raw("-.inf"), raw("1e400"), raw("0x1F"), raw("1_000"), raw("~"), raw("yes"), raw("1e-5"),
    .list([]), .list([.int(1), .int(2)]), .list([.string("x")]), .map([]), .map([("a", .int(1))]),
]

/// Layer sizes near the edges: zero, one, small, larger than inputs, huge.
let fuzzSizes: [ConfigValue] = [
    .int(0), .int(1), .int(2), .int(3), .int(4), .int(5), .int(8), .int(9), .int(13), .int(29),
    .int(-2), .int(100_000), .int(1_000_000_000_000_000), .double(2.5), .string("3"),
]

let fuzzDatasets = ["fashion-mnist", "synthetic-shapes", "gaussian-mixture", "csv", "mnist", "synthetic_shapes", ""]

/// A random layer spec in config form, with sizes that fit small inputs more often than not.
func randomLayer(_ r: inout FuzzRandom, classes: Int) -> ConfigValue {
    func size(_ typical: [Int]) -> ConfigValue { r.chance(0.85) ? .int(r.pick(typical)) : r.pick(fuzzSizes) }
    switch r.int(13) {
    case 0: return .map([("type", .string("dense")), ("units", size([1, 4, 16, classes - 1, classes, classes + 1]))])
    case 1:
        var pairs: [(key: String, value: ConfigValue)] = [
            ("type", .string("conv2d")), ("channels", size([1, 2, 4, 8])),
        ]
        if r.chance(0.8) { pairs.append(("kernel_size", size([1, 2, 3, 5, 8]))) }
        if r.chance(0.5) { pairs.append(("stride", size([1, 2, 3]))) }
        if r.chance(0.5) { pairs.append(("padding", size([0, 1, 2, 3, 9]))) }
        return .map(pairs)
    case 2, 3:
        var pairs: [(key: String, value: ConfigValue)] = [
            ("type", .string(r.chance(0.5) ? "max-pool2d" : "avg-pool2d"))
        ]
        if r.chance(0.7) { pairs.append(("size", size([1, 2, 3, 4]))) }
        if r.chance(0.5) { pairs.append(("stride", size([1, 2]))) }
        return .map(pairs)
    case 4, 5: return .map([("type", .string("flatten"))])
    case 6: return .map([("type", .string(r.pick(["tanh", "relu", "sigmoid"])))])
    case 7:
        return .map([("type", .string("tempered-sigmoid")), ("scale", r.chance(0.8) ? .double(2) : r.pick(fuzzValues))])
    case 8: return .map([("type", .string("group-norm")), ("groups", size([1, 2, 4]))])
    case 9: return .map([("type", .string("layer-norm")), ("axes", size([1, 2, 3]))])
    case 10: return .map([("type", .string("dropout")), ("rate", r.chance(0.8) ? .double(0.25) : r.pick(fuzzValues))])
    case 11: return .map([("type", .string(r.pick(["batch-norm", "dense2", "conv"])))])
    default: return .map([("type", .string("dense")), ("units", .int(classes))])
    }
}

/// A plausible `layers` list: a convolutional or a dense stack, ending most often in a dense
/// layer of `classes`, `classes - 1` or `classes + 1` units.
func randomLayers(_ r: inout FuzzRandom, classes: Int, images: Bool) -> ConfigValue {
    var layers: [ConfigValue] = []
    for _ in 0..<r.int(5) {
        var layer = randomLayer(&r, classes: classes)
        // Before the flatten, images take layers that keep [C, H, W] (now and then anything).
        while images, r.chance(0.9),
            ["dense", "batch-norm", "dense2", "conv"].contains(layer["type"]?.stringValue ?? "")
        {
            layer = randomLayer(&r, classes: classes)
        }
        layers.append(layer)
    }
    if r.chance(0.7) { layers.append(.map([("type", .string("flatten"))])) }
    if r.chance(0.5) {
        layers.append(.map([("type", .string("dense")), ("units", .int(r.pick([8, 16])))]))
        layers.append(.map([("type", .string("tanh"))]))
    }
    if r.chance(0.9) {
        let units = r.chance(0.75) ? classes : r.pick([classes - 1, classes + 1, 1, 100])
        layers.append(.map([("type", .string("dense")), ("units", .int(units))]))
    }
    return .list(layers)
}

/// Whether a tree's dataset has image examples.
func hasImages(_ tree: ConfigValue) -> Bool {
    ["fashion-mnist", "synthetic-shapes"].contains(tree.value(atPath: "dataset.name")?.stringValue ?? "")
}

/// A random `layers` list for the dataset of `tree`.
func randomLayers(_ r: inout FuzzRandom, for tree: ConfigValue) -> ConfigValue {
    randomLayers(&r, classes: guessClasses(tree), images: hasImages(tree))
}

/// The class count a tree's dataset would have, if it says.
func guessClasses(_ tree: ConfigValue) -> Int {
    switch tree.value(atPath: "dataset.name")?.stringValue {
    case "gaussian-mixture": return tree.value(atPath: "dataset.options.classes")?.intValue ?? 2
    case "csv": return 3
    default: return 10
    }
}

func mutate(_ tree: ConfigValue, _ r: inout FuzzRandom, csvPath: String) -> ConfigValue {
    var t = tree
    let paths = treePaths(t)
    // An accounting config has no dataset or model: only the generic mutations apply.
    let training = t["kind"]?.stringValue != "accounting"
    switch r.int(training ? 12 : 4) {
    case 0, 1: // a value of another type or range
        if let path = paths.isEmpty ? nil : r.pick(paths) { t = replacing(t, at: path[...], with: r.pick(fuzzValues)) }
    case 2: // a deleted key or list item
        if let path = paths.isEmpty ? nil : r.pick(paths) { t = replacing(t, at: path[...], with: nil) }
    case 3: // an unknown key, or a near miss of a known one
        let maps = [[]] + paths.filter { if case .map? = node(t, at: $0) { return true } else { return false } }
        let at = r.pick(maps)
        var key = "unknown_key"
        if case .map(let pairs)? = node(t, at: at), let existing = pairs.isEmpty ? nil : r.pick(pairs).key,
            r.chance(0.5)
        {
            key = String(existing.dropLast())
        }
        t = replacing(t, at: (at + [.key(key)])[...], with: r.pick(fuzzValues))
    case 4: // another dataset
        let name = r.pick(fuzzDatasets)
        t.setValue(.string(name), atPath: "dataset.name")
        if name == "csv" && r.chance(0.8) { t.setValue(.string(csvPath), atPath: "dataset.path") }
        if r.chance(0.5) { t.setValue(.null, atPath: "dataset.options") }
    case 5: // dataset options that set the example shape
        switch r.int(4) {
        case 0:
            t.setValue(
                r.chance(0.7) ? .int(r.pick([8, 9, 12, 16, 28])) : r.pick(fuzzSizes + fuzzValues),
                atPath: "dataset.options.image_size")
        case 1:
            t.setValue(
                r.chance(0.7) ? .int(r.pick([1, 3, 20])) : r.pick(fuzzSizes), atPath: "dataset.options.dimensions")
        case 2:
            t.setValue(
                r.chance(0.7) ? .int(r.pick([2, 3, 10, 11])) : r.pick(fuzzSizes), atPath: "dataset.options.classes")
        default: t.setValue(r.pick(fuzzSizes), atPath: r.pick(["dataset.train_size", "dataset.test_size"]))
        }
    case 6, 7: // a model described by layers
        t.setValue(.map([("layers", randomLayers(&r, for: t))]), atPath: "model")
    case 8: // one layer of a layers model changed, inserted or removed
        guard case .list(var layers)? = t.value(atPath: "model.layers"), !layers.isEmpty else {
            t.setValue(.map([("layers", randomLayers(&r, for: t))]), atPath: "model")
            break
        }
        let i = r.int(layers.count)
        switch r.int(3) {
        case 0:
            let key = r.pick([
                "units", "channels", "kernel_size", "stride", "padding", "size", "groups", "axes", "rate", "type",
            ])
            layers[i] = replacing(
                layers[i], at: [.key(key)][...],
                with: key == "type" ? .string(r.pick(["dense", "conv2d", "flatten", "tanh"])) : r.pick(fuzzSizes))
        case 1: layers.insert(randomLayer(&r, classes: guessClasses(t)), at: i)
        default: layers.remove(at: i)
        }
        t.setValue(.list(layers), atPath: "model.layers")
    case 9: // a registry model
        var pairs: [(key: String, value: ConfigValue)] = [
            ("name", .string(r.pick(["mlp", "cnn-tanh", "cnn-tanh-tramer", "logistic-regression", "resnet"])))
        ]
        if r.chance(0.3) {
            pairs.append(
                (
                    "options",
                    .map([
                        (
                            "hidden_sizes",
                            r.chance(0.7) ? .list([.int(r.pick([4, 16]))]) : r.pick(fuzzSizes + fuzzValues)
                        )
                    ])
                ))
        }
        t.setValue(.map(pairs), atPath: "model")
    case 10: // a sweep axis
        let axes: [(String, ConfigValue)] = [
            ("dataset.options.image_size", .list([.int(8), .int(28)])),
            ("model.layers", .list([randomLayers(&r, for: t), randomLayers(&r, for: t)])),
            ("model.name", .list([.string("mlp"), .string("cnn-tanh")])),
            ("seed", .list([.int(-1), .int(2)])),
            ("training.epochs", .list([.int(0), .int(1_000_000_000)])),
            ("privacy.noise_multiplier", .list([raw(".nan"), .double(1)])),
        ]
        let (key, values) = r.pick(axes)
        // Keep the rest consistent with the axis most of the time: a swept layer list
        // replaces a named model, and swept seeds replace `seeds`.
        if r.chance(0.8) {
            if key == "model.layers", case .list(let first) = values, let layers = first.first {
                t.setValue(.map([("layers", layers)]), atPath: "model")
            }
            if key == "model.name" { t.setValue(.map([("name", .string("mlp"))]), atPath: "model") }
            if key == "seed" { t = replacing(t, at: [.key("seeds")][...], with: nil) }
        }
        if case .map(var pairs)? = t["sweep"] {
            pairs.append((key, values))
            t = replacing(t, at: [.key("sweep")][...], with: .map(pairs))
        } else {
            t = replacing(t, at: [.key("sweep")][...], with: .map([(key, values)]))
        }
    default: // an include entry
        let entry: ConfigValue = r.pick([
            .map([("model.layers", randomLayers(&r, for: t)), ("model.name", .null), ("model.options", .null)]),
            .map([("dataset.name", .string(r.pick(fuzzDatasets)))]),
            .map([("privacy.enabled", .bool(false)), ("optimizer.learning_rate", r.pick(fuzzValues))]),
            .map([("seed", r.pick(fuzzSizes))]),
        ])
        let existing = t["include"]?.listValue ?? []
        t = replacing(t, at: [.key("include")][...], with: .list(existing + [entry]))
    }
    return t
}

// MARK: - The check of one validated run

struct FuzzTally {
    var cases = 0, validated = 0, refused = 0, runsChecked = 0, forwardChecked = 0, tooLargeToBuild = 0
    var csvRunErrors = 0
    /// Models already built on examples of a shape: runs that differ only elsewhere build the same layers.
    var built: Set<BuiltModel> = []
}

struct BuiltModel: Hashable {
    var model: ModelConfig
    var shape: [Int]
    var classes: Int
}

/// Builds the run's model and compares inferred shapes with a forward pass of two zero examples.
func checkValidatedRun(_ run: ResolvedRun, tally: inout FuzzTally, label: String) throws {
    let c = run.config
    let shape: Shape, classes: Int
    if let declared = try c.dataset.declaredExamples() {
        shape = declared.shape
        classes = declared.classes
    } else if c.dataset.name == "csv" {
        // The columns and classes come with the file: loading or building may fail, with a typed error.
        do {
            let split = try TrainingExecutor().loadData(c)
            shape = split.train.exampleShape
            classes = split.train.classCount
            _ = try c.model.checkedLayerSpecs(inputShape: shape, classes: classes, dataset: "csv")
        } catch is DataError {
            tally.csvRunErrors += 1
            return
        } catch is ModelShapeError {
            tally.csvRunErrors += 1
            return
        } catch is TrainingError {
            tally.csvRunErrors += 1
            return
        }
    } else {
        Issue.record("\(label): validated dataset `\(c.dataset.name)` has no declared examples")
        return
    }
    let (_, inferred) = try c.model.checkedLayerSpecs(inputShape: shape, classes: classes, dataset: "fuzz")
    tally.runsChecked += 1
    guard tally.built.insert(BuiltModel(model: c.model, shape: shape.array, classes: classes)).inserted else { return }
    let parameters = inferred.reduce(0) { $0 + $1.parameterCount }
    let activations = inferred.reduce(0) { $0 + $1.exampleScalars }
    guard parameters <= 1 << 21, activations <= 1 << 20 else {
        tally.tooLargeToBuild += 1
        return
    }
    let model = try TrainingExecutor().buildModel(c.model, inputShape: shape, classes: classes, seed: UInt64(c.seed))
    #expect(model.layers.count == inferred.count, "\(label)")
    #expect(model.parameterCount == parameters, "\(label)")
    // Layer by layer: the real output shape of each layer is the inferred one.
    var context = ForwardContext(training: true)
    var h = Tensor<Float>(zeros: Shape([2] + shape.array))
    for (layer, info) in zip(model.layers, inferred) {
        h = layer.forward(h, context: &context)
        guard h.shape == Shape([2] + info.outputShape.array) else {
            Issue.record("\(label): \(layer.description) gives \(h.shape), inference said [2] + \(info.outputShape)")
            return
        }
    }
    guard h.shape == [2, classes] else {
        Issue.record("\(label): the model gives \(h.shape) for 2 examples of \(classes) classes")
        return
    }
    // The loss with the first and the last label, a backward pass and the per-sample norms.
    let (_, gradient) = SoftmaxCrossEntropy()(logits: h, labels: [0, classes - 1])
    _ = model.backward(gradient)
    #expect(model.perSampleGradientSquaredNorms(batchSize: 2).shape == [2], "\(label)")
    tally.forwardChecked += 1
}

// MARK: - The test

@Test("fuzzed shipped configs validate, build and agree with a forward pass, or fail with a ConfigError; never trap")
func fuzzedConfigsNeverTrap() throws {
    let directory = repositoryRoot.appendingPathComponent("experiments")
    let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }
        .sorted()
    #expect(names.count >= 4)
    let bases = try names.map {
        try ConfigValue.parseYAML(String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8), file: $0)
            .value
    }
    // A small CSV file for mutations that switch to the csv dataset: 4 features, 3 classes.
    let csvDirectory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: csvDirectory) }
    let csvPath = csvDirectory.appendingPathComponent("fuzz.csv").path
    let rows = (0..<30).map { i in "\(i % 3),\(Double(i) * 0.1),\(i % 5),\(Double(i % 7) - 3),\(i % 2)" }
    try ("label,a,b,c,d\n" + rows.joined(separator: "\n") + "\n").write(
        toFile: csvPath, atomically: true, encoding: .utf8)

    let mutations = 3000
    var r = FuzzRandom(state: 0xD9C0_F1A5_0000_0010)
    var tally = FuzzTally()
    for i in 0..<mutations {
        var tree = bases[i % bases.count]
        for _ in 0..<(1 + r.int(2)) { tree = mutate(tree, &r, csvPath: csvPath) }
        let file = "fuzz-\(i).yaml"
        let text = flowYAML(tree)
        tally.cases += 1
        do {
            let config = try ExperimentConfig.parse(yaml: text, file: file)
            tally.validated += 1
            for run in config.runs.prefix(3) {
                try checkValidatedRun(run, tally: &tally, label: "\(file) run \(run.index): \(text)")
            }
        } catch let error as ConfigError {
            tally.refused += 1
            if ProcessInfo.processInfo.environment["FUZZ_DUMP"] != nil {
                print("REFUSED \(error.path) :: \(error.message.prefix(150))")
            }
            #expect(error.file == file && error.description.hasPrefix(file) && !error.message.isEmpty, "\(error)")
            #expect(!error.description.contains("Optional("), "\(error)")
        } catch {
            Issue.record("\(file): not a ConfigError: \(type(of: error)) \(error)\n\(text)")
        }
    }
    print(
        "config fuzz: \(tally.cases) mutations: \(tally.validated) validated, \(tally.refused) refused with a ConfigError; \(tally.runsChecked) runs shape-checked, \(tally.forwardChecked) distinct models built and checked by a forward and backward pass, \(tally.tooLargeToBuild) too large to build here, \(tally.csvRunErrors) csv runs refused on loading"
    )
    // Not vacuous: both outcomes are common, and many models go through a forward pass.
    // (Seed 0xD9C0F1A500000010, 3000 mutations: 611 validate; 1145 runs are shape-checked and
    // their 122 distinct models go through a forward and backward pass.)
    #expect(tally.validated >= mutations / 8 && tally.refused >= mutations / 2)
    #expect(tally.forwardChecked >= mutations / 30)
}
