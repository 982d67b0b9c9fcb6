import ArgumentParser
import DPExperiments
import Foundation

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Write an SVG figure of an experiment: privacy-utility curve, accuracy and epsilon by epoch (or RDP vs PLD for accounting.csv).",
        discussion: "Also writes a PNG next to the SVG when rsvg-convert or ImageMagick's convert is on PATH. Without finished runs, it says so and exits 1.")

    @Argument(help: "Experiment output directory (holding runs.csv and epochs.csv, or accounting.csv).")
    var directory: String

    @Option(help: "SVG file to write (default: DIRECTORY/figure.svg).")
    var output: String?

    @Flag(help: "Do not convert the SVG to PNG.")
    var noPng = false

    func run() throws {
        let dir = URL(fileURLWithPath: directory)
        do {
            let svg = try ExperimentPlots.svg(forDirectory: dir)
            let url = output.map { URL(fileURLWithPath: $0) } ?? dir.appendingPathComponent("figure.svg")
            do {
                try DurableFile.writeAtomically(svg, to: url)
            } catch var error as FileError {
                error.action = .createFile
                throw error
            }
            print("wrote \(url.path)")
            if !noPng, let png = SVG.convertToPNG(url) { print("wrote \(png.path)") }
        } catch {
            throw reportFailure(error)
        }
    }
}
