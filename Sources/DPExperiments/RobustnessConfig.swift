import DPAuditing
import DPData

/// `evaluation:` section: evasion attacks on the trained model, one robust-accuracy column of
/// runs.csv per attack and budget (`robust_accuracy_<method>_<norm>_<epsilon>`, PGD with its
/// steps: `robust_accuracy_pgd40_linf_0.1`). Absent: no columns are added and the run id is
/// unchanged.
///
/// ```yaml
/// evaluation:
///   examples: 1000                # the first N test examples
///   attacks:
///     - {method: fgsm, norm: linf, epsilons: [0.05, 0.1, 0.2]}
///     - {method: pgd, norm: linf, epsilons: [0.05, 0.1, 0.2], steps: 40, restarts: 1}
/// ```
public struct EvaluationConfig: Hashable, Sendable {
    public var examples: Int
    public var attacks: [AdversarialAttack]

    /// The runs.csv column of `attack`.
    public static func column(_ attack: AdversarialAttack) -> String {
        "robust_accuracy_" + attack.label.replacingOccurrences(of: "-", with: "_")
    }
}

/// `poisoning:` section: a backdoor and/or label flipping planted in the training set before
/// anything is fitted on it, with the attack success rate and the group-privacy bound for the
/// number of poisoned examples in runs.csv.
///
/// ```yaml
/// poisoning:
///   backdoor: {count: 50, target: 0, patch_size: 3, position: bottom-right, margin: 1, value: 1}
///   label_flipping: {fraction: 0.1, source: 3, target: 5}
/// ```
public struct PoisoningConfig: Hashable, Sendable {
    public var backdoor: Backdoor?
    public var labelFlipping: LabelFlipping?

    /// Columns of runs.csv that a poisoned run fills.
    public static let columns = [
        "poisoned_examples", "poisoning_distance", "attack_success_rate", "group_epsilon", "group_delta",
    ]
}

extension OutputSchema {
    /// Whether a runs.csv column is a metric DPKit writes (fixed, or derived from an `evaluation:`
    /// or `poisoning:` section), rather than a varying key path.
    public static func isMetricColumn(_ column: String) -> Bool {
        runColumns.contains(column) || epochColumns.contains(column) || column.hasPrefix("robust_accuracy_")
            || PoisoningConfig.columns.contains(column) || FederatedConfig.columns.contains(column)
    }

    /// The runs.csv columns that the `evaluation:` and `poisoning:` sections of `runs` add, in
    /// order of first appearance (none for runs without them: their runs.csv is unchanged).
    public static func derivedColumns(_ runs: [ResolvedRun]) -> [String] {
        var out: [String] = []
        for r in runs {
            for a in r.config.evaluation?.attacks ?? [] where !out.contains(EvaluationConfig.column(a)) {
                out.append(EvaluationConfig.column(a))
            }
        }
        if runs.contains(where: { $0.config.poisoning != nil }) { out += PoisoningConfig.columns }
        if runs.contains(where: { $0.config.federated != nil }) { out += FederatedConfig.columns }
        return out
    }
}

// MARK: - Parsing

extension RunConfig {
    /// One attack map: `method`, `norm`, `epsilon` (or `epsilons`, a list), `steps`, `step_size`,
    /// `restarts`. Budgets in raw input units (pixels in [0, 1]).
    static func parseAttacks(_ r: MapReader, list: Bool, defaultMethod: AdversarialMethod) throws -> [AdversarialAttack]
    {
        let method = try r.requiredCase("method", default: defaultMethod)
        let norm = try r.requiredCase("norm", default: PerturbationNorm.linf)
        let epsilons: [Double]
        if list {
            epsilons = try r.requiredDoubles(
                ParameterSpec("epsilons", .doubleList, range: .atLeast(0), required: true, "budgets in raw input units")
            )
        } else {
            epsilons = [try r.requiredDouble("epsilon", range: .atLeast(0))]
        }
        if !list, method == .square {
            throw r.error(
                "method",
                "square is a gradient-free attack for evaluation (the check against gradient masking); adversarial training needs pgd or fgsm"
            )
        }
        let steps =
            method == .fgsm
            ? 1 : try r.requiredInt("steps", range: .closed(1, 1e6), default: method == .square ? 1000 : list ? 40 : 7)
        let stepSize = method == .pgd ? try r.double("step_size", range: .positive) : nil
        let restarts = method == .fgsm ? 1 : try r.requiredInt("restarts", range: .closed(1, 1e4), default: 1)
        try r.finish()
        return try epsilons.map { e in
            do {
                return try AdversarialAttack(
                    method: method, norm: norm, epsilon: e, steps: steps, stepSize: stepSize, restarts: restarts)
            } catch let error as AuditError {
                throw r.error(list ? "epsilons" : "epsilon", error.description)
            }
        }
    }

    static func parseEvaluation(_ root: MapReader) throws -> EvaluationConfig? {
        guard root.has("evaluation") else { return nil }
        let e = try root.section("evaluation")
        let examples = try e.requiredInt("examples", range: .atLeast(1), default: 1000)
        guard case .list(let items)? = e.raw("attacks"), !items.isEmpty else {
            throw e.error("attacks", "must be a non-empty list such as `[{method: fgsm, norm: linf, epsilons: [0.1]}]`")
        }
        var attacks: [AdversarialAttack] = [], resolved: [ConfigValue] = []
        for (i, item) in items.enumerated() {
            let r = try MapReader(item, path: e.childPath("attacks") + "[\(i)]", context: e.context)
            attacks += try parseAttacks(r, list: true, defaultMethod: .pgd)
            resolved.append(.map(r.resolved))
        }
        e.record("attacks", .list(resolved))
        try e.finish()
        root.close(e, as: "evaluation")
        return EvaluationConfig(examples: examples, attacks: attacks)
    }

    /// `training.adversarial`: PGD adversarial training; nil when absent (the run id is unchanged)
    /// or `enabled: false` (a sweep's control: the other keys are ignored and left out of the
    /// config hash, as for `privacy.enabled: false`, so the resolved `{enabled: false}` that a
    /// manifest records reads back).
    static func parseAdversarialTraining(_ t: MapReader) throws -> AdversarialAttack? {
        guard t.has("adversarial") else { return nil }
        let a = try t.section("adversarial")
        guard try a.bool("enabled", default: true) else {
            for key in ["method", "norm", "epsilon", "steps", "step_size", "restarts"] { _ = a.raw(key) }
            try a.finish()
            a.resolved = [("enabled", .bool(false))]
            t.close(a, as: "adversarial")
            return nil
        }
        let attack = try parseAttacks(a, list: false, defaultMethod: .pgd)[0]
        t.close(a, as: "adversarial")
        return attack
    }

    static func parsePoisoning(
        _ root: MapReader, dataset: DatasetConfig, context: ParseContext
    ) throws
        -> PoisoningConfig?
    {
        guard root.has("poisoning") else { return nil }
        let p = try root.section("poisoning")
        var config = PoisoningConfig()
        let declared = try dataset.declaredExamples(registry: context.registries.datasets)
        if p.has("backdoor") {
            let b = try p.section("backdoor")
            let count = try b.requiredInt("count", range: .atLeast(0))
            let target = try b.requiredInt("target", range: .atLeast(0), default: 0)
            let size = try b.requiredInt("patch_size", range: .atLeast(1), default: 3)
            let position = try b.requiredCase("position", default: TriggerPosition.bottomRight)
            let margin = try b.requiredInt("margin", range: .atLeast(0), default: 1)
            let value = try b.requiredDouble("value", range: .closed(-1e6, 1e6), default: 1)
            try b.finish()
            let trigger = BackdoorTrigger(size: size, position: position, margin: margin, value: Float(value))
            if let declared {
                do { try trigger.check(exampleShape: declared.shape) } catch let error as AuditError {
                    throw b.error("patch_size", error.description)
                }
                if target >= declared.classes {
                    throw b.error(
                        "target", "class \(target) is not a class of \(dataset.name) (0..<\(declared.classes))")
                }
                if count > declared.trainCount {
                    throw b.error("count", "\(count) exceeds the \(declared.trainCount) training examples")
                }
            }
            config.backdoor = Backdoor(trigger: trigger, target: target, count: count)
            p.close(b, as: "backdoor")
        }
        if p.has("label_flipping") {
            let l = try p.section("label_flipping")
            let fraction = try l.requiredDouble("fraction", range: .closed(0, 1))
            let source = try l.int("source", range: .atLeast(0))
            let target = try l.requiredInt("target", range: .atLeast(0))
            try l.finish()
            if let declared {
                for (key, c) in [("target", target), ("source", source ?? 0)] where c >= declared.classes {
                    throw l.error(key, "class \(c) is not a class of \(dataset.name) (0..<\(declared.classes))")
                }
            }
            if source == target { throw l.error("source", "equals the target \(target); give two classes") }
            config.labelFlipping = LabelFlipping(fraction: fraction, source: source, target: target)
            p.close(l, as: "label_flipping")
        }
        try p.finish()
        guard config.backdoor != nil || config.labelFlipping != nil else {
            throw p.context.error("poisoning", "give `backdoor`, `label_flipping` or both")
        }
        root.close(p, as: "poisoning")
        return config
    }
}
