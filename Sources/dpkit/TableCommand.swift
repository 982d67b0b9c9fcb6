import ArgumentParser
import DPExperiments
import Foundation

extension TableFormat: ExpressibleByArgument {}
extension BestMarking: ExpressibleByArgument {}

struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Aggregate an experiment's runs.csv over seeds into a table (or accounting.csv into an epsilon table).")

    @Argument(help: "Experiment output directory (holding runs.csv or accounting.csv).")
    var directory: String

    @Option(help: "Output format: \(TableFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: TableFormat = .markdown

    @Option(help: "runs.csv column naming the rows (default: model).")
    var rows: String?

    @Option(help: "runs.csv column naming the columns (default: privacy.target_epsilon, else privacy.noise_multiplier, else the first swept key).")
    var columns: String?

    @Option(help: "runs.csv column to aggregate.")
    var metric: String = "test_accuracy"

    @Option(help: "Mark the best private cell per: \(BestMarking.allCases.map(\.rawValue).joined(separator: ", ")).")
    var best: BestMarking = .column

    func validate() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("DIRECTORY '\(directory)' is not a directory")
        }
    }

    func run() throws {
        let dir = URL(fileURLWithPath: directory)
        do {
            if let data = FileManager.default.contents(atPath: dir.appendingPathComponent("runs.csv").path) {
                let table = try ResultsTable.aggregate(
                    runsCSV: String(decoding: data, as: UTF8.self), rows: rows, columns: columns, metric: metric)
                print(table.render(format, best: best), terminator: "")
            } else if let data = FileManager.default.contents(atPath: dir.appendingPathComponent("accounting.csv").path) {
                print(try renderAccountingTable(accountingCSV: String(decoding: data, as: UTF8.self), format: format), terminator: "")
            } else {
                throw ValidationError("\(directory) has no runs.csv or accounting.csv")
            }
        } catch let error as OutputError {
            throw ValidationError(error.description)
        }
    }
}
