import Foundation
import Testing

@testable import DPExperiments

#if canImport(FoundationXML)
import FoundationXML
#endif

// Figures for a paper (issue 10, item 10): legends never cut, one colour per config in every
// panel, integer epoch ticks, reference lines off the frame, each panel in its own file.

// MARK: - Reading SVG back

/// The elements of an SVG document with their attributes and text, and the panel and group
/// (`legend`, `x-ticks`, ...) each sits in.
struct SVGDocument {
    struct Element {
        var name: String
        var attributes: [String: String]
        var text = ""
        /// `data-panel` of the enclosing panel.
        var panel: String?
        /// Classes of the enclosing groups, innermost last.
        var groups: [String]

        func number(_ attribute: String) -> Double? { attributes[attribute].flatMap(Double.init) }
        var series: String? { attributes["data-series"] }
        /// The colour it is drawn in: stroke for lines, fill for shapes.
        var color: String? {
            ["line", "polyline", "path"].contains(name) && attributes["stroke"] != nil
                ? attributes["stroke"] : attributes["fill"]
        }
    }

    var width: Double
    var height: Double
    var elements: [Element]

    init(_ svg: String) {
        let reader = Reader()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = reader
        #expect(parser.parse(), "not well-formed XML")
        elements = reader.elements
        let root = elements.first { $0.name == "svg" }
        width = root?.number("width") ?? 0
        height = root?.number("height") ?? 0
    }

    func texts(inGroup group: String, panel: String? = nil) -> [Element] {
        elements.filter { $0.name == "text" && $0.groups.contains(group) && (panel == nil || $0.panel == panel) }
    }

    final class Reader: NSObject, XMLParserDelegate {
        var elements: [Element] = []
        var open: [Int] = []

        func parser(
            _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
            attributes: [String: String] = [:]
        ) {
            let parents = open.map { elements[$0] }
            let panel = parents.last { $0.name == "g" && $0.attributes["data-panel"] != nil }?.attributes["data-panel"]
            let groups = parents.filter { $0.name == "g" }.compactMap { $0.attributes["class"] }
            elements.append(Element(name: name, attributes: attributes, panel: panel, groups: groups))
            open.append(elements.count - 1)
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if let i = open.last { elements[i].text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            open.removeLast()
        }
    }
}

// MARK: - Text widths

/// Advance widths (em) of DejaVu Sans 2.37, the first font the figures ask for: its hmtx table
/// over unitsPerEm, read with fontTools and rounded up at the 4th decimal.
let dejaVuSansWidths: [Character: Double] = [
    " ": 0.3179, "!": 0.4009, "\"": 0.46, "#": 0.8379, "$": 0.6363, "%": 0.9502, "&": 0.7798, "'": 0.275,
    "(": 0.3902, ")": 0.3902, "*": 0.5, "+": 0.8379, ",": 0.3179, "-": 0.3609, ".": 0.3179, "/": 0.337,
    "0": 0.6363, "1": 0.6363, "2": 0.6363, "3": 0.6363, "4": 0.6363, "5": 0.6363, "6": 0.6363, "7": 0.6363,
    "8": 0.6363, "9": 0.6363, ":": 0.337, ";": 0.337, "<": 0.8379, "=": 0.8379, ">": 0.8379, "?": 0.5308,
    "@": 1.0, "A": 0.6841, "B": 0.6861, "C": 0.6983, "D": 0.7701, "E": 0.6319, "F": 0.5752, "G": 0.775,
    "H": 0.752, "I": 0.295, "J": 0.295, "K": 0.6558, "L": 0.5572, "M": 0.8628, "N": 0.7481, "O": 0.7872,
    "P": 0.6031, "Q": 0.7872, "R": 0.6949, "S": 0.6348, "T": 0.6109, "U": 0.732, "V": 0.6841, "W": 0.9888,
    "X": 0.6851, "Y": 0.6109, "Z": 0.6851, "[": 0.3902, "\\": 0.337, "]": 0.3902, "^": 0.8379, "_": 0.5,
    "`": 0.5, "a": 0.6128, "b": 0.6348, "c": 0.5499, "d": 0.6348, "e": 0.6153, "f": 0.3521, "g": 0.6348,
    "h": 0.6338, "i": 0.2779, "j": 0.2779, "k": 0.5792, "l": 0.2779, "m": 0.9742, "n": 0.6338, "o": 0.6119,
    "p": 0.6348, "q": 0.6348, "r": 0.4112, "s": 0.521, "t": 0.3921, "u": 0.6338, "v": 0.5918, "w": 0.8179,
    "x": 0.5918, "y": 0.5918, "z": 0.525, "{": 0.6363, "|": 0.337, "}": 0.6363, "~": 0.8379, "ε": 0.5406,
    "σ": 0.6338, "δ": 0.6119, "α": 0.6592, "β": 0.6382, "γ": 0.5918, "λ": 0.5918, "μ": 0.6363, "π": 0.6021,
    "τ": 0.6021, "ω": 0.8375, "Δ": 0.6841, "Σ": 0.6319, "±": 0.8379, "∞": 0.8331, "≤": 0.8379, "≥": 0.8379,
    "×": 0.8379, "→": 0.8379, "−": 0.8379, "…": 1.0, "–": 0.5, "—": 1.0, "é": 0.6153, "è": 0.6153, "ü": 0.6338,
    "ö": 0.6119, "ñ": 0.6338, "ç": 0.5499, "Å": 0.6841, "·": 0.3179,
]

@Test(
    "the width estimate is at least DejaVu Sans's advance width for every ASCII character and the symbols figures use")
func textWidthEstimateBoundsDejaVuSans() {
    for (character, width) in dejaVuSansWidths {
        #expect(SVG.emWidth(character) >= width, "\(character): estimate \(SVG.emWidth(character)) < \(width)")
        #expect(SVG.textWidth(String(character), fontSize: 10) >= width * 10)
    }
    // A whole label: the sum of its characters.
    let label = "multi-layer perceptron, target ε = 0.5 (WWW)"
    let actual = label.reduce(0.0) { $0 + dejaVuSansWidths[$1]! } * 12
    #expect(SVG.textWidth(label, fontSize: 12) >= actual)
    #expect(SVG.textWidth(label, fontSize: 12) < actual * 1.35, "so conservative that legends waste room")
}

@Test(
    "wrapping breaks after commas first, never inside a word, and loses no text",
    arguments: [
        "mlp, target ε = 0.5",
        "one hidden layer of sixteen units, target ε = 0.5",
        "non-private (optimizer.learning_rate = 0.1)",
        String(repeating: "W", count: 80),
        "a very long model name that has many words in it and keeps going, optimizer.learning_rate = 0.001, target ε = 8",
    ])
func wrapKeepsEveryWord(_ label: String) {
    let lines = SVG.wrap(label, maxWidth: 160, fontSize: 12)
    #expect(lines.joined(separator: " ") == label)
    for line in lines where line.contains(" ") {
        #expect(SVG.textWidth(line, fontSize: 12) <= 160, "\(line)")
    }
    if label.hasPrefix("non-private") {
        #expect(
            SVG.wrap(label, maxWidth: SVG.legendTextWidth, fontSize: 12) == [
                "non-private", "(optimizer.learning_rate = 0.1)",
            ])
    }
    if label.hasPrefix("one hidden") {
        #expect(
            SVG.wrap(label, maxWidth: SVG.legendTextWidth, fontSize: 12) == [
                "one hidden layer of sixteen units,", "target ε = 0.5",
            ])
    }
}

// MARK: - Legends never cut

let longLabels = [
    "a model with a long descriptive display name set in the config's labels map, optimizer.learning_rate = 0.001, target ε = 0.5",
    String(repeating: "W", count: 70), // one word wider than any wrap width
    "MMMM WWWW @@@@ %%%% mmmm wwww ==== ++++ MMMM WWWW",
    "σ = 0.8, δ = 1e-05, ε = 3, ±∞ ≤ ≥",
    "short",
]

/// Every text of `svg` lies inside the document by the same width estimate the layout uses.
func expectEveryTextInside(_ svg: SVGDocument, _ context: String) {
    for text in svg.elements where text.name == "text" && text.attributes["transform"] == nil {
        guard let x = text.number("x") else { continue }
        let size =
            text.number("font-size")
            ?? (text.groups.contains("legend")
                ? SVG.legendSize
                : text.groups.contains("x-ticks") || text.groups.contains("y-ticks") ? SVG.tickSize : SVG.axisLabelSize)
        let width = SVG.textWidth(text.text, fontSize: size, bold: text.attributes["font-weight"] == "bold")
        let anchor =
            text.attributes["text-anchor"]
            ?? (text.groups.contains("x-ticks") ? "middle" : text.groups.contains("y-ticks") ? "end" : "start")
        let start = anchor == "middle" ? x - width / 2 : anchor == "end" ? x - width : x
        #expect(
            start >= -0.5 && start + width <= svg.width + 0.5,
            "\(context): `\(text.text)` spans \(start)...\(start + width) of \(svg.width)")
    }
}

@Test(
    "legend labels are never cut: each line fits the legend box and the SVG, and the lines give the label back",
    arguments: [600.0, 1280.0], [1, 2, 3])
func legendLabelsAreNeverCut(width: Double, panelsInRow: Int) {
    let series = longLabels.enumerated().map { i, label in
        PlotSeries(
            label: label, points: [PlotPoint(x: 1, y: Double(i)), PlotPoint(x: 2, y: Double(i) + 1)], colorIndex: i)
    }
    let panel = PlotPanel(
        title: "t", xLabel: "epoch", yLabel: "y", series: series,
        references: [ReferenceLine(label: longLabels[0] + ": non-private", y: 3, colorIndex: 6, dash: "6,4")])
    let svg = SVGDocument(
        SVG.document(rows: [Array(repeating: panel, count: panelsInRow)], panelHeight: 300, width: width))
    #expect(!svg.elements.contains { $0.text.contains("…") })
    let boxes = svg.elements.filter { $0.name == "rect" && $0.groups.last == "legend" }
    #expect(boxes.count == panelsInRow)
    let labels = svg.texts(inGroup: "legend")
    for text in labels {
        let x = text.number("x")!, y = text.number("y")!
        let right = x + SVG.textWidth(text.text, fontSize: SVG.legendSize)
        #expect(right <= svg.width, "`\(text.text)` ends at \(right) > \(svg.width)")
        #expect(
            boxes.contains { box in
                let bx = box.number("x")!, by = box.number("y")!
                return x >= bx && right <= bx + box.number("width")! && y > by && y <= by + box.number("height")!
            }, "`\(text.text)` is outside its legend box")
    }
    // Per legend, the lines joined give every label back in order.
    let perPanel = labels.count / panelsInRow
    let joined = labels.prefix(perPanel).map(\.text).joined(separator: " ")
    #expect(joined == (longLabels + [longLabels[0] + ": non-private"]).joined(separator: " "))
    expectEveryTextInside(svg, "width \(width), \(panelsInRow) panels")
}

@Test("a long figure title widens the document instead of running off it")
func longTitleWidensTheDocument() {
    let panel = PlotPanel(
        title: "t", xLabel: "x", yLabel: "y",
        series: [PlotSeries(label: "a", points: [PlotPoint(x: 0, y: 0)], colorIndex: 0)])
    let title = String(repeating: "a long experiment name ", count: 8)
    let svg = SVGDocument(SVG.document(rows: [[panel]], width: 400, title: title))
    #expect(svg.width >= SVG.textWidth(title, fontSize: SVG.titleSize, bold: true))
    expectEveryTextInside(svg, "title")
}

// MARK: - Ticks and reference lines

@Test("epoch axes have integer ticks only", arguments: 1...12)
func epochTicksAreIntegers(_ epochs: Int) {
    let ticks = niceTicks(lower: 1, upper: Double(epochs), integers: true)
    #expect(ticks.allSatisfy { $0 == $0.rounded() }, "\(ticks)")
    #expect(ticks.first! <= 1 && ticks.last! >= Double(epochs))
    let panel = PlotPanel(
        title: "t", xLabel: "epoch", yLabel: "y",
        series: [
            PlotSeries(label: "a", points: (1...epochs).map { PlotPoint(x: Double($0), y: Double($0)) }, colorIndex: 0)
        ], xLog: false, xIntegers: true)
    let labels = SVGDocument(SVG.document(rows: [[panel]])).texts(inGroup: "x-ticks").map(\.text)
    #expect(!labels.isEmpty && labels.allSatisfy { Int($0) != nil }, "\(labels)")
}

@Test("the epoch panels of an experiment tick whole epochs (3 epochs gave 0.5 steps before)")
func experimentEpochPanelsTickWholeEpochs() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let svg = SVGDocument(try ExperimentPlots.svg(forDirectory: dir))
    for panel in ["accuracy-epochs", "epsilon-epochs"] {
        let labels = svg.texts(inGroup: "x-ticks", panel: panel).map(\.text)
        #expect(!labels.isEmpty && labels.allSatisfy { Int($0) != nil }, "\(panel): \(labels)")
    }
}

@Test("a reference line never lies on the frame, even at the outermost tick", arguments: [100.0, 80.0, 0.0, 96.0])
func referenceLinesSitInsideTheFrame(_ level: Double) {
    let panel = PlotPanel(
        title: "t", xLabel: "ε", yLabel: "accuracy (%)",
        series: [
            PlotSeries(
                label: "mlp", points: [PlotPoint(x: 1, y: 82, error: 2), PlotPoint(x: 3, y: 86, error: 1)],
                colorIndex: 0)
        ], references: [ReferenceLine(label: "non-private", y: level, colorIndex: 6, dash: "6,4")])
    let svg = SVGDocument(SVG.document(rows: [[panel]]))
    let frame = try! #require(svg.elements.first { $0.attributes["class"] == "frame" })
    let top = frame.number("y")!, bottom = top + frame.number("height")!
    let ticks = svg.texts(inGroup: "y-ticks").map(\.text)
    let references = svg.elements.filter { $0.attributes["class"] == "reference" }
    #expect(references.count == 1)
    for line in references {
        let y = line.number("y1")!
        #expect(y > top + 2 && y < bottom - 2, "reference at \(y), frame \(top)...\(bottom), ticks \(ticks)")
    }
}

@Test("the privacy-utility panel of known runs keeps its non-private line off the frame")
func privacyUtilityReferenceIsInside() throws {
    let svg = SVGDocument(SVG.document(rows: [[try ExperimentPlots.privacyUtility(runsCSV: knownRunsCSV)]]))
    let frame = try #require(svg.elements.first { $0.attributes["class"] == "frame" })
    let (top, bottom) = (frame.number("y")!, frame.number("y")! + frame.number("height")!)
    let (left, right) = (frame.number("x")!, frame.number("x")! + frame.number("width")!)
    for line in svg.elements where line.attributes["class"] == "reference" {
        #expect(line.number("y1")! > top + 2 && line.number("y1")! < bottom - 2)
    }
    // Markers and error bars stay off the frame too.
    for marker in svg.elements where marker.attributes["class"] == "marker" {
        if let cx = marker.number("cx") { #expect(cx > left + 2 && cx < right - 2) }
    }
}

// MARK: - One colour per config in every panel

/// Colour of each config (data-series) per panel: the stroke of its line, the fill of its markers.
func colors(_ svg: SVGDocument) -> [String: [String: Set<String>]] {
    var out: [String: [String: Set<String>]] = [:]
    for element in svg.elements where element.panel != nil && !element.groups.contains("legend") {
        guard let key = element.series, !key.hasPrefix("line-"), let color = element.color else { continue }
        out[key, default: [:]][element.panel!, default: []].insert(color)
    }
    return out
}

@Test("each config has one colour, the same in the privacy-utility panel and both epoch panels, and budgets differ")
func sameConfigHasTheSameColourInEveryPanel() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let figure = try ExperimentPlots.figure(forDirectory: dir)
    let svg = SVGDocument(figure.combined)
    let byConfig = colors(svg)
    let configs = Set(try parse(runnerYAML).runs.map(\.configHash))
    #expect(Set(byConfig.keys) == configs)
    var colorOf: [String: String] = [:]
    for (hash, panels) in byConfig {
        #expect(
            panels["privacy-utility"] != nil && panels["accuracy-epochs"] != nil,
            "\(hash) is missing from a panel: \(panels)")
        let all = panels.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        #expect(all.count == 1, "config \(hash) has colours \(panels)")
        colorOf[hash] = all.first
    }
    // Three budgets (ε = 1, ε = 8, non-private): three colours.
    #expect(Set(colorOf.values).count == 3)
    // The legend of each epoch panel shows each config in that colour.
    for panel in ["accuracy-epochs", "epsilon-epochs"] {
        for swatch in svg.elements
        where swatch.panel == panel && swatch.groups.contains("legend") && swatch.series != nil {
            #expect(swatch.color == colorOf[swatch.series!], "\(panel) legend")
        }
    }
    // The panels alone draw each config in the colour it has in the whole figure.
    for file in figure.panels {
        for (hash, panels) in colors(SVGDocument(file.svg)) {
            #expect(panels.values.allSatisfy { $0 == [colorOf[hash]!] }, "\(file.name): \(hash)")
        }
    }
}

@Test("with more lines than budgets the colour follows the line, and still agrees across panels")
func moreLinesThanBudgetsColourByLine() throws {
    let yaml = runnerYAML.replacingOccurrences(
        of: "  privacy.target_epsilon: [1, 8]\n", with: "  optimizer.learning_rate: [0.1, 0.2, 0.3]\n"
    )
    .replacingOccurrences(of: "include:\n  - privacy.enabled: false\n", with: "")
    .replacingOccurrences(of: "privacy:\n", with: "privacy:\n  target_epsilon: 2\n")
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor(), yaml: yaml)
    let svg = SVGDocument(try ExperimentPlots.svg(forDirectory: dir))
    let byConfig = colors(svg)
    #expect(byConfig.count == 3)
    #expect(byConfig.values.allSatisfy { $0.values.reduce(into: Set<String>()) { $0.formUnion($1) }.count == 1 })
    #expect(Set(byConfig.values.map { $0.values.first!.first! }).count == 3)
    let legend = svg.texts(inGroup: "legend", panel: "accuracy-epochs").map(\.text)
    #expect(
        legend == ["optimizer.learning_rate = 0.1", "optimizer.learning_rate = 0.2", "optimizer.learning_rate = 0.3"],
        "\(legend)")
}

// MARK: - Files

@Test("dpkit plot writes each panel as its own SVG; without rsvg-convert it says so once and writes no PDF")
func eachPanelIsWrittenAsItsOwnFile() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let written = try ExperimentPlots.writeFigures(forDirectory: dir, png: false, searchPath: "/nonexistent")
    let names = ["figure.svg", "figure-privacy-utility.svg", "figure-accuracy-epochs.svg", "figure-epsilon-epochs.svg"]
    #expect(written.files.map(\.lastPathComponent) == names)
    #expect(
        written.notes.count == 1 && written.notes[0].contains("rsvg-convert")
            && written.notes[0].contains("librsvg2-bin"))
    for (name, panel) in zip(names.dropFirst(), ["privacy-utility", "accuracy-epochs", "epsilon-epochs"]) {
        let svg = SVGDocument(try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8))
        let panels = Set(svg.elements.compactMap { $0.name == "g" ? $0.attributes["data-panel"] : nil })
        #expect(panels == [panel], "\(name)")
        expectEveryTextInside(svg, name)
    }
    #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("figure.pdf").path))
    // A PDF left by an earlier plot is named as out of date, not passed over.
    try Data("%PDF-".utf8).write(to: dir.appendingPathComponent("figure-privacy-utility.pdf"))
    let again = try ExperimentPlots.writeFigures(forDirectory: dir, png: false, searchPath: "/nonexistent")
    #expect(
        again.notes.count == 1 && again.notes[0].hasSuffix("out of date: figure-privacy-utility.pdf"), "\(again.notes)")

    // --output names the figure; the panels go beside it under its name.
    let other = dir.appendingPathComponent("paper.svg")
    let named = try ExperimentPlots.writeFigures(forDirectory: dir, output: other, png: false, pdf: false)
    #expect(
        named.files.map(\.lastPathComponent) == [
            "paper.svg", "paper-privacy-utility.svg", "paper-accuracy-epochs.svg", "paper-epsilon-epochs.svg",
        ])
    #expect(named.notes.isEmpty)
}

@Test(
    "with rsvg-convert on PATH, every SVG gets a vector PDF beside it",
    .enabled(if: SVG.findTool("rsvg-convert") != nil, "rsvg-convert (librsvg2-bin) is not installed"))
func panelsAreConvertedToPDF() throws {
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor())
    let written = try ExperimentPlots.writeFigures(forDirectory: dir, png: false)
    #expect(written.notes.isEmpty, "\(written.notes)")
    for name in ["figure", "figure-privacy-utility", "figure-accuracy-epochs", "figure-epsilon-epochs"] {
        let pdf = dir.appendingPathComponent("\(name).pdf")
        #expect(written.files.contains(pdf))
        let head = try FileHandle(forReadingFrom: pdf).readData(ofLength: 5)
        #expect(String(decoding: head, as: UTF8.self) == "%PDF-", "\(name).pdf")
    }
}

@Test("a setting only the control changes (its own learning rate) names the control, not a line of its own")
func controlSettingsNameTheControl() throws {
    let yaml = runnerYAML.replacingOccurrences(
        of: "  - privacy.enabled: false\n", with: "  - {privacy.enabled: false, optimizer.learning_rate: 0.5}\n")
    let dir = try temporaryDirectory()
    _ = try runExperiment(dir, executor: FakeExecutor(), yaml: yaml)
    let svg = SVGDocument(try ExperimentPlots.svg(forDirectory: dir))
    let utility = svg.texts(inGroup: "legend", panel: "privacy-utility").map(\.text)
    #expect(
        utility == ["mlp", "target ε = 1", "target ε = 8", "non-private", "(optimizer.learning_rate = 0.5)"],
        "\(utility)")
    let epochs = svg.texts(inGroup: "legend", panel: "accuracy-epochs").map(\.text).joined(separator: " ")
    #expect(epochs == "target ε = 1 target ε = 8 non-private (optimizer.learning_rate = 0.5)", "\(epochs)")
    // One line: every point and the reference share one marker shape (circles).
    #expect(!svg.elements.contains { $0.attributes["class"] == "marker" && $0.name != "circle" })
}

@Test("budgets are coloured from the most private: target ε up, σ down")
func budgetOrderFollowsPrivacy() {
    typealias Budget = ExperimentPlots.Budget
    let sigmas = ["0.6", "2", "1"].map { Budget(kind: .private, key: "privacy.noise_multiplier", value: $0) }
    #expect(Budget.ordered(sigmas + [Budget(kind: .nonPrivate)]).map(\.value) == ["2", "1", "0.6", ""])
    let targets = ["8", "0.5", "2"].map { Budget(kind: .private, key: "privacy.target_epsilon", value: $0) }
    #expect(
        Budget.ordered([Budget(kind: .clipOnly)] + targets + [Budget(kind: .nonPrivate)]).map(\.value) == [
            "0.5", "2", "8", "", "",
        ])
    #expect(
        Budget.ordered([Budget(kind: .clipOnly), Budget(kind: .nonPrivate)]).map(\.kind) == [.nonPrivate, .clipOnly])
}

@Test("a legend too wide for the right goes below in columns, adds to the height and leaves the plot its size")
func wideLegendGoesBelow() throws {
    func panel(_ labels: [String]) -> PlotPanel {
        PlotPanel(
            title: "t", xLabel: "epoch", yLabel: "y",
            series: labels.enumerated().map { i, label in
                PlotSeries(label: label, points: [PlotPoint(x: 1, y: Double(i)), PlotPoint(x: 2, y: 1)], colorIndex: i)
            })
    }
    let narrow = SVGDocument(SVG.document(rows: [[panel(["a", "b"])]], panelHeight: 420, width: 720))
    let wide = SVGDocument(
        SVG.document(
            rows: [
                [panel(Array(longLabels.prefix(1)) + ["one hidden layer of sixteen units, target ε = 0.5", "b", "c"])]
            ],
            panelHeight: 420, width: 720))
    func frame(_ svg: SVGDocument) throws -> SVGDocument.Element {
        try #require(svg.elements.first { $0.attributes["class"] == "frame" })
    }
    func box(_ svg: SVGDocument) throws -> SVGDocument.Element {
        try #require(svg.elements.first { $0.name == "rect" && $0.groups.last == "legend" })
    }
    // Narrow: at the right, beside the plot. Wide: below the frame, and the document is taller by it.
    #expect(try box(narrow).number("x")! > frame(narrow).number("x")! + frame(narrow).number("width")!)
    #expect(try box(wide).number("y")! > frame(wide).number("y")! + frame(wide).number("height")!)
    #expect(try frame(wide).number("height") == frame(narrow).number("height"))
    #expect(wide.height > narrow.height && wide.width == narrow.width)
    // Two columns side by side.
    let xs = Set(wide.texts(inGroup: "legend").map { $0.number("x")! })
    #expect(xs.count == 2)
    expectEveryTextInside(wide, "legend below")
}
