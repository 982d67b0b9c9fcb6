import ArgumentParser
import DPData
import DPFeatures
import Foundation

struct FeaturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "features", abstract: "Compute fixed features of a dataset, for inspection.",
        subcommands: [ScatterCommand.self])
}

enum DataSplit: String, ExpressibleByArgument, CaseIterable {
    case train, test
}

/// `dpkit features scatter`: Kymatio's `Scattering2D(J, L)` of a dataset's images, written as
/// a NumPy `float32` array `[N, channels, h, w]`.
struct ScatterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scatter",
        abstract: "Write the 2-D scattering transform (ScatterNet, as Kymatio's Scattering2D) of a dataset as .npy.",
        discussion:
            "Images are scaled to [0, 1] as the dataset loads them. For 28x28 images, J 2 and L 8 give [N, 81, 7, 7].")

    @Option(help: "A dataset name (\(DatasetRegistry.standard.names.joined(separator: ", "))).")
    var dataset: String
    @Option(help: "Which split.") var split: DataSplit = .train
    @Option(help: "Only the first N images.") var count: Int?
    @Option(name: .customLong("path"), help: "The dataset's file or directory (default: the dataset's).")
    var path: String?
    @Option(name: .customLong("J"), help: "Scale: features are subsampled by 2^J.") var scales = 2
    @Option(name: .customLong("L"), help: "Number of wavelet angles.") var angles = 8
    @Option(help: "Worker threads (default: one per core).") var threads: Int?
    @Option(help: "The .npy file to write.") var output: String

    func validate() throws {
        if let n = count, n < 1 { throw ValidationError("--count must be >= 1, got \(n)") }
        if let t = threads, t < 1 { throw ValidationError("--threads must be >= 1, got \(t)") }
        guard output.hasSuffix(".npy") else {
            throw ValidationError("--output must name a .npy file, got \(output)")
        }
    }

    func run() throws {
        try reportingFailure {
            let registry = DatasetRegistry.standard
            let request = try registry.request(
                dataset, path: path, trainSize: split == .train ? count : nil, testSize: split == .test ? count : nil)
            let data = try registry.load(request)
            let images = split == .train ? data.train : data.test
            let shape = images.exampleShape.array
            guard shape.count == 3 else {
                throw FeatureError.badExampleShape(found: shape, expected: "[channels, height, width] images")
            }
            let scattering = try Scattering2D(height: shape[1], width: shape[2], scales: scales, angles: angles)
            let start = Date()
            let features = try scattering.transform(
                images, threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
            let seconds = Date().timeIntervalSince(start)
            let values = features.features.withUnsafeBufferPointer { Array($0) }
            try NumPyFile.float32(values, shape: features.features.shape.array)
                .write(to: URL(fileURLWithPath: output), options: .atomic)
            print(
                "\(output): \(features.features.shape.array) float32, scattering of \(images.count) images of \(images.name) in "
                    + String(format: "%.2f s", seconds))
        }
    }
}
