import ArgumentParser
import DPAuditing
import DPData
import DPExperiments
import DPLayers
import DPTensor
import Foundation

extension InversionMethod: ExpressibleByArgument {}

/// A clipping norm on the command line: a number > 0, or `none` (also `inf`) for no clipping.
struct ClippingNormArgument: ExpressibleByArgument {
    var value: Double

    init?(argument: String) {
        switch argument.lowercased() {
        case "none", "inf", "infinity": value = .infinity
        default:
            guard let v = Double(argument) else { return nil }
            value = v
        }
    }

    var defaultValueDescription: String { value == .infinity ? "none" : "\(value)" }
}

/// `dpkit invert`: gradient inversion attacks against one DP-SGD step, swept over the defence.
struct InvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invert",
        abstract:
            "Reconstruct training images from one DP-SGD step's gradient (gradient inversion), over batch sizes, clipping norms and noise multipliers.",
        discussion: """
            For each batch size B and each (C, sigma) of --clipping-norm x --noise-multiplier, the \
            gradient of B training images (drawn from the first 1,000 with --seed) is taken from \
            DPKit's own DP-SGD step (per-example clipping at C, noise N(0, (sigma C)^2), divided by \
            B) on the model at its initialisation, and the attack rebuilds the images from it. \
            Methods: analytic (the input of a first dense layer with bias as the ratio of its weight \
            and bias gradients; exact for B = 1; models mlp and logistic-regression) and matching \
            (dummy images optimised until their gradient matches: cosine loss and total variation, \
            Geiping et al. 2020; labels inferred for B = 1, known for B > 1; mlp, \
            logistic-regression, cnn-tanh, cnn-tanh-tramer). C = none (no clipping) runs with \
            sigma = 0 only. Writes OUTPUT/<method>-<model>.csv (method, model, dataset, batch_size, \
            clipping_norm, noise_multiplier, mse, psnr, baseline_psnr, clipped_fraction, labels, \
            label_accuracy, seconds) after each \
            setting, and OUTPUT/<method>-<model>.svg (originals and reconstructions side by side), \
            with a PNG beside it when rsvg-convert (Debian package librsvg2-bin) is on PATH.
            """)

    @Option(help: "An image dataset with pixels in [0, 1]: fashion-mnist (`make data`) or synthetic-shapes.")
    var dataset = "fashion-mnist"
    @Option(
        help: "A named model, with its default parameters: \(ModelRegistry.standard.names.joined(separator: ", ")).")
    var model = "mlp"
    @Option(help: "analytic or matching.") var method: InversionMethod = .analytic
    @Option(name: .customLong("batch-size"), parsing: .upToNextOption, help: "Batch sizes B >= 1 (several allowed).")
    var batchSizes: [Int] = [1]
    @Option(
        name: .customLong("clipping-norm"), parsing: .upToNextOption,
        help: "Clipping norms C > 0, or none for no clipping (several allowed).")
    var clippingNorms: [ClippingNormArgument] = [ClippingNormArgument(argument: "none")!]
    @Option(
        name: .customLong("noise-multiplier"), parsing: .upToNextOption,
        help: "Noise multipliers sigma >= 0 (several allowed).")
    var noiseMultipliers: [Double] = [0]
    @Option(help: "Output directory (created if needed).") var output: String
    @Option(help: "Matching: optimisation steps per start.") var iterations = 300
    @Option(help: "Matching: Adam's step size in pixel units.") var learningRate = 0.1
    @Option(help: "Matching: weight of the total-variation prior.") var tvWeight = 1e-2
    @Option(help: "Matching: random starts (the one with the lowest matching loss is kept).") var restarts = 1
    @Option(help: "Seed of the model's initialisation, the images, the noise and the starts.") var seed: UInt64 = 0
    @Flag(help: "Do not convert the grid to PNG.") var noPng = false

    func validate() throws {
        for b in batchSizes where b < 1 {
            throw ValidationError(
                "--batch-size \(b): must be at least 1 (the number of examples whose gradient is observed)")
        }
        for c in clippingNorms where !(c.value > 0) {
            throw ValidationError("--clipping-norm \(c.value): must be > 0, or none for no clipping")
        }
        for s in noiseMultipliers where !(s >= 0 && s.isFinite) {
            throw ValidationError("--noise-multiplier \(s): must be a finite number >= 0 (0 for no noise)")
        }
        if noiseMultipliers.contains(where: { $0 > 0 }) && clippingNorms.allSatisfy({ $0.value == .infinity }) {
            throw ValidationError(
                "--noise-multiplier > 0 needs a finite --clipping-norm: the noise is sigma * C (give e.g. --clipping-norm 1)"
            )
        }
        guard iterations >= 1 else { throw ValidationError("--iterations \(iterations): must be >= 1") }
        guard learningRate > 0, learningRate.isFinite else {
            throw ValidationError("--learning-rate \(learningRate): must be > 0")
        }
        guard tvWeight >= 0, tvWeight.isFinite else { throw ValidationError("--tv-weight \(tvWeight): must be >= 0") }
        guard restarts >= 1 else { throw ValidationError("--restarts \(restarts): must be >= 1") }
    }

    /// The registered datasets whose examples are declared as images (`fashion-mnist`, `synthetic-shapes`).
    static var imageDatasets: [String] {
        let registry = DatasetRegistry.standard
        return registry.names.filter { name in
            guard let request = try? registry.request(name), let declared = try? registry.declaredExamples(request)
            else { return false }
            return declared.shape.rank == 3
        }
    }

    func run() throws {
        // Inputs: the dataset, the model, the method against the model.
        let images = Self.imageDatasets
        guard images.contains(dataset) else {
            let known = DatasetRegistry.standard.names.contains(dataset) ? "not an image dataset" : "unknown dataset"
            throw usageError(
                "--dataset \(dataset): \(known); dpkit invert takes the image datasets \(images.joined(separator: ", "))"
            )
        }
        let data: Dataset
        do {
            let request = try DatasetRegistry.standard.request(dataset, trainSize: 1000, testSize: 1, seed: seed)
            data = try DatasetRegistry.standard.load(request).train
        } catch {
            throw reportFailure(error)
        }
        let shape = data.exampleShape
        guard shape.rank == 3, shape[0] == 1 || shape[0] == 3 else {
            throw usageError(
                "--dataset \(dataset): examples of shape \(shape) are not images [1 or 3, H, W]; use one of \(Self.imageDatasets.joined(separator: ", "))"
            )
        }
        let network: Sequential
        do {
            network = try ModelBuilder.build(
                model: model, input: ModelInput(exampleShape: shape, classes: data.classCount), seed: seed)
        } catch let error as ModelBuilderError {
            throw usageError("--model \(model): \(error)")
        }
        if let largest = batchSizes.max(), largest > data.count {
            throw usageError(
                "--batch-size \(largest): larger than the \(data.count) images dpkit invert draws from (the first \(data.count) training examples)"
            )
        }
        let experiment = GradientInversionExperiment(
            method: method, batchSizes: batchSizes,
            defences: GradientInversionExperiment.defences(
                clippingNorms: clippingNorms.map(\.value), noiseMultipliers: noiseMultipliers),
            matching: GradientMatching(
                iterations: iterations, learningRate: learningRate, totalVariationWeight: tvWeight, restarts: restarts,
                seed: seed),
            seed: seed)
        do {
            try experiment.validate(exampleCount: data.count)
            try experiment.check(model: network, data: data, datasetName: dataset)
        } catch let error as AuditError {
            throw usageError("\(error) (--method \(method.rawValue), --model \(model), --dataset \(dataset))")
        }

        // Output: fails here, before any work, when the folder cannot be written.
        let out = URL(fileURLWithPath: output)
        let name = "\(method.rawValue)-\(model)"
        let csvURL = out.appendingPathComponent(name + ".csv")
        let svgURL = out.appendingPathComponent(name + ".svg")
        do {
            try FileIO.createDirectory(out)
            try DurableFile.writeAtomically(InversionReport(records: [], pixelRange: 0...1).csv, to: csvURL)
        } catch {
            let ownHint = (error as? FileError)?.hint != nil
            throw reportFailure(error, hint: ownHint ? nil : "choose a writable --output folder")
        }

        print("DPKit \(DPKitVersion.string); \(BLASRuntime.summary)")
        print(
            "\(method.rawValue) inversion of \(model) on \(dataset), batch sizes \(batchSizes.map(String.init).joined(separator: " ")), \(experiment.defences.count) defence settings, seed \(seed)"
        )
        var done: [InversionRecord] = []
        do {
            let report = try experiment.run(model: network, modelName: model, data: data, datasetName: dataset) {
                record in
                done.append(record)
                print(
                    String(
                        format: "B = %d, %@: MSE %.3g, PSNR %.1f dB (mean image %.1f dB), %.0f%% clipped%@ (%.1f s)",
                        record.batchSize, record.defence.description, record.quality.meanSquaredError,
                        record.quality.peakSignalToNoiseRatio, record.baseline.peakSignalToNoiseRatio,
                        record.clippedFraction * 100,
                        record.labelAccuracy.map {
                            String(format: ", labels %@ %.0f%% right", record.labels.rawValue, $0 * 100)
                        }
                            ?? "", record.seconds))
                // The table so far, so that an interrupted sweep keeps what it finished.
                try? DurableFile.writeAtomically(InversionReport(records: done, pixelRange: 0...1).csv, to: csvURL)
            }
            try DurableFile.writeAtomically(report.csv, to: csvURL)
            print("wrote \(csvURL.path)")
            if let grid = report.grid(title: "\(method.rawValue) gradient inversion, \(model) on \(dataset)") {
                try DurableFile.writeAtomically(grid.svg(), to: svgURL)
                print("wrote \(svgURL.path)")
                if !noPng {
                    if let png = SVG.convertToPNG(svgURL) {
                        print("wrote \(png.path)")
                    } else {
                        FileHandleStderr.write(
                            "note: no PNG: rsvg-convert is not on PATH (Debian package librsvg2-bin; `make plot-deps` installs it); the SVG is written\n"
                        )
                    }
                }
            }
        } catch let error as AuditError {
            throw usageError(error.description)
        } catch {
            throw reportFailure(error)
        }
    }
}

/// Prints `error: message` to standard error and returns the usage exit status (64): for input
/// found wrong after parsing, where ArgumentParser's usage line would name the root command.
func usageError(_ message: String) -> ExitCode {
    FileHandleStderr.write("error: \(message)\n")
    return ExitCode(ExitStatus.usage.rawValue)
}
