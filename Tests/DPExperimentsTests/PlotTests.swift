import Foundation
import Testing

@testable import DPExperiments

#if canImport(FoundationXML)
import FoundationXML
#endif

@Test(arguments: [
    (0.0, 1.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.13, 0.87, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.5, 0.9, [0.5, 0.6, 0.7, 0.8, 0.9]),
    (1.0, 40.0, [0, 10, 20, 30, 40]),
    (-3.0, 7.0, [-4, -2, 0, 2, 4, 6, 8]),
])
func niceTicksStepIn125(_ lower: Double, _ upper: Double, _ expected: [Double]) {
    let ticks = niceTicks(lower: lower, upper: upper)
    #expect(ticks.count == expected.count)
    for (t, e) in zip(ticks, expected) { #expect(abs(t - e) < 1e-9) }
}

@Test func logTicksArePowersOfTenWithTwoAndFiveForShortRanges() {
    #expect(logTicks(lower: 0.5, upper: 8) == [0.5, 1, 2, 5, 10])
    #expect(logTicks(lower: 0.3, upper: 8) == [0.2, 0.5, 1, 2, 5, 10])
    #expect(logTicks(lower: 100, upper: 10000) == [100, 200, 500, 1000, 2000, 5000, 10000])
    #expect(logTicks(lower: 1, upper: 100000) == [1, 10, 100, 1000, 10000, 100000])
}

/// The text of every `<text>` element of an SVG.
func svgTexts(_ svg: String) -> [String] {
    var texts: [String] = []
    var rest = Substring(svg)
    while let open = rest.range(of: "<text") {
        guard let close = rest.range(of: ">", range: open.upperBound..<rest.endIndex),
            let end = rest.range(of: "</text>", range: close.upperBound..<rest.endIndex)
        else { break }
        texts.append(String(rest[close.upperBound..<end.lowerBound]))
        rest = rest[end.upperBound...]
    }
    return texts
}

@Test func privacyUtilityPlotHasAxesLegendErrorBarsAndControls() throws {
    let panel = try ExperimentPlots.privacyUtility(runsCSV: knownRunsCSV)
    #expect(panel.series.map(\.label) == ["mlp", "cnn"])
    #expect(panel.references.map(\.label) == ["mlp: non-private"])
    #expect(abs(panel.references[0].y - 96) < 1e-9)
    let mlp = panel.series[0].points.sorted { $0.x < $1.x }
    #expect(abs(mlp[0].x - 0.98) < 1e-12 && abs(mlp[0].y - 82) < 1e-9 && abs(mlp[0].error! - 2) < 1e-9)
    #expect(!panel.usesLogX) // 0.98 to 3: less than a decade

    let svg = SVG.document(rows: [[panel]])
    let texts = svgTexts(svg)
    #expect(texts.contains("privacy budget spent ε at δ = 1e-05"))
    #expect(texts.contains("test accuracy (%)"))
    #expect(texts.contains("mlp") && texts.contains("cnn") && texts.contains("mlp: non-private"))
    #expect(svg.contains("class=\"legend\"") && svg.contains("class=\"error-bar\""))
    #expect(svg.contains("class=\"reference\"") && svg.contains("stroke-dasharray=\"6,4\""))
    #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
    // Well-formed XML.
    #expect(isWellFormedXML(svg))
}

@Test func epsilonAxisTurnsLogarithmicPastOneDecade() {
    let panel = PlotPanel(
        title: "t", xLabel: "ε", yLabel: "y",
        series: [
            PlotSeries(label: "a", points: [PlotPoint(x: 0.5, y: 1), PlotPoint(x: 8, y: 2)], colorIndex: 0)
        ])
    #expect(panel.usesLogX)
    let texts = svgTexts(SVG.document(rows: [[panel]]))
    #expect(texts.contains("ε (log scale)"))
    #expect(texts.contains("0.5") && texts.contains("10"))
}

@Test func experimentDirectoryFigureHasAllPanels() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let svg = try ExperimentPlots.svg(forDirectory: dir)
    let texts = svgTexts(svg)
    for title in [
        "Privacy-utility trade-off", "Test accuracy by epoch", "Privacy spent by epoch", "epoch", "test accuracy (%)",
    ] {
        #expect(texts.contains(title), "missing \(title)")
    }
    #expect(texts.contains("target ε = 1") && texts.contains("non-private"))
    #expect(isWellFormedXML(svg))
}

@Test func accountingFigureIsLogLog() throws {
    let csv =
        CSV.line(accountingColumns)
        + CSV.line(["0.01", "1", "100", "1e-05", "1.5", "1.2", "1.3"])
        + CSV.line(["0.01", "1", "10000", "1e-05", "9.1", "7.7", "7.8"])
    let svg = try ExperimentPlots.accountingSVG(accountingCSV: csv)
    let texts = svgTexts(svg)
    #expect(texts.contains("steps (compositions) (log scale)"))
    #expect(texts.contains("RDP, q = 0.01, σ = 1") && texts.contains("PLD upper, q = 0.01, σ = 1"))
}

func isWellFormedXML(_ text: String) -> Bool {
    XMLParser(data: Data(text.utf8)).parse()
}
