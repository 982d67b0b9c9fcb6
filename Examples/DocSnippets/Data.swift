// swift-format-ignore-file
// (the snippet regions are shown word for word in the docs: Tests/DocumentationTests)
import DPData
import DPTensor

/// docs/data.md, the opening example. Compiled only: it generates 60,000 images.
func dataLoading() throws {
    let someIndices = Array(0..<256)
    // snippet: data-loading
    let registry = DatasetRegistry.standard
    var pair = try registry.load(registry.request("synthetic-shapes", parameters: ["noise": .double(0.2)], trainSize: 60000, seed: 1))
    let stats = pair.standardize(perChannel: true)      // fitted on pair.train only, applied to both
    var batch = Tensor<Float>(zeros: pair.train.batchShape(256)); var y: [Int] = []
    pair.train.gather(indices: someIndices, into: &batch, labels: &y)   // no allocation once sized
    let (fit, validation) = pair.train.split(fraction: 0.9, seed: 7)    // stratified by class
    // end snippet
    print(stats, fit.count, validation.count)
}
