import Foundation

/// The figures of an experiment directory.
///
/// A config is drawn the same way in every panel: its colour, marker and dash pattern are
/// assigned once per figure from every config in the folder (``Styles``). Colour tells apart
/// the budgets (each target ε or σ, and the non-private and clip-only controls) and the marker
/// the lines (model and every other varying key but the budget); when there are more lines
/// than budgets, the two swap. The dash pattern tells the kind: private runs solid,
/// non-private dashed, clip-only dotted. In the privacy-utility panel each config is a point
/// (or, for a control, a horizontal reference line) in its colour; in the per-epoch panels it
/// is a line in the same colour.
public enum ExperimentPlots {
    /// Columns that place a run on the privacy axis rather than naming its line.
    static let budgetKeys: Set<String> = ["privacy.target_epsilon", "privacy.noise_multiplier", "privacy.enabled"]
    static let modelKeys: Set<String> = ["model.name", "model.label"]

    // MARK: - What a config is in a figure

    /// Where a config sits on the privacy axis: a target ε or σ, or a control.
    struct Budget: Hashable {
        var kind: RunKind
        /// `privacy.target_epsilon` or `privacy.noise_multiplier` for a private run.
        var key: String?
        var value: String

        init(kind: RunKind, key: String? = nil, value: String = "") {
            self.kind = kind
            self.key = key
            self.value = value
        }

        /// From a runs.csv or epochs.csv record.
        init(_ record: [String: String]) {
            func given(_ key: String) -> String? { record[key].flatMap { $0.isEmpty ? nil : $0 } }
            switch record["kind"] {
            case RunKind.nonPrivate.rawValue?:
                self.init(kind: .nonPrivate)
                return
            case RunKind.clipOnly.rawValue?:
                self.init(kind: .clipOnly)
                return
            default: break
            }
            if record["privacy.enabled"] == "false" {
                self.init(kind: .nonPrivate)
            } else if let e = given("privacy.target_epsilon") {
                self.init(kind: .private, key: "privacy.target_epsilon", value: e)
            } else if let s = given("privacy.noise_multiplier") {
                self =
                    s == "0"
                    ? Budget(kind: .clipOnly) : Budget(kind: .private, key: "privacy.noise_multiplier", value: s)
            } else if let e = given("target_epsilon") {
                // runs.csv names the target even when it is not swept.
                self.init(kind: .private, key: "privacy.target_epsilon", value: e)
            } else {
                self.init(kind: .private)
            }
        }

        func label(_ labels: DisplayLabels) -> String {
            guard kind == .private else { return labels.control(kind) }
            guard let key else { return "private" }
            return labels.assignment(key, value)
        }

        /// Private budgets from the most private: target ε up, σ down; then non-private, then
        /// clip-only. Colours follow this order, so they run along the ε axis either way.
        static func ordered(_ budgets: [Budget]) -> [Budget] {
            func rank(_ b: Budget) -> (Int, String, Double) {
                switch b.kind {
                case .private:
                    let value = Double(b.value) ?? .infinity
                    return (0, b.key ?? "", b.key == "privacy.noise_multiplier" ? -value : value)
                case .nonPrivate: return (1, "", 0)
                case .clipOnly: return (2, "", 0)
                }
            }
            return budgets.sorted { rank($0) < rank($1) }
        }
    }

    /// One config (one `config_hash`) as the figure draws it.
    struct Config {
        var hash: String
        /// Its runs.csv record when it has one, else its first epochs.csv record.
        var record: [String: String]
        /// The line's identity (raw values) and its display text.
        var line: String
        var lineText: String
        var budget: Budget
        /// A control's settings that only the controls differ in (`optimizer.learning_rate = 0.5`
        /// for a non-private run with its own learning rate), shown with its budget.
        var controlNote = ""

        func budgetText(_ labels: DisplayLabels) -> String {
            budget.label(labels) + (controlNote.isEmpty ? "" : " (\(controlNote))")
        }
    }

    /// Colours, markers and dashes, assigned once for a whole figure.
    struct Styles {
        /// Colour by budget (marker by line), or colour by line (marker by budget).
        var byBudget: Bool
        var lines: [String]
        var budgets: [Budget]

        init(_ configs: [Config]) {
            lines = unique(configs.map(\.line))
            budgets = Budget.ordered(Array(Set(configs.map(\.budget))))
            byBudget = budgets.count >= lines.count
        }

        /// Budget colours cycle through the first five palette colours; clip-only is reddish
        /// purple and non-private black, in every figure.
        func color(_ config: Config) -> Int {
            if byBudget { return Self.budgetColor(config.budget, among: budgets) }
            return (lines.firstIndex(of: config.line) ?? 0) % 7
        }

        static func budgetColor(_ budget: Budget, among budgets: [Budget]) -> Int {
            switch budget.kind {
            case .nonPrivate: return 6
            case .clipOnly: return 5
            case .private: return (budgets.filter { $0.kind == .private }.firstIndex(of: budget) ?? 0) % 5
            }
        }

        func marker(_ config: Config) -> PlotMarker {
            let index = byBudget ? lines.firstIndex(of: config.line) ?? 0 : budgets.firstIndex(of: config.budget) ?? 0
            return PlotMarker.allCases[index % PlotMarker.allCases.count]
        }

        func lineMarker(_ line: String) -> PlotMarker {
            PlotMarker.allCases[(lines.firstIndex(of: line) ?? 0) % PlotMarker.allCases.count]
        }

        func budgetMarker(_ budget: Budget) -> PlotMarker {
            PlotMarker.allCases[(budgets.firstIndex(of: budget) ?? 0) % PlotMarker.allCases.count]
        }

        static func dash(_ kind: RunKind) -> String? {
            switch kind {
            case .private: return nil
            case .nonPrivate: return "6,4"
            case .clipOnly: return "2,3"
            }
        }

        /// Sorts configs for a legend: by the coloured dimension first.
        func sorted(_ configs: [Config]) -> [Config] {
            func rank(_ c: Config) -> (Int, Int) {
                let l = lines.firstIndex(of: c.line) ?? 0, b = budgets.firstIndex(of: c.budget) ?? 0
                return byBudget ? (b, l) : (l, b)
            }
            return configs.sorted { rank($0) < rank($1) }
        }
    }

    /// Every config of a folder (runs.csv and epochs.csv), with its style.
    struct FigureData {
        var configs: [String: Config] = [:]
        var order: [String] = []
        var styles: Styles
        var labels: DisplayLabels

        /// - Parameter configs: resolved configs by hash (from the manifest), to name the model of
        ///   a config that has epochs but no runs.csv row yet.
        init(runs: CSVTable?, epochs: CSVTable?, configs resolved: [String: ConfigValue] = [:], labels: DisplayLabels) {
            self.labels = labels
            self.styles = Styles([])
            var found: [Config] = []
            var lineParts: [String: [(key: String, value: String)]] = [:]
            for table in [runs, epochs].compactMap({ $0 }) {
                let varying = varyingColumns(table.header)
                for record in table.records {
                    let hash = Self.hash(record)
                    guard lineParts[hash] == nil else { continue }
                    var record = record
                    if record["model"] == nil,
                        let model = resolved[hash].flatMap({
                            $0.value(atPath: "model.label") ?? $0.value(atPath: "model.name")
                        })
                    {
                        record["model"] = model.displayText
                    }
                    var parts: [(key: String, value: String)] = []
                    if let model = record["model"] ?? record["model.label"] ?? record["model.name"], !model.isEmpty {
                        parts.append(("model", model))
                    }
                    for key in varying where !budgetKeys.contains(key) && !modelKeys.contains(key) {
                        if let v = record[key], !v.isEmpty { parts.append((key, v)) }
                    }
                    found.append(
                        Config(
                            hash: hash, record: record,
                            line: parts.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}"),
                            lineText: "", budget: Budget(record)))
                    lineParts[hash] = parts
                }
            }
            // A line is named by the parts that tell it from the other lines (the model alone
            // when nothing does): what all lines share would repeat in every legend entry.
            let allParts = found.map { lineParts[$0.hash]! }
            func value(_ key: String, _ parts: [(key: String, value: String)]) -> String {
                parts.first { $0.key == key }?.value ?? ""
            }
            let keys = unique(allParts.flatMap { $0.map(\.key) })
            let differing = Set(keys.filter { key in Set(allParts.map { value(key, $0) }).count > 1 })
            // A key that takes one value per kind (the non-private control's own learning rate)
            // belongs to the controls, not to a line of its own.
            let byKind = Dictionary(grouping: found.indices) { found[$0].budget.kind }
            let kindKeys = Set(
                differing.filter { key in
                    byKind.count > 1
                        && byKind.values.allSatisfy { members in
                            Set(members.map { value(key, allParts[$0]) }).count == 1
                        }
                })
            for i in found.indices {
                let parts = lineParts[found[i].hash]!
                let lineKeys = parts.filter { !kindKeys.contains($0.key) }
                found[i].line = lineKeys.map { "\($0.key)=\($0.value)" }.joined(separator: "\u{1}")
                let shown = lineKeys.filter { differing.contains($0.key) }
                found[i].lineText = (shown.isEmpty ? Array(lineKeys.prefix { $0.key == "model" }) : shown)
                    .map { labels.assignment($0.key, $0.value) }.joined(separator: ", ")
                if found[i].budget.kind != .private {
                    found[i].controlNote = parts.filter { kindKeys.contains($0.key) }
                        .map { labels.assignment($0.key, $0.value) }.joined(separator: ", ")
                }
                configs[found[i].hash] = found[i]
                order.append(found[i].hash)
            }
            styles = Styles(found)
        }

        static func hash(_ record: [String: String]) -> String {
            let hash = record["config_hash"] ?? ""
            return hash.isEmpty ? record["run_id"] ?? "" : hash
        }

        var hasSeveralLines: Bool { styles.lines.count > 1 }

        /// A config's name in a per-epoch legend: its line when there are several, its budget
        /// when there are several (or nothing else names it).
        func name(_ config: Config) -> String {
            var parts: [String] = []
            if hasSeveralLines && !config.lineText.isEmpty { parts.append(config.lineText) }
            if styles.budgets.count > 1 || parts.isEmpty { parts.append(config.budgetText(labels)) }
            let text = parts.joined(separator: ", ")
            return text.isEmpty ? String(config.hash.prefix(8)) : text
        }
    }

    /// A CSV file's header and records.
    struct CSVTable {
        var header: [String]
        var records: [[String: String]]

        init(_ text: String) {
            (header, records) = CSV.table(text)
        }
    }

    static func varyingColumns(_ header: [String]) -> [String] {
        let fixed = Set(OutputSchema.leadingColumns)
        return header.filter { !fixed.contains($0) && !OutputSchema.isMetricColumn($0) }
    }

    static func meanAndStd(_ values: [Double]) -> (Double, Double?) {
        let cell = AggregateCell(row: "", column: "", kind: .private, values: values, epsilon: nil)
        return (cell.mean, cell.standardDeviation)
    }

    // MARK: - Panels

    /// (a) Privacy-utility curve: metric (mean over seeds, error bars one sample standard
    /// deviation) against the epsilon spent, one line per model; each point in its config's
    /// colour; non-private runs as dashed and clip-only runs as dotted horizontal reference lines.
    public static func privacyUtility(
        runsCSV text: String, metric: String = "test_accuracy",
        labels: DisplayLabels = DisplayLabels()
    ) throws -> PlotPanel {
        let runs = CSVTable(text)
        return try privacyUtility(runs: runs, metric: metric, data: FigureData(runs: runs, epochs: nil, labels: labels))
    }

    static func privacyUtility(runs: CSVTable, metric: String, data: FigureData) throws -> PlotPanel {
        let (header, records) = (runs.header, runs.records)
        guard header.contains(metric), header.contains("epsilon") else {
            throw OutputError("not a runs.csv with `\(metric)` and `epsilon` columns", kind: .usage)
        }
        let finished = records.filter { $0["status"] == "finished" && Double($0[metric] ?? "") != nil }
        guard !finished.isEmpty else {
            throw OutputError(
                records.isEmpty
                    ? "no finished runs yet: runs.csv lists no runs"
                    : "no finished runs yet: runs.csv lists \(records.count) runs, none finished with a \(metric) value",
                kind: .nothingToShow)
        }
        let labels = data.labels, styles = data.styles
        let scale = metric.hasSuffix("accuracy") ? 100.0 : 1.0
        var groups: [String: [[String: String]]] = [:]
        var order: [String] = []
        for record in finished {
            let hash = FigureData.hash(record)
            if groups[hash] == nil { order.append(hash) }
            groups[hash, default: []].append(record)
        }
        let configs = order.compactMap { data.configs[$0] }
        let lines = unique(configs.map(\.line))
        var series: [PlotSeries] = []
        var references: [ReferenceLine] = []
        var legendLines: [LegendEntry] = [], legendBudgets: [LegendEntry] = [], legendReferences: [LegendEntry] = []
        for line in styles.lines where lines.contains(line) {
            let members = styles.sorted(configs.filter { $0.line == line })
            let lineText = members[0].lineText
            var points: [PlotPoint] = []
            for config in members {
                let group = groups[config.hash]!
                let (m, sd) = meanAndStd(group.compactMap { Double($0[metric] ?? "") }.map { $0 * scale })
                if config.budget.kind == .private {
                    let eps = group.compactMap { Double($0["epsilon"] ?? "") }
                    guard !eps.isEmpty else { continue }
                    points.append(
                        PlotPoint(
                            x: eps.reduce(0, +) / Double(eps.count), y: m, error: sd,
                            colorIndex: styles.color(config), marker: styles.marker(config), key: config.hash))
                } else {
                    let name = config.budgetText(labels)
                    let label = data.hasSeveralLines && !lineText.isEmpty ? "\(lineText): \(name)" : name
                    let reference = ReferenceLine(
                        label: label, y: m, colorIndex: styles.color(config),
                        dash: Styles.dash(config.budget.kind) ?? "6,4",
                        marker: data.hasSeveralLines ? styles.marker(config) : nil, key: config.hash)
                    references.append(reference)
                    legendReferences.append(
                        LegendEntry(
                            label: label, colorIndex: reference.colorIndex, dash: reference.dash,
                            marker: reference.marker, key: config.hash))
                }
            }
            guard !points.isEmpty else { continue }
            let lineColor = styles.byBudget ? SVG.neutralColorIndex : styles.color(members[0])
            // Colour by budget: the line is grey and its marker names it. Colour by line: the
            // line has its colour and the markers name the budgets.
            let lineMarker: PlotMarker = styles.byBudget ? styles.lineMarker(line) : .circle
            series.append(
                PlotSeries(
                    label: lineText, points: points, colorIndex: lineColor, marker: lineMarker,
                    key: "line-\(styles.lines.firstIndex(of: line) ?? 0)"))
            if !lineText.isEmpty {
                legendLines.append(
                    LegendEntry(label: lineText, colorIndex: lineColor, marker: styles.byBudget ? lineMarker : nil))
            }
        }
        // The budgets the points show.
        let plotted = Set(series.flatMap { $0.points.compactMap(\.key) })
        let shown = Budget.ordered(Array(Set(configs.filter { plotted.contains($0.hash) }.map(\.budget))))
        for budget in shown {
            if styles.byBudget {
                let color = Styles.budgetColor(budget, among: styles.budgets)
                legendBudgets.append(
                    LegendEntry(
                        label: budget.label(labels), colorIndex: color,
                        marker: data.hasSeveralLines ? nil : styles.lineMarker(styles.lines[0]), showsLine: false))
            } else if shown.count > 1 {
                legendBudgets.append(
                    LegendEntry(
                        label: budget.label(labels), colorIndex: SVG.neutralColorIndex,
                        marker: styles.budgetMarker(budget), showsLine: false))
            }
        }
        let deltas = unique(
            finished.filter { $0["kind"] == "private" }.compactMap { $0["delta"] }.filter { !$0.isEmpty })
        let deltaText = deltas.count == 1 ? " at δ = \(deltas[0])" : ""
        return PlotPanel(
            title: "Privacy-utility trade-off", xLabel: "privacy budget spent ε\(deltaText)",
            yLabel: labels.key(metric) + (scale == 100 ? " (%)" : ""),
            series: series, references: references, legend: legendLines + legendBudgets + legendReferences,
            id: "privacy-utility")
    }

    /// Robust accuracy (%) against the attack budget, from the `robust_accuracy_<attack>_<norm>_<eps>`
    /// columns of an `evaluation:` section: one line per config and attack (mean over seeds, error
    /// bars of one sample standard deviation), starting at budget 0 with the clean test accuracy;
    /// each config in its colour and dash, each attack its own marker. nil without such columns.
    static func robustness(runs: CSVTable, data: FigureData) -> PlotPanel? {
        let prefix = "robust_accuracy_"
        // attack family (`pgd40_linf`) -> [(budget, column)]
        var families: [String: [(Double, String)]] = [:], familyOrder: [String] = []
        for column in runs.header where column.hasPrefix(prefix) {
            let parts = column.dropFirst(prefix.count).split(separator: "_")
            guard parts.count == 3, let eps = Double(parts[2]) else { continue }
            let family = "\(parts[0])_\(parts[1])"
            if families[family] == nil { familyOrder.append(family) }
            families[family, default: []].append((eps, column))
        }
        guard !families.isEmpty else { return nil }
        let finished = runs.records.filter { $0["status"] == "finished" }
        let byConfig = Dictionary(grouping: finished, by: FigureData.hash)
        var series: [PlotSeries] = []
        for hash in data.order {
            guard let config = data.configs[hash], let records = byConfig[hash] else { continue }
            for (f, family) in familyOrder.enumerated() {
                let attack = family.split(separator: "_")
                let name =
                    "\(attack[0].uppercased().replacingOccurrences(of: "PGD", with: "PGD-")) \(attack[1] == "linf" ? "L∞" : "L2")"
                var points: [PlotPoint] = []
                let clean = records.compactMap { Double($0["test_accuracy"] ?? "") }
                if !clean.isEmpty {
                    let (m, sd) = meanAndStd(clean)
                    points.append(PlotPoint(x: 0, y: 100 * m, error: sd.map { 100 * $0 }))
                }
                for (eps, column) in families[family]!.sorted(by: { $0.0 < $1.0 }) {
                    let values = records.compactMap { Double($0[column] ?? "") }
                    guard !values.isEmpty else { continue }
                    let (m, sd) = meanAndStd(values)
                    points.append(PlotPoint(x: eps, y: 100 * m, error: sd.map { 100 * $0 }))
                }
                guard points.count > 1 else { continue }
                series.append(
                    PlotSeries(
                        label: data.name(config) + ", " + name, points: points, colorIndex: data.styles.color(config),
                        dash: Styles.dash(config.budget.kind),
                        marker: PlotMarker.allCases[f % PlotMarker.allCases.count], key: hash + "-" + family))
            }
        }
        guard !series.isEmpty else { return nil }
        return PlotPanel(
            title: "Robust accuracy against the attack budget", xLabel: "budget ε (raw input units, pixels in [0, 1])",
            yLabel: "robust accuracy (%)", series: series, xLog: false, id: "robustness")
    }

    /// (b) Test accuracy and epsilon against epoch, one line per config (mean over seeds), each
    /// config in the colour, marker and dash it has in the privacy-utility panel.
    /// - Parameter runsCSV: names the models and kinds of the configs (epochs.csv has neither).
    public static func epochCurves(
        epochsCSV text: String, runsCSV: String? = nil,
        labels: DisplayLabels = DisplayLabels()
    ) throws -> (accuracy: PlotPanel, epsilon: PlotPanel) {
        let epochs = CSVTable(text)
        return try epochCurves(
            epochs: epochs, data: FigureData(runs: runsCSV.map(CSVTable.init), epochs: epochs, labels: labels))
    }

    static func epochCurves(epochs: CSVTable, data: FigureData) throws -> (accuracy: PlotPanel, epsilon: PlotPanel) {
        guard epochs.header.contains("epoch"), epochs.header.contains("test_accuracy") else {
            throw OutputError("not an epochs.csv", kind: .usage)
        }
        var groups: [String: [[String: String]]] = [:]
        for record in epochs.records { groups[FigureData.hash(record), default: []].append(record) }
        let styles = data.styles
        let configs = styles.sorted(data.order.filter { groups[$0] != nil }.compactMap { data.configs[$0] })
        var accuracy: [PlotSeries] = [], epsilon: [PlotSeries] = []
        for config in configs {
            let byEpoch = Dictionary(grouping: groups[config.hash]!) { Int($0["epoch"] ?? "") ?? 0 }
            func curve(_ value: ([String: String]) -> Double?, scale: Double) -> [PlotPoint] {
                byEpoch.keys.sorted().compactMap { epoch in
                    let values = byEpoch[epoch]!.compactMap(value).filter(\.isFinite)
                    guard !values.isEmpty else { return nil }
                    let (m, sd) = meanAndStd(values.map { $0 * scale })
                    return PlotPoint(x: Double(epoch), y: m, error: sd)
                }
            }
            let series = PlotSeries(
                label: data.name(config), points: [], colorIndex: styles.color(config),
                dash: Styles.dash(config.budget.kind), marker: styles.marker(config), key: config.hash)
            let acc = curve({ Double($0["test_accuracy"] ?? "") }, scale: 100)
            if !acc.isEmpty { accuracy.append(with(series) { $0.points = acc }) }
            let eps = curve({ Double($0["epsilon_pld_upper"] ?? "") ?? Double($0["epsilon_rdp"] ?? "") }, scale: 1)
            if !eps.isEmpty { epsilon.append(with(series) { $0.points = eps }) }
        }
        let labels = data.labels
        return (
            PlotPanel(
                title: "Test accuracy by epoch", xLabel: labels.key("epoch"),
                yLabel: labels.key("test_accuracy") + " (%)",
                series: accuracy, xLog: false, xIntegers: true, id: "accuracy-epochs", dodge: 3),
            PlotPanel(
                title: "Privacy spent by epoch", xLabel: labels.key("epoch"),
                yLabel: "ε spent (PLD upper bound, else RDP)",
                series: epsilon, xLog: false, xIntegers: true, id: "epsilon-epochs")
        )
    }

    static func with<T>(_ value: T, _ change: (inout T) -> Void) -> T {
        var copy = value
        change(&copy)
        return copy
    }

    // MARK: - Figures of a folder

    /// An experiment's figure: all panels in one SVG, and each panel alone.
    public struct Figure: Sendable {
        /// One panel in its own SVG; `name` completes the file name (`figure-<name>.svg`).
        public struct Panel: Sendable {
            public var name: String
            public var svg: String
        }

        public var combined: String
        public var panels: [Panel]
    }

    /// The figure of an experiment directory: the privacy-utility curve on top, accuracy and
    /// epsilon by epoch below, each also alone; labels from `manifest.json`. For a directory with
    /// `accounting.csv`, the accounting figure (one panel, so no separate panels).
    /// - Throws: `OutputError` of kind ``OutputError/Kind/nothingToShow`` when the folder has no
    ///   finished run yet, ``OutputError/Kind/usage`` when it is no experiment folder;
    ///   `FileError` when a file cannot be read or is not UTF-8.
    public static func figure(forDirectory directory: URL) throws -> Figure {
        let files = try ExperimentFolder(directory)
        if let accounting = try files.text("accounting.csv") {
            return Figure(combined: try accountingSVG(accountingCSV: accounting), panels: [])
        }
        let runs = CSVTable(try files.runsCSV())
        let epochs = try files.text("epochs.csv").map(CSVTable.init)
        let manifest = try files.text("manifest.json")
        let data = FigureData(
            runs: runs, epochs: epochs, configs: manifest.map(ResultsTable.configs(manifestJSON:)) ?? [:],
            labels: DisplayLabels(manifestJSON: manifest))
        let utility: PlotPanel
        do {
            utility = try privacyUtility(runs: runs, metric: "test_accuracy", data: data)
        } catch let error as OutputError where error.kind == .nothingToShow {
            throw OutputError("\(directory.path): \(error.description)", kind: .nothingToShow)
        }
        var rows: [[PlotPanel]] = [[utility]]
        if let epochs {
            let (acc, eps) = try epochCurves(epochs: epochs, data: data)
            rows.append([acc, eps])
        }
        if let robust = robustness(runs: runs, data: data) { rows.append([robust]) }
        let name = manifestName(manifest) ?? directory.lastPathComponent
        return Figure(
            combined: SVG.document(rows: rows, panelHeight: 420, width: 1280, title: name),
            panels: rows.flatMap { $0 }.map { panel in
                Figure.Panel(
                    name: panel.id ?? "panel", svg: SVG.document(rows: [[panel]], panelHeight: 420, width: 720))
            })
    }

    /// The whole figure of an experiment directory as one SVG (see ``figure(forDirectory:)``).
    public static func svg(forDirectory directory: URL) throws -> String {
        try figure(forDirectory: directory).combined
    }

    static func manifestName(_ text: String?) -> String? {
        guard let text, let manifest = try? ConfigValue(jsonData: Data(text.utf8)) else { return nil }
        return manifest["experiment"]?.stringValue
    }

    /// The files `dpkit plot` wrote, and what it could not do.
    public struct WrittenFiles: Sendable {
        public var files: [URL] = []
        /// Said once each, on standard error: a missing converter, a failed conversion.
        public var notes: [String] = []
    }

    /// Writes the figure of `directory`: `figure.svg` (or `output`), each panel beside it as
    /// `figure-<panel>.svg`, a PNG of the whole figure when `rsvg-convert` or ImageMagick is
    /// there, and a vector PDF of every SVG when `rsvg-convert` is there. Without
    /// `rsvg-convert`, a note says so once and the SVGs stand.
    /// - Parameter searchPath: where to look for the converters (default `$PATH`).
    /// - Throws: as ``figure(forDirectory:)``; `FileError` when an SVG cannot be written.
    public static func writeFigures(
        forDirectory directory: URL, output: URL? = nil, png: Bool = true, pdf: Bool = true,
        searchPath: String? = nil
    ) throws -> WrittenFiles {
        let figure = try figure(forDirectory: directory)
        let main = output ?? directory.appendingPathComponent("figure.svg")
        let stem = main.deletingPathExtension().lastPathComponent
        let folder = main.deletingLastPathComponent()
        let svgs =
            [(main, figure.combined)]
            + figure.panels.map { (folder.appendingPathComponent("\(stem)-\($0.name).svg"), $0.svg) }
        var written = WrittenFiles()
        for (url, text) in svgs {
            do {
                try DurableFile.writeAtomically(text, to: url)
            } catch var error as FileError {
                error.action = .createFile
                throw error
            }
            written.files.append(url)
        }
        if png, let file = SVG.convertToPNG(main, searchPath: searchPath) { written.files.append(file) }
        guard pdf else { return written }
        for (url, _) in svgs {
            switch SVG.convertToPDF(url, searchPath: searchPath) {
            case .written(let file):
                written.files.append(file)
            case .noConverter:
                var note =
                    "no PDF: rsvg-convert is not on PATH (Debian package librsvg2-bin; `make plot-deps` installs it); the SVG files are written"
                let stale = svgs.map { $0.0.deletingPathExtension().appendingPathExtension("pdf") }
                    .filter { FileManager.default.fileExists(atPath: $0.path) }
                if !stale.isEmpty {
                    note +=
                        "; the PDFs beside them are from an earlier plot and out of date: "
                        + stale.map(\.lastPathComponent).joined(separator: ", ")
                }
                written.notes.append(note)
                return written
            case .failed(let message):
                written.notes.append("no PDF of \(url.path): rsvg-convert failed: \(message)")
            }
        }
        return written
    }

    // MARK: - Accounting

    /// RDP against PLD: epsilon against steps (log-log), one colour per (q, sigma), RDP solid and
    /// PLD upper bound dashed.
    public static func accountingSVG(accountingCSV text: String) throws -> String {
        let (header, records) = CSV.table(text)
        guard header == accountingColumns else { throw OutputError("not an accounting.csv", kind: .usage) }
        let keys = unique(records.map { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" })
        var series: [PlotSeries] = []
        for (i, key) in keys.enumerated() {
            let rows = records.filter { "q = \($0["q"]!), σ = \($0["noise_multiplier"]!)" == key }
            let rdp = rows.compactMap { r in
                Double(r["epsilon_rdp"] ?? "").map { PlotPoint(x: Double(r["steps"]!)!, y: $0) }
            }
            let pld = rows.compactMap { r in
                Double(r["epsilon_pld_upper"] ?? "").map { PlotPoint(x: Double(r["steps"]!)!, y: $0) }
            }
            let color = i % 7
            if !rdp.isEmpty { series.append(PlotSeries(label: "RDP, \(key)", points: rdp, colorIndex: color)) }
            if !pld.isEmpty {
                series.append(
                    PlotSeries(label: "PLD upper, \(key)", points: pld, colorIndex: color, dash: "6,4", marker: .square)
                )
            }
        }
        let delta = records.first?["delta"] ?? ""
        let panel = PlotPanel(
            title: "ε of the Poisson-subsampled Gaussian mechanism at δ = \(delta)", xLabel: "steps (compositions)",
            yLabel: "ε", series: series, xLog: nil, yLog: nil, id: "accounting")
        return SVG.document(rows: [[panel]], panelHeight: 480, width: 1100, title: nil)
    }
}
