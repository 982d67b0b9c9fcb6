import DPAccounting
import DPData
import DPFederated
import DPLayers
import DPTraining
import Foundation

// The `federated:` runs of ``TrainingExecutor``: one epochs.csv row per round, the user-level
// epsilon (privacy unit `user`) in runs.csv, the partition's statistics in runs.csv and the
// manifest.

extension TrainingExecutor {
    /// The user-level privacy statement and the round event of a federated run (nil event: not private).
    func federatedPrivacy(_ c: RunConfig, _ f: FederatedConfig) -> (statement: PrivacyStatement, event: DpEvent?) {
        let fc = f.configuration(c)
        return (
            PrivacyStatement(
                neighboringRelation: fc.sampling.neighboringRelation, privacyUnit: "user", randomness: fc.randomness),
            fc.roundEvent(clientCount: f.clients)
        )
    }

    /// RDP always; PLD when the config names it and it supports the event (Poisson sampling).
    func federatedEpsilons(
        _ c: RunConfig, ledger: PrivacyLedger
    ) throws -> (rdp: Double?, pldLower: Double?, pldUpper: Double?) {
        guard let delta = c.privacy.targetDelta, !ledger.entries.isEmpty else { return (nil, nil, nil) }
        var out: (rdp: Double?, pldLower: Double?, pldUpper: Double?) = (nil, nil, nil)
        out.rdp = try PrivacyBudget.epsilon(ledger: ledger, delta: delta, accountant: .rdp)
        if c.privacy.accountants.contains(.pld), c.privacy.sampling == .poisson {
            let r = try PrivacyBudget.report(ledger: ledger, delta: delta, accountant: .pld)
            out.pldLower = r.epsilonLower
            out.pldUpper = r.epsilonUpper ?? r.epsilon
        }
        return out
    }

    func planFederated(_ run: ResolvedRun, _ f: FederatedConfig) throws -> RunPlan {
        let c = run.config
        let (statement, event) = federatedPrivacy(c, f)
        var plan = RunPlan(
            noiseMultiplier: event == nil ? nil : c.privacy.noiseMultiplier,
            samplingProbability: Double(f.clientsPerRound) / Double(f.clients), steps: f.rounds, stepsPerEpoch: 1,
            notes: [
                "federated: \(f.clients) clients (\(f.partition)), \(f.rounds) rounds of \(f.clientsPerRound) \(c.privacy.sampling == .poisson ? "expected " : "")clients, server \(f.server), aggregator \(f.aggregator)"
            ])
        if let event {
            plan.privacy = statement
            var ledger = PrivacyLedger()
            try ledger.record(event, count: f.rounds)
            let eps = try federatedEpsilons(c, ledger: ledger)
            plan.epsilonRDP = eps.rdp
            plan.epsilonPLDLower = eps.pldLower
            plan.epsilonPLDUpper = eps.pldUpper
            plan.notes.append(
                "train_loss of a private federated run is the mean local loss of the sampled users: a non-private diagnostic (no noise), like DP-SGD's training loss; the per-user label histograms and client accuracy percentiles are not recorded"
            )
            if let delta = c.privacy.targetDelta, delta > 1 / Double(f.clients) {
                plan.warnings.append(
                    "delta \(delta) is above 1/N = \(1 / Double(f.clients)) for N = \(f.clients) users: a mechanism that publishes one whole user's data with probability delta satisfies it"
                )
            }
        }
        plan.warnings += f.configuration(c).warnings(clientCount: f.clients, delta: c.privacy.targetDelta)
        return plan
    }

    /// What a federated run trains on: the data as scaled, the partition and the trainer.
    struct FederatedSetup {
        var split: TrainTestSplit
        var transform: InputTransform
        var model: Sequential
        var partition: ClientPartition
        var trainer: FederatedTrainer
    }

    /// Loads and scales the data, builds the model, the partition and the trainer of a
    /// federated run: the same on the server and on every client process, so that each client
    /// process trains exactly the clients the simulation would.
    func federatedSetup(_ run: ResolvedRun, _ f: FederatedConfig, context: RunContext) throws -> FederatedSetup {
        let c = run.config
        var split = try loadData(c)
        try context.prepareData?(&split)
        let transform: InputTransform
        switch c.dataset.normalize {
        case .none: transform = .none
        case .perExample: transform = .perExample
        case .fixed(let mean, let sd):
            transform = .standardization(
                Standardization(mean: mean.map(Float.init), standardDeviation: sd.map(Float.init)))
        case .standardize, .privateStandardize:
            throw TrainingError.invalidSetting(
                "dataset.normalize: `\(c.dataset.normalize.name)` is not available in federated runs")
        }
        transform.apply(to: &split.train)
        transform.apply(to: &split.test)
        let seed = UInt64(c.seed)
        let model = try buildModel(
            c.model, inputShape: split.train.exampleShape, classes: split.train.classCount, seed: seed)
        let partition: ClientPartition
        do {
            partition = try ClientPartition.make(
                labels: split.train.labels, classCount: split.train.classCount, clients: f.clients, scheme: f.partition,
                seed: seed)
        } catch let e as FederatedError {
            throw TrainingError.invalidSetting("federated: \(e.description)")
        }
        let trainer: FederatedTrainer
        do {
            trainer = try FederatedTrainer(
                model: model, data: split.train, partition: partition, configuration: f.configuration(c))
        } catch let e as FederatedError {
            throw TrainingError.invalidSetting("federated: \(e.description)")
        }
        return FederatedSetup(split: split, transform: transform, model: model, partition: partition, trainer: trainer)
    }

    /// The trainer a client process of `run` answers rounds with (`dpkit federated client`).
    /// - Throws: ``TrainingError/invalidSetting(_:)`` for a run that is not federated, and the
    ///   errors of loading its data.
    public func federatedTrainer(for run: ResolvedRun) throws -> FederatedTrainer {
        guard let f = run.config.federated else {
            throw TrainingError.invalidSetting(
                "run \(run.runID) has no `federated:` section: nothing to serve as a client")
        }
        return try federatedSetup(run, f, context: RunContext()).trainer
    }

    func executeFederated(
        _ run: ResolvedRun, _ f: FederatedConfig, context: RunContext, progress: (EpochRecord) throws -> Void
    ) throws -> RunSummary {
        let c = run.config
        let setup = try federatedSetup(run, f, context: context)
        let split = setup.split, transform = setup.transform, model = setup.model, partition = setup.partition
        let trainer = setup.trainer
        // The clients: in this process (the simulation), or behind the network's transport.
        var transport: any FederatedTransport =
            try federatedTransport.map { try $0(trainer, run) } ?? InProcessTransport(trainer: trainer)
        let (statement, event) = federatedPrivacy(c, f)
        var summary = RunSummary(
            epochs: 0, steps: 0, delta: event == nil ? nil : c.privacy.targetDelta,
            noiseMultiplier: event == nil ? nil : c.privacy.noiseMultiplier,
            samplingProbability: Double(f.clientsPerRound) / Double(f.clients), clippingNorm: c.privacy.clippingNorm)
        if event != nil { summary.privacy = statement }
        let start = Date()
        var localSeconds = 0.0
        var nonFiniteClients = 0, skippedRounds = 0
        for round in 1...f.rounds {
            let report: RoundReport
            do { report = try trainer.runRound(transport: &transport) } catch let e as FederatedError {
                throw TrainingError.invalidSetting("federated round \(round): \(e.description)")
            }
            localSeconds += report.localSeconds
            nonFiniteClients += report.nonFiniteClients
            if report.unmaskingSkipped { skippedRounds += 1 }
            var record = EpochRecord(
                epoch: round, step: round, trainLoss: report.meanLocalLoss.isNaN ? nil : report.meanLocalLoss)
            let evaluate = round % max(1, c.training.evalEvery) == 0 || round == f.rounds
            if evaluate, let url = context.metrics {
                // The round's attack and fairness figures: one JSON line per evaluation round.
                let e = trainer.evaluate(test: split.test)
                func number(_ x: Double?) -> String { x.map { $0.isFinite ? csvNumber($0) : "null" } ?? "null" }
                try DurableFile.append(
                    "{\"backdoor_success_rate\":\(number(e.backdoorSuccessRate)),\"clean_accuracy\":\(number(e.cleanAccuracy)),"
                        + "\"client_accuracy_p10\":\(number(e.clientAccuracyP10)),\"client_accuracy_p50\":\(number(e.clientAccuracyP50)),"
                        + "\"client_accuracy_p90\":\(number(e.clientAccuracyP90)),\"round\":\(round)}\n", to: url)
            }
            if evaluate {
                let loss = SoftmaxCrossEntropy().losses(logits: model(split.test.features), labels: split.test.labels)
                record.testLoss = Double(loss.sum()) / Double(max(1, split.test.count))
                record.testAccuracy = model.accuracy(split.test.features, labels: split.test.labels)
            }
            if event != nil {
                // Accounted at evaluation rounds only (PLD costs more than a small round).
                let eps: (rdp: Double?, pldLower: Double?, pldUpper: Double?) =
                    evaluate ? try federatedEpsilons(c, ledger: trainer.ledger) : (nil, nil, nil)
                record.epsilonRDP = eps.rdp
                record.epsilonPLDLower = eps.pldLower
                record.epsilonPLDUpper = eps.pldUpper
                record.delta = c.privacy.targetDelta
                record.noiseMultiplier = c.privacy.noiseMultiplier
                record.clippingNorm = report.privacy?.clippingNorm
            }
            record.samplingProbability = summary.samplingProbability
            record.wallSeconds = Date().timeIntervalSince(start)
            summary.epochs = round
            summary.steps = round
            summary.trainLoss = record.trainLoss
            if let a = record.testAccuracy {
                summary.testAccuracy = a
                summary.testLoss = record.testLoss
            }
            if evaluate {
                summary.epsilonRDP = record.epsilonRDP
                summary.epsilonPLDLower = record.epsilonPLDLower
                summary.epsilonPLDUpper = record.epsilonPLDUpper
            }
            if let norm = report.privacy?.nextClippingNorm { summary.clippingNorm = norm }
            try progress(record)
        }
        let wall = Date().timeIntervalSince(start)
        // Counts over the whole run only (which round and client are not said).
        if nonFiniteClients > 0 {
            FileHandle.standardError.write(
                Data(
                    "warning: run \(run.runID): \(nonFiniteClients) sampled client updates had a non-finite local loss and counted as zero (clipped) updates; lower the local learning rate\n"
                        .utf8))
        }
        if skippedRounds > 0 {
            FileHandle.standardError.write(
                Data(
                    "warning: run \(run.runID): \(skippedRounds) rounds had fewer than \(f.secureAggregation?.minimumClients ?? 0) secure-aggregation survivors and released noise only (composed as usual)\n"
                        .utf8))
        }
        if event != nil { summary.privacyLedger = try ConfigValue(jsonData: JSONEncoder().encode(trainer.ledger)) }
        let lastEvaluation: FederatedEvaluation? = trainer.evaluate(test: split.test)
        let sizes = partition.sizes
        var m: [String: Double] = [
            "rounds": Double(f.rounds), "clients": Double(f.clients), "clients_per_round": Double(f.clientsPerRound),
            "client_size_min": Double(sizes.min() ?? 0), "client_size_max": Double(sizes.max() ?? 0),
            "rounds_per_second": Double(f.rounds) / max(wall, 1e-9),
            "local_seconds_fraction": localSeconds / max(wall, 1e-9),
        ]
        if let e = lastEvaluation {
            m["client_accuracy_p10"] = e.clientAccuracyP10
            m["client_accuracy_p50"] = e.clientAccuracyP50
            m["client_accuracy_p90"] = e.clientAccuracyP90
            if let asr = e.backdoorSuccessRate { m["backdoor_success_rate"] = asr }
        }
        // The partition: scheme, parameters and seed regenerate it for whoever holds the data;
        // the sizes' range depends only on n and N. Per-user data (each client's label counts,
        // and statistics of them) is a noiseless release about users, so only non-private runs
        // record it.
        var partitionEntries: [(String, ConfigValue)] = [
            ("scheme", .string(f.partition.description)), ("clients", .int(f.clients)),
            ("size_min", .int(sizes.min() ?? 0)), ("size_max", .int(sizes.max() ?? 0)),
        ]
        if event == nil {
            let histograms = partition.labelHistograms(labels: split.train.labels, classCount: split.train.classCount)
            m["client_classes_mean"] =
                Double(histograms.reduce(0) { $0 + $1.filter { $0 > 0 }.count }) / Double(max(1, histograms.count))
            // One line per client in the (pretty-printed) manifest: its class counts, comma-separated.
            partitionEntries.append(
                ("label_histograms", .list(histograms.map { .string($0.map(String.init).joined(separator: ",")) })))
        }
        partitionEntries.append(("malicious_clients", .list(trainer.maliciousClients.map(ConfigValue.int))))
        summary.derivedMetrics.merge(m, uniquingKeysWith: { $1 })
        summary.partition = .map(partitionEntries)
        try context.onTrained?(model, split)
        if let url = context.model {
            try writeModel(
                model, to: url, run: run, transform: transform, summary: summary, encryptFor: context.encryptFor)
        }
        return summary
    }
}
