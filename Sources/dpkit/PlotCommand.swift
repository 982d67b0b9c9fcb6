import ArgumentParser
import DPExperiments
import Foundation

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract:
            "Write the SVG figure of an experiment: privacy-utility curve, accuracy and epsilon by epoch (or RDP vs PLD for accounting.csv).",
        discussion: """
            Writes DIRECTORY/figure.svg with every panel, and each panel alone beside it \
            (figure-privacy-utility.svg, figure-accuracy-epochs.svg, figure-epsilon-epochs.svg). \
            With rsvg-convert (Debian package librsvg2-bin) on PATH, also a vector PDF of every SVG \
            and a PNG of the whole figure (ImageMagick's convert makes the PNG when rsvg-convert is \
            missing); without it, it says so once and keeps the SVGs. Display names come from the \
            config's labels: map, as recorded in manifest.json. Without finished runs, it says so and exits 1.
            """)

    @Argument(help: "Experiment output directory (holding runs.csv and epochs.csv, or accounting.csv).")
    var directory: String

    @Option(
        help:
            "SVG file of the whole figure (default: DIRECTORY/figure.svg); the panels go beside it as <name>-<panel>.svg."
    )
    var output: String?

    @Flag(help: "Do not convert the figure to PNG.")
    var noPng = false

    @Flag(help: "Do not convert the SVGs to PDF.")
    var noPdf = false

    func run() throws {
        do {
            let written = try ExperimentPlots.writeFigures(
                forDirectory: URL(fileURLWithPath: directory), output: output.map { URL(fileURLWithPath: $0) },
                png: !noPng, pdf: !noPdf)
            for file in written.files { print("wrote \(file.path)") }
            for note in written.notes { FileHandleStderr.write("note: \(note)\n") }
        } catch {
            throw reportFailure(error)
        }
    }
}
