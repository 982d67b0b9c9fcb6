import Foundation
import Testing

@testable import DPExperiments

private let auditedYAML =
    baseYAML.replacingOccurrences(of: "hidden_sizes: [8]", with: "hidden_sizes: [256]")
        + """
        audit:
          canaries: dirac-gradient
          count: 200
          mia_examples: 300
        sweep:
          privacy.noise_multiplier: [0, 4]
          audit.canaries: [dirac-gradient, mislabelled]

        """

/// An audited sweep writes the empirical bound, its confidence and the attack's figures into
/// runs.csv, the audit into the manifest and the ROC beside them; the white-box bound of the
/// clip-only run is at least 1 (power) and every private run's bound is at most its epsilon
/// (soundness), the acceptance of issue 12 on a small task.
@Test func auditedRunsReportTheirBoundsBesideEpsilon() throws {
    let (report, _, output) = try trainInTemporaryFolder(try parse(auditedYAML))
    defer { try? FileManager.default.removeItem(at: output) }
    #expect(report.finished.count == 4, "\(report.failed)")
    let (_, rows) = CSV.table(try String(contentsOf: output.appendingPathComponent("runs.csv"), encoding: .utf8))
    for row in rows {
        let lower = try #require(Double(row["epsilon_lower_empirical"] ?? ""))
        #expect(row["audit_confidence"] == "0.95")
        let auc = try #require(Double(row["mia_auc"] ?? ""))
        #expect(auc > 0 && auc < 1)
        if row["kind"] == "private" {
            #expect(lower <= Double(row["epsilon"]!)!, "\(row)")
        } else if row["audit.canaries"] == "dirac-gradient" {
            #expect(lower >= 1, "clip-only white-box bound \(lower)")
        }
        let roc = output.appendingPathComponent("audits/\(row["run_id"]!)-mia-roc.csv")
        #expect(FileManager.default.fileExists(atPath: roc.path))
    }
    let manifest = try String(contentsOf: output.appendingPathComponent("manifest.json"), encoding: .utf8)
    #expect(manifest.contains("\"epsilon_lower_empirical\""))
    #expect(manifest.contains("Bonferroni"))
    let table = try ResultsTable.aggregate(
        runsCSV: try String(contentsOf: output.appendingPathComponent("runs.csv"), encoding: .utf8),
        rows: "privacy.noise_multiplier", columns: "audit.canaries"
    ).render(.markdown)
    #expect(table.contains("ε̂ ≥"), "\(table)")
}

@Test func auditConfigErrorsNameTheFix() throws {
    let bad = baseYAML + "audit:\n  canaries: dirac-gradient\n  confidence: 1.5\n"
    #expect(configError(bad)?.path == "audit.confidence")
    let fixed = baseYAML.replacingOccurrences(of: "  delta: 1.0e-5", with: "  delta: 1.0e-5\n  sampling: fixed-size")
    let refused = configError(fixed + "audit:\n  canaries: mislabelled\n")
    #expect(refused?.message.contains("use `privacy.sampling: poisson`") == true, "\(String(describing: refused))")
}

/// More canaries than examples: the run fails with the reason and the fix; nothing trains.
@Test func tooManyCanariesFailTheRunWithTheFix() throws {
    let (report, lines, output) = try trainInTemporaryFolder(
        try parse(baseYAML + "audit:\n  canaries: mislabelled\n  count: 5000\n"))
    defer { try? FileManager.default.removeItem(at: output) }
    #expect(report.failed.count == 1)
    #expect(lines.contains { $0.contains("lower audit.count below") }, "\(lines)")
}
