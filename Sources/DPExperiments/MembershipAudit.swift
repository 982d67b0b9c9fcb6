import DPAuditing
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// Membership inference on a finished run, after the fact (`dpkit audit RUN_DIR`): the loss
/// attack (Yeom et al. 2018) and LiRA (Carlini et al. 2022) against the run's exported model.
///
/// The evaluation set holds `examples` training members (not canaries) and as many test
/// examples (non-members), drawn from the attack's seed. LiRA's shadow models are trained by
/// DPKit itself with the run's own config (its privacy settings included: the attacker knows
/// the training algorithm) on random halves of a pool made of the training set and the
/// evaluation's non-members, so every evaluation example is IN about half of the shadows and OUT
/// of the others (shadows come in complementary pairs); each shadow therefore sees about half as
/// many examples as the target did.
/// The online variant compares IN and OUT Gaussians; the offline variant uses OUT shadows only.
///
/// The audit reads the run folder and writes only under its own output folder: the audited run
/// is never modified.
public struct MembershipAudit {
    public enum Attack: String, CaseIterable, Sendable {
        case loss
        case liraOnline = "lira-online"
        case liraOffline = "lira-offline"
    }

    public struct Options: Sendable {
        public var attacks: [Attack] = [.loss]
        public var shadowModels = 8
        public var examples = 1000
        public var seed: UInt64 = 0
        public init() {}
    }

    public struct Result: Sendable {
        public var runID: String
        public var attack: Attack
        public var examples: Int
        public var shadowModels: Int
        public var roc: ROCCurve
        public var epsilon: Double?
        public var kind: String
    }

    public var folder: URL
    public var options: Options
    public var log: (String) -> Void

    public init(folder: URL, options: Options, log: @escaping (String) -> Void = { _ in }) {
        self.folder = folder
        self.options = options
        self.log = log
    }

    /// The finished runs of `folder` (those `runIDs` names, or all) with their configs.
    /// - Throws: ``OutputError`` when the folder has no manifest, a named run is unknown or
    ///   unfinished, or (with `requireModel`) a run saved no model.
    static func finishedRuns(
        in folder: URL, _ runIDs: [String], requireModel: Bool = true, purpose: String = "membership inference"
    ) throws -> [(
        id: String, config: RunConfig, model: URL, epsilon: Double?
    )] {
        let manifestURL = folder.appendingPathComponent("manifest.json")
        guard let data = FileManager.default.contents(atPath: manifestURL.path) else {
            throw OutputError(
                "\(folder.path) has no manifest.json: give a results folder written by `dpkit run`", kind: .usage)
        }
        let manifest = try ConfigValue(jsonData: data)
        guard case .list(let entries)? = manifest["runs"] else {
            throw OutputError("\(manifestURL.path) lists no runs", kind: .usage)
        }
        var out: [(String, RunConfig, URL, Double?)] = []
        var known: [String] = []
        for entry in entries {
            guard case .string(let id)? = entry["run_id"], let tree = entry["config"] else { continue }
            known.append(id)
            if !runIDs.isEmpty, !runIDs.contains(id) { continue }
            guard entry["status"] == .string("finished") else {
                if runIDs.contains(id) {
                    throw OutputError(
                        "run \(id) did not finish: finish it with `dpkit run ... --resume` first", kind: .usage)
                }
                continue
            }
            let model = folder.appendingPathComponent("models/\(id).safetensors")
            guard !requireModel || FileManager.default.fileExists(atPath: model.path) else {
                throw OutputError(
                    "run \(id) saved no model (\(model.path) is missing): \(purpose) needs the trained model; runs written before DPKit exported models must be run again",
                    kind: .usage)
            }
            let seed = entry["seed"]?.intValue ?? 0
            let config = try RunConfig.parse(
                tree, seed: seed, context: ParseContext(file: manifestURL.path, registries: .standard))
            out.append((id, config, model, nil))
        }
        if let missing = runIDs.first(where: { !known.contains($0) }) {
            throw OutputError(
                "no run \(missing) in \(folder.path) (runs: \(known.joined(separator: ", ")))", kind: .usage)
        }
        guard !out.isEmpty else {
            throw OutputError("\(folder.path) has no finished run to audit", kind: .nothingToShow)
        }
        return out
    }

    /// Refuses a run with a `public` part: the audits draw members, shadow training sets and
    /// canary trials from the whole training set, but only the private part has a guarantee
    /// (and a `public.classes` model has outputs for the private classes only).
    static func refusePublicPart(_ id: String, _ config: RunConfig, audit: String) throws {
        guard let p = config.public else { return }
        throw AuditError(
            "run \(id) has a `public` part (`public.\(p.part.kind)`), which \(audit) does not support: it would train and attack on the whole training set, public examples included (members, shadow models, canary trials), but the epsilon covers only the private part; audit a run without `public`"
        )
    }

    /// Runs the attacks on each finished run (or those named).
    public func run(runIDs: [String] = []) throws -> [Result] {
        guard options.examples >= 1 else { throw AuditError("--examples \(options.examples) must be at least 1") }
        let needsShadows = options.attacks.contains { $0 != .loss }
        if needsShadows, options.shadowModels < 2 {
            throw AuditError(
                "LiRA needs at least 2 shadow models (got \(options.shadowModels)); the paper uses 16 to 256")
        }
        var results: [Result] = []
        let runs = try Self.finishedRuns(in: folder, runIDs)
        for run in runs { try Self.refusePublicPart(run.id, run.config, audit: "a membership-inference audit") }
        for run in runs {
            results += try attack(runID: run.id, config: run.config, modelURL: run.model)
        }
        return results
    }

    private func attack(runID: String, config c: RunConfig, modelURL: URL) throws -> [Result] {
        guard let bytes = FileManager.default.contents(atPath: modelURL.path) else {
            throw OutputError("cannot read \(modelURL.path)")
        }
        let (model, metadata) = try Sequential.fromSafetensors(bytes)
        let transform =
            try metadata["input_transform"].map {
                try JSONDecoder().decode(InputTransform.self, from: Data($0.utf8))
            } ?? .none
        let executor = TrainingExecutor()
        var raw = try executor.loadData(c)
        // The training set the run used: an audited run's mislabelled canaries are rebuilt from
        // its seed, and are neither members nor non-members of this attack.
        var members = raw.train.count
        if let a = c.audit {
            let planted = try RunAudit(a, train: &raw.train, seed: UInt64(c.seed))
            members = planted.nonCanaryCount
            // The shadows' pool: the non-canary examples (the first `members`).
            raw.train = raw.train.subset(Array(0..<members))
        }
        let k = min(options.examples, members, raw.test.count)
        var rng = PhiloxRandom(seed: options.seed, stream: 0x11a)
        func pick(_ n: Int) -> [Int] {
            var all = Array(0..<n)
            for i in 0..<k { all.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
            return Array(all.prefix(k))
        }
        let memberIdx = pick(members)
        let evaluation = raw.train.subset(memberIdx).appending(raw.test.subset(pick(raw.test.count)))
        let isMember = (0..<(2 * k)).map { $0 < k }
        var scaled = evaluation
        transform.apply(to: &scaled)
        let targetLosses = Evaluation.perExampleLosses(model: model, dataset: scaled)
        let kind = c.kind.rawValue
        let epsilon = metadata["epsilon"].flatMap(Double.init)
        var results: [Result] = []
        func result(_ attack: Attack, _ scores: [Double], shadows: Int) -> Result {
            let roc = ROCCurve(
                memberScores: scores.indices.filter { isMember[$0] }.map { scores[$0] },
                nonMemberScores: scores.indices.filter { !isMember[$0] }.map { scores[$0] })
            log(
                String(
                    format: "%@ %@: AUC %.4f, TPR %.4f at FPR 0.1%%, %.4f at FPR 1%% (%d members, %d non-members)",
                    runID, attack.rawValue, roc.auc, roc.tpr(atFPR: 0.001), roc.tpr(atFPR: 0.01), k, k))
            return Result(
                runID: runID, attack: attack, examples: k, shadowModels: shadows, roc: roc, epsilon: epsilon, kind: kind
            )
        }
        if options.attacks.contains(.loss) {
            results.append(result(.loss, MembershipScore.loss(targetLosses), shadows: 0))
        }
        let lira = options.attacks.filter { $0 != .loss }
        guard !lira.isEmpty else { return results }

        // Shadow models: pool = the training set (members at memberIdx) + the k non-members.
        var shadowIn = Array(repeating: [Double](), count: 2 * k)
        var shadowOut = Array(repeating: [Double](), count: 2 * k)
        var shadowConfig = c
        shadowConfig.audit = nil
        let poolSize = raw.train.count + k
        var previous: [Bool] = []
        for s in 0..<options.shadowModels {
            // Shadows come in complementary pairs, so each example is IN exactly half of them
            // (and OUT of the other half) when the count is even, as in Carlini et al.'s code.
            var half = PhiloxRandom(seed: options.seed, stream: 0x5ad0 + UInt64(s))
            let inPool = s % 2 == 1 ? previous.map { !$0 } : (0..<poolSize).map { _ in half.next() & 1 == 1 }
            previous = inPool
            var context = RunContext()
            context.prepareData = { split in
                let trainIdx = (0..<raw.train.count).filter { inPool[$0] }
                let nonIdx = (0..<k).filter { inPool[raw.train.count + $0] }
                split = TrainTestSplit(
                    train: raw.train.subset(trainIdx).appending(evaluation.subset(nonIdx.map { k + $0 })),
                    test: evaluation)
            }
            context.onTrained = { shadow, split in
                let losses = Evaluation.perExampleLosses(model: shadow, dataset: split.test)
                for i in 0..<(2 * k) {
                    let included = i < k ? inPool[memberIdx[i]] : inPool[raw.train.count + (i - k)]
                    let phi = MembershipScore.scaledConfidence(logProbability: -losses[i])
                    if included { shadowIn[i].append(phi) } else { shadowOut[i].append(phi) }
                }
            }
            log("\(runID): shadow model \(s + 1)/\(options.shadowModels)")
            // Each shadow its own initialisation, sampling and noise.
            shadowConfig.seed = 1_000_000 + Int(options.seed % 1_000_000) * 1000 + s
            let shadowRun = ResolvedRun(
                index: s, config: shadowConfig, runID: "\(runID)-shadow\(s)", configHash: shadowConfig.configHash,
                seed: shadowConfig.seed, varyingValues: [], origin: "shadow")
            _ = try executor.execute(shadowRun, context: context, progress: { _ in })
        }
        let target = targetLosses.map { MembershipScore.scaledConfidence(logProbability: -$0) }
        for attack in lira {
            let variant: LiRA.Variant = attack == .liraOnline ? .online : .offline
            let scores = try LiRA(variant: variant).scores(target: target, shadowIn: shadowIn, shadowOut: shadowOut)
            results.append(result(attack, scores, shadows: options.shadowModels))
        }
        return results
    }
}

// MARK: - Output

extension MembershipAudit {
    public static let columns = [
        "run_id", "kind", "epsilon", "attack", "examples", "shadow_models", "auc", "tpr_at_fpr_0.001",
        "tpr_at_fpr_0.01", "balanced_accuracy",
    ]

    /// Writes `membership.csv`, `roc/<run_id>-<attack>.csv` and the log-log ROC figure
    /// `roc.svg` into `output`, which must not be inside the audited folder.
    /// - Returns: the files written.
    public static func write(_ results: [Result], to output: URL, auditedFolder: URL) throws -> [URL] {
        try checkOutside(output, auditedFolder)
        let roc = output.appendingPathComponent("roc")
        try FileManager.default.createDirectory(at: roc, withIntermediateDirectories: true)
        var text = CSV.line(columns)
        var written: [URL] = []
        for r in results {
            text += CSV.line([
                r.runID, r.kind, csvNumber(r.epsilon), r.attack.rawValue, String(r.examples), String(r.shadowModels),
                csvNumber(r.roc.auc), csvNumber(r.roc.tpr(atFPR: 0.001)), csvNumber(r.roc.tpr(atFPR: 0.01)),
                csvNumber(r.roc.balancedAccuracy),
            ])
            let file = roc.appendingPathComponent("\(r.runID)-\(r.attack.rawValue).csv")
            try DurableFile.writeAtomically(r.roc.csv, to: file)
            written.append(file)
        }
        let csv = output.appendingPathComponent("membership.csv")
        try DurableFile.writeAtomically(text, to: csv)
        // Log-log ROC (Carlini et al. 2022): FPR from 1e-4; zero rates sit on the axis floor.
        let floor = 1e-4
        let series = results.enumerated().map { i, r in
            PlotSeries(
                label: "\(r.runID) \(r.attack.rawValue) (AUC \(String(format: "%.3f", r.roc.auc)))",
                points: r.roc.points.map { PlotPoint(x: max(floor, $0.fpr), y: max(floor, $0.tpr)) }, colorIndex: i)
        }
        var panel = PlotPanel(
            title: "Membership inference ROC (log-log)", xLabel: "false-positive rate", yLabel: "true-positive rate",
            series: series + [
                PlotSeries(
                    label: "chance", points: [PlotPoint(x: floor, y: floor), PlotPoint(x: 1, y: 1)],
                    colorIndex: results.count, dash: "4 4")
            ])
        panel.xLog = true
        panel.yLog = true
        let svg = output.appendingPathComponent("roc.svg")
        try DurableFile.writeAtomically(SVG.document(rows: [[panel]], width: 900), to: svg)
        return [csv, svg] + written
    }
}
