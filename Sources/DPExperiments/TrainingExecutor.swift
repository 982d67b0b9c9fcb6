import DPAccounting
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// Runs a resolved run with DPTraining: loads the data, builds the model, calibrates sigma
/// when the config gives a target epsilon, trains epoch by epoch, and accounts every epoch
/// with the accountants the config names. It is the real ``RunExecutor`` behind `dpkit run`.
public struct TrainingExecutor: RunExecutor {
    public init() {}

    // MARK: - Plan

    public func plan(_ run: ResolvedRun) throws -> RunPlan {
        let c = run.config
        let n = try trainingSetSize(c)
        let setup = try PrivacyPlan(config: c, trainingSetSize: n)
        var plan = RunPlan(noiseMultiplier: setup.noiseMultiplier, samplingProbability: setup.samplingProbability,
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
        let c = run.config
        var split = try loadData(c)
        let setup = try PrivacyPlan(config: c, trainingSetSize: split.train.count)
        let seed = UInt64(c.seed)
        var ledger = PrivacyLedger()
        if case .privateStandardize(let sigma, let lower, let upper) = c.dataset.normalize {
            // Input statistics through the Gaussian mechanism, from the run's privacy randomness.
            let mechanism = PrivateStandardization(noiseMultiplier: sigma, lower: lower, upper: upper,
                                                   perChannel: split.train.exampleShape.rank == 3)
            var seeded = PhiloxRandom(seed: seed).split(stream: RandomStream.statistics.rawValue)
            var system = SystemRandom()
            let secure = setup.privacySettings?.randomness == .secure
            let (statistics, event) = mechanism.fit(to: split.train, relation: setup.relation) {
                secure ? system.nextNormal() : seeded.nextNormalDouble()
            }
            statistics.apply(to: &split.train)
            statistics.apply(to: &split.test)
            if setup.stepEvent != nil { try ledger.record(event) }
        }
        let model = try buildModel(c.model, inputShape: split.train.exampleShape, classes: split.train.classCount, seed: seed)
        let optimizer = try makeOptimizer(c.optimizer)
        let schedule = try makeSchedule(c.optimizer.schedule, learningRate: c.optimizer.learningRate,
                                        stepsPerEpoch: setup.stepsPerEpoch, totalSteps: setup.steps)
        let trainer = try DPSGDTrainer(
            model: model, optimizer: optimizer, learningRate: c.optimizer.learningRate, schedule: schedule,
            data: split.train,
            configuration: TrainerConfiguration(
                sampling: setup.sampling, expectedBatchSize: c.training.expectedBatchSize,
                maxPhysicalBatchSize: c.training.maxPhysicalBatchSize, privacy: setup.privacySettings, seed: seed),
            ledger: ledger, budgetAccountant: setup.budgetAccountant)

        var summary = RunSummary(epochs: 0, steps: 0, delta: setup.delta, noiseMultiplier: setup.noiseMultiplier,
                                 samplingProbability: setup.samplingProbability, clippingNorm: c.privacy.clippingNorm)
        if setup.stepEvent != nil { summary.privacy = setup.statement }
        let epochs = Int((Double(setup.steps) / Double(setup.stepsPerEpoch)).rounded(.up))
        var done = 0
        var stopped = false
        for epoch in 1...max(1, epochs) {
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
                } catch let TrainingError.budgetExhausted(step, epsilon) {
                    // The budget refused the next step before it ran: say so, keep the results.
                    FileHandle.standardError.write(Data(
                        "run \(run.runID): stopped at step \(step), epsilon \(epsilon) (\(setup.budgetAccountant.rawValue)): the next step would exceed target epsilon \(c.privacy.targetEpsilon ?? .nan)\n".utf8))
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
                let eval = trainer.evaluate(split.test)
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
            try progress(record)
            summary.epochs = epoch
            summary.steps = done
            summary.trainLoss = record.trainLoss ?? summary.trainLoss
            summary.trainAccuracy = record.trainAccuracy ?? summary.trainAccuracy
            summary.testLoss = record.testLoss ?? summary.testLoss
            summary.testAccuracy = record.testAccuracy ?? summary.testAccuracy
            summary.epsilonRDP = record.epsilonRDP
            summary.epsilonPLDLower = record.epsilonPLDLower
            summary.epsilonPLDUpper = record.epsilonPLDUpper
            if stopped || done >= setup.steps { break }
        }
        if trainer.isPrivate {
            summary.privacyLedger = try ConfigValue(jsonData: JSONEncoder().encode(trainer.ledger))
        }
        return summary
    }

    // MARK: - Data

    func trainingSetSize(_ c: RunConfig) throws -> Int {
        if let n = c.dataset.trainSize { return n }
        switch c.dataset.name {
        case "fashion-mnist": return 60_000
        default: return try loadData(c).train.count
        }
    }

    /// Loads the dataset the config names and applies `train_size`, `test_size` and the
    /// data-independent `normalize` choices (`fixed`, `per-example`) or, for controls,
    /// `standardize` (statistics of the training set). `private-standardize` is left to
    /// ``execute(_:progress:)``, which draws its noise and records its event.
    public func loadData(_ c: RunConfig) throws -> TrainTestSplit {
        let d = c.dataset
        let o = d.options
        let seed = UInt64(c.seed)
        var split: TrainTestSplit
        switch d.name {
        case "fashion-mnist":
            split = TrainTestSplit(try FashionMNIST.load(directory: d.path ?? FashionMNIST.defaultDirectory))
        case "synthetic-shapes":
            let size = o["image_size"]?.intValue ?? 28
            let noise = Float(o["noise"]?.doubleValue ?? 0.1)
            split = TrainTestSplit(
                train: SyntheticData.shapes(count: d.trainSize ?? 10_000, size: size, seed: seed, part: .train, noise: noise),
                test: SyntheticData.shapes(count: d.testSize ?? 2_000, size: size, seed: seed, part: .test, noise: noise))
        case "gaussian-mixture":
            let classes = o["classes"]?.intValue ?? 2
            let dims = o["dimensions"]?.intValue ?? 20
            let sep = Float(o["separation"]?.doubleValue ?? 2)
            let perClassTrain = ((d.trainSize ?? 4_000) + classes - 1) / classes
            let perClassTest = ((d.testSize ?? 1_000) + classes - 1) / classes
            split = TrainTestSplit(
                train: SyntheticData.gaussianMixture(classes: classes, dimensions: dims, examplesPerClass: perClassTrain,
                                                     separation: sep, seed: seed, part: .train),
                test: SyntheticData.gaussianMixture(classes: classes, dimensions: dims, examplesPerClass: perClassTest,
                                                    separation: sep, seed: seed, part: .test))
        case "csv":
            guard let path = d.path else { throw TrainingError.invalidSetting("dataset.path: the csv dataset needs a path") }
            let label = o["label_column"]?.stringValue ?? "label"
            let train = try CSVDataset.load(path, labelColumn: label)
            if let testPath = o["test_path"]?.stringValue {
                let test = try CSVDataset.load(testPath, labelColumn: label, classNames: train.dataset.classNames,
                                               featureColumns: train.featureColumns)
                split = TrainTestSplit(train: train.dataset, test: test.dataset)
            } else {
                let n = train.dataset.count
                let hold = min(n - 1, d.testSize ?? max(1, n / 5))
                split = TrainTestSplit(train: train.dataset.subset(Array(0..<(n - hold))),
                                       test: train.dataset.subset(Array((n - hold)..<n)))
            }
        default:
            throw TrainingError.invalidSetting("dataset.name: no loader for `\(d.name)`")
        }
        if let n = d.trainSize, n < split.train.count { split.train = split.train.subset(Array(0..<n)) }
        if let n = d.testSize, n < split.test.count { split.test = split.test.subset(Array(0..<n)) }
        switch d.normalize {
        case .none, .privateStandardize: break
        case .standardize: split.standardize(perChannel: split.train.exampleShape.rank == 3)
        case .perExample:
            split.train.standardizePerExample()
            split.test.standardizePerExample()
        case .fixed(let mean, let sd):
            let channels = split.train.exampleShape.rank == 3 ? split.train.exampleShape[0] : split.train.exampleSize
            guard mean.count == 1 || mean.count == channels else {
                throw TrainingError.invalidSetting(
                    "dataset.normalize_options: \(mean.count) means and deviations for examples of shape \(split.train.exampleShape); give one value, or one per channel (\(channels))")
            }
            let s = Standardization(mean: mean.map(Float.init), standardDeviation: sd.map(Float.init))
            s.apply(to: &split.train)
            s.apply(to: &split.test)
        }
        return split
    }

    // MARK: - Model and optimizer

    func buildModel(_ m: ModelConfig, inputShape: Shape, classes: Int, seed: UInt64) throws -> Sequential {
        if let layers = m.layers {
            var specs = try layers.map(Self.layerSpec)
            if specs.isEmpty || specs.last.map({ if case .linear = $0 { return false } else { return true } }) ?? true {
                specs.append(.linear(outputs: classes, bias: true))
            }
            return try ModelBuilder.build(specs: specs, inputShape: inputShape, seed: seed)
        }
        let name = m.name ?? "mlp"
        switch name {
        case "mlp":
            let hidden = m.options["hidden_sizes"]?.intListValue ?? [128]
            let activation = m.options["activation"]?.stringValue ?? "tanh"
            var specs: [DPLayers.LayerSpec] = inputShape.rank > 1 ? [.flatten] : []
            for h in hidden {
                specs.append(.linear(outputs: h, bias: true))
                specs.append(try Self.activation(activation))
            }
            specs.append(.linear(outputs: classes, bias: true))
            return try ModelBuilder.build(specs: specs, inputShape: inputShape, seed: seed)
        default:
            return try ModelBuilder.build(model: name, inputShape: inputShape,
                                          options: ModelOptions(classes: classes), seed: seed)
        }
    }

    static func activation(_ name: String) throws -> DPLayers.LayerSpec {
        switch name {
        case "tanh": return .tanh
        case "relu": return .relu
        case "sigmoid": return .temperedSigmoid(scale: 1, temperature: 1, offset: 0)
        default: throw TrainingError.invalidSetting("model.options.activation: `\(name)`; allowed: tanh, relu, sigmoid")
        }
    }

    /// The config's layer spec (registry names) as a DPLayers layer spec.
    static func layerSpec(_ l: LayerSpec) throws -> DPLayers.LayerSpec {
        let o = l.options
        switch l.type {
        case "dense": return .linear(outputs: o["units"]?.intValue ?? 1, bias: true)
        case "conv2d":
            return .conv2d(outChannels: o["channels"]?.intValue ?? 1, kernel: o["kernel_size"]?.intValue ?? 3,
                           stride: o["stride"]?.intValue ?? 1, padding: o["padding"]?.intValue ?? 0, bias: true)
        case "max-pool2d": return .maxPool2d(kernel: o["size"]?.intValue ?? 2, stride: o["stride"]?.intValue)
        case "avg-pool2d": return .avgPool2d(kernel: o["size"]?.intValue ?? 2, stride: o["stride"]?.intValue)
        case "flatten": return .flatten
        case "tanh", "relu", "sigmoid": return try activation(l.type)
        case "tempered-sigmoid":
            return .temperedSigmoid(scale: Float(o["scale"]?.doubleValue ?? 2), temperature: Float(o["temperature"]?.doubleValue ?? 2),
                                    offset: Float(o["offset"]?.doubleValue ?? 1))
        case "group-norm": return .groupNorm(groups: o["groups"]?.intValue ?? 1, eps: 1e-5)
        case "layer-norm": return .layerNorm(trailingAxes: o["axes"]?.intValue ?? 1, eps: 1e-5)
        case "dropout": return .dropout(rate: Float(o["rate"]?.doubleValue ?? 0.5))
        default: throw TrainingError.invalidSetting("model.layers: no layer `\(l.type)`")
        }
    }

    func makeOptimizer(_ o: OptimizerConfig) throws -> Optimizer {
        switch o.name {
        case "sgd", "momentum":
            return SGD(learningRate: o.learningRate, momentum: o.momentum, weightDecay: o.weightDecay)
        case "adam":
            let b = o.betas.count == 2 ? o.betas : [0.9, 0.999]
            return Adam(learningRate: o.learningRate, beta1: b[0], beta2: b[1], weightDecay: o.weightDecay)
        default:
            throw TrainingError.invalidSetting("optimizer.name: no optimizer `\(o.name)`")
        }
    }

    func makeSchedule(_ s: ScheduleConfig, learningRate: Double, stepsPerEpoch: Int, totalSteps: Int) throws -> LearningRateSchedule {
        switch s.name {
        case "constant": return .constant
        case "step":
            return .step(everySteps: (s.options["step_epochs"]?.intValue ?? 10) * stepsPerEpoch,
                         factor: s.options["gamma"]?.doubleValue ?? 0.1)
        case "cosine":
            if let w = s.options["warmup_epochs"]?.intValue, w > 0 {
                throw TrainingError.invalidSetting("optimizer.schedule.options.warmup_epochs: \(w); warm-up is not implemented yet, use 0")
            }
            let minimum = s.options["min_learning_rate"]?.doubleValue ?? 0
            return .cosine(totalSteps: totalSteps, minimumFactor: learningRate > 0 ? minimum / learningRate : 0)
        default:
            throw TrainingError.invalidSetting("optimizer.schedule.name: no schedule `\(s.name)`")
        }
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
        switch p.sampling {
        case "poisson": sampling = .poisson
        case "fixed-size": sampling = .fixedSize
        default: throw TrainingError.invalidSetting("privacy.sampling: `\(p.sampling)`; allowed: poisson, fixed-size")
        }
        let b = c.training.expectedBatchSize
        guard b <= n else {
            throw TrainingError.invalidSetting("training.expected_batch_size: \(b) exceeds the training set size \(n)")
        }
        samplingProbability = Double(b) / Double(n)
        relation = sampling.neighboringRelation
        stepsPerEpoch = max(1, Int((Double(n) / Double(b)).rounded()))
        steps = c.training.steps ?? (c.training.epochs ?? 1) * stepsPerEpoch
        accountants = p.accountant == "both" ? [.rdp, .pld] : [p.accountant == "pld" ? .pld : .rdp]
        budgetAccountant = accountants.contains(.pld) && p.accountant == "pld" ? .pld : .rdp
        guard p.enabled else {
            accountants = []
            budgetAccountant = .rdp
            return
        }
        let delta = p.targetDelta ?? 1e-5
        self.delta = delta
        let sampler = BatchSampler(scheme: sampling, datasetSize: n, expectedBatchSize: b, rng: PhiloxRandom(seed: 0))
        if case .privateStandardize(let s, let lower, let upper) = c.dataset.normalize {
            preprocessingEvent = PrivateStandardization(noiseMultiplier: s, lower: lower, upper: upper, perChannel: false)
                .event(relation: relation)
        }
        let pre = preprocessingEvent
        let sigma: Double
        if let s = p.noiseMultiplier {
            sigma = s
        } else if let target = p.targetEpsilon {
            let steps = self.steps
            let accountant = budgetAccountant.make(relation: sampler.neighboringRelation)
            do {
                sigma = try DPAccounting.noiseMultiplier(targetEpsilon: target, delta: delta, accountant: accountant) { s in
                    let training = DpEvent.selfComposed(event: sampler.stepEvent(noiseMultiplier: s), count: steps)
                    return pre.map { .composed([$0, training]) } ?? training
                }
            } catch AccountingError.calibrationFailed {
                throw TrainingError.invalidSetting(PrivacyHygiene.unreachableTarget(
                    target, delta: delta, steps: steps, accountant: budgetAccountant, preprocessing: pre != nil))
            }
            calibratedWith = budgetAccountant
            notes.append("sigma \(String(format: "%.4f", sigma)) calibrated to epsilon \(target) at delta \(delta) over \(steps) steps (\(budgetAccountant.rawValue))")
        } else {
            throw TrainingError.invalidSetting("privacy: give noise_multiplier or target_epsilon")
        }
        noiseMultiplier = sigma
        let clipping: ClippingMode
        switch p.clipping {
        case "flat": clipping = .flat
        case "per-layer":
            if p.clippingOptions["layer_norms"] != nil {
                throw TrainingError.invalidSetting("privacy.clipping_options.layer_norms: unequal per-layer thresholds are not implemented; leave it out for C / sqrt(layers) each")
            }
            clipping = .perLayer
        case "automatic": clipping = .automatic(stability: p.clippingOptions["stability"]?.doubleValue ?? 0.01)
        case "adaptive":
            clipping = .adaptive(targetQuantile: p.clippingOptions["target_quantile"]?.doubleValue ?? 0.5,
                                 learningRate: p.clippingOptions["learning_rate"]?.doubleValue ?? 0.2,
                                 countNoiseMultiplier: p.clippingOptions["count_noise_multiplier"]?.doubleValue ?? Double(b) / 20)
        default: throw TrainingError.invalidSetting("privacy.clipping: `\(p.clipping)`; allowed: flat, per-layer, automatic, adaptive")
        }
        privacySettings = PrivacySettings(noiseMultiplier: sigma, clippingNorm: p.clippingNorm ?? 1, clipping: clipping,
                                          delta: delta, targetEpsilon: p.targetEpsilon, randomness: p.secureRNG ? .secure : .seeded)
        if sigma > 0 {
            stepEvent = sampler.stepEvent(noiseMultiplier: sigma)
            notes.append("epsilon is for \(relation == .addOrRemoveOne ? "add-remove" : "replace-one") neighbouring datasets; privacy unit: one training \(privacyUnit)")
            notes.append("randomness \(privacySettings!.randomness.statement)")
            if let pre = preprocessingEvent {
                notes.append("input statistics (private-standardize) cost \(pre.summary), composed before the first step")
            }
        } else {
            notes.append("noise multiplier 0: a clip-only control with no privacy guarantee; no epsilon is reported")
        }
    }

    /// Relation, unit and randomness of this run's epsilon (for results files).
    var statement: PrivacyStatement {
        PrivacyStatement(neighboringRelation: relation.name, privacyUnit: privacyUnit,
                         randomness: privacySettings?.randomness.rawValue ?? RandomnessSource.seeded.rawValue,
                         randomnessStatement: (privacySettings?.randomness ?? .seeded).statement)
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

extension ConfigValue {
    var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .double(let d) where d == d.rounded(): return Int(d)
        default: return nil
        }
    }

    var intListValue: [Int]? {
        guard case .list(let items) = self else { return nil }
        let ints = items.compactMap(\.intValue)
        return ints.count == items.count ? ints : nil
    }
}

/// The ``AccountingExecutor`` behind `dpkit run` on a `kind: accounting` config.
public struct AccountantExecutor: AccountingExecutor {
    public init() {}

    public func epsilons(_ point: AccountingPoint, accountant: String) throws -> AccountingResult {
        var ledger = PrivacyLedger()
        try ledger.record(.poissonSampled(probability: point.samplingProbability,
                                          event: .gaussian(noiseMultiplier: point.noiseMultiplier)), count: point.steps)
        var result = AccountingResult()
        if accountant == "rdp" || accountant == "both" {
            result.epsilonRDP = try PrivacyBudget.epsilon(ledger: ledger, delta: point.targetDelta, accountant: .rdp)
        }
        if accountant == "pld" || accountant == "both" {
            let r = try PrivacyBudget.report(ledger: ledger, delta: point.targetDelta, accountant: .pld)
            result.epsilonPLDLower = r.epsilonLower
            result.epsilonPLDUpper = r.epsilonUpper ?? r.epsilon
        }
        return result
    }
}
