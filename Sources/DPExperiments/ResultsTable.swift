import Foundation

/// Output format of tables.
public enum TableFormat: String, Hashable, Sendable, CaseIterable {
    case markdown, latex, csv
}

/// Which cells are marked best.
public enum BestMarking: String, Hashable, Sendable, CaseIterable {
    /// The best private cell of each row.
    case row
    /// The best private cell of each column.
    case column
    case none
}

/// The mean and sample standard deviation of one metric over the seeds of one table cell.
public struct AggregateCell: Hashable, Sendable {
    public var row: String
    /// The column value; empty for a control run whose column key is unset (shown in every column).
    public var column: String
    public var kind: RunKind
    public var values: [Double]
    /// Mean of `epsilon` over the seeds; `.infinity` for controls; nil when no run reported it.
    public var epsilon: Double?
    /// The neighbouring relation(s) of the cell's epsilons (`add-remove`, `replace-one`, or
    /// `unrecorded` for runs.csv files written before the column existed).
    public var relations: [String] = []

    public var n: Int { values.count }
    public var mean: Double { values.reduce(0, +) / Double(values.count) }
    /// Sample standard deviation (divides by n - 1); nil for a single value.
    public var standardDeviation: Double? {
        guard values.count > 1 else { return nil }
        let m = mean
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
    }
}

/// runs.csv aggregated over seeds into a rows x columns table of one metric.
public struct ResultsTable: Hashable, Sendable {
    public var rowKey: String
    /// nil: a single column.
    public var columnKey: String?
    public var metric: String
    public var rowLabels: [String]
    public var columnLabels: [String]
    public var cells: [AggregateCell]
    /// Runs left out because they did not finish.
    public var excludedRuns: Int
    public var deltas: [Double]
    /// Every neighbouring relation among the private cells, and every privacy unit.
    public var relations: [String] = []
    public var privacyUnits: [String] = []
    /// True when the private cells' epsilons are not all of one relation: each cell then
    /// names its own, so no column silently mixes them.
    public var mixesRelations: Bool { relations.count > 1 }

    /// Whether larger values of the metric are better (false for losses).
    public var higherIsBetter: Bool { !metric.contains("loss") }
    /// Accuracies are shown in percent.
    public var inPercent: Bool { metric.hasSuffix("accuracy") }

    /// Aggregates the text of a runs.csv.
    /// - Parameters:
    ///   - rows: column of runs.csv naming the rows (default `model`).
    ///   - columns: column naming the table columns (default `privacy.target_epsilon`, else
    ///     `privacy.noise_multiplier`, else the first varying column, else one column).
    /// - Throws: `OutputError` for a key or metric that runs.csv lacks, naming the valid ones.
    public static func aggregate(runsCSV text: String, rows: String? = nil, columns: String? = nil, metric: String = "test_accuracy") throws -> ResultsTable {
        let (header, records) = CSV.table(text)
        guard header.contains("run_id"), header.contains("status") else {
            throw OutputError("not a runs.csv: the header lacks run_id and status")
        }
        func check(_ key: String, _ what: String) throws {
            guard header.contains(key) else {
                var message = "runs.csv has no column `\(key)` for \(what)"
                if let guess = closestMatch(to: key, in: header) { message += " (did you mean `\(guess)`?)" }
                throw OutputError(message + "; columns: \(header.joined(separator: ", "))")
            }
        }
        try check(metric, "--metric")
        let rowKey = rows ?? "model"
        try check(rowKey, "--rows")
        let fixed = Set(OutputSchema.leadingColumns + OutputSchema.runColumns)
        let varying = header.filter { !fixed.contains($0) }
        let columnKey: String? = columns ?? ["privacy.target_epsilon", "privacy.noise_multiplier"].first { key in
            varying.contains(key) && records.contains { !($0[key] ?? "").isEmpty }
        } ?? varying.first { $0 != rowKey && $0 != "privacy.enabled" }
        if let columnKey { try check(columnKey, "--columns") }

        var table = ResultsTable(
            rowKey: rowKey, columnKey: columnKey, metric: metric, rowLabels: [], columnLabels: [], cells: [],
            excludedRuns: 0, deltas: [])
        var groups: [String: AggregateCell] = [:]
        var order: [String] = []
        for record in records {
            guard record["status"] == "finished", let value = Double(record[metric] ?? "") else {
                table.excludedRuns += 1
                continue
            }
            let kind = RunKind(rawValue: record["kind"] ?? "") ?? .private
            var row = record[rowKey] ?? ""
            if kind != .private { row = row.isEmpty ? Self.controlName(kind) : "\(row) (\(Self.controlName(kind)))" }
            let column = columnKey.map { record[$0] ?? "" } ?? ""
            let id = "\(row)\u{1}\(column)"
            if groups[id] == nil {
                groups[id] = AggregateCell(row: row, column: column, kind: kind, values: [], epsilon: nil)
                order.append(id)
            }
            groups[id]!.values.append(value)
            if kind == .private {
                let relation = (record["neighboring_relation"] ?? "").isEmpty ? "unrecorded" : record["neighboring_relation"]!
                if !groups[id]!.relations.contains(relation) { groups[id]!.relations.append(relation) }
                if !table.relations.contains(relation) { table.relations.append(relation) }
                if let unit = record["privacy_unit"], !unit.isEmpty, !table.privacyUnits.contains(unit) { table.privacyUnits.append(unit) }
            }
            if let delta = Double(record["delta"] ?? ""), kind == .private, !table.deltas.contains(delta) { table.deltas.append(delta) }
        }
        // Mean epsilon spent per cell.
        for id in order {
            var cell = groups[id]!
            if cell.kind != .private {
                cell.epsilon = .infinity
            } else {
                let eps = records.filter { record in
                    record["status"] == "finished" && (record["kind"] ?? "private") == "private"
                        && (record[rowKey] ?? "") == cell.row && (columnKey.map { record[$0] ?? "" } ?? "") == cell.column
                }.compactMap { Double($0["epsilon"] ?? "") }
                cell.epsilon = eps.isEmpty ? nil : eps.reduce(0, +) / Double(eps.count)
            }
            groups[id] = cell
        }
        table.cells = order.map { groups[$0]! }
        let privateRows = Self.sorted(unique(table.cells.filter { $0.kind == .private }.map(\.row)))
        let controlRows = unique(table.cells.filter { $0.kind != .private }.map(\.row))
        table.rowLabels = privateRows + controlRows.filter { !privateRows.contains($0) }
        table.columnLabels = Self.sorted(unique(table.cells.map(\.column).filter { !$0.isEmpty }))
        if table.columnLabels.isEmpty { table.columnLabels = [""] }
        return table
    }

    static func controlName(_ kind: RunKind) -> String {
        switch kind {
        case .nonPrivate: return "non-private"
        case .clipOnly: return "clip-only, σ = 0"
        case .private: return "private"
        }
    }

    /// Numeric order when every label is a number, else first-appearance order.
    static func sorted(_ labels: [String]) -> [String] {
        let numbers = labels.compactMap(Double.init)
        guard numbers.count == labels.count else { return labels }
        return labels.sorted { Double($0)! < Double($1)! }
    }

    /// The cell at a row and column; a control cell without a column value fills every column.
    public func cell(row: String, column: String) -> AggregateCell? {
        cells.first { $0.row == row && $0.column == column } ?? cells.first { $0.row == row && $0.column.isEmpty && $0.kind != .private }
    }

    /// Cells marked best: among private cells, the best mean per row or column (ties all marked).
    public func bestCells(_ marking: BestMarking) -> Set<AggregateCell> {
        let privateCells = cells.filter { $0.kind == .private }
        let groups: [[AggregateCell]]
        switch marking {
        case .none: return []
        case .row: groups = rowLabels.map { row in privateCells.filter { $0.row == row } }
        case .column: groups = columnLabels.map { column in privateCells.filter { $0.column == column } }
        }
        var best = Set<AggregateCell>()
        for group in groups where group.count > 1 {
            let target = higherIsBetter ? group.map(\.mean).max()! : group.map(\.mean).min()!
            for cell in group where cell.mean == target { best.insert(cell) }
        }
        return best
    }

    // MARK: - Rendering

    /// The table as markdown, LaTeX (booktabs) or CSV (one line per cell).
    public func render(_ format: TableFormat, best marking: BestMarking = .column) -> String {
        let best = bestCells(marking)
        let scale = inPercent ? 100.0 : 1.0
        let digits = inPercent ? 2 : 4
        func number(_ x: Double) -> String { String(format: "%.\(digits)f", x * scale) }
        func eps(_ e: Double?) -> String {
            guard let e else { return "?" }
            return e.isInfinite ? "∞" : String(format: "%.3g", e)
        }
        // A cell names its relation when the table mixes them.
        func relationMark(_ cell: AggregateCell) -> String {
            mixesRelations && cell.kind == .private ? ", " + cell.relations.joined(separator: "+") : ""
        }
        let relationText: String
        if relations.isEmpty {
            relationText = ""
        } else if mixesRelations {
            relationText = "; epsilons of different neighbouring relations (\(relations.joined(separator: ", "))) are not comparable: each cell names its own"
        } else if relations == ["unrecorded"] {
            relationText = "; neighbouring relation not recorded in this runs.csv (written before DPKit recorded it)"
        } else {
            relationText = "; ε for \(relations[0]) neighbouring datasets"
        }
        let unitText = privacyUnits.isEmpty ? "" : ", privacy unit: one \(privacyUnits.joined(separator: "/"))"
        let metricName = metric + (inPercent ? " (%)" : "")
        let columnTitle = { (label: String) -> String in
            guard let key = self.columnKey else { return metricName }
            return label.isEmpty ? key : "\(key) = \(label)"
        }
        let caption = "\(metricName): mean ± sample standard deviation over seeds (n runs); ε: mean epsilon spent"
            + (deltas.count == 1 ? " at δ = \(ConfigValue.numberText(deltas[0]))" : "")
            + relationText + unitText
            + "; best private cell per \(marking.rawValue) in bold"
            + (excludedRuns > 0 ? "; \(excludedRuns) unfinished runs left out" : "")

        switch format {
        case .csv:
            var out = CSV.line([rowKey, columnKey ?? "column", "kind", "n", "mean", "std", "epsilon", "neighboring_relation", "best"])
            for row in rowLabels {
                for cell in cells where cell.row == row {
                    out += CSV.line([
                        cell.row, cell.column, cell.kind.rawValue, String(cell.n), csvNumber(cell.mean),
                        csvNumber(cell.standardDeviation), csvNumber(cell.epsilon), cell.relations.joined(separator: "+"),
                        best.contains(cell) ? "true" : "false",
                    ])
                }
            }
            return out

        case .markdown:
            func text(_ cell: AggregateCell?) -> String {
                guard let cell else { return "–" }
                var s = number(cell.mean)
                if let sd = cell.standardDeviation { s += " ± " + number(sd) }
                if best.contains(cell) { s = "**\(s)**" }
                return s + " (n=\(cell.n), ε=\(eps(cell.epsilon))\(relationMark(cell)))"
            }
            func md(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
            var lines = ["| \(md(rowKey)) | " + columnLabels.map { md(columnTitle($0)) }.joined(separator: " | ") + " |"]
            lines.append("|" + String(repeating: "---|", count: columnLabels.count + 1))
            for row in rowLabels {
                lines.append("| \(md(row)) | " + columnLabels.map { text(cell(row: row, column: $0)) }.joined(separator: " | ") + " |")
            }
            lines.append("")
            lines.append(caption)
            return lines.joined(separator: "\n") + "\n"

        case .latex:
            func tex(_ s: String) -> String {
                var out = ""
                for c in s {
                    switch c {
                    case "_", "%", "&", "#", "$", "{", "}": out += "\\\(c)"
                    case "σ": out += "$\\sigma$"
                    default: out.append(c)
                    }
                }
                return out
            }
            func text(_ cell: AggregateCell?) -> String {
                guard let cell else { return "--" }
                var s = number(cell.mean)
                if let sd = cell.standardDeviation { s += " \\pm " + number(sd) }
                s = best.contains(cell) ? "$\\mathbf{\(s)}$" : "$\(s)$"
                let e = cell.epsilon.map { $0.isInfinite ? "\\infty" : String(format: "%.3g", $0) } ?? "?"
                return s + " {\\scriptsize ($n{=}\(cell.n)$, $\\varepsilon{=}\(e)$\(tex(relationMark(cell))))}"
            }
            var lines = ["\\begin{table}", "\\centering", "\\begin{tabular}{l" + String(repeating: "c", count: columnLabels.count) + "}", "\\toprule"]
            lines.append(tex(rowKey) + " & " + columnLabels.map { tex(columnTitle($0)) }.joined(separator: " & ") + " \\\\")
            lines.append("\\midrule")
            var controlsStarted = false
            for row in rowLabels {
                if !controlsStarted, cells.contains(where: { $0.row == row && $0.kind != .private }) {
                    controlsStarted = true
                    if row != rowLabels.first { lines.append("\\midrule") }
                }
                lines.append(tex(row) + " & " + columnLabels.map { text(cell(row: row, column: $0)) }.joined(separator: " & ") + " \\\\")
            }
            lines += ["\\bottomrule", "\\end{tabular}", "\\caption{\(tex(caption).replacingOccurrences(of: "±", with: "$\\pm$").replacingOccurrences(of: "ε", with: "$\\varepsilon$").replacingOccurrences(of: "δ", with: "$\\delta$"))}", "\\end{table}"]
            return lines.joined(separator: "\n") + "\n"
        }
    }
}

/// Elements in first-appearance order without repeats.
func unique(_ items: [String]) -> [String] {
    var seen = Set<String>()
    return items.filter { seen.insert($0).inserted }
}

// MARK: - Accounting table

/// accounting.csv as a table: one row per (q, sigma), one column per step count, cells
/// `RDP / PLD [lower, upper]`.
public func renderAccountingTable(accountingCSV text: String, format: TableFormat) throws -> String {
    let (header, records) = CSV.table(text)
    guard header == accountingColumns else {
        throw OutputError("not an accounting.csv: expected columns \(accountingColumns.joined(separator: ", "))")
    }
    if format == .csv { return text }
    let rowKeys = unique(records.map { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" })
    let steps = ResultsTable.sorted(unique(records.map { $0["steps"]! }))
    func cell(_ r: [String: String]?) -> String {
        guard let r else { return "–" }
        func f(_ s: String?) -> String { Double(s ?? "").map { String(format: "%.3g", $0) } ?? "–" }
        var parts: [String] = []
        if !(r["epsilon_rdp"] ?? "").isEmpty { parts.append("RDP \(f(r["epsilon_rdp"]))") }
        if !(r["epsilon_pld_upper"] ?? "").isEmpty { parts.append("PLD [\(f(r["epsilon_pld_lower"])), \(f(r["epsilon_pld_upper"]))]") }
        return parts.joined(separator: " / ")
    }
    func find(_ row: String, _ step: String) -> [String: String]? {
        records.first { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" == row && $0["steps"] == step }
    }
    let delta = records.first?["delta"] ?? ""
    switch format {
    case .latex:
        var lines = ["\\begin{tabular}{l" + String(repeating: "c", count: steps.count) + "}", "\\toprule"]
        lines.append("& " + steps.map { "$T = \($0)$" }.joined(separator: " & ") + " \\\\")
        lines.append("\\midrule")
        for row in rowKeys {
            let label = row.replacingOccurrences(of: "σ", with: "$\\sigma$")
            lines.append(label + " & " + steps.map { cell(find(row, $0)) }.joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}", "% epsilon at delta = \(delta)"]
        return lines.joined(separator: "\n") + "\n"
    default:
        var lines = ["| q, σ | " + steps.map { "steps = \($0)" }.joined(separator: " | ") + " |"]
        lines.append("|" + String(repeating: "---|", count: steps.count + 1))
        for row in rowKeys { lines.append("| \(row) | " + steps.map { cell(find(row, $0)) }.joined(separator: " | ") + " |") }
        lines.append("")
        lines.append("ε at δ = \(delta): RDP and PLD [lower, upper] bounds")
        return lines.joined(separator: "\n") + "\n"
    }
}
