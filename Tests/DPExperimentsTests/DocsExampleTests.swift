// swift-format-ignore-file
// (the xor dataset below is shown word for word in docs/data.md)
import DPData
import DPExperiments
import DPTensor
import Foundation
import Testing

// The worked example of docs/data.md ("Adding a dataset") and a check of every YAML block of
// README.md and docs/*.md against the config reader.

// MARK: - Worked example: the code docs/data.md shows

extension DatasetPlugin {
    /// Points uniform in [-1, 1]^2 of class 1 where x y > 0 (the XOR pattern, which no linear
    /// model separates), with a fraction `label_noise` of the labels flipped.
    static let xor = DatasetPlugin(
        PluginSpec("xor", "points in [-1, 1]^2, class 1 where x y > 0", parameters: [
            ParameterSpec("label_noise", .double, range: .closed(0, 0.5), default: .double(0), "fraction of labels flipped"),
        ]),
        declare: { r in
            DeclaredExamples(shape: [2], classes: 2, trainCount: r.trainSize ?? 2_000, testCount: r.testSize ?? 500,
                             summary: "dataset `xor`: examples [2], 2 classes")
        },
        load: { r in
            let flip = Float(r.parameters.double("label_noise"))
            func part(_ count: Int, stream: UInt64) -> Dataset {
                var rng = PhiloxRandom(seed: r.seed, stream: stream)
                let x = Tensor<Float>(uniform: [count, 2], in: -1...1, using: &rng)
                let u = Tensor<Float>(uniform: [count], in: 0...1, using: &rng)
                let labels = (0..<count).map { i in (x[i, 0] * x[i, 1] > 0) != (u[i] < flip) ? 1 : 0 }
                return Dataset(name: "xor", features: x, labels: labels, classCount: 2)
            }
            return TrainTestSplit(train: part(r.trainSize ?? 2_000, stream: 1), test: part(r.testSize ?? 500, stream: 2))
        })
}

// MARK: - Docs

/// The fenced blocks of `language` in a markdown file, each with the line before its fence.
func fencedBlocks(_ language: String, in text: String) -> [(marker: String, body: String)] {
    var blocks: [(String, String)] = []
    var current: [String]?
    var previous = "", marker = ""
    for line in text.components(separatedBy: "\n") {
        if current == nil, line.trimmingCharacters(in: .whitespaces) == "```" + language {
            current = []
            marker = previous
        } else if current != nil, line.trimmingCharacters(in: .whitespaces) == "```" {
            blocks.append((marker, current!.joined(separator: "\n")))
            current = nil
        } else if current != nil {
            current!.append(line)
        }
        previous = line
    }
    return blocks
}

/// The markdown files whose YAML a user may copy: README.md and docs/*.md.
func documentationFiles() throws -> [URL] {
    let docs = repositoryRoot.appendingPathComponent("docs")
    let files = try FileManager.default.contentsOfDirectory(at: docs, includingPropertiesForKeys: nil)
        .filter { $0.pathExtension == "md" }.sorted { $0.path < $1.path }
    return [repositoryRoot.appendingPathComponent("README.md")] + files
}

/// The registries the docs' YAML is read with: the standard ones plus the worked example's dataset.
var documentedRegistries: PluginRegistries {
    var registries = PluginRegistries.standard
    registries.datasets.register(.xor)
    return registries
}

/// A whole config onto which fragments (a `model:` section, `seeds`/`sweep`/`include`) are set.
let fragmentBase = """
name: docs-fragment
dataset: {name: synthetic-shapes, train_size: 200, test_size: 50}
model: {name: mlp}
optimizer: {name: sgd, learning_rate: 0.1}
privacy: {target_epsilon: 3, delta: 1.0e-5, clipping_norm: 1.0}
training: {expected_batch_size: 20, epochs: 1}
"""

@Test func everyYAMLBlockInTheDocsIsAcceptedByTheConfigReader() throws {
    var checked = 0
    for file in try documentationFiles() where FileManager.default.fileExists(atPath: file.path) {
        let text = try String(contentsOf: file, encoding: .utf8)
        for (marker, body) in fencedBlocks("yaml", in: text) where !marker.contains("<!-- not a config -->") {
            let where_ = "\(file.lastPathComponent): a yaml block (mark one that is not a config with `<!-- not a config -->` on the line before it)"
            let (tree, _) = try ConfigValue.parseYAML(body, file: file.lastPathComponent)
            let yaml: String
            if tree["name"] != nil {
                yaml = body  // a whole experiment config
            } else {
                // A fragment: its top-level keys replace those of the base config.
                var merged = try ConfigValue.parseYAML(fragmentBase, file: "base").value
                guard case .map(let pairs) = tree else { Issue.record("\(where_) is not a map"); continue }
                for (key, value) in pairs { merged.setValue(value, atPath: key) }
                yaml = merged.jsonText()  // JSON is YAML
            }
            do {
                _ = try ExperimentConfig.parse(yaml: yaml, file: file.lastPathComponent, registries: documentedRegistries)
            } catch {
                Issue.record("\(where_) is refused: \(error)\n\(body)")
            }
            checked += 1
        }
    }
    #expect(checked >= 4)
}

@Test func workedExampleOfTheDocsRegistersADatasetAndTrainsOnItFromYAML() throws {
    let doc = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/data.md"), encoding: .utf8)
    // The Swift the docs show is this file's, word for word.
    let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
    let swift = fencedBlocks("swift", in: doc).filter { $0.body.contains("static let xor = DatasetPlugin(") }
    #expect(swift.count == 1 && source.contains(swift[0].body), "docs/data.md's xor dataset differs from \(#fileID)")

    // The YAML the docs show, run with the registries that hold the new dataset.
    let yaml = try #require(fencedBlocks("yaml", in: doc).first { $0.body.contains("name: xor") }?.body)
    let registries = documentedRegistries
    #expect(throws: ConfigError.self) { try ExperimentConfig.parse(yaml: yaml, file: "xor.yaml") }  // not registered
    let config = try ExperimentConfig.parse(yaml: yaml, file: "xor.yaml", registries: registries)
    let run = try #require(config.runs.first)
    #expect(run.config.dataset.options["label_noise"] == .double(0.05))

    let dir = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: dir) }
    let report = try ExperimentRunner(config: config, outputDirectory: dir, executor: TrainingExecutor(registries: registries),
                                      log: { _ in }).run()
    #expect(report.finished.count == config.runs.count && report.failed.isEmpty, "\(report)")
    let runs = try String(contentsOf: dir.appendingPathComponent("runs.csv"), encoding: .utf8)
    #expect(runs.contains(run.runID))
}
