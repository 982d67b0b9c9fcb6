import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

// MARK: - Config

/// Which part of the training set is public (`public.subset` or `public.classes`): pretrained on
/// without privacy, never part of the private training set.
public enum PublicPart: Hashable, Sendable {
    /// `size` training examples drawn uniformly without replacement on their own random stream
    /// (``RandomStream/publicSplit``), so the draw depends on no other: of `seed`
    /// (`public.subset.seed`) when given, the same public part in every run; otherwise of the
    /// run's seed, so runs with other seeds have other public parts.
    case subset(size: Int, seed: Int? = nil)
    /// Every training example whose label is one of these classes. The private task is the
    /// remaining classes: private training and test sets keep only them, relabelled
    /// `0..<k` in increasing order of the original label.
    case classes([Int])
    /// The training set of another dataset (not this run's: a dataset of the same name is
    /// refused). The private part is this run's whole training set; the last layer is
    /// re-initialised after pretraining.
    case dataset(DatasetConfig)

    /// `subset`, `classes` or `dataset`, as the manifest's `public.kind` says.
    public var kind: String {
        switch self {
        case .subset: return "subset"
        case .classes: return "classes"
        case .dataset: return "dataset"
        }
    }
}

/// How the private phase trains the model (`training.fine_tune`).
public enum FineTuning: String, Hashable, Sendable, CaseIterable {
    /// Every layer gets per-example gradients, clipping and noise (the default).
    case all
    /// Linear probe: only the last layer with parameters is trained; the layers before it are
    /// frozen and computed once per example as fixed features (evaluation mode: dropout off).
    /// The clipped per-example gradient is over the last layer's parameters only, which is the
    /// sensitivity the noise and the ledger assume.
    case lastLayer = "last-layer"
}

/// `public:` section: the public part of the training set and the non-private pretraining on it.
public struct PublicConfig: Hashable, Sendable {
    public var part: PublicPart
    /// Non-private pretraining epochs on the public part; 0 holds the public part out without
    /// pretraining (the from-scratch baseline on the same private part).
    public var epochs: Int
    /// Fixed-size batches of the pretraining.
    public var batchSize: Int
    /// The pretraining's optimizer; nil when `epochs` is 0 and none was given.
    public var optimizer: OptimizerConfig?

    /// True when there is a model to start the private phase from.
    public var pretrains: Bool { epochs > 0 }
}

extension RunConfig {
    /// `public:`, or nil when absent (no key of it enters the resolved config then).
    static func parsePublic(
        _ root: MapReader, dataset: DatasetConfig, context: ParseContext
    ) throws -> PublicConfig? {
        guard root.has("public") else { return nil }
        let p = try root.section("public")
        let hasSubset = p.has("subset"), hasClasses = p.has("classes"), hasDataset = p.has("dataset")
        let given = [hasSubset, hasClasses, hasDataset].filter { $0 }.count
        if given != 1 {
            throw p.context.error(
                p.path,
                given > 1
                    ? "has more than one of `subset`, `classes` and `dataset`; give exactly one (a random subset of the training set, the training examples of some classes, or another dataset)"
                    : "needs `subset: {size: N}` (N training examples drawn at random), `classes: [...]` (the training examples of these classes) or `dataset: {name: ...}` (another dataset's training set)"
            )
        }
        let declared = try? dataset.declaredExamples(registry: context.registries.datasets)
        let part: PublicPart
        if hasDataset {
            let d = try parseDataset(p, context: context)
            let path = p.childPath("dataset")
            if d.name == dataset.name {
                throw context.error(
                    path + ".name",
                    "`\(d.name)` is this run's dataset, whose training set is the private data (and model lineage is checked by dataset name); declare a public part of it with `public.subset` or `public.classes`, or name another dataset"
                )
            }
            if d.normalize != .none {
                throw context.error(
                    path + ".normalize",
                    "is `\(d.normalize.name)`, but the run's `dataset.normalize` scales the public data too (`standardize` is fitted on it); remove it"
                )
            }
            if d.projection != nil {
                throw context.error(
                    path + ".projection", "a DP-PCA projection of public data is not supported; remove it")
            }
            if let mine = declared?.shape,
                let theirs = try? d.declaredExamples(registry: context.registries.datasets)?.shape, mine != theirs
            {
                throw context.error(
                    path,
                    "has examples \(theirs.array), but this run's dataset has \(mine.array); the pretrained model must take the same input (options, features)"
                )
            }
            part = .dataset(d)
        } else if hasSubset {
            let s = try p.section("subset")
            let size = try s.requiredInt("size", range: .atLeast(1))
            if let n = declared?.trainCount, size >= n {
                throw s.error(
                    "size",
                    "\(size) leaves no private training examples: the training set has \(n); allowed: 1...\(n - 1) (the private part is the rest)"
                )
            }
            let splitSeed = try s.int("seed", range: .atLeast(0))
            try s.finish()
            p.close(s, as: "subset")
            part = .subset(size: size, seed: splitSeed)
        } else {
            let classes =
                try p.read(ParameterSpec("classes", .intList, range: .atLeast(0), required: true))?.intListValue ?? []
            if classes.isEmpty {
                throw p.error("classes", "is empty; give the public class labels, such as [5, 6, 7, 8, 9]")
            }
            if Set(classes).count != classes.count {
                throw p.error("classes", "lists a class twice: \(classes); give each public class once")
            }
            if let k = declared?.classes {
                if let bad = classes.first(where: { $0 >= k }) {
                    throw p.error("classes", "has class \(bad), but \(dataset.name) has classes 0...\(k - 1)")
                }
                if classes.count >= k {
                    throw p.error(
                        "classes",
                        "makes every class public, which leaves no private task; keep at least two of 0...\(k - 1) private"
                    )
                }
                if k - classes.count < 2 {
                    throw p.error("classes", PublicSplit.onePrivateClass(classes, of: k))
                }
            }
            part = .classes(classes)
        }
        let epochs = try p.requiredInt("epochs", range: .closed(0, 1e6))
        if case .classes(let classes) = part, epochs > 0, classes.count < 2 {
            throw p.error("classes", PublicSplit.onePublicClass(classes))
        }
        let batchSize = try p.requiredInt("batch_size", range: .atLeast(1), default: 256)
        var optimizer: OptimizerConfig?
        if epochs > 0 || p.has("optimizer") {
            optimizer = try parseOptimizer(p, context: context)
        }
        try p.finish()
        root.close(p, as: "public")
        return PublicConfig(part: part, epochs: epochs, batchSize: batchSize, optimizer: optimizer)
    }

    /// Settings that cannot be combined with `public` or `training.fine_tune: last-layer`.
    static func checkTransfer(_ config: RunConfig, context: ParseContext) throws {
        if let p = config.public {
            if config.federated != nil {
                throw context.error(
                    "public",
                    "cannot be combined with `federated`: clients hold their own data, so there is no training set to split into a public and a private part; remove one"
                )
            }
            if config.dataset.projection != nil {
                throw context.error(
                    "public",
                    "cannot be combined with `dataset.projection: dp-pca`: the projection is fitted on the whole private training set before the split and would change the pretrained model's input; remove one"
                )
            }
            if case .classes = p.part, config.poisoning != nil {
                throw context.error(
                    "public",
                    "`classes` relabels the private classes, so the labels `poisoning` names would mean other classes; use `public.subset` with poisoning, or remove one"
                )
            }
        }
        guard config.training.fineTune == .lastLayer else { return }
        if config.public?.pretrains != true && config.training.initialModel == nil {
            throw context.error(
                "training.fine_tune",
                "`last-layer` trains only the last layer of a pretrained model, but nothing pretrains this one; add `public` with `epochs` > 0 or `training.initial_model`, or use `fine_tune: all`"
            )
        }
        if config.training.adversarial != nil {
            throw context.error(
                "training.fine_tune",
                "`last-layer` cannot be combined with `training.adversarial` (the perturbation needs input gradients through the frozen layers); remove one"
            )
        }
        if config.audit != nil {
            throw context.error(
                "training.fine_tune",
                "`last-layer` cannot be combined with `audit` (the audit's gradients are of the whole model); use `fine_tune: all` in audited runs"
            )
        }
        // The model must have a last dense layer and an earlier layer to freeze (the rule of
        // LinearProbe, on the model built from the declared shapes; csv files are checked when loaded).
        let registries = context.registries
        if let declared = try? config.dataset.declaredExamples(registry: registries.datasets),
            let specs = try? config.model.checkedLayerSpecs(
                inputShape: declared.shape, classes: declared.classes, dataset: declared.summary,
                registry: registries.models
            ).specs,
            let model = try? ModelBuilder.build(specs: specs, inputShape: declared.shape, seed: 0)
        {
            do {
                _ = try LinearProbe(model)
            } catch TrainingError.invalidSetting(let message) {
                throw context.error("training.fine_tune", String(message.dropFirst("training.fine_tune: ".count)))
            }
        }
    }
}

// MARK: - The split

/// The public and private parts of a training set (`public.subset` or `public.classes`).
///
/// The two are disjoint and together are the training set. With `classes`, the private
/// training and test sets keep only the other classes, relabelled `0..<k`; the public part is
/// relabelled `0..<m` (its own pretraining head).
struct PublicSplit {
    /// The public part, to pretrain on without privacy.
    var publicData: Dataset
    /// The private training set and the test set of the private task.
    var privateSplit: TrainTestSplit
    /// Indices of the public examples in the training set, increasing.
    var publicIndices: [Int]
    /// The original labels of the private task (`classes` only).
    var privateClasses: [Int]?
    var part: PublicPart
    var seed: UInt64
    /// The number of private training examples the privacy analysis used (its n, after
    /// poisoning, canaries and other changes of the private part); nil until the executor
    /// knows it, and then the private part's size is used.
    var analysedPrivateSize: Int?

    /// The private part's size in the manifest and the statement: the n of the privacy analysis.
    var privateSize: Int { analysedPrivateSize ?? privateSplit.train.count }

    /// - Parameters:
    ///   - publicDataset: the training set of `part`'s dataset (`.dataset` only).
    ///   - pretrains: whether the public part is pretrained on (`classes` then needs two public
    ///     classes: on one, every gradient of the cross-entropy is zero).
    /// - Throws: `TrainingError.invalidSetting` naming `public` when a part would be empty, a
    ///   `classes` split leaves fewer than two private classes (or one public class to pretrain
    ///   on), or the public dataset's examples have another shape.
    init(
        _ data: TrainTestSplit, part: PublicPart, seed: UInt64, publicDataset: Dataset? = nil, pretrains: Bool = true
    ) throws {
        self.part = part
        self.seed = seed
        let train = data.train
        let n = train.count
        switch part {
        case .dataset(let d):
            guard let other = publicDataset, other.count > 0 else {
                throw TrainingError.invalidSetting("public.dataset: `\(d.name)` has no training examples")
            }
            guard other.exampleShape == train.exampleShape else {
                throw TrainingError.invalidSetting(
                    "public.dataset: `\(d.name)` has examples \(other.exampleShape.array), but this run's data has \(train.exampleShape.array); the pretrained model must take the same input"
                )
            }
            publicData = other
            publicIndices = Array(0..<other.count)
            privateSplit = data
            privateClasses = nil
        case .subset(let size, let splitSeed):
            guard size < n else {
                throw TrainingError.invalidSetting(
                    "public.subset.size: \(size) leaves no private training examples: the training set has \(n); use 1...\(n - 1)"
                )
            }
            if let splitSeed { self.seed = UInt64(splitSeed) }
            publicIndices = Self.randomSubset(size: size, of: n, seed: self.seed)
            var isPublic = [Bool](repeating: false, count: n)
            for i in publicIndices { isPublic[i] = true }
            publicData = train.subset(publicIndices, name: "\(train.name) (public part)")
            privateSplit = TrainTestSplit(
                train: train.subset((0..<n).filter { !isPublic[$0] }, name: train.name), test: data.test)
            privateClasses = nil
        case .classes(let classes):
            if let bad = classes.first(where: { $0 >= train.classCount }) {
                throw TrainingError.invalidSetting(
                    "public.classes: class \(bad) does not exist; \(train.name) has classes 0...\(train.classCount - 1)"
                )
            }
            let publicSet = Set(classes)
            let privateLabels = (0..<train.classCount).filter { !publicSet.contains($0) }
            guard !privateLabels.isEmpty else {
                throw TrainingError.invalidSetting("public.classes: every class is public; keep at least two private")
            }
            guard privateLabels.count >= 2 else {
                throw TrainingError.invalidSetting(
                    "public.classes: " + Self.onePrivateClass(classes, of: train.classCount))
            }
            guard !pretrains || classes.count >= 2 else {
                throw TrainingError.invalidSetting("public.classes: " + Self.onePublicClass(classes))
            }
            publicIndices = (0..<n).filter { publicSet.contains(train.labels[$0]) }
            guard !publicIndices.isEmpty, publicIndices.count < n else {
                throw TrainingError.invalidSetting(
                    "public.classes: \(classes) select \(publicIndices.count) of the \(n) training examples; both the public and the private part need examples"
                )
            }
            privateClasses = privateLabels
            publicData = Self.relabel(
                train, keeping: classes.sorted(), name: "\(train.name) (public classes)")
            privateSplit = TrainTestSplit(
                train: Self.relabel(train, keeping: privateLabels, name: train.name),
                test: Self.relabel(data.test, keeping: privateLabels, name: data.test.name))
        }
    }

    /// Why `classes` of `k` classes is refused when it leaves one private class.
    static func onePrivateClass(_ classes: [Int], of k: Int) -> String {
        let left = (0..<k).filter { !classes.contains($0) }
        return
            "\(classes) leaves only class \(left.map(String.init).joined()) private, a task with one answer (a trivial private model); keep at least two of 0...\(k - 1) private"
    }

    /// Why one public class is refused when the public part is pretrained on.
    static func onePublicClass(_ classes: [Int]) -> String {
        "\(classes) is one public class: pretraining on it is a no-op (with one output the cross-entropy's gradient is zero); make at least two classes public, or set `public.epochs: 0` to hold it out"
    }

    /// `size` distinct indices of `0..<n`, increasing: a partial Fisher-Yates shuffle on the
    /// ``RandomStream/publicSplit`` stream of `seed`.
    static func randomSubset(size: Int, of n: Int, seed: UInt64) -> [Int] {
        var random = PhiloxRandom(seed: seed, stream: RandomStream.publicSplit.rawValue)
        var order = Array(0..<n)
        for i in 0..<size {
            let j = i + Int(random.next() % UInt64(n - i))
            order.swapAt(i, j)
        }
        return order[0..<size].sorted()
    }

    /// The examples of `d` whose label is in `classes`, relabelled by position in `classes`.
    static func relabel(_ d: Dataset, keeping classes: [Int], name: String) -> Dataset {
        var position = [Int](repeating: -1, count: d.classCount)
        for (i, c) in classes.enumerated() { position[c] = i }
        let kept = d.subset(d.labels.indices.filter { position[d.labels[$0]] >= 0 })
        return Dataset(
            name: name, features: kept.features, labels: kept.labels.map { position[$0] }, classCount: classes.count,
            classNames: classes.map { d.classNames[$0] })
    }

    /// What was public, for the manifest (`public`): kind, sizes, classes, seed and stream, a
    /// hash of the public indices, and what the epsilon covers.
    func record(pretraining: ConfigValue) -> ConfigValue {
        var entries: [(key: String, value: ConfigValue)] = [("kind", .string(part.kind))]
        if case .classes(let classes) = part {
            entries.append(("classes", .list(classes.map(ConfigValue.int))))
            entries.append(("private_classes", .list((privateClasses ?? []).map(ConfigValue.int))))
        }
        if case .dataset(let d) = part {
            var dataset: [(key: String, value: ConfigValue)] = [
                ("name", .string(d.name)), ("options", .map(d.options.sorted { $0.key < $1.key })),
            ]
            if let p = d.path { dataset.append(("path", .string(p))) }
            if let k = d.trainSize { dataset.append(("train_size", .int(k))) }
            if let f = d.features { dataset.append(("features", f.metadata)) }
            entries.append(("dataset", .map(dataset)))
            entries += [("size", .int(publicData.count)), ("private_size", .int(privateSize))]
        } else {
            entries += [
                ("size", .int(publicIndices.count)), ("private_size", .int(privateSize)),
                ("training_set_size", .int(publicIndices.count + privateSplit.train.count)),
            ]
        }
        if case .subset(_, let splitSeed) = part {
            entries.append(("seed", .int(Int(truncatingIfNeeded: seed))))
            entries.append(("seed_from", .string(splitSeed == nil ? "the run's seed" : "public.subset.seed")))
            entries.append(("random_stream", .int(Int(RandomStream.publicSplit.rawValue))))
        }
        if case .dataset = part {
        } else {
            entries.append(
                ("indices_fnv1a64", .string(fnv1a64Hex(publicIndices.map(String.init).joined(separator: ",")))))
        }
        entries.append(("pretraining", pretraining))
        entries.append(("statement", .string(statement)))
        return .map(entries)
    }

    /// What the run's epsilon covers.
    var statement: String {
        let what: String
        switch part {
        case .subset(let size, _): what = "a random subset of \(size) training examples"
        case .classes(let c): what = "the \(publicIndices.count) training examples of classes \(c)"
        case .dataset(let d): what = "the \(publicData.count) training examples of dataset `\(d.name)`"
        }
        var text =
            "the epsilon covers only the private part (\(privateSize) training examples); the public part (\(what)) was used without privacy and has no guarantee"
        if case .subset(_, nil) = part {
            text +=
                "; the public subset is drawn from the run's seed, so runs with other seeds have other public parts: once models of several seeds are released, every example public in any of them has no guarantee (`public.subset.seed` fixes one public part for every seed)"
        }
        return text
    }
}

// MARK: - Pretraining and the linear probe

extension TrainingExecutor {
    /// The model the private phase starts from, built like `model` for the public part's
    /// classes: `training.initial_model` loaded into it when given, then `public.epochs` of
    /// non-private training on the public part (fixed-size batches, its own seed stream).
    /// Its parameters are copied into `model`; the last layer with parameters only when the
    /// public task is the private one (`subset`): with `classes` it keeps its fresh
    /// initialisation for the private classes.
    /// - Returns: the pretraining's figures, for the manifest.
    func pretrain(
        _ p: PublicConfig, publicData: Dataset, into model: Sequential, config c: RunConfig, seed: UInt64
    ) throws -> ConfigValue {
        let pretrained = try buildModel(
            c.model, inputShape: publicData.exampleShape, classes: publicData.classCount, seed: seed)
        if let path = c.training.initialModel { try loadInitialModel(path, into: pretrained, config: c) }
        var figures: [(key: String, value: ConfigValue)] = [("epochs", .int(p.epochs))]
        if p.pretrains, let o = p.optimizer {
            guard p.batchSize <= publicData.count else {
                throw TrainingError.invalidSetting(
                    "public.batch_size: \(p.batchSize) exceeds the \(publicData.count) examples of the public part; use 1...\(publicData.count)"
                )
            }
            let stepsPerEpoch = SamplingScheme.stepsPerEpoch(datasetSize: publicData.count, batchSize: p.batchSize)
            var random = PhiloxRandom(seed: seed, stream: RandomStream.pretraining.rawValue)
            let pretrainingSeed = random.next()
            let trainer = try DPSGDTrainer(
                model: pretrained, optimizer: makeOptimizer(o),
                schedule: makeSchedule(
                    o.schedule, learningRate: o.learningRate, stepsPerEpoch: stepsPerEpoch,
                    totalSteps: stepsPerEpoch * p.epochs),
                data: publicData,
                configuration: TrainerConfiguration(
                    sampling: .fixedSize, expectedBatchSize: p.batchSize,
                    maxPhysicalBatchSize: c.training.maxPhysicalBatchSize, privacy: nil,
                    seed: pretrainingSeed))
            let summary = try trainer.fit(epochs: p.epochs)
            figures.append(("steps", .int(summary.steps)))
            if let last = summary.lastEpoch {
                figures.append(("train_loss", last.trainLoss.isFinite ? .double(last.trainLoss) : .null))
                figures.append(("train_accuracy", .double(last.trainAccuracy)))
            }
        }
        let reinitialise: Bool
        if case .subset = p.part { reinitialise = false } else { reinitialise = true }
        let source = pretrained.trainableLayers, target = model.trainableLayers
        guard source.count == target.count else {
            throw TrainingError.invalidSetting(
                "public: the pretrained model has \(source.count) layers with parameters, the private one \(target.count); use a `model` whose layers do not depend on the number of classes"
            )
        }
        let copied = zip(source, target).dropLast(reinitialise ? 1 : 0)
        // Every shape is checked before any parameter is copied.
        for (from, to) in copied {
            for (a, b) in zip(from.parameters, to.parameters) where a.value.shape != b.value.shape {
                throw TrainingError.invalidSetting(
                    "public: the pretrained parameter \(a.name) has shape \(a.value.shape), the private model's \(b.value.shape); the public and private parts must give the model the same input and, with `public.subset`, the same classes"
                )
            }
        }
        for (from, to) in copied {
            for (a, b) in zip(from.parameters, to.parameters) { b.value = a.value }
        }
        figures.append(
            ("last_layer", .string(reinitialise ? "reinitialised for the private classes" : "pretrained")))
        return .map(figures)
    }
}

/// A model cut before its last layer with parameters (``FineTuning/lastLayer``): the frozen
/// layers turn examples into fixed features once, and only ``head`` (that layer and the
/// parameter-free layers after it) is trained. The head shares its layers with the model, so
/// training it updates the model.
struct LinearProbe {
    let frozen: Sequential
    let head: Sequential

    /// - Throws: `TrainingError.invalidSetting` naming `training.fine_tune` when the model has
    ///   no earlier layer with parameters to freeze, or its last one is not a dense layer.
    init(_ model: Sequential) throws {
        guard let k = model.layers.lastIndex(where: { !$0.parameters.isEmpty }) else {
            throw TrainingError.invalidSetting("training.fine_tune: last-layer: \(model.description) has no parameters")
        }
        guard model.layers[k] is Linear else {
            throw TrainingError.invalidSetting(
                "training.fine_tune: last-layer: the last layer with parameters of \(model.description) is \(model.layers[k].description), not a dense layer, so it cannot be trained alone; use `fine_tune: all`"
            )
        }
        guard model.layers[..<k].contains(where: { !$0.parameters.isEmpty }) else {
            throw TrainingError.invalidSetting(
                "training.fine_tune: last-layer: \(model.description) has no layer with parameters before its last one, so there is nothing to freeze; use `fine_tune: all`"
            )
        }
        frozen = Sequential(Array(model.layers[..<k]))
        head = Sequential(Array(model.layers[k...]))
    }

    /// The frozen layers' outputs for every example of `d` (evaluation mode), with its labels.
    func features(_ d: Dataset, chunk: Int = 512) -> Dataset {
        let n = d.count
        var scalars: [Float] = []
        var shape = frozen.outputShape(forExampleShape: d.exampleShape)
        scalars.reserveCapacity(n * shape.scalarCount)
        var start = 0
        while start < n {
            let end = min(n, start + chunk)
            scalars += frozen(d.features.rows(start..<end)).scalars
            start = end
        }
        shape = Shape([n] + shape.array)
        return Dataset(
            name: d.name, features: Tensor(scalars, shape: shape), labels: d.labels, classCount: d.classCount,
            classNames: d.classNames)
    }
}
