import DPAuditing

/// `audit:` section: a one-run privacy audit planted in the run and a membership-inference
/// attack on the trained model. Absent: the run is not audited (and its run id is unchanged).
///
/// ```yaml
/// audit:
///   canaries: dirac-gradient      # dirac-gradient (white-box) | mislabelled (black-box) | none
///   count: 1000                   # canaries, each included with probability 1/2
///   confidence: 0.95              # the probability that the empirical bound holds
///   membership_inference: true    # loss-threshold attack: training members against test examples
///   mia_examples: 5000            # members and non-members each (at most the smaller split)
/// ```
public struct AuditConfig: Hashable, Sendable {
    /// The canaries planted (``DPAuditing/CanaryKind``); nil for `canaries: none`.
    public var canaries: CanaryKind?
    public var count: Int
    public var confidence: Double
    public var membershipInference: Bool
    public var miaExamples: Int
    /// The norm of Dirac canaries in a run that does not clip (a non-private control).
    public var unclippedCanaryNorm: Double
}

extension RunConfig {
    static func parseAudit(_ root: MapReader) throws -> AuditConfig? {
        guard root.has("audit") else { return nil }
        let a = try root.section("audit")
        let name = try a.requiredChoice("canaries", CanaryKind.allCases.map(\.rawValue) + ["none"], default: "none")
        let canaries = CanaryKind(rawValue: name)
        let count = try a.requiredInt("count", range: .atLeast(2), default: 1000)
        let confidence = try a.requiredDouble("confidence", range: .openUnit, default: 0.95)
        let mia = try a.bool("membership_inference", default: true)
        let miaExamples = try a.requiredInt("mia_examples", range: .atLeast(1), default: 5000)
        let norm = try a.requiredDouble("unclipped_canary_norm", range: .positive, default: 1)
        try a.finish()
        root.close(a, as: "audit")
        return AuditConfig(
            canaries: canaries, count: count, confidence: confidence, membershipInference: mia,
            miaExamples: miaExamples, unclippedCanaryNorm: norm)
    }
}
