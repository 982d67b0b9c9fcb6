import DPTraining
import Foundation
import Testing

@testable import DPExperiments

let sweepYAML =
    baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "") + """
        seeds: [0, 1]
        sweep:
          privacy.target_epsilon: [1, 3, 8]
          model.name: [mlp, logistic-regression]
        include:
          - privacy.enabled: false
          - {privacy.noise_multiplier: 0, privacy.target_epsilon: null}

        """

@Test func sweepExpandsTheCartesianProductTimesSeedsPlusIncludes() throws {
    // `hidden_sizes` is an mlp option: give the sweep a model without options.
    let yaml = sweepYAML.replacingOccurrences(of: "seeds: [0]\n", with: "")
        .replacingOccurrences(of: "  options:\n    hidden_sizes: [8]\n", with: "")
    let config = try parse(yaml)
    // 3 epsilons x 2 models x 2 seeds, then 2 include entries x 2 seeds.
    #expect(config.runs.count == 3 * 2 * 2 + 2 * 2)
    #expect(
        config.varyingKeys == ["privacy.target_epsilon", "model.name", "privacy.enabled", "privacy.noise_multiplier"])
    // First axis outermost, seeds innermost.
    let first = config.runs.prefix(4).map { ($0.config.privacy.targetEpsilon, $0.config.model.name, $0.seed) }
    #expect(first.map(\.0) == [1, 1, 1, 1])
    #expect(first.map(\.1) == ["mlp", "mlp", "logistic-regression", "logistic-regression"])
    #expect(first.map(\.2) == [0, 1, 0, 1])
    #expect(config.runs.map(\.index) == Array(0..<16))
    let grid = config.runs.prefix(12)
    #expect(Set(grid.compactMap(\.config.privacy.targetEpsilon)) == [1, 3, 8])
    // Include entries: the non-private control and the clip-only control (sigma 0).
    let controls = config.runs.suffix(4)
    #expect(controls.map(\.kind) == [.nonPrivate, .nonPrivate, .clipOnly, .clipOnly])
    #expect(controls.map(\.origin) == ["include[0]", "include[0]", "include[1]", "include[1]"])
    #expect(controls.last?.config.privacy.targetEpsilon == nil)
    // Varying values: the value in this run, null where absent.
    let control = try #require(controls.first)
    #expect(control.varyingValues.map(\.value) == [.null, .string("mlp"), .bool(false), .null])
    #expect(controls.last?.varyingValues.map(\.value) == [.null, .string("mlp"), .bool(true), .double(0)])
    #expect(Set(config.runs.map(\.runID)).count == config.runs.count)
}

@Test(arguments: [
    ("seeds: [4, 5, 6]", 3),
    ("sweep:\n  seed: [1, 2]", 2),
    ("", 1),
])
func seedsComeFromSeedsOrFromASeedSweep(_ extra: String, _ count: Int) throws {
    let yaml = baseYAML.replacingOccurrences(of: "seeds: [0]\n", with: "") + extra + "\n"
    let config = try parse(yaml)
    #expect(config.runs.count == count)
    #expect(config.seeds.count == count)
}

@Test func seedsAndSeedSweepConflict() throws {
    let error = try #require(configError(baseYAML + "sweep:\n  seed: [1, 2]\n"))
    #expect(error.path == "seeds")
    #expect(error.message.contains("conflicts with `sweep.seed`"))
}

@Test func duplicateRunsRunOnceWithANote() throws {
    // Sweeping over privacy.enabled with two epsilons gives two identical non-private runs.
    let yaml =
        baseYAML.replacingOccurrences(of: "  noise_multiplier: 1.0\n", with: "") + """
            sweep:
              privacy.enabled: [true, false]
              privacy.target_epsilon: [1, 2]

            """
    let config = try parse(yaml)
    #expect(config.runs.count == 3)
    #expect(config.warnings.contains { $0.contains("duplicates") })
}

@Test func configHashIsStableAndIgnoresKeyOrderDefaultsAndSeed() throws {
    let a = try #require(try parse(baseYAML).runs.first)
    // Golden value: changes only when the resolved config or its canonical form changes.
    #expect(a.configHash == fnv1a64Hex(a.config.resolved.canonicalJSON))
    #expect(a.configHash.count == 16)
    #expect(a.runID == "\(a.configHash.prefix(10))-s0")

    // Same config with keys reordered, defaults written out and another seed.
    let reordered = """
        name: another name
        seeds: [7]
        training: {epochs: 3, expected_batch_size: 100, eval_every: 1, max_physical_batch_size: 100}
        privacy: {clipping_norm: 1.0, delta: 0.00001, noise_multiplier: 1, clipping: flat, sampling: poisson}
        optimizer: {learning_rate: 0.1, name: sgd, momentum: 0, schedule: {name: constant}}
        model: {options: {activation: tanh, hidden_sizes: [8]}, name: mlp}
        dataset: {train_size: 1000, name: gaussian-mixture, normalize: none, options: {classes: 2}}
        """
    let b = try #require(try parse(reordered).runs.first)
    #expect(b.configHash == a.configHash)
    #expect(b.runID != a.runID)

    let changed = try #require(
        try parse(baseYAML.replacingOccurrences(of: "learning_rate: 0.1", with: "learning_rate: 0.2")).runs.first)
    #expect(changed.configHash != a.configHash)
}

@Test func fnv1aMatchesPublishedVectors() {
    // FNV-1a 64 test vectors (Fowler, Noll, Vo).
    #expect(fnv1a64Hex("") == "cbf29ce484222325")
    #expect(fnv1a64Hex("a") == "af63dc4c8601ec8c")
    #expect(fnv1a64Hex("foobar") == "85944171f73967e8")
}

@Test func canonicalJSONSortsKeysAndWritesShortestNumbers() {
    let value = ConfigValue.map([
        ("b", .double(0.1)), ("a", .list([.int(1), .double(2.0), .string("x\"y")])), ("c", .null),
    ])
    #expect(value.canonicalJSON == #"{"a":[1,2,"x\"y"],"b":0.1,"c":null}"#)
}

@Test func referenceDocsListEveryPluginAndParameter() throws {
    let docs = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/experiments.md"), encoding: .utf8)
    #expect(
        docs.contains(PluginRegistries.standard.referenceMarkdown()),
        "regenerate it: DPKIT_WRITE_REFERENCE=/tmp/reference.md swift test --filter writePluginReference, then paste it under `## Plugin reference` in docs/experiments.md"
    )
}

/// Not a check: writes the plugin reference of docs/experiments.md when asked.
///   DPKIT_WRITE_REFERENCE=/tmp/reference.md swift test --filter writePluginReference
@Test(.enabled(if: ProcessInfo.processInfo.environment["DPKIT_WRITE_REFERENCE"] != nil))
func writePluginReference() throws {
    try PluginRegistries.standard.referenceMarkdown()
        .write(toFile: ProcessInfo.processInfo.environment["DPKIT_WRITE_REFERENCE"]!, atomically: true, encoding: .utf8)
}

@Test func includeEntriesMayNestMaps() throws {
    let yaml = baseYAML + "include:\n  - {model: {options: {hidden_sizes: [4, 4]}}}\n"
    let config = try parse(yaml)
    #expect(config.runs.count == 2)
    #expect(config.varyingKeys == ["model.options.hidden_sizes"])
    #expect(config.runs[1].config.model.options["hidden_sizes"] == .list([.int(4), .int(4)]))
    #expect(config.runs[0].varyingValues.first?.value == .list([.int(8)]))
}

@Test func ledgerJSONRoundTripsThroughConfigValue() throws {
    let value = ConfigValue.map([
        ("flag", .bool(true)), ("count", .int(3)), ("q", .double(0.25)), ("name", .string("gaussian")),
        ("events", .list([.map([("sigma", .double(1.5))])])), ("none", .null),
    ])
    let parsed = try ConfigValue(jsonData: Data(value.jsonText().utf8))
    #expect(parsed == value)
}

/// Returns epsilons from a formula so the file contents are known.
struct FakeAccountant: AccountingExecutor {
    func epsilons(_ point: AccountingPoint, accountants: [AccountantKind]) throws -> AccountingResult {
        let e = point.samplingProbability * Double(point.steps) / point.noiseMultiplier
        let rdp = accountants.contains(.rdp), pld = accountants.contains(.pld)
        return AccountingResult(
            epsilonRDP: rdp ? e * 1.1 : nil, epsilonPLDLower: pld ? e * 0.9 : nil, epsilonPLDUpper: pld ? e : nil)
    }
}

@Test func accountingRunnerWritesTheGrid() throws {
    let config = try #require(
        try ExperimentConfig.load(
            file: repositoryRoot.appendingPathComponent("experiments/accountants.yaml").path
        ).accounting)
    let dir = try temporaryDirectory()
    try runAccounting(config, outputDirectory: dir, executor: FakeAccountant(), log: { _ in })
    let (header, rows) = CSV.table(
        try String(contentsOf: dir.appendingPathComponent("accounting.csv"), encoding: .utf8))
    #expect(header == accountingColumns)
    #expect(rows.count == config.points.count)
    let first = try #require(rows.first)
    #expect(
        first["q"] == "0.004267" && first["noise_multiplier"] == "0.8" && first["steps"] == "100"
            && first["delta"] == "1e-05")
    #expect(Double(first["epsilon_pld_upper"]!)! == 0.004267 * 100 / 0.8)
    #expect(
        try renderAccountingTable(
            accountingCSV: try String(contentsOf: dir.appendingPathComponent("accounting.csv"), encoding: .utf8),
            format: .latex
        ).contains("\\toprule"))
}
