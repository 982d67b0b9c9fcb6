import Foundation

// MARK: - Ticks

/// Tick positions in 1-2-5 steps covering [lower, upper] with about `target` ticks
/// (Heckbert, "Nice numbers for graph labels", Graphics Gems 1990).
/// - Parameter integers: steps of at least 1, so every tick is an integer (epochs, steps).
public func niceTicks(lower: Double, upper: Double, target: Int = 6, integers: Bool = false) -> [Double] {
    var lo = lower, hi = upper
    if !(lo.isFinite && hi.isFinite) { return [0, 1] }
    if lo == hi {
        lo -= lo == 0 ? 1 : abs(lo) * 0.1
        hi += hi == 0 ? 1 : abs(hi) * 0.1
    }
    var step = niceStep((hi - lo) / Double(max(1, target - 1)))
    // A 1-2-5 step of at least 1 is an integer, and so is every multiple of it.
    if integers { step = max(1, step) }
    let first = (lo / step).rounded(.down) * step
    let last = (hi / step).rounded(.up) * step
    let count = Int(((last - first) / step).rounded())
    return (0...count).map { first + Double($0) * step }
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `raw`.
func niceStep(_ raw: Double) -> Double {
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    let fraction = raw / magnitude
    let nice: Double = fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10
    return nice * magnitude
}

/// Ticks of a log axis: powers of ten covering [lower, upper], with 2 and 5 between them when
/// the range spans at most two decades.
/// The ticks run from the last tick at or below `lower` to the first at or above `upper`, where
/// a value within 2% of a tick counts as on it (an ε of 0.498 spent for a target of 0.5 starts
/// the axis at 0.5, not 0.2); the axis itself is padded to hold every value.
public func logTicks(lower: Double, upper: Double) -> [Double] {
    let lo = (log10(lower)).rounded(.down), hi = (log10(upper)).rounded(.up)
    let decades = Int(hi - lo)
    var ticks: [Double] = []
    for k in 0...max(1, decades) {
        let base = pow(10, lo + Double(k))
        ticks.append(base)
        if decades <= 2 && k < max(1, decades) { ticks += [2 * base, 5 * base] }
    }
    let tolerance = 1.02
    let first = ticks.lastIndex { $0 <= lower * tolerance } ?? 0
    let last = ticks.firstIndex { $0 * tolerance >= upper } ?? ticks.count - 1
    return Array(ticks[first...max(first + 1, last)])
}

/// Label of a tick: as few decimals as the step needs.
func tickLabel(_ value: Double, step: Double) -> String {
    if abs(value) < step * 1e-9 { return "0" }
    let decimals = max(0, Int((-log10(step)).rounded(.up)))
    if abs(value) >= 1e5 || abs(value) < 1e-4 { return String(format: "%g", value) }
    return String(format: "%.\(decimals)f", value)
}

// MARK: - Plot model

/// The shape drawn at a point; it tells apart what the colour does not (see ``ExperimentPlots``).
public enum PlotMarker: Int, Hashable, Sendable, CaseIterable {
    case circle, square, triangle, diamond
}

/// One point of a series, with an optional symmetric error bar.
public struct PlotPoint: Hashable, Sendable {
    public var x: Double
    public var y: Double
    public var error: Double?
    /// The point's own colour and marker, when they differ from its series' (a privacy-utility
    /// line whose points are coloured by budget).
    public var colorIndex: Int?
    public var marker: PlotMarker?
    /// What the point stands for (a config hash), written as `data-series` in the SVG.
    public var key: String?

    public init(
        x: Double, y: Double, error: Double? = nil, colorIndex: Int? = nil, marker: PlotMarker? = nil,
        key: String? = nil
    ) {
        self.x = x
        self.y = y
        self.error = error
        self.colorIndex = colorIndex
        self.marker = marker
        self.key = key
    }
}

/// A line with markers.
public struct PlotSeries: Hashable, Sendable {
    public var label: String
    public var points: [PlotPoint]
    public var colorIndex: Int
    /// SVG `stroke-dasharray` (`6,4`), or nil for a solid line.
    public var dash: String? = nil
    public var marker: PlotMarker = .circle
    /// What the series stands for (a config hash), written as `data-series` in the SVG.
    public var key: String? = nil
}

/// A horizontal reference line (a control run).
public struct ReferenceLine: Hashable, Sendable {
    public var label: String
    public var y: Double
    public var colorIndex: Int
    /// `6,4` dashed for non-private, `2,3` dotted for clip-only.
    public var dash: String
    /// Drawn at both ends of the line when set (to tell the lines of several models apart).
    public var marker: PlotMarker? = nil
    /// What the line stands for (a config hash), written as `data-series` in the SVG.
    public var key: String? = nil
}

/// One entry of a legend: a swatch (a line, a marker on it, or a colour patch) and a label.
public struct LegendEntry: Hashable, Sendable {
    public var label: String
    public var colorIndex: Int
    public var dash: String?
    /// nil with `showsLine` false: a filled square patch of the colour.
    public var marker: PlotMarker?
    public var showsLine: Bool
    public var key: String?

    public init(
        label: String, colorIndex: Int, dash: String? = nil, marker: PlotMarker? = nil, showsLine: Bool = true,
        key: String? = nil
    ) {
        self.label = label
        self.colorIndex = colorIndex
        self.dash = dash
        self.marker = marker
        self.showsLine = showsLine
        self.key = key
    }
}

/// One chart: axes, series, reference lines and a legend.
public struct PlotPanel: Hashable, Sendable {
    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [PlotSeries]
    public var references: [ReferenceLine] = []
    /// nil: log scale when the x values span more than one decade.
    public var xLog: Bool? = nil
    /// nil: log scale when the y values (all positive) span more than one decade.
    public var yLog: Bool? = false
    /// Integer ticks only on the x axis (epochs, steps).
    public var xIntegers = false
    /// The legend; nil: one entry per series, then one per reference line.
    public var legend: [LegendEntry]? = nil
    /// Names the panel in the SVG (`data-panel`) and its own file (`figure-<id>.svg`).
    public var id: String? = nil
    /// Shift each series sideways by this many pixels from the next (centred on the true x), so
    /// that error bars of series sharing x values (epochs) do not hide one another; only when
    /// some point has an error bar.
    public var dodge: Double = 0

    /// Whether the x axis is logarithmic.
    public var usesLogX: Bool {
        if let xLog { return xLog }
        let xs = series.flatMap { $0.points.map(\.x) }.filter { $0 > 0 }
        guard let lo = xs.min(), let hi = xs.max() else { return false }
        return hi / lo > 10
    }

    /// Whether the y axis is logarithmic.
    public var usesLogY: Bool {
        if let yLog { return yLog }
        let ys = series.flatMap { $0.points.map(\.y) } + references.map(\.y)
        guard let lo = ys.min(), let hi = ys.max(), lo > 0 else { return false }
        return hi / lo > 10
    }

    /// The legend as drawn.
    public var legendEntries: [LegendEntry] {
        legend ?? series.map {
            LegendEntry(
                label: $0.label, colorIndex: $0.colorIndex, dash: $0.dash,
                marker: $0.points.count <= SVG.maxMarkedPoints ? $0.marker : nil,
                showsLine: $0.points.count > 1, key: $0.key)
        }
            + references.map {
                LegendEntry(label: $0.label, colorIndex: $0.colorIndex, dash: $0.dash, marker: $0.marker, key: $0.key)
            }
    }
}

// MARK: - Text widths

extension SVG {
    /// An upper bound on the advance width of `text` in pixels at `fontSize`, by character class.
    ///
    /// The figures ask for DejaVu Sans first; Helvetica, Arial and Liberation Sans are narrower,
    /// so a width that holds for DejaVu Sans holds for all of them. Each class takes the widest
    /// advance of its members in DejaVu Sans (in em): narrow punctuation and `i l j f t r I`
    /// at most 0.42; digits and lower case 0.64; capitals 0.80; `= + < > ~ ^ # & "` 0.84;
    /// `m w M W @ %` and anything outside ASCII but Greek 1.0; Greek letters 0.84. Bold faces are
    /// at most 1.2 times as wide. Layout and tests use this one estimate, so a label that the
    /// layout made room for fits by the same measure.
    public static func textWidth(_ text: String, fontSize: Double, bold: Bool = false) -> Double {
        var ems = 0.0
        for character in text {
            ems += emWidth(character)
        }
        return ems * fontSize * (bold ? 1.2 : 1)
    }

    static func emWidth(_ character: Character) -> Double {
        guard let scalar = character.unicodeScalars.first else { return 0 }
        switch scalar.value {
        case 0x370...0x3FF: return 0.84 // Greek
        case 0x80...: return 1.0
        default: break
        }
        switch character {
        case " ", ".", ",", ":", ";", "'", "!", "|", "i", "I", "j", "l", "f", "t", "r", "(", ")", "[", "]", "-", "/",
            "\\":
            return 0.42
        case "m", "w", "M", "W", "@", "%": return 1.0
        case "=", "+", "<", ">", "~", "^", "#", "&", "\"": return 0.84
        case "A"..."Z": return 0.80
        default: return 0.64
        }
    }

    /// `text` broken into lines no wider than `maxWidth` where its words allow: after a comma or
    /// before a parenthesis first (`mlp, target ε = 1` keeps `target ε = 1` together), else at a
    /// space. A word is never
    /// broken, so a line is wider than `maxWidth` only when one word is. Joining the lines with
    /// spaces gives the text back (runs of spaces as one).
    public static func wrap(_ text: String, maxWidth: Double, fontSize: Double) -> [String] {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard !words.isEmpty else { return [text] }
        // Phrases: words up to and including one that ends in a comma, or up to one that opens
        // a parenthesis.
        var phrases: [[String]] = [[]]
        for word in words {
            if word.hasPrefix("(") { phrases.append([]) }
            phrases[phrases.count - 1].append(word)
            if word.hasSuffix(",") { phrases.append([]) }
        }
        phrases.removeAll { $0.isEmpty }
        var lines: [String] = []
        var current = ""
        func fits(_ s: String) -> Bool { textWidth(s, fontSize: fontSize) <= maxWidth }
        for phrase in phrases {
            let whole = phrase.joined(separator: " ")
            if current.isEmpty && fits(whole) {
                current = whole
            } else if !current.isEmpty && fits(current + " " + whole) {
                current += " " + whole
            } else if fits(whole) {
                lines.append(current)
                current = whole
            } else {
                // A phrase too long for a line of its own: fill word by word.
                for word in phrase {
                    if current.isEmpty || fits(current + " " + word) {
                        current = current.isEmpty ? word : current + " " + word
                    } else {
                        lines.append(current)
                        current = word
                    }
                }
            }
        }
        lines.append(current)
        return lines
    }
}

// MARK: - SVG rendering

/// Hand-written SVG: no dependency.
public enum SVG {
    /// Colour-blind-safe colours (Okabe & Ito 2008) without the yellow, which reads poorly on
    /// white, and a neutral grey last (lines whose points carry the colours).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#000000", "#666666"]
    /// The grey of `palette`.
    public static let neutralColorIndex = 7

    /// A palette colour: indices wrap around.
    public static func color(_ index: Int) -> String {
        palette[((index % palette.count) + palette.count) % palette.count]
    }

    /// Series with more points than this are drawn without markers.
    static let maxMarkedPoints = 60

    /// Text for SVG content and attributes: markup characters as entities, control characters
    /// (which XML 1.0 does not allow) as spaces.
    static func escape(_ s: String) -> String {
        s.replacingScalars { scalar in
            switch scalar {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            case "\"": "&quot;"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value): " "
            default: nil
            }
        }
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    // Font sizes (px) and layout constants.
    static let titleSize = 18.0, panelTitleSize = 15.0, axisLabelSize = 13.0, tickSize = 12.0, legendSize = 12.0
    /// Legend labels wider than this wrap at spaces.
    static let legendTextWidth = 250.0
    static let legendLineHeight = 15.0, legendEntryGap = 5.0
    static let minimumPlotWidth = 240.0, minimumPlotHeight = 180.0
    /// Space above the plot area (panel title) and below it (tick labels and axis label).
    static let panelTop = 40.0, panelBottom = 58.0
    /// Share of the tick range added beyond the outer ticks at each end, so that nothing drawn at an
    /// outer tick (a reference line, a marker, an error bar) sits on the frame.
    static let axisPadding = 0.04

    /// A document holding panels laid out in rows; each row shares the width equally.
    ///
    /// `width` and `panelHeight` are the least sizes: a row whose legends or labels need more
    /// room gets it, so that no text is cut (measured by ``textWidth(_:fontSize:bold:)``); a
    /// legend below the plots adds its height to the row's.
    public static func document(
        rows: [[PlotPanel]], panelHeight: Double = 400, width: Double = 1200, title: String? = nil
    ) -> String {
        let top = title == nil ? 0.0 : 36
        var documentWidth = width
        if let title { documentWidth = max(documentWidth, textWidth(title, fontSize: titleSize, bold: true) + 40) }
        let layouts = rows.map { row -> [PanelLayout] in
            let share = width / Double(max(1, row.count))
            let layouts = row.map { PanelLayout($0, availableWidth: share) }
            // Panels side by side place their legends alike: below for all when one needs it.
            guard layouts.contains(where: \.legendBelow) else { return layouts }
            return row.map { PanelLayout($0, availableWidth: share, legendBelow: true) }
        }
        for row in layouts where !row.isEmpty {
            documentWidth = max(documentWidth, Double(row.count) * row.map(\.minimumWidth).max()!)
        }
        // A legend below the plot adds to the row's height rather than taking from the plot.
        let rowHeights = layouts.map { row in
            max(panelHeight, row.map { $0.minimumHeight - $0.spaceBelow }.max() ?? 0)
                + (row.map(\.spaceBelow).max() ?? 0)
        }
        let height = top + rowHeights.reduce(0, +)
        let w = documentWidth.rounded(.up), h = height.rounded(.up)
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" viewBox="0 0 \(Int(w)) \(Int(h))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
            <rect x="0" y="0" width="\(Int(w))" height="\(Int(h))" fill="white"/>

            """
        if let title {
            out +=
                "<text class=\"title\" x=\"\(f(w / 2))\" y=\"24\" font-size=\"\(Int(titleSize))\" font-weight=\"bold\" text-anchor=\"middle\">\(escape(title))</text>\n"
        }
        var y = top
        for (r, row) in layouts.enumerated() {
            let panelWidth = w / Double(max(1, row.count))
            // Panels side by side keep their plot areas level: each reserves the tallest legend below.
            let below = row.map(\.spaceBelow).max() ?? 0
            for (c, layout) in row.enumerated() {
                out += layout.render(
                    x: Double(c) * panelWidth, y: y, width: panelWidth, height: rowHeights[r], spaceBelow: below)
            }
            y += rowHeights[r]
        }
        return out + "</svg>\n"
    }

    /// The SVG of one marker centred at (x, y).
    static func marker(_ shape: PlotMarker, x: Double, y: Double, color: String, attributes: String = "") -> String {
        switch shape {
        case .circle:
            return "<circle\(attributes) cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"3.8\" fill=\"\(color)\"/>"
        case .square:
            return
                "<rect\(attributes) x=\"\(f(x - 3.5))\" y=\"\(f(y - 3.5))\" width=\"7\" height=\"7\" fill=\"\(color)\"/>"
        case .triangle:
            return
                "<path\(attributes) d=\"M\(f(x)) \(f(y - 4.8))L\(f(x + 4.6)) \(f(y + 3.6))L\(f(x - 4.6)) \(f(y + 3.6))Z\" fill=\"\(color)\"/>"
        case .diamond:
            return
                "<path\(attributes) d=\"M\(f(x)) \(f(y - 5))L\(f(x + 5)) \(f(y))L\(f(x)) \(f(y + 5))L\(f(x - 5)) \(f(y))Z\" fill=\"\(color)\"/>"
        }
    }

    static func seriesAttribute(_ key: String?) -> String {
        key.map { " data-series=\"\(escape($0))\"" } ?? ""
    }
}

// MARK: - Panel layout

/// The sizes of one panel's parts, computed from its text before any is drawn.
struct PanelLayout {
    let panel: PlotPanel
    let logX: Bool, logY: Bool
    let xTicks: [Double], yTicks: [Double]
    let xTickLabels: [String], yTickLabels: [String]
    /// Axis domain: the outer ticks plus padding.
    let xDomain: (Double, Double), yDomain: (Double, Double)
    let xLabel: String, yLabel: String
    /// Each legend entry's label broken into lines.
    let legendLines: [[String]]
    let legendWidth: Double, legendHeight: Double
    /// The legend goes below the plot, in columns, when at the right it would take more than
    /// 35% of the panel's width.
    let legendBelow: Bool
    /// Where each entry sits: its column and its offset from the legend's top. Below the plot,
    /// entries fill columns of about equal height in order; at the right, one column.
    let legendColumnWidth: Double, legendPlaces: [(column: Int, offset: Double)]
    /// From the panel's left edge to the plot area, and from the plot area's right edge to the panel's.
    let leftMargin: Double, rightMargin: Double
    let minimumWidth: Double, minimumHeight: Double

    init(_ panel: PlotPanel, availableWidth: Double, legendBelow forceBelow: Bool = false) {
        self.panel = panel
        let points = panel.series.flatMap(\.points)
        let xs = points.map(\.x)
        var ys = points.flatMap { p in [p.y - (p.error ?? 0), p.y + (p.error ?? 0)] } + panel.references.map(\.y)
        if ys.isEmpty { ys = [0, 1] }
        logX = panel.usesLogX
        let xValues = logX ? xs.filter { $0 > 0 } : xs
        xTicks =
            xValues.isEmpty
            ? [0, 1]
            : logX
                ? logTicks(lower: xValues.min()!, upper: xValues.max()!)
                : niceTicks(lower: xValues.min()!, upper: xValues.max()!, integers: panel.xIntegers)
        logY = panel.usesLogY
        if logY { ys = ys.filter { $0 > 0 } }
        if ys.isEmpty { ys = [1] }
        yTicks = logY ? logTicks(lower: ys.min()!, upper: ys.max()!) : niceTicks(lower: ys.min()!, upper: ys.max()!)
        let xStep = xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1
        let yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        let (isLogX, isLogY) = (logX, logY)
        xTickLabels = xTicks.map { isLogX ? String(format: "%g", $0) : tickLabel($0, step: xStep) }
        yTickLabels = yTicks.map { isLogY ? String(format: "%g", $0) : tickLabel($0, step: yStep) }
        // The outer ticks, widened to any value beyond them, plus padding.
        func padded(_ ticks: [Double], _ values: [Double], log: Bool) -> (Double, Double) {
            let lo = min(ticks.first!, values.min() ?? ticks.first!), hi = max(ticks.last!, values.max() ?? ticks.last!)
            if log {
                let a = log10(lo), b = log10(hi), pad = (b - a) * SVG.axisPadding
                return (pow(10, a - pad), pow(10, b + pad))
            }
            let pad = (hi - lo) * SVG.axisPadding
            return (lo - pad, hi + pad)
        }
        xDomain = padded(xTicks, xValues, log: logX)
        yDomain = padded(yTicks, ys, log: logY)
        xLabel = panel.xLabel + (logX ? " (log scale)" : "")
        yLabel = panel.yLabel + (logY ? " (log scale)" : "")

        let entries = panel.legendEntries
        let lines = entries.map { SVG.wrap($0.label, maxWidth: SVG.legendTextWidth, fontSize: SVG.legendSize) }
        legendLines = lines
        let textWidth = lines.flatMap { $0 }.map { SVG.textWidth($0, fontSize: SVG.legendSize) }.max() ?? 0
        let entryWidth = Self.swatchWidth + 10 + textWidth + 10
        let entryHeights = lines.map { Double($0.count) * SVG.legendLineHeight + SVG.legendEntryGap }
        legendBelow = !entries.isEmpty && (forceBelow || entryWidth > 0.35 * availableWidth)
        legendColumnWidth = entryWidth
        let columns = legendBelow ? max(1, min(entries.count, Int((availableWidth - 16) / entryWidth))) : 1
        let target = entryHeights.reduce(0, +) / Double(columns)
        var places: [(column: Int, offset: Double)] = []
        var column = 0, offset = 0.0
        for height in entryHeights {
            // A new column once this one holds its share (the last one takes the rest).
            if offset > 0 && offset + height / 2 > target && column < columns - 1 {
                column += 1
                offset = 0
            }
            places.append((column, offset))
            offset += height
        }
        legendPlaces = places
        let columnHeights = (0...column).map { c in
            zip(places, entryHeights).filter { $0.0.column == c }.map(\.1).reduce(0, +)
        }
        legendWidth = entries.isEmpty ? 0 : Double(column + 1) * entryWidth
        legendHeight = entries.isEmpty ? 0 : (columnHeights.max() ?? 0) + 16

        let yTickWidth = yTickLabels.map { SVG.textWidth($0, fontSize: SVG.tickSize) }.max() ?? 0
        // y-axis label (rotated, about one line high), gap, tick labels, gap, tick marks.
        leftMargin = 8 + SVG.axisLabelSize + 10 + yTickWidth + 10
        // The last x tick label is centred on its tick near the right edge of the plot area.
        let lastXTick = SVG.textWidth(xTickLabels.last ?? "", fontSize: SVG.tickSize) / 2
        rightMargin = entries.isEmpty || legendBelow ? max(20, lastXTick + 8) : max(18, lastXTick + 8) + legendWidth + 8
        let titleWidth = SVG.textWidth(panel.title, fontSize: SVG.panelTitleSize, bold: true)
        let xLabelWidth = SVG.textWidth(xLabel, fontSize: SVG.axisLabelSize)
        let plotWidth = max(SVG.minimumPlotWidth, titleWidth + 10, xLabelWidth + 10)
        minimumWidth = max(leftMargin + plotWidth + rightMargin, legendBelow ? legendWidth + 16 : 0).rounded(.up)
        let yLabelWidth = SVG.textWidth(yLabel, fontSize: SVG.axisLabelSize)
        minimumHeight =
            (SVG.panelTop + max(SVG.minimumPlotHeight, yLabelWidth + 10, legendBelow ? 0 : legendHeight)
            + SVG.panelBottom + (legendBelow ? legendHeight + 4 : 0)).rounded(.up)
    }

    /// Width of a legend swatch: a line with a marker on it.
    static let swatchWidth = 36.0

    /// Height of a legend below the plot, with its gap (0 for a legend at the right).
    var spaceBelow: Double { legendBelow ? legendHeight + 4 : 0 }

    /// The panel in the box (x, y, width, height): plot area on the left, legend on the right
    /// (or below, in `spaceBelow` at least this panel's own).
    func render(x: Double, y: Double, width: Double, height: Double, spaceBelow: Double? = nil) -> String {
        let f = SVG.f, escape = SVG.escape
        let left = x + leftMargin, right = x + width - rightMargin
        let top = y + SVG.panelTop, bottom = y + height - SVG.panelBottom - max(spaceBelow ?? 0, self.spaceBelow)
        var out = "<g class=\"panel\"\(panel.id.map { " data-panel=\"\(escape($0))\"" } ?? "")>\n"
        out +=
            "<text class=\"panel-title\" x=\"\(f((left + right) / 2))\" y=\"\(f(y + 24))\" font-size=\"\(Int(SVG.panelTitleSize))\" font-weight=\"bold\" text-anchor=\"middle\">\(escape(panel.title))</text>\n"

        let (x0, x1) = xDomain, (y0, y1) = yDomain
        let logX = self.logX, logY = self.logY
        // Dodged series keep clear of the frame: the data map inside it by the largest shift.
        let dodged =
            panel.dodge > 0 && panel.series.count > 1
            && panel.series.contains { $0.points.contains { ($0.error ?? 0) > 0 } }
        let inset = dodged ? Double(panel.series.count - 1) / 2 * panel.dodge : 0
        func pxTrue(_ v: Double) -> Double {
            let t = logX ? (log10(v) - log10(x0)) / (log10(x1) - log10(x0)) : (v - x0) / (x1 - x0)
            return left + inset + t * (right - left - 2 * inset)
        }
        func px(_ v: Double) -> Double { pxTrue(v) }
        func py(_ v: Double) -> Double {
            let t = logY ? (log10(max(v, y0 * 1e-3)) - log10(y0)) / (log10(y1) - log10(y0)) : (v - y0) / (y1 - y0)
            return bottom - t * (bottom - top)
        }

        // Grid, frame, ticks and tick labels.
        out += "<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n"
        for t in xTicks {
            out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom))\"/>\n"
        }
        for t in yTicks {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\"/>\n"
        }
        out += "</g>\n"
        out +=
            "<rect class=\"frame\" x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<g class=\"x-ticks\" font-size=\"\(Int(SVG.tickSize))\" text-anchor=\"middle\">\n"
        for (t, label) in zip(xTicks, xTickLabels) {
            out +=
                "<line x1=\"\(f(px(t)))\" y1=\"\(f(bottom))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom + 5))\" stroke=\"#333\"/>"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(bottom + 19))\">\(escape(label))</text>\n"
        }
        out += "</g>\n<g class=\"y-ticks\" font-size=\"\(Int(SVG.tickSize))\" text-anchor=\"end\">\n"
        for (t, label) in zip(yTicks, yTickLabels) {
            out +=
                "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t)))\" x2=\"\(f(left))\" y2=\"\(f(py(t)))\" stroke=\"#333\"/>"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\">\(escape(label))</text>\n"
        }
        out += "</g>\n"
        out +=
            "<text class=\"x-label\" x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 44))\" font-size=\"\(Int(SVG.axisLabelSize))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        let yLabelX = x + 8 + SVG.axisLabelSize * 0.8
        out +=
            "<text class=\"y-label\" x=\"\(f(yLabelX))\" y=\"\(f((top + bottom) / 2))\" font-size=\"\(Int(SVG.axisLabelSize))\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(yLabelX)) \(f((top + bottom) / 2)))\">\(escape(yLabel))</text>\n"

        // Reference lines.
        for ref in panel.references {
            let color = SVG.color(ref.colorIndex), yp = py(ref.y)
            out +=
                "<line class=\"reference\"\(SVG.seriesAttribute(ref.key)) x1=\"\(f(left))\" y1=\"\(f(yp))\" x2=\"\(f(right))\" y2=\"\(f(yp))\" stroke=\"\(color)\" stroke-width=\"1.5\" stroke-dasharray=\"\(ref.dash)\"/>\n"
            if let shape = ref.marker {
                for xp in [left + 10, right - 10] {
                    out +=
                        SVG.marker(
                            shape, x: xp, y: yp, color: color,
                            attributes: " class=\"marker\"\(SVG.seriesAttribute(ref.key))") + "\n"
                }
            }
        }
        // Series: error bars, line, markers.
        for (index, s) in panel.series.enumerated() {
            let c = SVG.color(s.colorIndex)
            let shift = dodged ? (Double(index) - Double(panel.series.count - 1) / 2) * panel.dodge : 0
            func px(_ v: Double) -> Double { pxTrue(v) + shift }
            let pts = s.points.filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) }.sorted { $0.x < $1.x }
            for p in pts {
                if let e = p.error, e > 0 {
                    let xp = px(p.x), pc = p.colorIndex.map(SVG.color) ?? c
                    out +=
                        "<path class=\"error-bar\"\(SVG.seriesAttribute(p.key ?? s.key)) d=\"M\(f(xp)) \(f(py(p.y - e)))V\(f(py(p.y + e)))M\(f(xp - 4)) \(f(py(p.y - e)))h8M\(f(xp - 4)) \(f(py(p.y + e)))h8\" stroke=\"\(pc)\" stroke-width=\"1.2\" fill=\"none\"/>\n"
                }
            }
            if pts.count > 1 {
                let d = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out +=
                    "<polyline class=\"series\"\(SVG.seriesAttribute(s.key)) points=\"\(d)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(s.dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>\n"
            }
            if pts.count <= SVG.maxMarkedPoints {
                for p in pts {
                    out +=
                        SVG.marker(
                            p.marker ?? s.marker, x: px(p.x), y: py(p.y), color: p.colorIndex.map(SVG.color) ?? c,
                            attributes: " class=\"marker\"\(SVG.seriesAttribute(p.key ?? s.key))") + "\n"
                }
            }
        }

        // Legend: top-aligned with the plot area at the panel's right edge, or centred below
        // the axis label in columns.
        let entries = panel.legendEntries
        if !entries.isEmpty {
            let lx = legendBelow ? x + (width - legendWidth) / 2 : x + width - legendWidth - 8
            let ly = legendBelow ? bottom + SVG.panelBottom : top
            out += "<g class=\"legend\" font-size=\"\(Int(SVG.legendSize))\">\n"
            out +=
                "<rect x=\"\(f(lx))\" y=\"\(f(ly))\" width=\"\(f(legendWidth))\" height=\"\(f(legendHeight))\" fill=\"white\" stroke=\"#999\"/>\n"
            for (i, (entry, lines)) in zip(entries, legendLines).enumerated() {
                let ex = lx + Double(legendPlaces[i].column) * legendColumnWidth
                let ey = ly + 10 + legendPlaces[i].offset
                let color = SVG.color(entry.colorIndex)
                let mid = ey + SVG.legendLineHeight / 2 - 1
                let (sx0, sx1) = (ex + 8, ex + Self.swatchWidth)
                if entry.showsLine {
                    out +=
                        "<line\(SVG.seriesAttribute(entry.key)) x1=\"\(f(sx0))\" y1=\"\(f(mid))\" x2=\"\(f(sx1))\" y2=\"\(f(mid))\" stroke=\"\(color)\" stroke-width=\"2\"\(entry.dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>"
                }
                if let shape = entry.marker {
                    out += SVG.marker(
                        shape, x: (sx0 + sx1) / 2, y: mid, color: color, attributes: SVG.seriesAttribute(entry.key))
                } else if !entry.showsLine {
                    out +=
                        "<rect\(SVG.seriesAttribute(entry.key)) x=\"\(f((sx0 + sx1) / 2 - 5))\" y=\"\(f(mid - 5))\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
                }
                out += "\n"
                for (k, line) in lines.enumerated() {
                    out +=
                        "<text class=\"legend-label\" x=\"\(f(ex + Self.swatchWidth + 10))\" y=\"\(f(ey + 11 + Double(k) * SVG.legendLineHeight))\">\(escape(line))</text>\n"
                }
            }
            out += "</g>\n"
        }
        return out + "</g>\n"
    }
}

// MARK: - Conversion

extension SVG {
    /// The path of an executable named `tool` on `searchPath` (colon-separated; default `$PATH`).
    static func findTool(_ tool: String, searchPath: String? = nil) -> String? {
        let path = searchPath ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(tool)" }.first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    /// Runs `executable` with `arguments`; returns its standard error when it fails (nil on success).
    static func run(_ executable: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do {
            try process.run()
        } catch {
            return "\(error)"
        }
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        if process.terminationStatus == 0 { return nil }
        let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "exit status \(process.terminationStatus)" : text
    }

    /// Converts an SVG file to PNG with `rsvg-convert` or ImageMagick's `convert` when one is on
    /// PATH; returns the PNG's URL, or nil (never throws) when neither is available or it fails.
    public static func convertToPNG(_ svg: URL, searchPath: String? = nil) -> URL? {
        let png = svg.deletingPathExtension().appendingPathExtension("png")
        let attempts: [(String, [String])] = [
            ("rsvg-convert", ["-o", png.path, svg.path]),
            ("convert", ["-density", "110", svg.path, png.path]),
        ]
        for (tool, arguments) in attempts {
            guard let executable = findTool(tool, searchPath: searchPath) else { continue }
            if run(executable, arguments) == nil, FileManager.default.fileExists(atPath: png.path) { return png }
        }
        return nil
    }

    /// What converting an SVG to PDF gave.
    public enum PDFResult: Equatable, Sendable {
        case written(URL)
        /// `rsvg-convert` (Debian package librsvg2-bin) is not on the search path.
        case noConverter
        case failed(String)
    }

    /// Converts an SVG file to a vector PDF beside it with `rsvg-convert -f pdf` (fonts embedded).
    /// ImageMagick is not used: it would rasterise the figure.
    public static func convertToPDF(_ svg: URL, searchPath: String? = nil) -> PDFResult {
        guard let executable = findTool("rsvg-convert", searchPath: searchPath) else { return .noConverter }
        let pdf = svg.deletingPathExtension().appendingPathExtension("pdf")
        if let failure = run(executable, ["-f", "pdf", "-o", pdf.path, svg.path]) { return .failed(failure) }
        return FileManager.default.fileExists(atPath: pdf.path) ? .written(pdf) : .failed("no file written")
    }
}
