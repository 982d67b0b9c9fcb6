import Foundation

// MARK: - Ticks

/// Tick positions in 1-2-5 steps covering [lower, upper] with about `target` ticks
/// (Heckbert, "Nice numbers for graph labels", Graphics Gems 1990).
public func niceTicks(lower: Double, upper: Double, target: Int = 6) -> [Double] {
    var lo = lower, hi = upper
    if !(lo.isFinite && hi.isFinite) { return [0, 1] }
    if lo == hi { lo -= lo == 0 ? 1 : abs(lo) * 0.1; hi += hi == 0 ? 1 : abs(hi) * 0.1 }
    let step = niceStep((hi - lo) / Double(max(1, target - 1)))
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
/// The axis runs from the last tick at or below `lower` to the first at or above `upper`.
public func logTicks(lower: Double, upper: Double) -> [Double] {
    let lo = (log10(lower)).rounded(.down), hi = (log10(upper)).rounded(.up)
    let decades = Int(hi - lo)
    var ticks: [Double] = []
    for k in 0...max(1, decades) {
        let base = pow(10, lo + Double(k))
        ticks.append(base)
        if decades <= 2 && k < max(1, decades) { ticks += [2 * base, 5 * base] }
    }
    let tolerance = 1 + 1e-9
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

/// One point of a series, with an optional symmetric error bar.
public struct PlotPoint: Hashable, Sendable {
    public var x: Double
    public var y: Double
    public var error: Double?

    public init(x: Double, y: Double, error: Double? = nil) {
        self.x = x
        self.y = y
        self.error = error
    }
}

/// A line with markers.
public struct PlotSeries: Hashable, Sendable {
    public var label: String
    public var points: [PlotPoint]
    public var colorIndex: Int
    /// SVG `stroke-dasharray` (`6,4`), or nil for a solid line.
    public var dash: String? = nil
}

/// A horizontal reference line (a control run).
public struct ReferenceLine: Hashable, Sendable {
    public var label: String
    public var y: Double
    public var colorIndex: Int
    /// `6,4` dashed for non-private, `2,3` dotted for clip-only.
    public var dash: String
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
}

// MARK: - SVG rendering

/// Hand-written SVG: no dependency.
public enum SVG {
    /// A colour-blind-safe palette (Okabe & Ito 2008).
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ x: Double) -> String { String(format: "%.1f", x) }

    /// A document holding panels laid out in rows; each row shares the width equally.
    public static func document(rows: [[PlotPanel]], panelHeight: Double = 400, width: Double = 1200, title: String? = nil) -> String {
        let top = title == nil ? 0.0 : 36
        let height = top + panelHeight * Double(rows.count)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">
        <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="white"/>

        """
        if let title {
            out += "<text x=\"\(f(width / 2))\" y=\"24\" font-size=\"18\" font-weight=\"bold\" text-anchor=\"middle\">\(escape(title))</text>\n"
        }
        for (r, row) in rows.enumerated() {
            let w = width / Double(max(1, row.count))
            for (c, panel) in row.enumerated() {
                out += render(panel, x: Double(c) * w, y: top + Double(r) * panelHeight, width: w, height: panelHeight)
            }
        }
        return out + "</svg>\n"
    }

    /// One panel in the box (x, y, width, height): plot area on the left, legend on the right.
    static func render(_ panel: PlotPanel, x: Double, y: Double, width: Double, height: Double) -> String {
        let legendWidth = width >= 1000 ? 280 : min(230, width * 0.36)
        let left = x + 72, right = x + width - legendWidth - 10, top = y + 40, bottom = y + height - 58
        var out = "<g class=\"panel\">\n"
        out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(y + 24))\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\">\(escape(panel.title))</text>\n"

        let points = panel.series.flatMap(\.points)
        let xs = points.map(\.x)
        var ys = points.flatMap { p in [p.y - (p.error ?? 0), p.y + (p.error ?? 0)] } + panel.references.map(\.y)
        if ys.isEmpty { ys = [0, 1] }
        let logX = panel.usesLogX
        let xValues = logX ? xs.filter { $0 > 0 } : xs
        let xTicks = xValues.isEmpty ? [0, 1]
            : logX ? logTicks(lower: xValues.min()!, upper: xValues.max()!) : niceTicks(lower: xValues.min()!, upper: xValues.max()!)
        let logY = panel.usesLogY
        if logY { ys = ys.filter { $0 > 0 } }
        let yTicks = logY ? logTicks(lower: ys.min()!, upper: ys.max()!) : niceTicks(lower: ys.min()!, upper: ys.max()!)
        let (x0, x1) = (xTicks.first!, xTicks.last!)
        let (y0, y1) = (yTicks.first!, yTicks.last!)
        func px(_ v: Double) -> Double {
            let t = logX ? (log10(v) - log10(x0)) / (log10(x1) - log10(x0)) : (v - x0) / (x1 - x0)
            return left + t * (right - left)
        }
        func py(_ v: Double) -> Double {
            let t = logY ? (log10(max(v, y0 * 1e-3)) - log10(y0)) / (log10(y1) - log10(y0)) : (v - y0) / (y1 - y0)
            return bottom - t * (bottom - top)
        }

        // Grid, ticks and tick labels.
        let xStep = xTicks.count > 1 ? xTicks[1] - xTicks[0] : 1
        let yStep = yTicks.count > 1 ? yTicks[1] - yTicks[0] : 1
        out += "<g class=\"grid\" stroke=\"#e0e0e0\" stroke-width=\"1\">\n"
        for t in xTicks { out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom))\"/>\n" }
        for t in yTicks { out += "<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(right))\" y2=\"\(f(py(t)))\"/>\n" }
        out += "</g>\n"
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        out += "<g class=\"x-ticks\" font-size=\"12\" text-anchor=\"middle\">\n"
        for t in xTicks {
            let label = logX ? String(format: "%g", t) : tickLabel(t, step: xStep)
            out += "<line x1=\"\(f(px(t)))\" y1=\"\(f(bottom))\" x2=\"\(f(px(t)))\" y2=\"\(f(bottom + 5))\" stroke=\"#333\"/>"
            out += "<text x=\"\(f(px(t)))\" y=\"\(f(bottom + 19))\">\(label)</text>\n"
        }
        out += "</g>\n<g class=\"y-ticks\" font-size=\"12\" text-anchor=\"end\">\n"
        for t in yTicks {
            out += "<line x1=\"\(f(left - 5))\" y1=\"\(f(py(t)))\" x2=\"\(f(left))\" y2=\"\(f(py(t)))\" stroke=\"#333\"/>"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 4))\">\(logY ? String(format: "%g", t) : tickLabel(t, step: yStep))</text>\n"
        }
        out += "</g>\n"
        out += "<text class=\"x-label\" x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 42))\" font-size=\"13\" text-anchor=\"middle\">\(escape(panel.xLabel + (logX ? " (log scale)" : "")))</text>\n"
        out += "<text class=\"y-label\" x=\"\(f(x + 18))\" y=\"\(f((top + bottom) / 2))\" font-size=\"13\" text-anchor=\"middle\" transform=\"rotate(-90 \(f(x + 18)) \(f((top + bottom) / 2)))\">\(escape(panel.yLabel + (logY ? " (log scale)" : "")))</text>\n"

        // Reference lines.
        for ref in panel.references {
            out += "<line class=\"reference\" x1=\"\(f(left))\" y1=\"\(f(py(ref.y)))\" x2=\"\(f(right))\" y2=\"\(f(py(ref.y)))\" stroke=\"\(color(ref.colorIndex))\" stroke-width=\"1.5\" stroke-dasharray=\"\(ref.dash)\"/>\n"
        }
        // Series: error bars, line, markers.
        for s in panel.series {
            let c = color(s.colorIndex)
            let pts = s.points.filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) }.sorted { $0.x < $1.x }
            for p in pts {
                if let e = p.error, e > 0 {
                    let xp = px(p.x)
                    out += "<path class=\"error-bar\" d=\"M\(f(xp)) \(f(py(p.y - e)))V\(f(py(p.y + e)))M\(f(xp - 4)) \(f(py(p.y - e)))h8M\(f(xp - 4)) \(f(py(p.y + e)))h8\" stroke=\"\(c)\" stroke-width=\"1.2\" fill=\"none\"/>\n"
                }
            }
            if pts.count > 1 {
                let d = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out += "<polyline class=\"series\" points=\"\(d)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(s.dash.map { " stroke-dasharray=\"\($0)\"" } ?? "")/>\n"
            }
            if pts.count <= 60 {
                for p in pts { out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(c)\"/>\n" }
            }
        }

        // Legend.
        let entries = panel.series.map { ($0.label, color($0.colorIndex), $0.dash ?? "") }
            + panel.references.map { ($0.label, color($0.colorIndex), $0.dash) }
        if !entries.isEmpty {
            let lx = right + 14, ly = top
            let maxChars = Int((legendWidth - 44) / 6.6)
            out += "<g class=\"legend\" font-size=\"12\">\n"
            out += "<rect x=\"\(f(lx))\" y=\"\(f(ly))\" width=\"\(f(legendWidth - 6))\" height=\"\(f(Double(entries.count) * 20 + 10))\" fill=\"white\" stroke=\"#999\"/>\n"
            for (i, entry) in entries.enumerated() {
                let ey = ly + 18 + Double(i) * 20
                out += "<line x1=\"\(f(lx + 8))\" y1=\"\(f(ey - 4))\" x2=\"\(f(lx + 32))\" y2=\"\(f(ey - 4))\" stroke=\"\(entry.1)\" stroke-width=\"2\"\(entry.2.isEmpty ? "" : " stroke-dasharray=\"\(entry.2)\"")/>"
                let label = entry.0.count > maxChars ? String(entry.0.prefix(maxChars - 1)) + "…" : entry.0
                out += "<text x=\"\(f(lx + 38))\" y=\"\(f(ey))\">\(escape(label))</text>\n"
            }
            out += "</g>\n"
        }
        return out + "</g>\n"
    }

    /// Converts an SVG file to PNG with `rsvg-convert` or ImageMagick's `convert` when one is on
    /// PATH; returns the PNG's URL, or nil (never throws) when neither is available or it fails.
    public static func convertToPNG(_ svg: URL) -> URL? {
        let png = svg.deletingPathExtension().appendingPathExtension("png")
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        func find(_ tool: String) -> String? {
            path.split(separator: ":").map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
        }
        let attempts: [(String, [String])] = [
            ("rsvg-convert", ["-o", png.path, svg.path]),
            ("convert", ["-density", "110", svg.path, png.path]),
        ]
        for (tool, arguments) in attempts {
            guard let executable = find(tool) else { continue }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            do {
                try process.run()
                process.waitUntilExit()
                if process.terminationStatus == 0, FileManager.default.fileExists(atPath: png.path) { return png }
            } catch {
                continue
            }
        }
        return nil
    }
}
