import DPAccounting
import DPAuditing
import DPCrypto
import DPData
import DPFeatures
import DPFederated
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// Runs a resolved run with DPTraining: loads the data, builds the model, calibrates sigma
/// when the config gives a target epsilon, trains epoch by epoch, and accounts every epoch
/// with the accountants the config names. It is the real ``RunExecutor`` behind `dpkit run`.
public struct TrainingExecutor: RunExecutor {
    /// Where datasets and models are built from: the registries the config was validated with.
    public var registries: PluginRegistries
    /// The privacy plan of each run that `plan(_:)` made, handed to `execute` (by run id).
    private let plans = PlanCache()
    /// The ranks each run's trainer shares its steps with (`mpirun`; ``DataParallelRun``);
    /// nil: one process.
    public var communicator: (any Communicator)?
    /// The clients of a federated run: nil, all in this process (the simulation); otherwise
    /// made for each run's trainer (`dpkit federated server`: the network).
    public var federatedTransport: ((FederatedTrainer, ResolvedRun) throws -> any FederatedTransport)?

    public init(registries: PluginRegistries = .standard) {
        self.registries = registries
    }

    // MARK: - Plan

    public func plan(_ run: ResolvedRun) throws -> RunPlan {
        let c = run.config
        if let f = c.federated { return try planFederated(run, f) }
        let n = try privateTrainingSetSize(c)
        let setup = try PrivacyPlan(config: c, trainingSetSize: n)
        plans.store(setup, for: run.runID)
        var plan = RunPlan(
            noiseMultiplier: setup.noiseMultiplier, samplingProbability: setup.samplingProbability,
            steps: setup.steps, stepsPerEpoch: setup.stepsPerEpoch, notes: setup.notes)
        if setup.stepEvent != nil { plan.privacy = setup.statement }
        if let ledger = setup.ledger(steps: setup.steps) {
            let eps = try setup.epsilons(ledger: ledger)
            plan.epsilonRDP = eps.rdp
            plan.epsilonPLDLower = eps.pldLower
            plan.epsilonPLDUpper = eps.pldUpper
        }
        plan.warnings = setup.warnings(epsilonRDP: plan.epsilonRDP, epsilonPLDUpper: plan.epsilonPLDUpper)
        return plan
    }

    // MARK: - Execute

    public func execute(_ run: ResolvedRun, progress: (EpochRecord) throws -> Void) throws -> RunSummary {
        try execute(run, context: RunContext(), progress: progress)
    }

    /// Trains `run`; with `context.checkpoint`, saves the whole state atomically after every
    /// epoch and, when a checkpoint of this run is already there, continues from it (the result
    /// equals an uninterrupted run's in seeded mode); with `context.model`, writes the trained
    /// model there (safetensors, PyTorch names, the input scaling in the metadata).
    public func execute(
        _ run: ResolvedRun, context: RunContext, progress: (EpochRecord) throws -> Void
    ) throws -> RunSummary {
        let c = run.config
        if let f = c.federated { return try executeFederated(run, f, context: context, progress: progress) }
        var context = context
        var split = try loadData(c)
        // The public part leaves the training set first: everything after (poisoning, audit,
        // input statistics, the privacy plan) sees the private part only.
        var publicSplit: PublicSplit?
        if let p = c.public {
            var other: Dataset?
            if case .dataset(let d) = p.part { other = try loadData(d, seed: c.seed).train }
            let s = try PublicSplit(
                split, part: p.part, seed: UInt64(c.seed), publicDataset: other, pretrains: p.pretrains)
            split = s.privateSplit
            publicSplit = s
        }
        try context.prepareData?(&split)
        // Poisoning changes the training set before anything is fitted or planned from it.
        var poisoning = try c.poisoning.map { try PoisoningRun($0, split: &split, seed: UInt64(c.seed)) }
        // An audit plants its canaries before anything is fitted or planned from the data. Its
        // state (canary scores) is not checkpointed: an audited run starts again on resume.
        var audit: RunAudit?
        if let a = c.audit {
            context.checkpoint = nil
            audit = try RunAudit(
                a, train: &split.train, seed: context.canarySeed ?? UInt64(c.seed), inclusion: context.canaryInclusion,
                runSeed: UInt64(c.seed))
        }
        // The plan printed before training, unless the data turned out to hold another number
        // of examples than the dataset declared (then sigma, q and the steps follow the data).
        let stored = plans.take(run.runID, trainingSetSize: split.train.count)
        if let planned = stored.otherSize {
            FileHandle.standardError.write(
                Data(
                    "warning: run \(run.runID): the training set has \(split.train.count) examples, not the \(planned) the printed plan assumed: sigma, q, the steps and epsilon follow the data (runs.csv and the manifest have the run's)\n"
                        .utf8))
        }
        let setup = try stored.plan ?? PrivacyPlan(config: c, trainingSetSize: split.train.count)
        // The manifest's private size is the n of q (after poisoning and canaries).
        publicSplit?.analysedPrivateSize = setup.trainingSetSize
        let seed = UInt64(c.seed)
        // DP-PCA: fitted on the private training set once; its event goes into the ledger below.
        // Such a run does not checkpoint: it starts again, which with seeded randomness redraws
        // the same projection (nothing new released); a secure-mode run that already wrote rows
        // is refused by ExperimentRunner's resume instead (it would be a second release).
        var projectionEvent: DpEvent?
        if case .privatePCA(let k, let sigma) = c.dataset.projection {
            context.checkpoint = nil
            var seeded = PhiloxRandom(seed: seed).split(stream: RandomStream.projection.rawValue)
            var system = SystemRandom()
            let secure = setup.privacySettings?.randomness == .secure
            let (projection, event) = try PrivatePCA(components: k, noiseMultiplier: sigma).fit(
                to: split.train, relation: setup.relation
            ) { secure ? system.nextNormal() : seeded.nextNormalDouble() }
            split.train = projection.apply(to: split.train)
            split.test = projection.apply(to: split.test)
            projectionEvent = event
        }
        let resumed = try context.checkpoint.flatMap { url in
            FileManager.default.fileExists(atPath: url.path)
                ? try RunCheckpoint.read(from: url, runID: run.runID, key: context.checkpointKey) : nil
        }
        var ledger = PrivacyLedger()
        if let event = projectionEvent, setup.stepEvent != nil { try ledger.record(event) }
        let transform: InputTransform
        if let resumed {
            // The scaling the interrupted run used (secure-mode statistics are not drawn again).
            transform = resumed.transform
        } else {
            let prepared = try prepareInputs(
                c, train: audit?.trainedOn(split.train) ?? split.train, publicData: publicSplit?.publicData,
                setup: setup)
            transform = prepared.transform
            if let event = prepared.event, setup.stepEvent != nil { try ledger.record(event) }
        }
        let rawTest = split.test
        transform.apply(to: &split.train)
        transform.apply(to: &split.test)
        if publicSplit != nil { transform.apply(to: &publicSplit!.publicData) }
        poisoning?.apply(transform)
        audit?.apply(transform)
        let model = try buildModel(
            c.model, inputShape: split.train.exampleShape, classes: split.train.classCount, seed: seed)
        var publicRecord: ConfigValue?
        if let p = c.public, let s = publicSplit {
            // Pretraining is repeated on resume only when the checkpoint does not hold every
            // parameter (a linear probe's checkpoint holds the last layer).
            let pretraining: ConfigValue
            if !p.pretrains && c.training.initialModel == nil {
                pretraining = .map([("epochs", .int(0)), ("last_layer", .string("held out: no pretraining"))])
            } else if resumed != nil && c.training.fineTune == .all {
                pretraining = .map([
                    ("epochs", .int(p.epochs)), ("skipped", .string("resumed: the checkpoint holds every parameter")),
                ])
            } else {
                pretraining = try pretrain(p, publicData: s.publicData, into: model, config: c, seed: seed)
            }
            publicRecord = s.record(pretraining: pretraining)
        } else if let path = c.training.initialModel, resumed == nil {
            try loadInitialModel(path, into: model, config: c)
        }
        // Linear probe: the trainer sees the last layer and the fixed features before it.
        let probe = c.training.fineTune == .lastLayer ? try LinearProbe(model) : nil
        let trainingSet = probe?.features(split.train) ?? split.train
        let evaluationSet = probe?.features(split.test) ?? split.test
        let optimizer = try makeOptimizer(c.optimizer)
        let schedule = try makeSchedule(
            c.optimizer.schedule, learningRate: c.optimizer.learningRate,
            stepsPerEpoch: setup.stepsPerEpoch, totalSteps: setup.steps)
        let trainer = try DPSGDTrainer(
            model: probe?.head ?? model, optimizer: optimizer, schedule: schedule,
            data: trainingSet,
            configuration: TrainerConfiguration(
                sampling: setup.sampling, expectedBatchSize: c.training.expectedBatchSize,
                maxPhysicalBatchSize: c.training.maxPhysicalBatchSize, privacy: setup.privacySettings, seed: seed),
            ledger: ledger, budgetAccountant: setup.budgetAccountant)
        if let communicator { trainer.communicator = communicator }
        try audit?.attach(to: trainer, samplingProbability: setup.samplingProbability)
        if let attack = c.training.adversarial {
            do {
                trainer.inputPerturbation = try AdversarialTraining(
                    attack: validRange(attack, exampleShape: split.train.exampleShape), transform: transform,
                    exampleShape: split.train.exampleShape, seed: seed)
            } catch let error as AuditError {
                throw TrainingError.invalidSetting("training.adversarial: \(error.description)")
            }
        }

        var summary = RunSummary(
            epochs: 0, steps: 0, delta: setup.delta, noiseMultiplier: setup.noiseMultiplier,
            samplingProbability: setup.samplingProbability, clippingNorm: c.privacy.clippingNorm)
        if setup.stepEvent != nil { summary.privacy = setup.statement }
        let epochs = Int((Double(setup.steps) / Double(setup.stepsPerEpoch)).rounded(.up))
        var done = 0
        var stopped = false
        var firstEpoch = 1
        var elapsedBefore = 0.0
        if let resumed {
            try trainer.restore(resumed.trainer)
            done = resumed.trainer.step
            firstEpoch = resumed.epoch + 1
            stopped = resumed.stopped
            elapsedBefore = resumed.wallSeconds
            summary.epochs = resumed.epoch
            summary.steps = done
            resumed.figures.apply(to: &summary)
        }
        // Per-step epsilon for metrics.jsonl: the ledger's events other than the step (input
        // statistics), composed once, with the step's RDP curve cached (count 0); each step then
        // adds `steps * curve`, the same arithmetic as accounting the whole ledger, so the last
        // line equals runs.csv's epsilon_rdp and a resumed run writes the same numbers.
        var stepAccountant: RDPAccountant?
        let privateStep = trainer.stepEventIfPrivate
        if context.metrics != nil, let step = privateStep {
            var a = RDPAccountant(neighboringRelation: setup.relation)
            for e in trainer.ledger.entries where e.event != step { try a.compose(e.event, count: e.count) }
            try a.compose(step, count: 0)
            stepAccountant = a
        }
        if let url = context.metrics {
            try MetricsLog.keep(url, throughStep: done)
        }
        var metricLines = ""
        let start = Date()
        var epoch = firstEpoch
        while !stopped, epoch <= max(1, epochs) {
            let stepsThisEpoch = min(setup.stepsPerEpoch, setup.steps - done)
            var lossSum = 0.0, correct = 0, seen = 0, clipped = 0
            for _ in 0..<stepsThisEpoch {
                do {
                    let r = try trainer.trainStep()
                    lossSum += r.lossSum
                    correct += r.correct
                    seen += r.batchSize
                    clipped += r.clippedCount
                    done += 1
                    if context.metrics != nil || context.onStep != nil {
                        let isPrivate = trainer.configuration.privacy != nil
                        var m = StepMetrics(
                            step: done, totalSteps: setup.steps, epoch: epoch, batchSize: r.batchSize,
                            loss: r.batchSize > 0 ? r.lossSum / Double(r.batchSize) : .nan,
                            clippedFraction: isPrivate && r.batchSize > 0
                                ? Double(r.clippedCount) / Double(r.batchSize) : nil,
                            clippingNorm: isPrivate ? trainer.clippingNorm : nil)
                        if var a = stepAccountant, let delta = setup.delta, let step = privateStep {
                            let count = trainer.ledger.entries.reduce(0) { $0 + ($1.event == step ? $1.count : 0) }
                            try a.compose(step, count: count)
                            m.epsilonRDP = try a.epsilon(delta: delta).epsilon
                        }
                        if context.metrics != nil {
                            metricLines += m.jsonLine(secure: setup.privacySettings?.randomness == .secure) + "\n"
                        }
                        context.onStep?(m)
                    }
                } catch let TrainingError.budgetExhausted(step, epsilon) {
                    // The budget refused the next step before it ran: say so, keep the results.
                    FileHandle.standardError.write(
                        Data(
                            "run \(run.runID): stopped at step \(step), epsilon \(epsilon) (\(setup.budgetAccountant.rawValue)): the next step would exceed target epsilon \(c.privacy.targetEpsilon ?? .nan)\n"
                                .utf8))
                    stopped = true
                    break
                }
            }
            var record = EpochRecord(epoch: epoch, step: done)
            if seen > 0 {
                record.trainLoss = lossSum / Double(seen)
                record.trainAccuracy = Double(correct) / Double(seen)
                if trainer.configuration.privacy != nil { record.clippedFraction = Double(clipped) / Double(seen) }
            }
            if epoch % max(1, c.training.evalEvery) == 0 || epoch == epochs || stopped {
                let eval = trainer.evaluate(evaluationSet)
                record.testLoss = eval.loss
                record.testAccuracy = eval.accuracy
            }
            if setup.privacySettings != nil && trainer.isPrivate {
                let eps = try setup.epsilons(ledger: trainer.ledger)
                record.epsilonRDP = eps.rdp
                record.epsilonPLDLower = eps.pldLower
                record.epsilonPLDUpper = eps.pldUpper
            }
            record.delta = setup.delta
            record.noiseMultiplier = setup.noiseMultiplier
            record.samplingProbability = setup.samplingProbability
            record.clippingNorm = setup.privacySettings == nil ? nil : trainer.clippingNorm
            record.wallSeconds = elapsedBefore + Date().timeIntervalSince(start)
            summary.epochs = epoch
            summary.steps = done
            RunFigures(record).apply(to: &summary)
            if let url = context.metrics, !metricLines.isEmpty {
                try DurableFile.append(metricLines, to: url)
                metricLines = ""
            }
            // The row first, then the checkpoint: a kill between the two leaves the checkpoint of
            // the epoch before, the runner drops rows after the checkpoint's epoch on resume, and
            // this epoch runs again to the same result.
            try progress(record)
            if let url = context.checkpoint, context.writesFiles {
                try RunCheckpoint(
                    runID: run.runID, epoch: epoch, stopped: stopped || done >= setup.steps,
                    wallSeconds: record.wallSeconds ?? 0, trainer: trainer.checkpoint(),
                    transform: transform, figures: RunFigures(summary)
                ).write(to: url, encryptFor: context.encryptFor)
                context.onCheckpoint?(epoch)
            }
            if stopped || done >= setup.steps { break }
            epoch += 1
        }
        // The trainer turned off the head's input gradient; attacks on the model need it.
        probe?.head.needsInputGradient = true
        if trainer.isPrivate {
            summary.privacyLedger = try ConfigValue(jsonData: JSONEncoder().encode(trainer.ledger))
        }
        summary.publicPart = publicRecord
        if let audit {
            summary.audit = try audit.finish(model: model, train: split.train, test: split.test, delta: setup.delta)
        }
        if let e = c.evaluation {
            let test = e.examples < rawTest.count ? rawTest.subset(Array(0..<e.examples)) : rawTest
            let input = AdversarialInput(transform, exampleShape: test.exampleShape)
            for attack in e.attacks {
                var random = PhiloxRandom(seed: seed, stream: 0xad7e)
                let outcome = validRange(attack, exampleShape: test.exampleShape).run(
                    model: model, inputs: test.features, labels: test.labels, input: input, random: &random)
                summary.derivedMetrics[EvaluationConfig.column(attack)] = outcome.robustAccuracy
            }
        }
        if let poisoning {
            summary.derivedMetrics.merge(
                poisoning.metrics(model: model, summary: summary, relation: setup.relation), uniquingKeysWith: { $1 })
            if let svg = poisoning.picture(model: model, runID: run.runID) { summary.pictures["backdoor"] = svg }
        }
        try context.onTrained?(model, split)
        if let url = context.model {
            try writeModel(
                model, to: url, run: run, transform: transform, summary: summary, encryptFor: context.encryptFor)
        }
        return summary
    }

    /// Images are pixels in [0, 1]: adversarial inputs are clipped there; vectors are not clipped.
    func validRange(_ attack: AdversarialAttack, exampleShape: Shape) -> AdversarialAttack {
        var a = attack
        a.validRange = exampleShape.rank == 3 ? 0...1 : nil
        return a
    }

    /// Writes the trained model as safetensors (an envelope for `encryptFor` when given); the
    /// metadata says how to use it.
    func writeModel(
        _ model: Sequential, to url: URL, run: ResolvedRun, transform: InputTransform, summary: RunSummary,
        encryptFor recipient: RecipientPublicKey? = nil
    ) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let d = run.config.dataset
        var dataset: [(key: String, value: ConfigValue)] = [
            ("name", .string(d.name)), ("options", .map(d.options.sorted { $0.key < $1.key })),
        ]
        if let p = d.path { dataset.append(("path", .string(p))) }
        if let n = d.trainSize { dataset.append(("train_size", .int(n))) }
        if let n = d.testSize { dataset.append(("test_size", .int(n))) }
        if let f = d.features { dataset.append(("features", f.metadata)) }
        // A model of the private classes of a `public.classes` run: its outputs are those classes,
        // relabelled 0..<k in increasing order (dpkit evaluate tests it on them).
        if case .classes? = run.config.public?.part, let k = summary.publicPart?["private_classes"]?.intListValue {
            dataset.append(("private_classes", .list(k.map(ConfigValue.int))))
        }
        var metadata: [String: String] = [
            "format": "dpkit-model-1", "run_id": run.runID, "config_hash": run.configHash, "seed": String(run.seed),
            "dataset": d.name,
            ModelEvaluation.datasetKey: ConfigValue.map(dataset).jsonText(sortKeys: true, pretty: false),
            "input_transform": String(decoding: try encoder.encode(transform), as: UTF8.self),
        ]
        // Lineage: this run's dataset and every dataset its initial model was trained on, so a
        // chain (private -> public -> private) is still refused by `loadInitialModel`.
        var lineage = [d.name]
        // The pretraining's dataset (`public.dataset`) is in the weights too.
        if case .dataset(let other)? = run.config.public?.part { lineage.append(other.name) }
        if let path = run.config.training.initialModel, let data = FileManager.default.contents(atPath: path),
            let (_, initial) = try? Safetensors.decode(data), let earlier = Self.modelLineage(initial)
        {
            lineage += earlier.filter { !lineage.contains($0) }
        }
        metadata[Self.lineageKey] = ConfigValue.list(lineage.map(ConfigValue.string)).jsonText(
            sortKeys: true, pretty: false)
        // What the epsilon covers when part of the training data was public (read by `dpkit evaluate`).
        if let part = summary.publicPart, let kind = part["kind"], let statement = part["statement"] {
            metadata[ModelEvaluation.publicKey] = ConfigValue.map([("kind", kind), ("statement", statement)]).jsonText(
                sortKeys: true, pretty: false)
        }
        if let e = summary.epsilon { metadata["epsilon"] = csvNumber(e) }
        if let d = summary.delta { metadata["delta"] = csvNumber(d) }
        if let p = summary.privacy {
            metadata["neighboring_relation"] = p.neighboringRelation.name
            metadata["privacy_unit"] = p.privacyUnit
            metadata["randomness"] = p.randomness.rawValue
        }
        try DurableFile.writeAtomically(
            OutputProtection(recipient: recipient).seal(model.safetensors(metadata: metadata)), to: url)
    }

    /// The input scaling of `c` fitted on `train` (only `private-standardize` and, in controls,
    /// `standardize` look at the data), and the privacy event it costs.
    func prepareInputs(
        _ c: RunConfig, train: Dataset, publicData: Dataset? = nil, setup: PrivacyPlan
    ) throws -> (transform: InputTransform, event: DpEvent?) {
        switch c.dataset.normalize {
        case .none: return (.none, nil)
        case .perExample: return (.perExample, nil)
        case .standardize:
            // Fitted on the public part when there is one (free); otherwise only controls
            // without privacy get here (private runs are refused by the config reader).
            if publicData == nil, setup.stepEvent != nil {
                throw TrainingError.invalidSetting(
                    "dataset.normalize: `standardize` would fit on the private training set without accounting; use `private-standardize` or declare a `public` part"
                )
            }
            let data = publicData ?? train
            return (.standardization(Standardization.fit(to: data, perChannel: data.exampleShape.rank == 3)), nil)
        case .fixed(let mean, let sd):
            let channels = train.exampleShape.rank == 3 ? train.exampleShape[0] : train.exampleSize
            guard mean.count == 1 || mean.count == channels else {
                throw TrainingError.invalidSetting(
                    "dataset.normalize_options: \(mean.count) means and deviations for examples of shape \(train.exampleShape); give one value, or one per channel (\(channels))"
                )
            }
            return (
                .standardization(Standardization(mean: mean.map(Float.init), standardDeviation: sd.map(Float.init))),
                nil
            )
        case .privateStandardize(let sigma, let lower, let upper):
            // Input statistics through the Gaussian mechanism, from the run's privacy randomness.
            let mechanism = PrivateStandardization(
                noiseMultiplier: sigma, lower: lower, upper: upper,
                perChannel: train.exampleShape.rank == 3)
            var seeded = PhiloxRandom(seed: UInt64(c.seed)).split(stream: RandomStream.statistics.rawValue)
            var system = SystemRandom()
            let secure = setup.privacySettings?.randomness == .secure
            let (statistics, event) = mechanism.fit(to: train, relation: setup.relation) {
                secure ? system.nextNormal() : seeded.nextNormalDouble()
            }
            return (.standardization(statistics), event)
        }
    }

    // MARK: - Data

    /// The training-set size the privacy analysis uses: the whole training set, or with
    /// `public` its private part (the `classes` kind reads the labels to count it), plus the
    /// examples a backdoor appends (so that the printed plan's q, steps and epsilon are the run's).
    func privateTrainingSetSize(_ c: RunConfig) throws -> Int {
        try dataTrainingSetSize(c) + (c.poisoning?.backdoor?.count ?? 0)
    }

    private func dataTrainingSetSize(_ c: RunConfig) throws -> Int {
        let request = try c.dataset.request(seed: c.seed, registry: registries.datasets)
        switch c.public?.part {
        case nil: return try registries.datasets.trainingSetSize(request)
        case .subset(let size, _)?:
            let n = try registries.datasets.trainingSetSize(request)
            guard size < n else {
                throw TrainingError.invalidSetting(
                    "public.subset.size: \(size) leaves no private training examples: the training set has \(n); use 1...\(n - 1)"
                )
            }
            return n - size
        case .classes(let classes)?:
            let data = try loadData(c)
            return try PublicSplit(
                data, part: .classes(classes), seed: UInt64(c.seed), pretrains: c.public?.pretrains ?? true
            ).privateSplit.train.count
        case .dataset?: return try registries.datasets.trainingSetSize(request)
        }
    }

    /// Loads the dataset the config names (through ``registries``) and applies `train_size`
    /// and `test_size`; the scaling (`normalize`) is ``prepareInputs(_:train:setup:)``'s.
    public func loadData(_ c: RunConfig) throws -> TrainTestSplit {
        try loadData(c.dataset, seed: c.seed)
    }

    /// The dataset `d` names, generated from `seed` where it is synthetic.
    public func loadData(_ d: DatasetConfig, seed: Int) throws -> TrainTestSplit {
        let request = try d.request(seed: seed, registry: registries.datasets)
        guard case .scattering(let J, let L) = d.features else { return try registries.datasets.load(request) }
        // Fixed per-example features, computed once per process for each dataset.
        var key = "\(d.name) \(d.path ?? "-") \(d.trainSize ?? -1) \(d.testSize ?? -1) \(d.decryptionKey ?? "-")"
        key +=
            " \(ConfigValue.map(d.options.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).jsonText(sortKeys: true, pretty: false))"
        key += registries.datasets.plugin(named: d.name)?.readsFiles == true ? "" : " seed \(seed)"
        key += " scattering J \(J) L \(L)"
        return try FeatureCache.shared.value(for: key) {
            let raw = try registries.datasets.load(request)
            let shape = raw.train.exampleShape.array
            guard shape.count == 3 else {
                throw TrainingError.invalidSetting(
                    "dataset.features: scattering needs images [channels, height, width]; \(d.name) has examples \(shape)"
                )
            }
            do {
                let scattering = try Scattering2D(height: shape[1], width: shape[2], scales: J, angles: L)
                return TrainTestSplit(
                    train: try scattering.transform(raw.train), test: try scattering.transform(raw.test))
            } catch let error as FeatureError {
                throw TrainingError.invalidSetting("dataset.features_options: \(error.description)")
            }
        }
    }

    // MARK: - Model and optimizer

    /// The model of `m` for examples of `inputShape` and `classes` classes: the specs and the
    /// shape inference that validated the config (`ModelShapes.swift`), now on the loaded data
    /// (which is where a csv file's feature and class counts are first known).
    /// - Throws: `TrainingError.invalidSetting` naming the layer's key path and the shapes.
    func buildModel(_ m: ModelConfig, inputShape: Shape, classes: Int, seed: UInt64) throws -> Sequential {
        let specs: [LayerSpec]
        do {
            specs = try m.checkedLayerSpecs(
                inputShape: inputShape, classes: classes,
                dataset: "the loaded data: examples \(inputShape), \(classes) classes",
                registry: registries.models
            ).specs
        } catch let error as ModelShapeError {
            throw TrainingError.invalidSetting(error.description)
        }
        return try ModelBuilder.build(specs: specs, inputShape: inputShape, seed: seed)
    }

    /// Copies the parameters of the model file at `path` (a `models/<run_id>.safetensors` of an
    /// earlier run, possibly non-private on public data) into `model`.
    ///
    /// Privacy: the file is a release computed from its own training data. If that was this
    /// run's training set (same dataset, its training split), its cost is not in this run's
    /// ledger, so it is refused; a model trained on other (public) data costs this run nothing.
    /// - Throws: `TrainingError.invalidSetting` naming `training.initial_model` when the file is
    ///   missing or unreadable, was trained on this run's training set, or its tensors do not
    ///   fit the model (names or shapes).
    func loadInitialModel(_ path: String, into model: Sequential, config c: RunConfig) throws {
        let key = "training.initial_model"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.invalidSetting(
                "\(key): \(path) not found or unreadable. Fix: give the models/<run_id>.safetensors of an earlier run")
        }
        let tensors: [String: Tensor<Float>], metadata: [String: String]
        do {
            (tensors, metadata) = try Safetensors.decode(data)
        } catch {
            throw TrainingError.invalidSetting("\(key): \(path) is not a safetensors model file (\(error))")
        }
        // Which datasets the file's weights were computed from: without DPKit's record of that,
        // nothing shows the file is public, so it is refused rather than trusted.
        guard let lineage = Self.modelLineage(metadata) else {
            throw TrainingError.invalidSetting(
                "\(key): \(path) does not record which data it was trained on (no readable `\(ModelEvaluation.datasetKey)` metadata), so DPKit cannot show that its release costs this run nothing. Fix: start from a models/<run_id>.safetensors that a DPKit run on public data wrote"
            )
        }
        if lineage.contains(c.dataset.name) {
            throw TrainingError.invalidSetting(
                "\(key): \(path) was trained (itself or through its own initial model) on the training set of `\(c.dataset.name)`, this run's private data; its release is not in this run's ledger. Fix: start from a model trained on public data (another dataset)"
            )
        }
        do {
            try model.loadSafetensors(tensors)
        } catch let error as SafetensorsError {
            throw TrainingError.invalidSetting(
                "\(key): \(path) does not fit this run's model \(model.description): \(error). Fix: use the same model and input shape as the run that wrote it"
            )
        }
    }

    /// Model metadata key: the names of every dataset the weights were computed from (this
    /// run's and, recursively, its initial model's), as a JSON list.
    static let lineageKey = "dpkit.lineage"

    /// The datasets a model file's weights were computed from, or nil when the file does not
    /// say (no readable dataset record). Files written before lineage was recorded give their
    /// own dataset only.
    static func modelLineage(_ metadata: [String: String]) -> [String]? {
        guard let text = metadata[ModelEvaluation.datasetKey], let tree = try? ConfigValue(jsonData: Data(text.utf8)),
            let name = tree["name"]?.stringValue
        else { return nil }
        var names = [name]
        if let text = metadata[lineageKey], let list = try? ConfigValue(jsonData: Data(text.utf8)),
            case .list(let items) = list
        {
            names += items.compactMap(\.stringValue).filter { !names.contains($0) }
        }
        return names
    }

    func makeOptimizer(_ o: OptimizerConfig) throws -> Optimizer {
        o.kind.make(learningRate: o.learningRate, parameters: o.options)
    }

    func makeSchedule(
        _ s: ScheduleConfig, learningRate: Double, stepsPerEpoch: Int, totalSteps: Int
    ) throws -> LearningRateSchedule {
        guard
            let schedule = LearningRateSchedule(
                name: s.name, parameters: s.options, learningRate: learningRate, stepsPerEpoch: stepsPerEpoch,
                totalSteps: totalSteps)
        else { throw TrainingError.invalidSetting("optimizer.schedule.name: no schedule `\(s.name)`") }
        return schedule
    }
}

// MARK: - Privacy plan

/// Sampling, noise and accounting of one run, decided before training.
struct PrivacyPlan {
    var sampling: SamplingScheme
    var samplingProbability: Double
    var stepsPerEpoch: Int
    var steps: Int
    var delta: Double?
    var noiseMultiplier: Double?
    var privacySettings: PrivacySettings?
    var accountants: [AccountantKind]
    var budgetAccountant: AccountantKind
    var notes: [String] = []
    var stepEvent: DpEvent?
    /// n, for the delta >= 1/n check (``PrivacyHygiene``).
    var trainingSetSize: Int
    /// The accountant sigma was calibrated with; nil when the config gives sigma.
    var calibratedWith: AccountantKind?
    /// The neighbouring relation of every epsilon of this run (from the sampler).
    var relation: NeighboringRelation
    /// What the guarantee protects: one training example (record-level DP).
    let privacyUnit = "example"
    /// The privacy event of the input statistics (`private-standardize`), composed before the
    /// first step; nil when the inputs cost no privacy.
    var preprocessingEvent: DpEvent?

    init(config c: RunConfig, trainingSetSize n: Int) throws {
        let p = c.privacy
        trainingSetSize = n
        if let pub = c.public {
            // n is the private part's size: q, the steps and sigma are of the private part only.
            let what: String
            switch pub.part {
            case .subset(let size, let splitSeed):
                what =
                    "a random subset of \(size) training examples"
                    + (splitSeed == nil ? " drawn from the run's seed (another seed, another public part)" : "")
            case .classes(let classes): what = "the training examples of classes \(classes)"
            case .dataset(let d): what = "the training set of dataset `\(d.name)`"
            }
            var other = "the other"
            if case .dataset = pub.part { other = "this run's" }
            // Only a private run has an epsilon to qualify.
            let covers = c.privacy.enabled ? ", and the epsilon covers only them" : ""
            notes.append(
                "public part: \(what)\(pub.pretrains ? ", pretrained on for \(pub.epochs) epochs without privacy" : ", held out (no pretraining)"); the private part is \(other) \(n) training examples\(covers)"
            )
            if c.training.fineTune == .lastLayer {
                notes.append(
                    "fine_tune last-layer: only the last layer is trained; each example's gradient is clipped over its parameters only"
                )
            }
        }
        if c.dataset.projection != nil {
            // The projection changes the examples' shape and is drawn once per run.
            let refused = [
                c.audit != nil ? "audit" : nil, c.poisoning != nil ? "poisoning" : nil,
                c.training.adversarial != nil ? "training.adversarial" : nil,
            ].compactMap { $0 }
            if !refused.isEmpty {
                throw TrainingError.invalidSetting(
                    "dataset.projection: dp-pca cannot be combined with \(refused.joined(separator: ", ")) (they plant or perturb examples of the unprojected shape); remove one of them"
                )
            }
        }
        sampling = p.sampling
        let b = c.training.expectedBatchSize
        guard b <= n else {
            throw TrainingError.invalidSetting(
                "training.expected_batch_size: \(b) exceeds the \(c.public == nil ? "training set" : "private part of the training set")'s size \(n)"
            )
        }
        samplingProbability = Double(b) / Double(n)
        relation = sampling.neighboringRelation
        stepsPerEpoch = SamplingScheme.stepsPerEpoch(datasetSize: n, batchSize: b)
        steps = c.training.steps ?? (c.training.epochs ?? 1) * stepsPerEpoch
        accountants = p.accountants
        budgetAccountant = AccountantKind.budgetAccountant(of: p.accountants)
        guard p.enabled else {
            accountants = []
            budgetAccountant = .rdp
            return
        }
        let delta = p.targetDelta ?? 1e-5
        self.delta = delta
        let scheme = sampling, q = samplingProbability
        let eventOf = { (s: Double) in
            scheme.stepEvent(samplingProbability: q, batchSize: b, datasetSize: n, noiseMultiplier: s)
        }
        var preprocessing: [DpEvent] = []
        if case .privatePCA(let k, let s) = c.dataset.projection {
            preprocessing.append(PrivatePCA(components: k, noiseMultiplier: s).event(relation: relation))
        }
        if case .privateStandardize(let s, let lower, let upper) = c.dataset.normalize {
            preprocessing.append(
                PrivateStandardization(noiseMultiplier: s, lower: lower, upper: upper, perChannel: false)
                    .event(relation: relation))
        }
        preprocessingEvent = preprocessing.count > 1 ? .composed(preprocessing) : preprocessing.first
        let pre = preprocessingEvent
        let sigma: Double
        if let s = p.noiseMultiplier {
            sigma = s
        } else if let target = p.targetEpsilon {
            let steps = self.steps
            let accountant = budgetAccountant.make(relation: relation)
            do {
                sigma = try DPAccounting.noiseMultiplier(targetEpsilon: target, delta: delta, accountant: accountant) {
                    s in
                    let training = DpEvent.selfComposed(event: eventOf(s), count: steps)
                    return pre.map { .composed([$0, training]) } ?? training
                }
            } catch AccountingError.calibrationFailed {
                throw TrainingError.invalidSetting(
                    PrivacyHygiene.unreachableTarget(
                        target, delta: delta, steps: steps, accountant: budgetAccountant, preprocessing: pre != nil))
            }
            calibratedWith = budgetAccountant
            notes.append(
                "sigma \(String(format: "%.4f", sigma)) calibrated to epsilon \(target) at delta \(delta) over \(steps) steps (\(budgetAccountant.rawValue))"
            )
        } else {
            throw TrainingError.invalidSetting("privacy: give noise_multiplier or target_epsilon")
        }
        noiseMultiplier = sigma
        privacySettings = PrivacySettings(
            noiseMultiplier: sigma, clippingNorm: p.clippingNorm ?? 1, clipping: p.clipping,
            delta: delta, targetEpsilon: p.targetEpsilon, randomness: p.secureRNG ? .secure : .seeded)
        if sigma > 0 {
            stepEvent = eventOf(sigma)
            notes.append(
                "epsilon is for \(relation.name) neighbouring datasets; privacy unit: one training \(privacyUnit)")
            notes.append("randomness \((p.secureRNG ? RandomnessSource.secure : .seeded).statement)")
            if let pre = preprocessingEvent {
                let what = [
                    c.dataset.projection != nil ? "the DP-PCA projection" : nil,
                    c.dataset.normalize.name == "private-standardize" ? "input statistics (private-standardize)" : nil,
                ].compactMap { $0 }.joined(separator: " and ")
                notes.append("\(what) cost \(pre.summary), composed before the first step")
            }
        } else {
            notes.append("noise multiplier 0: a clip-only control with no privacy guarantee; no epsilon is reported")
        }
    }

    /// Relation, unit and randomness of this run's epsilon (for results files).
    var statement: PrivacyStatement {
        PrivacyStatement(
            neighboringRelation: relation, privacyUnit: privacyUnit, randomness: privacySettings?.randomness ?? .seeded)
    }

    /// The ledger of `steps` steps (nil when nothing private runs).
    func ledger(steps: Int) -> PrivacyLedger? {
        guard let e = stepEvent else { return nil }
        var l = PrivacyLedger()
        if let pre = preprocessingEvent { try? l.record(pre) }
        try? l.record(e, count: steps)
        return l
    }

    /// Epsilon of `ledger` with each configured accountant. An accountant that cannot account
    /// for the ledger's events reports nothing (and is noted), never a number it cannot justify.
    func epsilons(ledger: PrivacyLedger) throws -> (rdp: Double?, pldLower: Double?, pldUpper: Double?) {
        guard let delta else { return (nil, nil, nil) }
        var out: (rdp: Double?, pldLower: Double?, pldUpper: Double?) = (nil, nil, nil)
        // RDP is always reported for private runs: it is cheap and an upper bound.
        out.rdp = try PrivacyBudget.epsilon(ledger: ledger, delta: delta, accountant: .rdp)
        if accountants.contains(.pld) {
            do {
                let r = try PrivacyBudget.report(ledger: ledger, delta: delta, accountant: .pld)
                out.pldLower = r.epsilonLower
                out.pldUpper = r.epsilonUpper ?? r.epsilon
            } catch let e as AccountingError {
                if budgetAccountant == .pld { throw e }
            }
        }
        return out
    }
}

/// The ``AccountingExecutor`` behind `dpkit run` on a `kind: accounting` config.
public struct AccountantExecutor: AccountingExecutor {
    public init() {}

    public func epsilons(_ point: AccountingPoint, accountants: [AccountantKind]) throws -> AccountingResult {
        var ledger = PrivacyLedger()
        try ledger.record(
            .poissonSampled(
                probability: point.samplingProbability,
                event: .gaussian(noiseMultiplier: point.noiseMultiplier)), count: point.steps)
        var result = AccountingResult()
        if accountants.contains(.rdp) {
            result.epsilonRDP = try PrivacyBudget.epsilon(ledger: ledger, delta: point.targetDelta, accountant: .rdp)
        }
        if accountants.contains(.pld) {
            let r = try PrivacyBudget.report(ledger: ledger, delta: point.targetDelta, accountant: .pld)
            result.epsilonPLDLower = r.epsilonLower
            result.epsilonPLDUpper = r.epsilonUpper ?? r.epsilon
        }
        return result
    }
}

/// The privacy plans `TrainingExecutor.plan(_:)` made, kept until `execute` takes them.
final class PlanCache: @unchecked Sendable {
    private let lock = NSLock()
    private var plans: [String: PrivacyPlan] = [:]

    func store(_ plan: PrivacyPlan, for runID: String) {
        lock.lock()
        defer { lock.unlock() }
        plans[runID] = plan
    }

    /// The plan of `runID`, if it was made for `trainingSetSize` examples, and the size a plan
    /// of another size was made for; removed either way.
    func take(_ runID: String, trainingSetSize n: Int) -> (plan: PrivacyPlan?, otherSize: Int?) {
        lock.lock()
        defer { lock.unlock() }
        guard let plan = plans.removeValue(forKey: runID) else { return (nil, nil) }
        return plan.trainingSetSize == n ? (plan, nil) : (nil, plan.trainingSetSize)
    }
}

// MARK: - Poisoning

/// The poisoning of one run: the training set changed before anything is fitted on it, the
/// triggered test set kept for the attack success rate.
struct PoisoningRun {
    let config: PoisoningConfig
    /// Poisoned training examples (appended backdoor copies plus flipped labels).
    var poisoned = 0
    /// Neighbouring steps between the clean and the poisoned training set under add/remove:
    /// one per appended example, two per flipped label (a replacement).
    var addRemoveDistance = 0
    var replaceOneDistance = 0
    /// Triggered test examples of other classes than the backdoor's target (scaled by `apply`).
    var triggered: Dataset?
    /// The same examples raw, clean and triggered, for the picture (the first 8).
    var rawClean: Dataset?
    var rawTriggered: Dataset?
    /// Test examples of the flipped source class.
    var flippedSource: Dataset?
    /// The model's input scaling (set by `apply`).
    var transform: InputTransform?

    init(_ config: PoisoningConfig, split: inout TrainTestSplit, seed: UInt64) throws {
        self.config = config
        do {
            if let flip = config.labelFlipping {
                let (data, k) = try flip.poison(split.train, seed: seed)
                split.train = data
                poisoned += k
                addRemoveDistance += 2 * k
                replaceOneDistance += k
                if let source = flip.source {
                    flippedSource = split.test.subset(
                        split.test.labels.indices.filter { split.test.labels[$0] == source })
                }
            }
            if let backdoor = config.backdoor {
                split.train = try backdoor.poison(split.train, seed: seed)
                poisoned += backdoor.count
                addRemoveDistance += backdoor.count
                // Appending is no replace-one step; the bound is stated for add/remove only.
                replaceOneDistance = -1
                triggered = backdoor.triggered(split.test)
                let others = split.test.labels.indices.filter { split.test.labels[$0] != backdoor.target }.prefix(8)
                rawClean = split.test.subset(Array(others))
                rawTriggered = triggered?.subset(Array(0..<others.count))
            }
        } catch let error as AuditError {
            throw TrainingError.invalidSetting("poisoning: \(error.description)")
        }
    }

    mutating func apply(_ transform: InputTransform) {
        self.transform = transform
        if var t = triggered {
            transform.apply(to: &t)
            triggered = t
        }
        if var f = flippedSource {
            transform.apply(to: &f)
            flippedSource = f
        }
    }

    /// The backdoor's picture: the first 8 test images of other classes than the target, clean
    /// and triggered, captioned with the model's predictions.
    func picture(model: Sequential, runID: String) -> String? {
        guard let clean = rawClean, let trig = rawTriggered, let t = triggered, let backdoor = config.backdoor,
            clean.count > 0, clean.exampleShape.rank == 3, [1, 3].contains(clean.exampleShape[0])
        else { return nil }
        let k = clean.count
        var cleanScaled = clean
        if let transform { transform.apply(to: &cleanScaled) }
        let cleanPredictions = model.predict(cleanScaled.features)
        let triggeredPredictions = model.predict(t.subset(Array(0..<k)).features)
        func name(_ c: Int) -> String { clean.classNames.indices.contains(c) ? clean.classNames[c] : String(c) }
        func row(_ label: String, _ d: Dataset, _ caption: (Int) -> String) -> ImageGrid.Row {
            ImageGrid.Row(
                label: label,
                groups: (0..<k).map { ImageGrid.Group(images: [d.features[row: $0].scalars], caption: caption($0)) })
        }
        return ImageGrid(
            title: "\(runID): backdoor (\(backdoor.count) poisoned, target \(name(backdoor.target)))", columnGroups: [],
            rows: [
                row("clean", clean) { "\(name(clean.labels[$0])) → \(name(cleanPredictions[$0]))" },
                row("triggered", trig) { "→ \(name(triggeredPredictions[$0]))" },
            ],
            imageShape: clean.exampleShape, scale: 3
        ).svg()
    }

    /// Attack success rate (backdoor: triggered inputs classified as the target; label flipping
    /// with a source class: source test examples classified as the target), the number of
    /// poisoned examples, and the group-privacy bound for that distance at the run's epsilon.
    func metrics(model: Sequential, summary: RunSummary, relation: NeighboringRelation) -> [String: Double] {
        var m: [String: Double] = ["poisoned_examples": Double(poisoned)]
        if let backdoor = config.backdoor, let t = triggered {
            m["attack_success_rate"] = backdoor.attackSuccessRate(model: model, triggered: t)
        } else if let flip = config.labelFlipping, let f = flippedSource, f.count > 0 {
            m["attack_success_rate"] =
                Double(model.predict(f.features).filter { $0 == flip.target }.count) / Double(f.count)
        }
        let k = relation == .replaceOne ? replaceOneDistance : addRemoveDistance
        guard k >= 0 else { return m }
        m["poisoning_distance"] = Double(k)
        if let eps = summary.epsilon, let delta = summary.delta {
            let g = GroupPrivacy(epsilon: eps, delta: delta, groupSize: k)
            m["group_epsilon"] = g.groupEpsilon
            m["group_delta"] = g.groupDelta
        }
        return m
    }
}
