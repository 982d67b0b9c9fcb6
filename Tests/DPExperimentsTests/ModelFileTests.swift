import DPLayers
import DPTensor
import Foundation
import Testing

@testable import DPExperiments

// An exported model's architecture is written as configs write `model.layers`, and model files
// of the spelling before (Swift case names) still load.

@Test("a model file's layers are model.layers entries: the config reader reads them back to the same specs")
func architectureLayersAreConfigEntries() throws {
    let specs: [LayerSpec] = [
        .conv2d(outChannels: 4, kernel: 3, stride: 2, padding: 1), .groupNorm(groups: 2), .relu,
        .maxPool2d(kernel: 2), .temperedSigmoid(scale: 2, temperature: 2, offset: 1), .flatten, .dropout(rate: 0.1),
        .linear(outputs: 16, bias: false), .sigmoid, .linear(outputs: 10),
    ]
    let model = try ModelBuilder.build(specs: specs, inputShape: [1, 28, 28], seed: 0)
    let (_, metadata) = try Safetensors.decode(model.safetensors())
    let architecture = try ConfigValue(jsonData: Data(try #require(metadata[Sequential.architectureKey]).utf8))
    #expect(architecture["input_shape"] == .list([.int(1), .int(28), .int(28)]))
    // JSON objects are YAML flow maps: the entries go into a config as they are.
    let entries = try #require(architecture["layers"]?.listValue).map { $0.jsonText(pretty: false) }
    let config = try #require(try parse(fashionLayersYAML(entries)).runs.first).config
    #expect(config.model.layers == specs)
    #expect(
        config.model.layerTypes == [
            "conv2d", "group-norm", "relu", "max-pool2d", "tempered-sigmoid", "flatten", "dropout", "dense", "sigmoid",
            "dense",
        ])
}

@Test(
    "the models under notebooks-data/quickstart, written in the spelling before, load and evaluate to their runs' accuracy"
)
func committedModelsOfThePreviousSpellingEvaluate() throws {
    let directory = repositoryRoot.appendingPathComponent("notebooks-data/quickstart")
    let (_, rows) = CSV.table(try String(contentsOf: directory.appendingPathComponent("runs.csv"), encoding: .utf8))
    #expect(rows.count == 4)
    for row in rows {
        let id = try #require(row["run_id"])
        let file = directory.appendingPathComponent("models/\(id).safetensors")
        let (_, metadata) = try Safetensors.decode(Data(contentsOf: file))
        #expect(metadata[Sequential.architectureKey]?.contains(#""specs":[{"type":"flatten"}"#) == true)
        let result = try ModelEvaluation.evaluate(file: file)
        let recorded = try #require(Double(row["test_accuracy"] ?? ""))
        // The file was written on another machine; a BLAS kernel may flip a close prediction.
        #expect(abs(result.accuracy - recorded) <= 0.005, "run \(id): \(result.accuracy) vs \(recorded)")
    }
}
