import ArgumentParser
import DPCrypto
import DPExperiments
import Foundation

extension TableFormat: ExpressibleByArgument {}
extension BestMarking: ExpressibleByArgument {}

struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract:
            "Aggregate an experiment's runs.csv over seeds into a table (or accounting.csv into an epsilon table).",
        discussion: """
            A cell averages the seeds of one config (config_hash). When --rows and --columns would put \
            runs of different configs into one cell, the cell is split into one row per config, \
            labelled with the keys that differ, and a warning on standard error names them. The best \
            cell follows the metric's direction: accuracies up; losses, epsilons, delta and time down; \
            none for settings. Markdown and LaTeX show keys and values by the display names of the \
            config's labels: map (recorded in manifest.json); CSV keeps the raw ones. LaTeX output \
            starts with the packages it needs (booktabs). Without finished runs, it says so and exits 1. \
            A signed folder (`dpkit sign`, `output.sign_with`) gets a line saying whether its \
            signature verifies (below the table; a LaTeX comment; standard error for CSV).
            """)

    @Argument(help: "Experiment output directory (holding runs.csv or accounting.csv).")
    var directory: String

    @Option(help: "Output format: \(TableFormat.allCases.map(\.rawValue).joined(separator: ", ")).")
    var format: TableFormat = .markdown

    @Option(help: "runs.csv column naming the rows (default: model).")
    var rows: String?

    @Option(
        help:
            "runs.csv column naming the columns (default: privacy.target_epsilon, else privacy.noise_multiplier, else the first swept key)."
    )
    var columns: String?

    @Option(help: "runs.csv column to aggregate.")
    var metric: String = "test_accuracy"

    @Option(help: "Mark the best private cell per: \(BestMarking.allCases.map(\.rawValue).joined(separator: ", ")).")
    var best: BestMarking = .column

    @Option(
        name: .customLong("public"),
        help: "The signer's Ed25519 public key (signing.pem): the signature line then also checks who signed.")
    var publicKey: String?

    func run() throws {
        do {
            let (text, warnings) = try tableText(
                forDirectory: URL(fileURLWithPath: directory), format: format, rows: rows,
                columns: columns, metric: metric, best: best)
            for warning in warnings { FileHandleStderr.write("warning: \(warning)\n") }
            print(text, terminator: "")
            // A signed folder: whether its signature verifies (below the table; stderr for CSV).
            let expected = try publicKey.map { try VerificationKey.load($0) }
            if let status = ResultSignature.status(directory: URL(fileURLWithPath: directory), expected: expected) {
                switch format {
                case .markdown: print("\n" + status.line)
                case .latex: print("% " + status.line)
                case .csv: FileHandleStderr.write(status.line + "\n")
                }
            }
        } catch {
            throw reportFailure(error)
        }
    }
}
