import DPCrypto
import DPTraining
import Foundation

/// `dpkit run` on K ranks (`mpirun -np K dpkit run CONFIG`): data-parallel DP-SGD, one run at a
/// time, every rank on every run.
///
/// Rank 0 runs the ``ExperimentRunner`` as one process would: it plans, takes the output lock,
/// decides what `--resume` continues, writes every file (rows, checkpoints, models, metrics,
/// the manifest with the privacy ledger) and signs. Before each run it tells the other ranks
/// which run comes next (``Leader``); they train the same run (``follow(config:outputDirectory:executor:decryptionKey:communicator:)``)
/// and write nothing. A run continued from a checkpoint is continued from the same checkpoint
/// file on every rank (read before the first step; rank 0 writes the next one only after a
/// step every rank took part in).
///
/// Failure: a run that stops with a ``TrainingError`` (a non-finite loss or gradient norm, an
/// invalid setting) stops on every rank at the same step, since every rank decides from the same
/// gathered figures; the ranks then confirm that they all failed alike (``agree(_:run:communicator:)``),
/// rank 0 rethrows so that the runner records the run as failed, as one process does, and every
/// rank goes on to the next run. Any other failure, or ranks that disagree, ends the whole job
/// (`MPI_Abort`) with a message that names the rank, the run and the error: the other ranks would
/// otherwise wait in a collective forever. Rows of finished runs are on disk already; `--resume`
/// continues.
public enum DataParallelRun {
    /// What data-parallel training does not support, per run of `config` that uses it (the
    /// trainer refuses the same at its first step; this names every such run before any trains).
    public static func unsupportedSettings(_ config: ExperimentConfig) -> [String] {
        var problems: [String: [String]] = [:]
        for run in config.runs {
            let c = run.config
            var found: [String] = []
            if c.privacy.secureRNG { found.append("privacy.secure_rng: true") }
            if c.model.layers?.contains(where: { if case .dropout = $0 { return true } else { return false } }) == true
            {
                found.append("dropout layers")
            }
            if c.training.adversarial != nil { found.append("training.adversarial") }
            if c.audit != nil { found.append("audit") }
            for f in found { problems[f, default: []].append(run.runID) }
        }
        return problems.keys.sorted().map { "\($0) (runs \(problems[$0]!.joined(separator: ", ")))" }
    }

    /// What rank 0 tells the others before each run, and at the end.
    enum Message: Equatable {
        case run(String)
        case end
        var text: String {
            switch self {
            case .run(let id): return "run " + id
            case .end: return "end"
            }
        }
        init?(text: String) {
            if text == "end" {
                self = .end
            } else if text.hasPrefix("run ") {
                self = .run(String(text.dropFirst(4)))
            } else {
                return nil
            }
        }
    }

    static func send(_ message: Message, _ communicator: any Communicator) throws {
        var bytes = Array(message.text.utf8)
        var count = [Int64(bytes.count)]
        try communicator.broadcast(&count, root: 0)
        try communicator.broadcast(&bytes, root: 0)
    }

    static func receive(_ communicator: any Communicator) throws -> Message {
        var count: [Int64] = [0]
        try communicator.broadcast(&count, root: 0)
        var bytes = [UInt8](repeating: 0, count: Int(count[0]))
        try communicator.broadcast(&bytes, root: 0)
        let text = String(decoding: bytes, as: UTF8.self)
        guard let message = Message(text: text) else {
            throw CommunicatorError(
                "rank \(communicator.rank) received `\(text)` from rank 0, not a run; the ranks disagree")
        }
        return message
    }

    /// After a run: every rank says whether it finished (0) or stopped with a ``TrainingError``
    /// (1). Returns normally when all finished, rethrows the error when all failed alike, ends
    /// the job when they disagree (a rank holding a model the others do not).
    static func agree(_ failure: TrainingError?, run id: String, communicator: any Communicator) throws {
        var outcomes = [Int64](repeating: 0, count: communicator.size)
        do {
            try communicator.allGather([failure == nil ? 0 : 1], into: &outcomes)
        } catch {
            abort("run \(id)", error: error, communicator: communicator)
        }
        if outcomes.allSatisfy({ $0 == 0 }) { return }
        if let failure, outcomes.allSatisfy({ $0 == 1 }) { throw failure }
        let failed = outcomes.indices.filter { outcomes[$0] == 1 }.map(String.init).joined(separator: ", ")
        abort(
            "run \(id)",
            error: CommunicatorError(
                "ranks \(failed) stopped with a training error (\(failure.map { plainDescription(of: $0) } ?? "on another rank")) and the others did not"
            ), communicator: communicator)
    }

    /// Ends the job on every rank after saying why.
    static func abort(_ what: String, error: Error, communicator: any Communicator) -> Never {
        FileHandle.standardError.write(
            Data(
                "error: rank \(communicator.rank) of \(communicator.size): \(what) failed: \(plainDescription(of: error)); stopping every rank (MPI_Abort). Finished runs are kept in the output folder; fix the cause and rerun with --resume\n"
                    .utf8))
        communicator.abort(code: 1)
    }

    /// Rank 0's executor: announces each run, then trains it with the other ranks.
    public final class Leader: RunExecutor {
        public let base: TrainingExecutor
        public let communicator: any Communicator

        /// `base.communicator` must be `communicator`.
        public init(base: TrainingExecutor, communicator: any Communicator) {
            precondition(
                base.communicator === communicator, "DataParallelRun.Leader: the executor trains on other ranks")
            self.base = base
            self.communicator = communicator
        }

        public func plan(_ run: ResolvedRun) throws -> RunPlan { try base.plan(run) }

        public func execute(_ run: ResolvedRun, progress: (EpochRecord) throws -> Void) throws -> RunSummary {
            try execute(run, context: RunContext(), progress: progress)
        }

        public func execute(
            _ run: ResolvedRun, context: RunContext, progress: (EpochRecord) throws -> Void
        ) throws -> RunSummary {
            let summary: RunSummary
            do {
                try send(.run(run.runID), communicator)
                summary = try base.execute(run, context: context, progress: progress)
            } catch let error as TrainingError {
                // Every rank stopped alike: the runner records the failed run and goes on.
                try agree(error, run: run.runID, communicator: communicator)
                throw error
            } catch {
                abort("run \(run.runID)", error: error, communicator: communicator)
            }
            // Every rank is done with the run (and its checkpoint file) before the runner
            // removes the checkpoint and announces the next run.
            try agree(nil, run: run.runID, communicator: communicator)
            return summary
        }

        /// Tells the other ranks that the experiment is over.
        public func finish() throws { try send(.end, communicator) }
    }

    /// Ranks other than 0: train each run rank 0 announces, until it says the end; write nothing.
    /// - Returns: the run ids trained.
    @discardableResult
    public static func follow(
        config: ExperimentConfig, outputDirectory: URL, executor: TrainingExecutor, decryptionKey: DecryptionKey?,
        communicator: any Communicator
    ) -> [String] {
        precondition(executor.communicator === communicator, "DataParallelRun.follow: the executor trains alone")
        let files = OutputFiles(directory: outputDirectory, encrypted: config.output.encryptFor != nil)
        var trained: [String] = []
        let key: DecryptionKey?
        do { key = try OutputProtection(config: config, decryptionKey: decryptionKey).checkpointKey } catch {
            abort("loading the keys of output:", error: error, communicator: communicator)
        }
        while true {
            let message: Message
            do { message = try receive(communicator) } catch {
                abort("waiting for rank 0", error: error, communicator: communicator)
            }
            guard case .run(let id) = message else { return trained }
            guard let run = config.runs.first(where: { $0.runID == id }) else {
                abort(
                    "run \(id)",
                    error: CommunicatorError(
                        "rank 0 announced run \(id), which this rank's config does not plan; start every rank with the same config and flags"
                    ),
                    communicator: communicator)
            }
            var context = RunContext(checkpoint: files.checkpoint(id))
            context.checkpointKey = key
            context.writesFiles = false
            var failure: TrainingError?
            do {
                _ = try executor.execute(run, context: context) { _ in }
            } catch let error as TrainingError {
                failure = error
            } catch {
                abort("run \(id)", error: error, communicator: communicator)
            }
            do {
                try agree(failure, run: id, communicator: communicator)
                trained.append(id)
            } catch {
                // Rank 0 records the run as failed; this rank goes on to the next.
            }
        }
    }
}
