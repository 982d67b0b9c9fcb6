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

/// Which way a metric improves; decides which cell is marked best.
public enum MetricDirection: String, Hashable, Sendable {
    case higherIsBetter = "higher is better"
    case lowerIsBetter = "lower is better"
    /// A setting or a count (`noise_multiplier`, `steps`): no cell is better.
    case none = "no better direction"

    /// Accuracies (robust ones too) go up; losses, epsilons, delta and time go down; anything
    /// else has no direction.
    public init(metric: String) {
        if metric.hasSuffix("accuracy") || metric.hasPrefix("robust_accuracy_") {
            self = .higherIsBetter
        } else if metric.hasSuffix("loss") || metric == "epsilon" || metric.hasPrefix("epsilon_")
            || metric == "delta" || metric == "wall_seconds"
        {
            self = .lowerIsBetter
        } else {
            self = .none
        }
    }
}

/// The mean and sample standard deviation of one metric over the seeds of one table cell: the
/// runs of one resolved config (one `config_hash`), never of several.
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
    /// The config all of the cell's runs share.
    public var configHash: String = ""
    /// The smallest empirical epsilon lower bound among the cell's audited runs (nil: none
    /// audited). The smallest, not the mean or the largest: each run's bound holds at the
    /// stated confidence, and picking the largest of several would not.
    public var epsilonLowerEmpirical: Double?

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
///
/// A cell averages the seeds of one config (`config_hash`) only. When the chosen rows and
/// columns would put runs of different configs into one cell (`--rows seed --columns
/// model.name` over a sweep of noise multipliers, or the runs of an edited config beside the old
/// ones), the cell is split: each config gets its own row, labelled with the keys that tell the
/// configs apart (`0 [privacy.noise_multiplier=1.1]`), and ``warnings`` names those keys and
/// their values. Split rather than merged with a warning, because a merged mean ± sd mixes
/// the effect of the differing setting with seed noise: it is an estimate of no config anyone
/// ran, and a warning on stderr is lost as soon as the table is pasted into a paper.
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
    /// Finished runs left out because they have no value of the metric.
    public var runsWithoutMetric = 0
    public var deltas: [Double]
    /// Every neighbouring relation among the private cells, and every privacy unit.
    public var relations: [String] = []
    public var privacyUnits: [String] = []
    /// What the reader of the table must know and the table itself cannot show: configs split
    /// out of one cell (naming the keys that differ), run ids listed twice in runs.csv.
    public var warnings: [String] = []
    /// Keys whose values label the rows of configs that would otherwise share a cell.
    public var splitKeys: [String] = []
    /// What each row label is made of, for display names (``DisplayLabels``).
    public var rowParts: [String: RowParts] = [:]

    /// A row label's parts: the value of the row key, the control kind, and the keys that tell
    /// apart configs split out of one cell.
    public struct RowParts: Hashable, Sendable {
        public var value: String
        public var kind: RunKind
        public var split: [KeyValue] = []
        /// A config's hash prefix, when the compared keys cannot tell it apart.
        public var configTag: String? = nil

        /// The row as shown: value labels, the control's name, `[σ = 1.1]` for a split.
        public func text(rowKey: String, labels: DisplayLabels) -> String {
            var text = labels.value(value, of: rowKey)
            if kind != .private { text = value.isEmpty ? labels.control(kind) : "\(text) (\(labels.control(kind)))" }
            if !split.isEmpty {
                text +=
                    " [" + split.map { labels.assignment($0.key, $0.value.displayText) }.joined(separator: ", ") + "]"
            }
            if let configTag { text += " [config \(configTag)]" }
            return text
        }
    }
    /// True when the private cells' epsilons are not all of one relation: each cell then
    /// names its own, so no column silently mixes them.
    public var mixesRelations: Bool { relations.count > 1 }

    /// Which way the metric improves.
    public var direction: MetricDirection { MetricDirection(metric: metric) }
    /// Accuracies are shown in percent.
    public var inPercent: Bool { metric.hasSuffix("accuracy") || metric.hasPrefix("robust_accuracy_") }
    /// The metric is itself an epsilon: the cell shows it, without a second ε beside it.
    public var metricIsEpsilon: Bool { metric == "epsilon" || metric.hasPrefix("epsilon_") }
    /// The confidences of the audited runs' empirical bounds.
    public var auditConfidences: [Double] = []

    /// Columns of runs.csv that describe a run's config, compared when no resolved config is known.
    static let configColumns = [
        "kind", "dataset", "model", "target_epsilon", "delta", "noise_multiplier",
        "sampling_probability", "clipping_norm",
    ]

    /// Aggregates the text of a runs.csv.
    /// - Parameters:
    ///   - rows: column of runs.csv naming the rows (default `model`).
    ///   - columns: column naming the table columns (default `privacy.target_epsilon`, else
    ///     `privacy.noise_multiplier`, else the first varying column, else one column).
    ///   - configs: the resolved config of each `config_hash` (from `manifest.json`, see
    ///     ``configs(manifestJSON:)``), used to name the keys that differ between configs that
    ///     would share a cell; without it, the runs.csv columns are compared.
    /// - Throws: `OutputError` for a key or metric that runs.csv lacks, naming the valid ones;
    ///   of kind ``OutputError/Kind/nothingToShow`` when no finished run has a value of the metric.
    public static func aggregate(
        runsCSV text: String, rows: String? = nil, columns: String? = nil, metric: String = "test_accuracy",
        configs: [String: ConfigValue] = [:]
    ) throws -> ResultsTable {
        let (header, allRecords) = CSV.table(text)
        guard header.contains("run_id"), header.contains("status") else {
            throw OutputError("not a runs.csv: the header lacks run_id and status", kind: .usage)
        }
        func check(_ key: String, _ what: String) throws {
            guard header.contains(key) else {
                var message = "runs.csv has no column `\(key)` for \(what)"
                if let guess = closestMatch(to: key, in: header) { message += " (did you mean `\(guess)`?)" }
                throw OutputError(message + "; columns: \(header.joined(separator: ", "))", kind: .usage)
            }
        }
        try check(metric, "--metric")
        let rowKey = rows ?? "model"
        try check(rowKey, "--rows")
        let fixed = Set(OutputSchema.leadingColumns)
        let varying = header.filter { !fixed.contains($0) && !OutputSchema.isMetricColumn($0) }
        let columnKey: String? =
            columns ?? ["privacy.target_epsilon", "privacy.noise_multiplier"].first { key in
                varying.contains(key) && allRecords.contains { !($0[key] ?? "").isEmpty }
            } ?? varying.first { $0 != rowKey && $0 != "privacy.enabled" }
        if let columnKey { try check(columnKey, "--columns") }

        var table = ResultsTable(
            rowKey: rowKey, columnKey: columnKey, metric: metric, rowLabels: [], columnLabels: [], cells: [],
            excludedRuns: 0, deltas: [])

        // Each run once: a run id listed twice (two writers before the folder lock existed)
        // counts once, its first finished row.
        var records: [[String: String]] = []
        var index: [String: Int] = [:]
        var repeats: [String: Int] = [:]
        for record in allRecords {
            let id = record["run_id"] ?? ""
            guard let i = index[id] else {
                index[id] = records.count
                records.append(record)
                continue
            }
            repeats[id, default: 1] += 1
            if records[i]["status"] != "finished" && record["status"] == "finished" { records[i] = record }
        }
        if !repeats.isEmpty {
            let listed = repeats.keys.sorted().prefix(5).map { "\($0) (\(repeats[$0]!) times)" }.joined(separator: ", ")
            table.warnings.append(
                "runs.csv lists \(repeats.count) run id(s) more than once (\(listed)\(repeats.count > 5 ? ", ..." : "")), as two processes writing one folder leave it; each run is counted once"
            )
        }

        let finished = records.filter { $0["status"] == "finished" }
        table.excludedRuns = records.count - finished.count
        let usable = finished.filter { Double($0[metric] ?? "") != nil }
        table.runsWithoutMetric = finished.count - usable.count
        if usable.isEmpty {
            if finished.isEmpty {
                let counts = Dictionary(grouping: records) { ($0["status"] ?? "").isEmpty ? "unknown" : $0["status"]! }
                let summary = counts.keys.sorted().map { "\(counts[$0]!.count) \($0)" }.joined(separator: ", ")
                throw OutputError(
                    records.isEmpty
                        ? "no finished runs yet: runs.csv lists no runs"
                        : "no finished runs yet: runs.csv lists \(summary)",
                    kind: .nothingToShow)
            }
            throw OutputError(
                "none of the \(finished.count) finished runs has a value of `\(metric)`", kind: .nothingToShow)
        }

        // Groups: (row, column, config).
        struct Group {
            var row: String
            var column: String
            var hash: String
            var kind: RunKind
            var records: [[String: String]]
            var parts: RowParts
        }
        var groups: [Group] = []
        for record in usable {
            let kind = RunKind(rawValue: record["kind"] ?? "") ?? .private
            let value = record[rowKey] ?? ""
            var row = value
            if kind != .private { row = row.isEmpty ? Self.controlName(kind) : "\(row) (\(Self.controlName(kind)))" }
            let column = columnKey.map { record[$0] ?? "" } ?? ""
            let hash = (record["config_hash"] ?? "").isEmpty ? (record["run_id"] ?? "") : record["config_hash"]!
            if let i = groups.firstIndex(where: { $0.row == row && $0.column == column && $0.hash == hash }) {
                groups[i].records.append(record)
            } else {
                groups.append(
                    Group(
                        row: row, column: column, hash: hash, kind: kind, records: [record],
                        parts: RowParts(value: value, kind: kind)))
            }
        }

        // Configs that would share a cell: split them by the keys that differ, and say so.
        func settings(_ group: Group) -> [String: String] {
            if let config = configs[group.hash] {
                var out: [String: String] = [:]
                for kv in ExperimentConfig.flatten(config, prefix: "") { out[kv.key] = kv.value.displayText }
                return out
            }
            var out: [String: String] = [:]
            for key in varying + Self.configColumns where key != rowKey && key != columnKey {
                out[key] = group.records[0][key] ?? ""
            }
            return out
        }
        let positions = unique(groups.map { "\($0.row)\u{1}\($0.column)" })
        var differing: [(key: String, values: [String])] = []
        for position in positions {
            let shared = groups.filter { "\($0.row)\u{1}\($0.column)" == position }
            guard shared.count > 1 else { continue }
            let maps = shared.map(settings)
            let keys = unique(maps.flatMap { $0.keys.sorted() })
            for key in keys {
                let values = unique(maps.map { $0[key] ?? "" })
                guard values.count > 1 else { continue }
                if let i = differing.firstIndex(where: { $0.key == key }) {
                    differing[i].values = unique(differing[i].values + values)
                } else {
                    differing.append((key, values))
                }
            }
        }
        // Without configs, runs.csv repeats a swept key in a summary column (`noise_multiplier`
        // beside `privacy.noise_multiplier`): name the swept one only.
        if differing.contains(where: { varying.contains($0.key) })
            && groups.contains(where: { configs[$0.hash] == nil })
        {
            differing.removeAll { Self.configColumns.contains($0.key) && !varying.contains($0.key) }
        }
        let conflicts = positions.filter { p in groups.filter { "\($0.row)\u{1}\($0.column)" == p }.count > 1 }
        if !conflicts.isEmpty {
            table.splitKeys = differing.map(\.key)
            for i in groups.indices {
                let map = settings(groups[i])
                let split = table.splitKeys.compactMap { key in
                    map[key].flatMap { $0.isEmpty ? nil : KeyValue(key, .string($0)) }
                }
                groups[i].parts.split = split
                if !split.isEmpty {
                    groups[i].row += " [\(split.map { "\($0.key)=\($0.value.displayText)" }.joined(separator: ", "))]"
                }
            }
            // Configs the compared keys cannot tell apart: name them by hash.
            for i in groups.indices
            where groups.contains(where: {
                $0.row == groups[i].row && $0.column == groups[i].column && $0.hash != groups[i].hash
            }) {
                groups[i].row += " [config \(groups[i].hash.prefix(8))]"
                groups[i].parts.configTag = String(groups[i].hash.prefix(8))
            }
            let what =
                differing.isEmpty
                ? "they differ in keys runs.csv does not show (no manifest.json with their configs); each config_hash gets its own row"
                : differing.map {
                    "\($0.key) differs: \($0.values.map { $0.isEmpty ? "unset" : $0 }.joined(separator: " vs "))"
                }.joined(separator: "; ")
            let layout = "rows `\(rowKey)`" + (columnKey.map { " x columns `\($0)`" } ?? "")
            table.warnings.append(
                "\(layout) would put runs of different configs into one cell (\(conflicts.count) cells): \(what). Those cells are split: each config gets its own row, labelled with the differing keys, and seeds are averaged only within one config; choose --rows/--columns among these keys to lay them out yourself"
            )
        }

        for group in groups {
            var cell = AggregateCell(
                row: group.row, column: group.column, kind: group.kind,
                values: group.records.compactMap { Double($0[metric] ?? "") }, epsilon: nil,
                configHash: group.hash)
            if group.kind == .private {
                for record in group.records {
                    let relation =
                        (record["neighboring_relation"] ?? "").isEmpty ? "unrecorded" : record["neighboring_relation"]!
                    if !cell.relations.contains(relation) { cell.relations.append(relation) }
                    if !table.relations.contains(relation) { table.relations.append(relation) }
                    if let unit = record["privacy_unit"], !unit.isEmpty, !table.privacyUnits.contains(unit) {
                        table.privacyUnits.append(unit)
                    }
                    if let delta = Double(record["delta"] ?? ""), !table.deltas.contains(delta) {
                        table.deltas.append(delta)
                    }
                }
                let eps = group.records.compactMap { Double($0["epsilon"] ?? "") }
                cell.epsilon = eps.isEmpty ? nil : eps.reduce(0, +) / Double(eps.count)
            } else {
                cell.epsilon = .infinity
            }
            cell.epsilonLowerEmpirical = group.records.compactMap { Double($0["epsilon_lower_empirical"] ?? "") }.min()
            if cell.epsilonLowerEmpirical != nil {
                for record in group.records {
                    if let c = Double(record["audit_confidence"] ?? ""), !table.auditConfidences.contains(c) {
                        table.auditConfidences.append(c)
                    }
                }
            }
            table.cells.append(cell)
            table.rowParts[group.row] = group.parts
        }
        let privateRows = Self.sorted(unique(table.cells.filter { $0.kind == .private }.map(\.row)))
        let controlRows = unique(table.cells.filter { $0.kind != .private }.map(\.row))
        table.rowLabels = privateRows + controlRows.filter { !privateRows.contains($0) }
        table.columnLabels = Self.sorted(unique(table.cells.map(\.column).filter { !$0.isEmpty }))
        if table.columnLabels.isEmpty { table.columnLabels = [""] }
        return table
    }

    /// The resolved config of every `config_hash` a manifest records (current and earlier runs).
    public static func configs(manifestJSON text: String) -> [String: ConfigValue] {
        guard let manifest = try? ConfigValue(jsonData: Data(text.utf8)), case .list(let runs)? = manifest["runs"]
        else { return [:] }
        var out: [String: ConfigValue] = [:]
        for run in runs {
            if case .string(let hash)? = run["config_hash"], let config = run["config"], config != .null {
                out[hash] = config
            }
        }
        return out
    }

    static func controlName(_ kind: RunKind) -> String { DisplayLabels().control(kind) }

    /// Numeric order when every label is a number, else first-appearance order.
    static func sorted(_ labels: [String]) -> [String] {
        let numbers = labels.compactMap(Double.init)
        guard numbers.count == labels.count else { return labels }
        return labels.sorted { Double($0)! < Double($1)! }
    }

    /// The cell at a row and column; a control cell without a column value fills every column.
    public func cell(row: String, column: String) -> AggregateCell? {
        cells.first { $0.row == row && $0.column == column }
            ?? cells.first { $0.row == row && $0.column.isEmpty && $0.kind != .private }
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
        guard direction != .none else { return [] }
        for group in groups where group.count > 1 {
            let target = direction == .higherIsBetter ? group.map(\.mean).max()! : group.map(\.mean).min()!
            for cell in group where cell.mean == target { best.insert(cell) }
        }
        return best
    }

    // MARK: - Rendering

    /// The table as markdown, LaTeX (booktabs) or CSV (one line per cell).
    ///
    /// Markdown and LaTeX show keys and values by their display names (`labels`, from the
    /// config's `labels:` map); CSV keeps the raw keys and values for scripts.
    public func render(
        _ format: TableFormat, best marking: BestMarking = .column, labels: DisplayLabels = DisplayLabels()
    ) -> String {
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
            relationText =
                "; epsilons of different neighbouring relations (\(relations.joined(separator: ", "))) are not comparable: each cell names its own"
        } else if relations == ["unrecorded"] {
            relationText = "; neighbouring relation not recorded in this runs.csv (written before DPKit recorded it)"
        } else {
            relationText = "; ε for \(relations[0]) neighbouring datasets"
        }
        let unitText = privacyUnits.isEmpty ? "" : ", privacy unit: one \(privacyUnits.joined(separator: "/"))"
        let metricName = labels.key(metric) + (inPercent ? " (%)" : "")
        let rowTitle = labels.key(rowKey)
        let columnTitle = { (label: String) -> String in
            guard let key = self.columnKey else { return metricName }
            return label.isEmpty ? labels.key(key) : labels.assignment(key, label)
        }
        let rowText = { (row: String) -> String in
            self.rowParts[row]?.text(rowKey: self.rowKey, labels: labels) ?? labels.value(row, of: self.rowKey)
        }
        let bestText: String
        switch (marking, direction) {
        case (.none, _): bestText = ""
        case (_, .none): bestText = "; no cell marked best: \(metricName) has no better direction"
        default: bestText = "; best private cell per \(marking.rawValue) in bold (\(direction.rawValue))"
        }
        let deltaText = deltas.count == 1 ? " at δ = \(ConfigValue.numberText(deltas[0]))" : ""
        let caption =
            "\(metricName): mean ± sample standard deviation over the seeds of one config (n runs)"
            + (metricIsEpsilon ? deltaText : "; ε: mean epsilon spent" + deltaText)
            + relationText + unitText
            + (auditConfidences.isEmpty
                ? ""
                : "; ε̂: empirical lower bound of a one-run audit (Steinke et al. 2023) at confidence \(auditConfidences.map { ConfigValue.numberText($0) }.joined(separator: "/")), the smallest over the cell's runs")
            + bestText
            + (excludedRuns > 0 ? "; \(excludedRuns) unfinished runs left out" : "")
            + (runsWithoutMetric > 0
                ? "; \(runsWithoutMetric) finished runs without a \(metricName) value left out" : "")
            + (splitKeys.isEmpty
                ? ""
                : "; rows split by \(splitKeys.map(labels.key).joined(separator: ", ")) so that no cell mixes configs")

        switch format {
        case .csv:
            var out = CSV.line([
                rowKey, columnKey ?? "column", "kind", "metric", "n", "mean", "std", "epsilon", "neighboring_relation",
                "best", "epsilon_lower_empirical",
            ])
            for row in rowLabels {
                for cell in cells where cell.row == row {
                    out += CSV.line([
                        cell.row, cell.column, cell.kind.rawValue, metric, String(cell.n), csvNumber(cell.mean),
                        csvNumber(cell.standardDeviation), csvNumber(cell.epsilon),
                        cell.relations.joined(separator: "+"),
                        best.contains(cell) ? "true" : "false", csvNumber(cell.epsilonLowerEmpirical),
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
                let audited = cell.epsilonLowerEmpirical.map { ", ε̂ ≥ " + eps($0) } ?? ""
                return s
                    + " (n=\(cell.n)\(metricIsEpsilon ? "" : ", ε=\(eps(cell.epsilon))")\(audited)\(relationMark(cell)))"
            }
            func md(_ s: String) -> String { s.replacingOccurrences(of: "|", with: "\\|") }
            var lines = [
                "| \(md(rowTitle)) | " + columnLabels.map { md(columnTitle($0)) }.joined(separator: " | ") + " |"
            ]
            lines.append("|" + String(repeating: "---|", count: columnLabels.count + 1))
            for row in rowLabels {
                lines.append(
                    "| \(md(rowText(row))) | "
                        + columnLabels.map { text(cell(row: row, column: $0)) }.joined(separator: " | ") + " |")
            }
            lines.append("")
            lines.append(caption)
            return lines.joined(separator: "\n") + "\n"

        case .latex:
            let tex = LaTeX.escape
            func text(_ cell: AggregateCell?) -> String {
                guard let cell else { return "--" }
                var s = number(cell.mean)
                if let sd = cell.standardDeviation { s += " \\pm " + number(sd) }
                s = best.contains(cell) ? "$\\mathbf{\(s)}$" : "$\(s)$"
                let e = cell.epsilon.map { $0.isInfinite ? "\\infty" : String(format: "%.3g", $0) } ?? "?"
                let epsilonText =
                    (metricIsEpsilon ? "" : ", $\\varepsilon{=}\(e)$")
                    + (cell.epsilonLowerEmpirical.map { String(format: ", $\\hat\\varepsilon{\\geq}%.3g$", $0) } ?? "")
                return s + " {\\scriptsize ($n{=}\(cell.n)$\(epsilonText)\(tex(relationMark(cell))))}"
            }
            var lines = [
                "\\begin{table}", "\\centering",
                "\\begin{tabular}{l" + String(repeating: "c", count: columnLabels.count) + "}", "\\toprule",
            ]
            lines.append(
                tex(rowTitle) + " & " + columnLabels.map { tex(columnTitle($0)) }.joined(separator: " & ") + " \\\\")
            lines.append("\\midrule")
            var controlsStarted = false
            for row in rowLabels {
                if !controlsStarted, cells.contains(where: { $0.row == row && $0.kind != .private }) {
                    controlsStarted = true
                    if row != rowLabels.first { lines.append("\\midrule") }
                }
                lines.append(
                    tex(rowText(row)) + " & "
                        + columnLabels.map { text(cell(row: row, column: $0)) }.joined(separator: " & ") + " \\\\")
            }
            lines += ["\\bottomrule", "\\end{tabular}", "\\caption{\(tex(caption))}", "\\end{table}"]
            return LaTeX.document(lines)
        }
    }
}

// MARK: - Experiment folders

/// The result files of a folder that `table` and `plot` read.
struct ExperimentFolder {
    let directory: URL

    /// - Throws: `OutputError` (usage) when the path does not exist or is a file.
    init(_ directory: URL) throws {
        self.directory = directory
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory) else {
            throw OutputError("\(directory.path): no such folder", kind: .usage)
        }
        guard isDirectory.boolValue else {
            throw OutputError("\(directory.path) is a file, not an experiment output folder", kind: .usage)
        }
    }

    /// A file's text, nil when it does not exist.
    func text(_ name: String) throws -> String? { try FileIO.readText(directory.appendingPathComponent(name).path) }

    /// runs.csv; without it, nothing to show (a run has started here) or not an experiment folder.
    func runsCSV() throws -> String {
        if let text = try text("runs.csv") { return text }
        let started = ["manifest.json", "epochs.csv", OutputLock.fileName].contains {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path)
        }
        if started { throw OutputError("\(directory.path): no finished runs yet (no runs.csv)", kind: .nothingToShow) }
        throw OutputError(
            "\(directory.path) is not an experiment output folder: it has no runs.csv or accounting.csv", kind: .usage)
    }

    /// The display labels recorded in manifest.json (none without one).
    func labels() throws -> DisplayLabels {
        DisplayLabels(manifestJSON: try text("manifest.json"))
    }

    /// The resolved configs recorded in manifest.json, by config hash (empty without one).
    func configs() throws -> [String: ConfigValue] {
        try text("manifest.json").map(ResultsTable.configs(manifestJSON:)) ?? [:]
    }
}

/// What `dpkit table DIR` prints, and the warnings it writes to standard error.
/// - Throws: as ``ExperimentPlots/svg(forDirectory:)``; `OutputError` (usage) for an unknown key.
public func tableText(
    forDirectory directory: URL, format: TableFormat, rows: String? = nil, columns: String? = nil,
    metric: String = "test_accuracy", best: BestMarking = .column
) throws -> (text: String, warnings: [String]) {
    let files = try ExperimentFolder(directory)
    if let accounting = try files.text("accounting.csv"), try files.text("runs.csv") == nil {
        return (try renderAccountingTable(accountingCSV: accounting, format: format), [])
    }
    do {
        let table = try ResultsTable.aggregate(
            runsCSV: try files.runsCSV(), rows: rows, columns: columns, metric: metric,
            configs: try files.configs())
        return (table.render(format, best: best, labels: try files.labels()), table.warnings)
    } catch let error as OutputError where error.kind == .nothingToShow && !error.description.hasPrefix(directory.path)
    {
        throw OutputError("\(directory.path): \(error.description)", kind: .nothingToShow)
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
        throw OutputError(
            "not an accounting.csv: expected columns \(accountingColumns.joined(separator: ", "))", kind: .usage)
    }
    if format == .csv { return text }
    let rowKeys = unique(records.map { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" })
    let steps = ResultsTable.sorted(unique(records.map { $0["steps"]! }))
    func cell(_ r: [String: String]?) -> String {
        guard let r else { return "–" }
        func f(_ s: String?) -> String { Double(s ?? "").map { String(format: "%.3g", $0) } ?? "–" }
        var parts: [String] = []
        if !(r["epsilon_rdp"] ?? "").isEmpty { parts.append("RDP \(f(r["epsilon_rdp"]))") }
        if !(r["epsilon_pld_upper"] ?? "").isEmpty {
            parts.append("PLD [\(f(r["epsilon_pld_lower"])), \(f(r["epsilon_pld_upper"]))]")
        }
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
            lines.append(
                LaTeX.escape(row) + " & " + steps.map { LaTeX.escape(cell(find(row, $0))) }.joined(separator: " & ")
                    + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}", "% epsilon at delta = \(delta)"]
        return LaTeX.document(lines)
    default:
        var lines = ["| q, σ | " + steps.map { "steps = \($0)" }.joined(separator: " | ") + " |"]
        lines.append("|" + String(repeating: "---|", count: steps.count + 1))
        for row in rowKeys {
            lines.append("| \(row) | " + steps.map { cell(find(row, $0)) }.joined(separator: " | ") + " |")
        }
        lines.append("")
        lines.append("ε at δ = \(delta): RDP and PLD [lower, upper] bounds")
        return lines.joined(separator: "\n") + "\n"
    }
}
