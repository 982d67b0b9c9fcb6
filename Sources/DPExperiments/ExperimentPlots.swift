import Foundation

/// The figures of an experiment directory.
public enum ExperimentPlots {
    /// Columns that place a run on the privacy axis rather than naming its line.
    static let budgetKeys: Set<String> = ["privacy.target_epsilon", "privacy.noise_multiplier", "privacy.enabled"]

    /// The name of a run's line: its model, plus every other varying value except the budget.
    static func lineLabel(_ record: [String: String], varying: [String]) -> String {
        // runs.csv has a `model` column; epochs.csv has `model.name` only when it is swept.
        var parts = [record["model"] ?? record["model.name"] ?? record["model.label"]].compactMap { $0 }
        for key in varying where !budgetKeys.contains(key) && key != "model.name" && key != "model.label" {
            if let v = record[key], !v.isEmpty { parts.append(shortName(key, v)) }
        }
        return parts.joined(separator: ", ")
    }

    /// The run's place on the privacy axis: `ε=1`, `σ=0.8`, `non-private` or `clip-only`.
    static func budgetLabel(_ record: [String: String]) -> String {
        switch record["kind"] {
        case "non-private": return "non-private"
        case "clip-only": return "clip-only"
        default: break
        }
        if record["privacy.enabled"] == "false" { return "non-private" }
        if let e = record["privacy.target_epsilon"], !e.isEmpty { return "ε=\(e)" }
        if let s = record["privacy.noise_multiplier"], !s.isEmpty { return s == "0" ? "clip-only" : "σ=\(s)" }
        return ""
    }

    /// `ε=1` for `privacy.target_epsilon`, the bare value for `model.name`, else `last_component=value`.
    static func shortName(_ key: String, _ value: String) -> String {
        switch key {
        case "privacy.target_epsilon": return "ε=\(value)"
        case "privacy.noise_multiplier": return "σ=\(value)"
        case "model.name", "dataset.name": return value
        default: return "\(key.split(separator: ".").last!)=\(value)"
        }
    }

    static func varyingColumns(_ header: [String]) -> [String] {
        let fixed = Set(OutputSchema.leadingColumns + OutputSchema.runColumns + OutputSchema.epochColumns)
        return header.filter { !fixed.contains($0) }
    }

    static func meanAndStd(_ values: [Double]) -> (Double, Double?) {
        let cell = AggregateCell(row: "", column: "", kind: .private, values: values, epsilon: nil)
        return (cell.mean, cell.standardDeviation)
    }

    /// (a) Privacy-utility curve: metric (mean over seeds, error bars one sample standard
    /// deviation) against the epsilon spent, one line per model; non-private runs as dashed and
    /// clip-only runs as dotted horizontal reference lines.
    public static func privacyUtility(runsCSV text: String, metric: String = "test_accuracy") throws -> PlotPanel {
        let (header, records) = CSV.table(text)
        guard header.contains(metric), header.contains("epsilon") else {
            throw OutputError("not a runs.csv with `\(metric)` and `epsilon` columns", kind: .usage)
        }
        let varying = varyingColumns(header)
        let finished = records.filter { $0["status"] == "finished" && Double($0[metric] ?? "") != nil }
        guard !finished.isEmpty else {
            throw OutputError(records.isEmpty ? "no finished runs yet: runs.csv lists no runs"
                              : "no finished runs yet: runs.csv lists \(records.count) runs, none finished with a \(metric) value",
                              kind: .nothingToShow)
        }
        let scale = metric.hasSuffix("accuracy") ? 100.0 : 1.0
        var lineOrder: [String] = []
        var cells: [String: [String: [[String: String]]]] = [:]  // line -> config_hash -> records
        var references: [String: [[String: String]]] = [:]
        for record in finished {
            let line = lineLabel(record, varying: varying)
            if !lineOrder.contains(line) { lineOrder.append(line) }
            let kind = record["kind"] ?? "private"
            if kind == "private", Double(record["epsilon"] ?? "") != nil {
                cells[line, default: [:]][record["config_hash"] ?? "", default: []].append(record)
            } else if kind != "private" {
                references["\(line)\u{1}\(kind)", default: []].append(record)
            }
        }
        var series: [PlotSeries] = []
        var refs: [ReferenceLine] = []
        for (i, line) in lineOrder.enumerated() {
            let points = (cells[line] ?? [:]).values.map { group -> PlotPoint in
                let eps = group.compactMap { Double($0["epsilon"] ?? "") }
                let (m, sd) = meanAndStd(group.compactMap { Double($0[metric] ?? "") }.map { $0 * scale })
                return PlotPoint(x: eps.reduce(0, +) / Double(eps.count), y: m, error: sd)
            }
            if !points.isEmpty { series.append(PlotSeries(label: line, points: points, colorIndex: i)) }
            for (kind, dash) in [("non-private", "6,4"), ("clip-only", "2,3")] {
                guard let group = references["\(line)\u{1}\(kind)"] else { continue }
                let (m, _) = meanAndStd(group.compactMap { Double($0[metric] ?? "") }.map { $0 * scale })
                refs.append(ReferenceLine(label: "\(line): \(kind == "clip-only" ? "clip-only, σ = 0" : kind)", y: m, colorIndex: i, dash: dash))
            }
        }
        let deltas = unique(finished.filter { $0["kind"] == "private" }.compactMap { $0["delta"] }.filter { !$0.isEmpty })
        let deltaText = deltas.count == 1 ? " at δ = \(deltas[0])" : ""
        return PlotPanel(
            title: "Privacy-utility trade-off", xLabel: "privacy budget spent ε\(deltaText)",
            yLabel: metric.replacingOccurrences(of: "_", with: " ") + (scale == 100 ? " (%)" : ""),
            series: series, references: refs)
    }

    /// (b) Test accuracy and epsilon against epoch, one line per config (mean over seeds).
    public static func epochCurves(epochsCSV text: String) throws -> (accuracy: PlotPanel, epsilon: PlotPanel) {
        let (header, records) = CSV.table(text)
        guard header.contains("epoch"), header.contains("test_accuracy") else { throw OutputError("not an epochs.csv", kind: .usage) }
        let varying = varyingColumns(header)
        var order: [String] = []
        var groups: [String: [[String: String]]] = [:]
        for record in records {
            let id = record["config_hash"] ?? ""
            if groups[id] == nil { order.append(id) }
            groups[id, default: []].append(record)
        }
        // Colour by budget, dash pattern by line (model and other non-budget keys).
        let dashes: [String?] = [nil, "6,4", "2,3", "9,3,2,3"]
        let firstRows = order.map { groups[$0]![0] }
        let lines = unique(firstRows.map { lineLabel($0, varying: varying) })
        let budgets = budgetOrder(unique(firstRows.map(budgetLabel)))
        func label(_ record: [String: String]) -> String {
            let parts = [lines.count > 1 ? lineLabel(record, varying: varying) : "", budgetLabel(record)].filter { !$0.isEmpty }
            return parts.isEmpty ? String((record["config_hash"] ?? "").prefix(8)) : parts.joined(separator: ", ")
        }
        var accuracy: [PlotSeries] = [], epsilon: [PlotSeries] = []
        for id in order {
            let rows = groups[id]!
            let colorIndex = budgets.firstIndex(of: budgetLabel(rows[0])) ?? 0
            let dash = dashes[(lines.firstIndex(of: lineLabel(rows[0], varying: varying)) ?? 0) % dashes.count]
            let byEpoch = Dictionary(grouping: rows) { Int($0["epoch"] ?? "") ?? 0 }
            func curve(_ value: ([String: String]) -> Double?, scale: Double) -> [PlotPoint] {
                byEpoch.keys.sorted().compactMap { epoch in
                    let values = byEpoch[epoch]!.compactMap(value).filter(\.isFinite)
                    guard !values.isEmpty else { return nil }
                    let (m, sd) = meanAndStd(values.map { $0 * scale })
                    return PlotPoint(x: Double(epoch), y: m, error: sd)
                }
            }
            let name = label(rows[0])
            let acc = curve({ Double($0["test_accuracy"] ?? "") }, scale: 100)
            if !acc.isEmpty { accuracy.append(PlotSeries(label: name, points: acc, colorIndex: colorIndex, dash: dash)) }
            let eps = curve({ Double($0["epsilon_pld_upper"] ?? "") ?? Double($0["epsilon_rdp"] ?? "") }, scale: 1)
            if !eps.isEmpty { epsilon.append(PlotSeries(label: name, points: eps, colorIndex: colorIndex, dash: dash)) }
        }
        return (
            PlotPanel(title: "Test accuracy by epoch", xLabel: "epoch", yLabel: "test accuracy (%)", series: accuracy, xLog: false),
            PlotPanel(title: "Privacy spent by epoch", xLabel: "epoch", yLabel: "ε spent (PLD upper bound, else RDP)", series: epsilon, xLog: false)
        )
    }

    /// Budgets in numeric order of their value, controls last.
    static func budgetOrder(_ labels: [String]) -> [String] {
        func value(_ label: String) -> Double {
            if label.hasPrefix("ε=") || label.hasPrefix("σ=") { return Double(label.dropFirst(2)) ?? .infinity }
            return .infinity
        }
        return labels.sorted { value($0) < value($1) }
    }

    /// The whole figure of an experiment directory as SVG: the privacy-utility curve on top,
    /// accuracy and epsilon by epoch below. For a directory with `accounting.csv`, the accounting figure.
    /// - Throws: `OutputError` of kind ``OutputError/Kind/nothingToShow`` when the folder has no
    ///   finished run yet, ``OutputError/Kind/usage`` when it is no experiment folder;
    ///   `FileError` when a file cannot be read or is not UTF-8.
    public static func svg(forDirectory directory: URL) throws -> String {
        let files = try ExperimentFolder(directory)
        if let accounting = try files.text("accounting.csv") {
            return try accountingSVG(accountingCSV: accounting)
        }
        let runs = try files.runsCSV()
        let utility: PlotPanel
        do {
            utility = try privacyUtility(runsCSV: runs)
        } catch let error as OutputError where error.kind == .nothingToShow {
            throw OutputError("\(directory.path): \(error.description)", kind: .nothingToShow)
        }
        var rows: [[PlotPanel]] = [[utility]]
        if let epochs = try files.text("epochs.csv") {
            let (acc, eps) = try epochCurves(epochsCSV: epochs)
            rows.append([acc, eps])
        }
        let name = manifestName(files) ?? directory.lastPathComponent
        return SVG.document(rows: rows, panelHeight: 420, width: 1280, title: name)
    }

    static func manifestName(_ files: ExperimentFolder) -> String? {
        guard let text = try? files.text("manifest.json"), let manifest = try? ConfigValue(jsonData: Data(text.utf8)) else { return nil }
        return manifest["experiment"]?.stringValue
    }

    /// RDP against PLD: epsilon against steps (log-log), one colour per (q, sigma), RDP solid and
    /// PLD upper bound dashed.
    public static func accountingSVG(accountingCSV text: String) throws -> String {
        let (header, records) = CSV.table(text)
        guard header == accountingColumns else { throw OutputError("not an accounting.csv", kind: .usage) }
        let keys = unique(records.map { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" })
        var series: [PlotSeries] = []
        for (i, key) in keys.enumerated() {
            let rows = records.filter { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" == key }
            let rdp = rows.compactMap { r in Double(r["epsilon_rdp"] ?? "").map { PlotPoint(x: Double(r["steps"]!)!, y: $0) } }
            let pld = rows.compactMap { r in Double(r["epsilon_pld_upper"] ?? "").map { PlotPoint(x: Double(r["steps"]!)!, y: $0) } }
            if !rdp.isEmpty { series.append(PlotSeries(label: "RDP, \(key)", points: rdp, colorIndex: i)) }
            if !pld.isEmpty { series.append(PlotSeries(label: "PLD upper, \(key)", points: pld, colorIndex: i, dash: "6,4")) }
        }
        let delta = records.first?["delta"] ?? ""
        let panel = PlotPanel(
            title: "ε of the Poisson-subsampled Gaussian mechanism at δ = \(delta)", xLabel: "steps (compositions)",
            yLabel: "ε", series: series, xLog: nil, yLog: nil)
        return SVG.document(rows: [[panel]], panelHeight: 480, width: 1100, title: nil)
    }
}
