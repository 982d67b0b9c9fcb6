import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPExperiments

// Shape inference at config load: the model must fit the examples the dataset config
// describes, and its logits must be one per class. No data is read (Fashion-MNIST need not be
// installed for these tests).

/// `baseYAML` on Fashion-MNIST with `layers` as the model.
func fashionLayersYAML(_ layers: [String]) -> String {
    baseYAML
        .replacingOccurrences(
            of: "  name: gaussian-mixture\n  train_size: 1000", with: "  name: fashion-mnist\n  train_size: 1000"
        )
        .replacingOccurrences(
            of: "  name: mlp\n  options:\n    hidden_sizes: [8]",
            with: "  layers:\n" + layers.map { "    - \($0)" }.joined(separator: "\n"))
}

/// The 1-based line of the first line of `yaml` containing `text`.
func line(of text: String, in yaml: String) -> Int? {
    yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains(text) }.map { $0 + 1 }
}

@Test("the finding: a last dense layer with fewer units than classes is a ConfigError at load, not a trap in the loss")
func denseWithFewerUnitsThanClassesIsRefusedAtLoad() throws {
    let yaml = fashionLayersYAML([
        "{type: flatten}", "{type: dense, units: 32}", "{type: tanh}", "{type: dense, units: 5}",
    ])
    let error = try #require(configError(yaml, file: "few.yaml"))
    #expect(error.path == "model.layers[3]")
    #expect(error.line == line(of: "units: 5", in: yaml))
    #expect(
        error.description.hasPrefix(
            "few.yaml:\(error.line ?? 0): model.layers[3]: `dense` gives 5 logits for 10 classes"), "\(error)")
    #expect(error.message.contains("the labels 5..<10 would have no logit; set `units: 10`"))
    #expect(error.message.contains("shapes: [1, 28, 28] -> [784] -> [32] -> [32]"))
    #expect(error.message.contains("dataset `fashion-mnist`: examples [1, 28, 28], 10 classes"))
}

@Test func moreUnitsThanClassesAndANonDenseLastLayerAreRefused() throws {
    let more = try #require(configError(fashionLayersYAML(["{type: flatten}", "{type: dense, units: 12}"])))
    #expect(
        more.path == "model.layers[1]" && more.message.contains("the logits 10..<12 would belong to no class"),
        "\(more)")

    let activation = try #require(
        configError(fashionLayersYAML(["{type: flatten}", "{type: dense, units: 10}", "{type: tanh}"])))
    #expect(activation.path == "model.layers[2]")
    #expect(
        activation.message.contains(
            "`tanh` is the last layer, but the last layer gives the logits, one per class: end the model with `{type: dense, units: 10}`"
        ),
        "\(activation)")

    let images = try #require(
        configError(fashionLayersYAML(["{type: conv2d, channels: 4}", "{type: dense, units: 10}"])))
    #expect(
        images.path == "model.layers[1]"
            && images.message.contains("cannot take examples of shape [4, 26, 26]: linear acts on vectors"),
        "\(images)")

    let good = try parse(
        fashionLayersYAML([
            "{type: conv2d, channels: 4, kernel_size: 5, stride: 2}", "{type: group-norm, groups: 2}",
            "{type: relu}", "{type: avg-pool2d}", "{type: flatten}", "{type: dense, units: 10}",
        ]))
    #expect(good.runs.count == 1)
}

@Test("a kernel larger than the map an image_size sweep leaves: the error names the layer, the shapes and the sweep")
func sweptImageSizeThatShrinksTheMapBelowTheKernel() throws {
    let yaml =
        baseYAML
        .replacingOccurrences(of: "  name: gaussian-mixture", with: "  name: synthetic-shapes")
        .replacingOccurrences(of: "  name: mlp\n  options:\n    hidden_sizes: [8]", with: "  name: cnn-tanh")
        + "sweep:\n  dataset.options.image_size: [28, 8]\n"
    let error = try #require(configError(yaml))
    #expect(error.path == "model.name")
    #expect(
        error.message.contains(
            "layer 3 of model `cnn-tanh` (conv2d(outChannels: 32, kernel: 4, stride: 2, padding: 0, bias: true)) cannot take examples of shape [16, 3, 3]: the 4x4 window is larger than the 3x3 input"
        ),
        "\(error)")
    #expect(error.message.contains("shapes: [1, 8, 8] -> [16, 4, 4] -> [16, 4, 4] -> [16, 3, 3]"))
    #expect(error.message.contains("(with dataset.options.image_size from sweep)"))
    // At 28 the same model fits.
    #expect(try parse(yaml.replacingOccurrences(of: "[28, 8]", with: "[28, 16]")).runs.count == 2)
}

@Test func aLayersSweepPointsAtTheSweepEntry() throws {
    let yaml =
        fashionLayersYAML(["{type: flatten}", "{type: dense, units: 10}"])
        + "sweep:\n  model.layers: [[{type: flatten}, {type: dense, units: 10}], [{type: flatten}, {type: dense, units: 3}]]\n"
    let error = try #require(configError(yaml))
    #expect(error.path == "model.layers[1]" && error.message.contains("(value from sweep)"), "\(error)")
    #expect(error.line == line(of: "model.layers: [[", in: yaml))
}

/// Config edits that used to pass validation and then trap or misbehave at run time.
@Test(arguments: try BadConfigCase.table("runtime-traps.yaml"))
func valuesThatWouldTrapAtRunTimeAreConfigErrors(_ c: BadConfigCase) throws {
    try c.check()
}

@Test("declared example shapes and sizes agree with what the loaders produce")
func declaredExamplesMatchTheLoaders() throws {
    let cases = [
        "  name: synthetic-shapes\n  options: {image_size: 9}",
        "  name: synthetic-shapes\n  train_size: 30\n  test_size: 7\n  options: {image_size: 12}",
        "  name: gaussian-mixture\n  options: {dimensions: 5, classes: 3}",
        "  name: gaussian-mixture\n  train_size: 50\n  test_size: 20\n  options: {dimensions: 2, classes: 7}",
    ]
    for dataset in cases {
        let yaml = baseYAML.replacingOccurrences(of: "  name: gaussian-mixture\n  train_size: 1000", with: dataset)
            .replacingOccurrences(of: "expected_batch_size: 100", with: "expected_batch_size: 5")
        let run = try #require(try parse(yaml).runs.first).config
        let declared = try #require(try run.dataset.declaredExamples())
        let split = try TrainingExecutor().loadData(run)
        #expect(split.train.exampleShape == declared.shape && split.train.classCount == declared.classes, "\(dataset)")
        // Generated sets hold the declared counts (gaussian-mixture draws whole classes, then keeps train_size).
        #expect(split.train.count == min(declared.trainCount ?? -1, run.dataset.trainSize ?? .max), "\(dataset)")
        #expect(split.test.count == min(declared.testCount ?? -1, run.dataset.testSize ?? .max), "\(dataset)")
    }
}

@Test(
    "csv: what does not depend on the columns is checked at load; the rest fails that run alone when the file is read")
func csvModelsAreCheckedAtLoadAndOnTheLoadedData() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let csv = directory.appendingPathComponent("three.csv").path
    let rows = (0..<60).map { i in "\(Double(i % 3) * 2 + Double(i % 5) * 0.1),\(Double(i % 7) * 0.1),\(i % 3)" }
    try ("a,b,label\n" + rows.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
    let base =
        baseYAML
        .replacingOccurrences(
            of: "  name: gaussian-mixture\n  train_size: 1000", with: "  name: csv\n  path: \(csv)\n  test_size: 15"
        )
        .replacingOccurrences(of: "expected_batch_size: 100", with: "expected_batch_size: 9")
        .replacingOccurrences(of: "epochs: 3", with: "epochs: 1")

    let conv = base.replacingOccurrences(
        of: "  name: mlp\n  options:\n    hidden_sizes: [8]",
        with: "  layers: [{type: conv2d, channels: 2}, {type: dense, units: 3}]")
    let convError = try #require(configError(conv))
    #expect(
        convError.path == "model.layers[0]" && convError.message.contains("csv examples are vectors [features]"),
        "\(convError)")
    let tail = base.replacingOccurrences(
        of: "  name: mlp\n  options:\n    hidden_sizes: [8]", with: "  layers: [{type: dense, units: 3}, {type: relu}]")
    #expect(try #require(configError(tail)).path == "model.layers[1]")
    #expect(
        try #require(
            configError(
                base.replacingOccurrences(of: "name: mlp", with: "name: cnn-tanh")
                    .replacingOccurrences(of: "  options:\n    hidden_sizes: [8]\n", with: ""))
        ).path == "model.name")

    // Two runs: 3 units (the file has 3 classes) trains; 2 units fails that run alone, typed.
    let swept =
        base.replacingOccurrences(
            of: "  name: mlp\n  options:\n    hidden_sizes: [8]", with: "  layers: [{type: dense, units: 3}]")
        + "sweep:\n  model.layers: [[{type: dense, units: 3}], [{type: dense, units: 2}]]\n"
    let config = try parse(swept)
    #expect(config.runs.count == 2)
    let (report, lines, output) = try trainInTemporaryFolder(config)
    defer { try? FileManager.default.removeItem(at: output) }
    #expect(report.finished.count == 1 && report.failed.count == 1)
    #expect(lines.contains { $0.contains("FAILED: model.layers[0]: `dense` gives 2 logits for 3 classes") }, "\(lines)")
}
