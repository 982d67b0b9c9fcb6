import DPData
import DPLayers
import DPTensor
import Foundation

/// A sweep of one gradient-inversion attack over batch sizes and DP-SGD defences: for each
/// batch size B and each (C, sigma), the gradient of B fixed training images is observed
/// through ``GradientObservation`` (DP-SGD's own step), the attack reconstructs them, and the
/// reconstruction error is measured (``ReconstructionQuality``). ``InversionReport`` gives the
/// CSV table and the image grid.
///
/// - The model is the caller's, at its initialisation (gradient leakage is strongest, and most
///   studied, early in training; Geiping et al. 2020 attack untrained and trained models).
/// - The images are drawn once from `seed` (stream `victims`): batch B takes the first B of
///   the same draw, so the batch sizes share images. The noise of every setting of one batch
///   size uses the same standard normal draws (``GradientObservation``'s seed).
/// - **Analytic**: for B = 1, the least-squares ratio over all rows of the first dense layer;
///   for B > 1, every row's mixture, and for each original the closest one (chosen with the
///   original: an upper bound on the attack, see ``AnalyticInversion``).
/// - **Matching**: labels inferred for B = 1 (iDLG), known for B > 1; the reconstructed batch
///   is paired with the originals by the assignment of least total MSE.
/// - Reconstructions are clamped to the pixel range before they are scored (the attacker
///   knows it).
public struct GradientInversionExperiment: Sendable {
    public var method: InversionMethod
    /// Each in 1...data.count.
    public var batchSizes: [Int]
    public var defences: [GradientDefence]
    public var matching: GradientMatching
    /// Images and noise (see the type); the model is the caller's.
    public var seed: UInt64
    /// The range of the data's pixels (checked), the attacker's box and the PSNR's peak.
    public var pixelRange: ClosedRange<Double>

    public init(
        method: InversionMethod, batchSizes: [Int], defences: [GradientDefence],
        matching: GradientMatching = GradientMatching(), seed: UInt64 = 0, pixelRange: ClosedRange<Double> = 0...1
    ) {
        self.method = method
        self.batchSizes = batchSizes
        self.defences = defences
        self.matching = matching
        self.seed = seed
        self.pixelRange = pixelRange
    }

    /// The Philox stream of the image draw.
    static let victimStream: UInt64 = 0x1_4E7E_0000

    /// The defences of the grid `clippingNorms x noiseMultipliers`, in that order, leaving out
    /// noise without clipping (the noise is sigma C: C = infinity is run with sigma = 0 only).
    public static func defences(clippingNorms: [Double], noiseMultipliers: [Double]) -> [GradientDefence] {
        var out: [GradientDefence] = []
        for c in clippingNorms {
            for s in noiseMultipliers where !(c == .infinity && s > 0) {
                let d = GradientDefence(clippingNorm: c, noiseMultiplier: s)
                if !out.contains(d) { out.append(d) }
            }
        }
        if out.isEmpty, clippingNorms.contains(.infinity) { out.append(.none) }
        return out
    }

    /// - Throws: ``AuditError`` naming the bad value and the fix.
    public func validate(exampleCount: Int? = nil) throws {
        guard !batchSizes.isEmpty else { throw AuditError("no batch size: give at least one (1 to 8 is usual)") }
        for b in batchSizes where b < 1 {
            throw AuditError("batch size \(b) must be at least 1 (the number of examples whose gradient is observed)")
        }
        if let n = exampleCount, let b = batchSizes.max(), b > n {
            throw AuditError("batch size \(b) is larger than the \(n) examples of the dataset")
        }
        guard !defences.isEmpty else {
            throw AuditError(
                "no defence setting: give clipping norms and noise multipliers (none and 0 for no defence)")
        }
        for d in defences { try d.validate() }
        if method == .matching { try matching.validate() }
    }

    /// Checks that the method can attack `model` on `data`: the model's outputs match the
    /// classes, the method supports its layers, and the pixels lie in ``pixelRange``.
    /// - Throws: ``AuditError`` naming the problem and the fix.
    public func check(model: Sequential, data: Dataset, datasetName: String) throws {
        let exampleShape = data.exampleShape
        let output = model.outputShape(forExampleShape: exampleShape)
        guard output.array == [data.classCount] else {
            throw AuditError(
                "the model gives \(output.array) outputs per example, but \(datasetName) has \(data.classCount) classes"
            )
        }
        switch method {
        case .analytic: _ = try AnalyticInversion.target(in: model)
        case .matching: _ = try SecondOrderReplica(model: model, exampleShape: exampleShape)
        }
        let scalars = data.features.scalars
        if let lo = scalars.min(), let hi = scalars.max(),
            Double(lo) < pixelRange.lowerBound || Double(hi) > pixelRange.upperBound
        {
            throw AuditError(
                "the images of \(datasetName) have pixels in [\(lo), \(hi)], outside the range [\(pixelRange.lowerBound), \(pixelRange.upperBound)] the attack and the PSNR assume; give images scaled to it"
            )
        }
    }

    /// Runs the sweep on `model` (built for `data`'s examples), calling `onRecord` after each setting.
    /// - Parameters:
    ///   - modelName, datasetName: for the table.
    /// - Throws: ``AuditError`` for invalid settings, a model the method cannot attack, or
    ///   pixels outside ``pixelRange``; ``TrainingError`` from the DP-SGD step.
    public func run(
        model: Sequential, modelName: String, data: Dataset, datasetName: String,
        onRecord: (InversionRecord) -> Void = { _ in }
    ) throws -> InversionReport {
        try validate(exampleCount: data.count)
        try check(model: model, data: data, datasetName: datasetName)
        let exampleShape = data.exampleShape
        let victims = Self.draw(count: batchSizes.max()!, from: data.count, seed: seed)
        var inputs = Tensor<Float>(zeros: data.batchShape(victims.count))
        var labels: [Int] = []
        data.gather(indices: victims, into: &inputs, labels: &labels)
        let meanImage = data.features.mean(alongAxis: 0).scalars
        var records: [InversionRecord] = []
        for b in batchSizes {
            let batch = inputs.rows(0..<b), batchLabels = Array(labels[0..<b])
            let originals = (0..<b).map { batch.example($0) }
            for defence in defences {
                let start = Date()
                let observed = try GradientObservation.observe(
                    model: model, inputs: batch, labels: batchLabels, classCount: data.classCount, defence: defence,
                    seed: seed)
                var reconstructions: [[Float]]
                var labelSource = InversionRecord.LabelSource.notUsed
                var labelAccuracy: Double?
                switch method {
                case .analytic:
                    reconstructions = try analytic(observed, model: model, originals: originals)
                case .matching:
                    var used = batchLabels
                    if b == 1 {
                        used = [try GradientMatching.inferLabel(observed: observed, model: model)]
                        labelSource = .inferred
                    } else {
                        labelSource = .known
                    }
                    labelAccuracy = Double(zip(used, batchLabels).filter { $0 == $1 }.count) / Double(b)
                    let found = try matching.reconstruct(
                        model: model, observed: observed, labels: used, exampleShape: exampleShape)
                    let candidates = (0..<b).map { clamped(found.inputs.example($0)) }
                    let order = ReconstructionQuality.bestAssignment(originals: originals, reconstructions: candidates)
                    reconstructions = order.map { candidates[$0] }
                }
                let record = InversionRecord(
                    method: method, model: modelName, dataset: datasetName, batchSize: b, defence: defence,
                    clippedFraction: Double(observed.clippedCount) / Double(b),
                    quality: ReconstructionQuality(
                        originals: originals, reconstructions: reconstructions, range: pixelRange),
                    baseline: ReconstructionQuality(
                        originals: originals, reconstructions: originals.map { _ in meanImage }, range: pixelRange),
                    labels: labelSource, labelAccuracy: labelAccuracy, seconds: Date().timeIntervalSince(start),
                    originals: originals, reconstructions: reconstructions, imageShape: exampleShape)
                records.append(record)
                onRecord(record)
            }
        }
        return InversionReport(records: records, pixelRange: pixelRange)
    }

    func analytic(_ observed: ObservedGradient, model: Sequential, originals: [[Float]]) throws -> [[Float]] {
        let target = try AnalyticInversion.target(in: model)
        let w = observed.parameters[target.weightIndex], bias = observed.parameters[target.biasIndex]
        let blank = [Float](repeating: Float(pixelRange.lowerBound), count: target.inputs)
        if originals.count == 1 {
            let x = AnalyticInversion.leastSquares(weightGradient: w, biasGradient: bias)
            return [x.map { clamped($0.map(Float.init)) } ?? blank]
        }
        let candidates = AnalyticInversion.rowReconstructions(weightGradient: w, biasGradient: bias).map {
            clamped($0.map(Float.init))
        }
        return originals.map { original in
            candidates.min {
                ReconstructionQuality.meanSquaredError(original, $0)
                    < ReconstructionQuality.meanSquaredError(original, $1)
            } ?? blank
        }
    }

    func clamped(_ x: [Float]) -> [Float] {
        x.map { Float(clamp(Double($0), pixelRange)) }
    }

    /// `count` distinct indices of `0..<n`, uniformly at random from Philox stream ``victimStream`` of `seed`.
    static func draw(count: Int, from n: Int, seed: UInt64) -> [Int] {
        var rng = PhiloxRandom(seed: seed, stream: victimStream)
        var pool = Array(0..<n)
        for i in 0..<count {
            let j = i + Int(rng.nextOpenUnitDouble() * Double(n - i)) % (n - i)
            pool.swapAt(i, j)
        }
        return Array(pool[0..<count])
    }
}

/// One setting of a ``GradientInversionExperiment``: the error, and the images.
public struct InversionRecord: Sendable {
    /// Where the labels of the reconstruction came from.
    public enum LabelSource: String, Sendable {
        /// From the observed gradient (iDLG, one example).
        case inferred
        /// Given to the attacker (batches).
        case known
        /// The analytic attack does not use labels.
        case notUsed = "not-used"
    }

    public var method: InversionMethod
    public var model: String
    public var dataset: String
    public var batchSize: Int
    public var defence: GradientDefence
    /// The fraction of the batch whose gradient norm exceeded C (scaled down by clipping).
    public var clippedFraction: Double
    public var quality: ReconstructionQuality
    /// The dataset's mean image in place of every reconstruction: what an attacker has without
    /// the gradient (a reconstruction no better than this has learnt nothing about the images).
    public var baseline: ReconstructionQuality
    public var labels: LabelSource
    /// The fraction of labels the attack used that are right (matching only).
    public var labelAccuracy: Double?
    /// Wall time of the observation and the attack.
    public var seconds: Double
    public var originals: [[Float]]
    /// Aligned with ``originals``.
    public var reconstructions: [[Float]]
    public var imageShape: Shape
}

/// The table and the image grid of a sweep.
public struct InversionReport: Sendable {
    public var records: [InversionRecord]
    public var pixelRange: ClosedRange<Double>

    public init(records: [InversionRecord], pixelRange: ClosedRange<Double> = 0...1) {
        self.records = records
        self.pixelRange = pixelRange
    }

    public static let columns = [
        "method", "model", "dataset", "batch_size", "clipping_norm", "noise_multiplier", "mse", "psnr",
        "baseline_psnr", "clipped_fraction", "labels", "label_accuracy", "seconds",
    ]

    /// One row per record: `clipping_norm` is `inf` for no clipping; `psnr` in dB from the
    /// batch MSE, `inf` for an exact reconstruction; `baseline_psnr` that of the dataset's mean
    /// image; `clipped_fraction` the share of the batch scaled down by clipping; `labels`
    /// `inferred`, `known` or `not-used`, and `label_accuracy` empty for the analytic method.
    /// Numbers in Swift's shortest round-trip form, which pandas reads.
    public var csv: String {
        var out = Self.columns.joined(separator: ",") + "\n"
        for r in records {
            let fields = [
                r.method.rawValue, r.model, r.dataset, String(r.batchSize), Self.number(r.defence.clippingNorm),
                Self.number(r.defence.noiseMultiplier), Self.number(r.quality.meanSquaredError),
                Self.number(r.quality.peakSignalToNoiseRatio), Self.number(r.baseline.peakSignalToNoiseRatio),
                Self.number(r.clippedFraction), r.labels.rawValue,
                r.labelAccuracy.map(Self.number) ?? "", String(format: "%.3f", r.seconds),
            ]
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }

    static func number(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        return "\(x)"
    }

    /// The grid: a top row of originals (captioned with the PSNR of the dataset's mean image,
    /// the baseline), then one row per defence, with a column group per batch size and each
    /// group's PSNR under it. Nil when there are no records or the
    /// examples are not images (`[1 or 3, H, W]`).
    public func grid(title: String) -> ImageGrid? {
        guard let first = records.first, first.imageShape.rank == 3,
            first.imageShape[0] == 1 || first.imageShape[0] == 3
        else { return nil }
        var batchSizes: [Int] = []
        var defences: [GradientDefence] = []
        for r in records {
            if !batchSizes.contains(r.batchSize) { batchSizes.append(r.batchSize) }
            if !defences.contains(r.defence) { defences.append(r.defence) }
        }
        let groups = batchSizes.map { "B = \($0)" }
        let originals = batchSizes.map { b -> ImageGrid.Group in
            guard let r = records.first(where: { $0.batchSize == b }) else { return ImageGrid.Group(images: []) }
            return ImageGrid.Group(
                images: r.originals, caption: String(format: "mean image %.1f dB", r.baseline.peakSignalToNoiseRatio))
        }
        var rows = [ImageGrid.Row(label: "original", groups: originals)]
        for d in defences {
            let cells = batchSizes.map { b -> ImageGrid.Group in
                guard let r = records.first(where: { $0.batchSize == b && $0.defence == d }) else {
                    return ImageGrid.Group(images: [])
                }
                return ImageGrid.Group(
                    images: r.reconstructions, caption: String(format: "%.1f dB", r.quality.peakSignalToNoiseRatio))
            }
            rows.append(ImageGrid.Row(label: d.description, groups: cells))
        }
        return ImageGrid(
            title: title, columnGroups: groups, rows: rows, imageShape: first.imageShape, range: pixelRange)
    }
}
