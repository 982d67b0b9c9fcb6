import DPAuditing
import DPData
import DPLayers
import DPTensor
import Foundation

/// Evasion attacks on the exported models of a results folder, after the fact
/// (`dpkit attack adversarial RUN_DIR`): each finished run's `models/<run_id>.safetensors` is
/// rebuilt, fed its raw test set, and attacked through the input scaling it was trained with.
public struct AdversarialEvaluation {
    public struct Result {
        public var runID: String
        public var dataset: String
        /// The run's epsilon (from the model's metadata), nil for non-private runs.
        public var privacyEpsilon: String?
        public var attack: AdversarialAttack
        public var outcome: AdversarialOutcome
        /// The picture grid (clean, scaled perturbation, adversarial), SVG.
        public var picture: String
    }

    public var attack: AdversarialAttack
    /// The first `count` test examples (nil: all).
    public var count: Int?
    /// The random starts' seed.
    public var seed: UInt64

    public init(attack: AdversarialAttack, count: Int? = nil, seed: UInt64 = 0) {
        self.attack = attack
        self.count = count
        self.seed = seed
    }

    /// Attacks each finished run of `folder` (those `runIDs` names, or all).
    /// - Throws: ``OutputError`` for a folder that is no results folder, an unknown or unfinished
    ///   run, or a run that saved no model.
    public func run(folder: URL, runIDs: [String] = []) throws -> [Result] {
        try MembershipAudit.finishedRuns(in: folder, runIDs, purpose: "an adversarial attack").map {
            try run(modelFile: $0.model, runID: $0.id)
        }
    }

    /// Attacks one exported model.
    public func run(modelFile: URL, runID: String? = nil) throws -> Result {
        let loaded = try ModelEvaluation.load(file: modelFile)
        var test = loaded.rawTest
        if let count, count < test.count { test = test.subset(Array(0..<count)) }
        var attack = self.attack
        // Images are pixels in [0, 1]; vectors (tabular data) have no valid range to clip to.
        if test.exampleShape.rank != 3 { attack.validRange = nil }
        var random = PhiloxRandom(seed: seed, stream: 0xad7e)
        let outcome = attack.run(
            model: loaded.model, inputs: test.features, labels: test.labels,
            input: AdversarialInput(loaded.transform, exampleShape: test.exampleShape), random: &random)
        let id = runID ?? loaded.metadata["run_id"] ?? modelFile.deletingPathExtension().lastPathComponent
        return Result(
            runID: id, dataset: loaded.datasetName, privacyEpsilon: loaded.metadata["epsilon"], attack: attack,
            outcome: outcome,
            picture: test.exampleShape.rank == 3 && [1, 3].contains(test.exampleShape[0])
                ? Self.picture(outcome, clean: test, attack: attack, title: "\(id): \(attack.label)") : "")
    }

    /// `run_id,index,label,clean_prediction,adversarial_prediction,perturbation_norm` per example.
    public static func csv(_ results: [Result]) -> String {
        var s = CSV.line([
            "run_id", "attack", "index", "label", "clean_prediction", "adversarial_prediction", "perturbation_norm",
        ])
        for r in results {
            let o = r.outcome
            for i in o.labels.indices {
                s += CSV.line([
                    r.runID, r.attack.label, String(i), String(o.labels[i]), String(o.cleanPredictions[i]),
                    String(o.adversarialPredictions[i]), csvNumber(o.perturbationNorms[i]),
                ])
            }
        }
        return s
    }

    /// Rows: clean inputs, the perturbation scaled to the grey range (mid-grey is no change, black
    /// and white are -epsilon and +epsilon per pixel for L-inf, the largest |change| for L2), and
    /// the adversarial inputs; captions `label -> prediction`. The first `count` examples.
    public static func picture(
        _ o: AdversarialOutcome, clean: Dataset, attack: AdversarialAttack, title: String, count: Int = 8
    ) -> String {
        let k = min(count, o.labels.count)
        let size = clean.exampleSize
        let shape = clean.exampleShape
        var cleanImages: [[Float]] = [], deltas: [[Float]] = [], adversarial: [[Float]] = []
        let a = clean.features.scalars, b = o.adversarial.scalars
        for e in 0..<k {
            let x = Array(a[(e * size)..<((e + 1) * size)]), y = Array(b[(e * size)..<((e + 1) * size)])
            let d = zip(y, x).map { $0 - $1 }
            let span = max(attack.norm == .linf ? Float(attack.epsilon) : d.map(abs).max() ?? 0, 1e-12)
            cleanImages.append(x)
            deltas.append(d.map { 0.5 + 0.5 * $0 / span })
            adversarial.append(y)
        }
        let name = { (c: Int) in clean.classNames.indices.contains(c) ? clean.classNames[c] : String(c) }
        func row(_ label: String, _ images: [[Float]], _ caption: (Int) -> String) -> ImageGrid.Row {
            ImageGrid.Row(
                label: label, groups: (0..<k).map { ImageGrid.Group(images: [images[$0]], caption: caption($0)) })
        }
        return ImageGrid(
            title: title, columnGroups: [],
            rows: [
                row("clean", cleanImages) { "\(name(o.labels[$0])) → \(name(o.cleanPredictions[$0]))" },
                row("perturbation (scaled)", deltas) { "‖δ‖ = \(String(format: "%.3g", o.perturbationNorms[$0]))" },
                row("adversarial", adversarial) { "→ \(name(o.adversarialPredictions[$0]))" },
            ],
            imageShape: shape, scale: 3
        ).svg()
    }
}
