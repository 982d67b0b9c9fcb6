import ArgumentParser
import DPExperiments
import Foundation

/// `dpkit evaluate`: test accuracy and loss of models exported by `dpkit run`.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract:
            "Test loss and accuracy of a trained model (a run's models/<run_id>.safetensors, or every model of a results folder).",
        discussion: """
            The model is rebuilt from the architecture in its metadata and evaluated on the test \
            set of the dataset it was trained on (generated data from the run's seed), with the \
            input scaling it was trained with. --dataset evaluates on another dataset's test set \
            (default options), which must have the same example shape and classes.
            """)

    @Argument(help: "A .safetensors model, or a results folder (its models/ are evaluated).")
    var path: String

    @Option(name: .customLong("run"), help: "Only this run (its run_id) of a results folder.")
    var runID: String?

    @Option(help: "Evaluate on this dataset's test set instead of the training run's.")
    var dataset: String?

    @Option(help: "The private key (recipient.key.pem) of encrypted models and datasets, opened in memory.")
    var key: String?

    @Flag(help: "Print one JSON object per model.")
    var json = false

    func run() throws {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("\(path) does not exist: give a .safetensors file or a results folder")
        }
        var files: [URL]
        if isDirectory.boolValue {
            let models = url.appendingPathComponent("models")
            let names = (try? FileManager.default.contentsOfDirectory(atPath: models.path)) ?? []
            let suffixes = [".safetensors", ".safetensors.dpkenc"]
            files = names.filter { n in suffixes.contains { n.hasSuffix($0) } }.sorted().map {
                models.appendingPathComponent($0)
            }
            if let runID { files = files.filter { $0.lastPathComponent.hasPrefix(runID + ".safetensors") } }
            guard !files.isEmpty else {
                throw ValidationError(
                    "\(path) has no \(runID.map { "model of run \($0)" } ?? "models") in models/ (only finished runs write one)"
                )
            }
        } else {
            files = [url]
        }
        for file in files {
            do {
                let r = try ModelEvaluation.evaluate(file: file, dataset: dataset, keyPath: key)
                if json {
                    try printJSON([
                        "model": file.path, "run_id": r.runID ?? NSNull(), "dataset": r.dataset, "examples": r.examples,
                        "test_loss": r.loss, "test_accuracy": r.accuracy,
                        "epsilon": r.epsilon.flatMap(Double.init) ?? NSNull(),
                        "public": r.publicKind.map { ["kind": $0, "statement": r.publicStatement ?? ""] } ?? NSNull(),
                    ])
                } else {
                    print(
                        String(
                            format: "%@: %@ test set (%d examples): accuracy %.2f%%, loss %.4f%@",
                            r.runID ?? file.lastPathComponent,
                            r.dataset, r.examples, r.accuracy * 100, r.loss,
                            r.epsilon.map { ", trained at epsilon \($0)" } ?? ""))
                    if let kind = r.publicKind {
                        print("  public part (`public.\(kind)`): \(r.publicStatement ?? "")")
                    }
                }
            } catch let e as OutputError {
                throw ValidationError(e.description)
            } catch {
                throw reportFailure(error)
            }
        }
    }
}
