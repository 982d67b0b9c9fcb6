import DPAccounting
import DPAuditing
import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation

/// What one round did and measured.
public struct RoundReport: Sendable {
    public var round: Int
    /// The clients sampled this round (ascending).
    public var sampledClients: [Int]
    /// Of those, the malicious ones.
    public var maliciousClients: [Int]
    /// Clients that dropped out of secure aggregation.
    public var droppedClients: [Int]
    /// Mean local training loss over the sampled clients' last local epoch (over those whose
    /// loss stayed finite). A non-private diagnostic: it is computed from the clients' data
    /// without noise, like DP-SGD's training loss. Under secure aggregation: over the surviving
    /// clients, from the masked sum of their losses clamped to [0, ``FederatedTrainer/secureLossScale``];
    /// NaN when the round was not unmasked.
    public var meanLocalLoss: Double
    /// Sampled clients whose local loss became non-finite (under secure aggregation: surviving
    /// clients, from the masked sum of their finite bits; 0 when the round was not unmasked).
    /// Under DP their update counts as zero (and as clipped for adaptive clipping) instead of
    /// aborting the run, which would release a data-dependent signal; without DP the round
    /// throws instead.
    public var nonFiniteClients: Int = 0
    /// Under secure aggregation, whether the round released noise only because fewer than
    /// ``SecureAggregationSettings/minimumClients`` clients sent their input (so the sum was not
    /// unmasked).
    public var unmaskingSkipped: Bool = false
    /// The DP release of the round (nil without DP).
    public var privacy: PrivateRoundReport?
    /// Seconds in local training, aggregation (clipping, secure aggregation, noise) and the rest.
    public var localSeconds: Double
    public var aggregationSeconds: Double
}

/// Evaluation of the global model.
public struct FederatedEvaluation: Sendable, Equatable {
    public var cleanAccuracy: Double
    /// The fraction of triggered test examples (of other classes) classified as the backdoor
    /// target; nil without a backdoor attack.
    public var backdoorSuccessRate: Double?
    /// Percentiles 10, 50 and 90 of the honest clients' accuracies on their own training data:
    /// noiseless order statistics of private data, so nil in private runs (a non-private
    /// diagnostic of fairness across clients, like DP-SGD's training accuracy).
    public var clientAccuracyP10: Double?
    public var clientAccuracyP50: Double?
    public var clientAccuracyP90: Double?
}

/// Federated training: rounds of client sampling, local SGD on each sampled client, aggregation
/// (robust, DP-FedAvg, optionally through secure aggregation) and a server optimizer step.
///
/// A round is split into the server's ``beginRound()`` and ``finishRound(_:outcome:localSeconds:)``
/// and the clients' ``clientUpdate(client:assignment:)`` (and ``secureInput(_:parameters:)``),
/// joined by a ``FederatedTransport``: ``runRound()`` simulates every client in this process
/// (``InProcessTransport``); DPFederatedNetwork runs the same functions in separate processes.
///
/// Randomness (seeded mode): the client sample from Philox stream `0xfed1`, the malicious set
/// from `0xfed2`, client `k`'s local shuffles in round `t` from stream `0xfed3_0000_0000 + t N + k`,
/// dropouts from `0xfed4`, the server noise from ``NoiseSource``. Secure mode draws the sample
/// and the noise from the OS generator. Secure-aggregation keys always come from the OS generator.
public final class FederatedTrainer {
    public let model: Sequential
    public let partition: ClientPartition
    public let configuration: FederatedConfiguration
    /// Each client's (possibly poisoned) training data.
    public let clientData: [Dataset]
    /// The malicious clients (ascending).
    public let maliciousClients: [Int]
    public private(set) var ledger = PrivacyLedger()
    public private(set) var round = 0
    let layout: UpdateLayout
    let serverOptimizer: any Optimizer
    var sampler: BatchSampler
    var dpAggregator: DPFedAvgAggregator?
    var noise: NoiseSource
    var dropoutRandom: PhiloxRandom
    let loss = SoftmaxCrossEntropy()
    /// Replicas of ``model`` for clients trained on other threads (``clientUpdates(clients:assignment:)``).
    var clientReplicas: [Sequential] = []

    /// - Throws: ``FederatedError`` from ``FederatedConfiguration/validate(clientCount:)``, a
    ///   partition that does not index `data`, or an attack that does not fit the data.
    public init(
        model: Sequential, data: Dataset, partition: ClientPartition, configuration: FederatedConfiguration
    ) throws {
        let n = partition.clientCount
        try configuration.validate(clientCount: n)
        guard partition.clients.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 < data.count } }) else {
            throw FederatedError(
                "the partition indexes examples beyond the \(data.count) of \(data.name): partition this dataset")
        }
        if let empty = partition.clients.firstIndex(where: \.isEmpty) {
            throw FederatedError("client \(empty) has no data: every client needs at least one example")
        }
        self.model = model
        self.partition = partition
        self.configuration = configuration
        var clients = (0..<n).map { partition.data(ofClient: $0, in: data) }
        var malicious: [Int] = []
        if let attack = configuration.attack, attack.maliciousFraction > 0 {
            var rng = PhiloxRandom(seed: configuration.seed, stream: 0xfed2)
            var order = Array(0..<n)
            ClientPartition.shuffle(&order, rng: &rng)
            malicious = order.prefix(Int((attack.maliciousFraction * Double(n)).rounded())).sorted()
            for k in malicious {
                do {
                    switch attack.kind {
                    case .labelFlipping(let source, let target):
                        clients[k] = try LabelFlipping(fraction: 1, source: source, target: target).poison(
                            clients[k], seed: configuration.seed &+ UInt64(k)
                        ).data
                    case .backdoor(let trigger, let target, let fraction):
                        let candidates = clients[k].labels.filter { $0 != target }.count
                        let count = min(candidates, Int(Foundation.ceil(fraction * Double(clients[k].count))))
                        clients[k] = try Backdoor(trigger: trigger, target: target, count: count).poison(
                            clients[k], seed: configuration.seed &+ UInt64(k))
                    case .updateScaling:
                        break
                    }
                } catch let e as AuditError {
                    throw FederatedError("attack \(attack.kind) on client \(k): \(e.description)")
                }
            }
        }
        self.clientData = clients
        self.maliciousClients = malicious
        var start = 0
        var ranges: [Range<Int>] = []
        for layer in model.trainableLayers {
            let c = layer.parameters.reduce(0) { $0 + $1.scalarCount }
            ranges.append(start..<(start + c))
            start += c
        }
        self.layout = UpdateLayout(layerRanges: ranges)
        self.serverOptimizer = configuration.server.make()
        self.sampler = BatchSampler(
            scheme: configuration.sampling, datasetSize: n, expectedBatchSize: configuration.clientsPerRound,
            rng: PhiloxRandom(seed: configuration.seed, stream: 0xfed1), randomness: configuration.randomness)
        self.noise = NoiseSource(randomness: configuration.randomness, seed: configuration.seed)
        self.dropoutRandom = PhiloxRandom(seed: configuration.seed, stream: 0xfed4)
        if let privacy = configuration.privacy {
            self.dpAggregator = try DPFedAvgAggregator(
                privacy: privacy, expectedClients: Double(configuration.clientsPerRound), layout: layout)
        }
    }

    /// `N`.
    public var clientCount: Int { partition.clientCount }

    /// The user-level epsilon of the rounds so far at `delta`, from `accountant` (whose
    /// neighbouring relation must be the sampler's: add/remove-one user for Poisson,
    /// replace-one user for fixed size).
    /// - Throws: ``AccountingError`` for a mismatched relation or an event it cannot account,
    ///   ``FederatedError`` for a non-private run.
    public func epsilon<A: PrivacyAccountant>(delta: Double, accountant: A) throws -> EpsilonReport {
        guard configuration.privacy != nil else {
            throw FederatedError("this federated run is not private: there is no user-level epsilon to report")
        }
        guard accountant.neighboringRelation == configuration.sampling.neighboringRelation else {
            throw AccountingError.unsupportedEvent(
                "\(configuration.sampling.rawValue) client sampling is analysed under the \(configuration.sampling.neighboringRelation.name) relation (of users); the accountant uses \(accountant.neighboringRelation.name)"
            )
        }
        return try ledger.epsilon(delta: delta, accountant: accountant)
    }

    /// The user-level epsilon with DPKit's RDP accountant under the sampler's relation.
    public func epsilon(delta: Double) throws -> EpsilonReport {
        try epsilon(
            delta: delta, accountant: RDPAccountant(neighboringRelation: configuration.sampling.neighboringRelation))
    }

    // MARK: - Parameters as flat vectors

    public func flatParameters() -> [Float] { Self.flatParameters(of: model) }

    public func setParameters(_ flat: [Float]) { setParameters(flat, of: model) }

    static func flatParameters(of model: Sequential) -> [Float] { model.parameters.flatMap(\.value.scalars) }

    func setParameters(_ flat: [Float], of model: Sequential) {
        precondition(flat.count == layout.count, "setParameters: \(flat.count) scalars for \(layout.count)")
        var start = 0
        for p in model.parameters {
            let c = p.scalarCount
            p.value = Tensor(Array(flat[start..<(start + c)]), shape: p.value.shape)
            start += c
        }
    }

    // MARK: - One round, split between the server and the clients

    /// Runs one round in this process (the simulation: ``InProcessTransport``).
    /// - Throws: ``FederatedError`` (secure aggregation below its threshold, a robust rule on too
    ///   few updates) and ``TrainingError/nonFiniteLoss(step:loss:)``; the model is unchanged
    ///   and nothing is composed when it throws.
    @discardableResult
    public func runRound() throws -> RoundReport {
        var transport = InProcessTransport(trainer: self)
        return try runRound(transport: &transport)
    }

    /// Runs one round with the clients behind `transport`: the server draws the client sample
    /// (and the simulated dropouts) in ``beginRound()``, the clients compute their updates with
    /// ``clientUpdate(client:assignment:)`` (and, under secure aggregation, mask
    /// ``secureInput(_:parameters:)``), and the server aggregates, adds the DP noise and steps
    /// in ``finishRound(_:outcome:)``. Where a client runs does not change its update: its local
    /// randomness depends on the seed, its id and the round only.
    @discardableResult
    public func runRound<T: FederatedTransport>(transport: inout T) throws -> RoundReport {
        let assignment = try beginRound()
        let clock = ContinuousClock()
        let t0 = clock.now
        let outcome = try transport.collect(assignment)
        return try finishRound(assignment, outcome: outcome, localSeconds: (clock.now - t0).seconds)
    }

    /// Server, step 1: samples the round's clients (stream `0xfed1`, or the OS generator in
    /// secure mode) and, under secure aggregation, fixes `C_t`, the encoding and the simulated
    /// dropouts (stream `0xfed4`).
    /// - Throws: ``FederatedError`` when the fixed-point encoding cannot hold the round's updates.
    public func beginRound() throws -> RoundAssignment {
        var sampled: [Int] = []
        sampler.nextBatch(into: &sampled)
        var assignment = RoundAssignment(round: round, sampledClients: sampled, global: flatParameters())
        if let dp = dpAggregator, let s = configuration.secureAggregation {
            let n = sampled.count
            var p = SecureRoundParameters(
                scaleBits: s.scaleBits, clippingNorm: dp.clippingNorm, layerThresholds: dp.thresholds,
                threshold: 1, droppedBeforeInput: [], unmask: false)
            // Below the minimum nothing is unmasked (the sum of one or two inputs would reveal
            // them): the round releases noise only.
            if n >= s.minimumClients {
                let encoding = try FixedPointEncoding(scaleBits: s.scaleBits)
                let c = dp.clippingNorm
                let slack = encoding.roundingSlack(dimension: layout.count)
                guard slack < c / 2 else {
                    throw FederatedError(
                        "secure aggregation: rounding \(layout.count) coordinates to 2^-\(s.scaleBits) can add norm \(slack), too much for clipping norm \(c); use more scale bits"
                    )
                }
                try encoding.checkCapacity(bound: max(c, 1), clients: n)
                var drops: [Int] = []
                for i in 0..<n
                where s.dropoutProbability > 0 && dropoutRandom.nextOpenUnitDouble() < s.dropoutProbability {
                    drops.append(i)
                }
                p.droppedBeforeInput = drops
                if n - drops.count >= s.minimumClients {
                    p.threshold = s.threshold(clients: n)
                    _ = try SecureAggregation(threshold: p.threshold, clients: n)
                    p.unmask = true
                }
            }
            assignment.secure = p
        }
        return assignment
    }

    /// Client: client `k`'s update for `assignment` (local training from its global model, then
    /// an attacker's scaling), its last-epoch loss and its example count. Changes this trainer's
    /// model (the server's ``finishRound(_:outcome:localSeconds:)`` restores it).
    /// - Throws: ``TrainingError/nonFiniteLoss(step:loss:)`` for a non-finite loss without DP.
    public func clientUpdate(client k: Int, assignment: RoundAssignment) throws -> ClientUpdate {
        try clientUpdate(client: k, assignment: assignment, on: model)
    }

    /// The updates of `clients` for `assignment`, in that order: on several threads (OpenBLAS's
    /// thread count) each client trains on a replica of the model (``Sequential/replica()``),
    /// one client per thread at a time; otherwise one after another
    /// on this trainer's model. A client's update depends only on the assignment, its data and
    /// its own random stream, so the updates have the same bits either way. The first client (in
    /// `clients` order) whose training throws stops the round with that error, as one after
    /// another would.
    public func clientUpdates(clients: [Int], assignment: RoundAssignment) throws -> [ClientUpdate] {
        let workers = min(BLASRuntime.threadCount, clients.count)
        while clientReplicas.count < workers - 1, let replica = model.replica() { clientReplicas.append(replica) }
        let models = [model] + clientReplicas.prefix(max(0, workers - 1))
        if models.count <= 1 { return try clients.map { try clientUpdate(client: $0, assignment: assignment) } }
        let results = ParallelBatch.map(clients.count, workers: models.count) { w, i in
            Result { try clientUpdate(client: clients[i], assignment: assignment, on: models[w]) }
        }
        return try results.map { try $0.get() }
    }

    func clientUpdate(client k: Int, assignment: RoundAssignment, on model: Sequential) throws -> ClientUpdate {
        precondition(k >= 0 && k < clientCount, "clientUpdate: client \(k) of \(clientCount)")
        let (update, l) = try localUpdate(client: k, round: assignment.round, from: assignment.global, on: model)
        guard var u = update else {
            // Only under DP (localUpdate throws otherwise): a zero update, counted as clipped.
            return ClientUpdate(client: k, update: nil, loss: .nan, examples: clientData[k].count, finite: false)
        }
        if let attack = configuration.attack, maliciousClients.contains(k) {
            var factor = attack.boost
            if case .updateScaling(let f) = attack.kind { factor *= f }
            if factor != 1 { for j in u.indices { u[j] *= Float(factor) } }
        }
        return ClientUpdate(client: k, update: u, loss: l, examples: clientData[k].count, finite: true)
    }

    /// Client, under secure aggregation: the update clipped to `C_t - slack`, encoded, with the
    /// unclipped bit, the finite bit and the scaled loss appended
    /// (``encodeClipped(_:norm:encoding:layout:thresholds:loss:finite:)``); a non-finite update
    /// is encoded as zeros (clipping zeroes it), counted as clipped.
    /// - Throws: ``FederatedError`` for parameters that do not fit this model, or an update
    ///   beyond the encoding's capacity.
    public func secureInput(_ u: ClientUpdate, parameters p: SecureRoundParameters) throws -> [UInt32] {
        // Parameters that came over a network are checked before they reach a precondition.
        guard p.clippingNorm.isFinite, p.clippingNorm > 0,
            p.layerThresholds.map({ t in t.count == layout.layerRanges.count && t.allSatisfy { $0.isFinite && $0 > 0 } }
            )
                ?? true
        else {
            throw FederatedError(
                "secure aggregation: clipping norm \(p.clippingNorm) and thresholds \(p.layerThresholds ?? []) do not fit a model of \(layout.layerRanges.count) layers"
            )
        }
        let encoding = try FixedPointEncoding(scaleBits: p.scaleBits)
        guard encoding.roundingSlack(dimension: layout.count) < p.clippingNorm / 2 else {
            throw FederatedError(
                "secure aggregation: clipping norm \(p.clippingNorm) is too small for \(p.scaleBits) scale bits on \(layout.count) coordinates"
            )
        }
        return try Self.encodeClipped(
            u.update ?? [Float](repeating: .nan, count: layout.count), norm: p.clippingNorm, encoding: encoding,
            layout: layout, thresholds: p.layerThresholds, loss: u.loss, finite: u.finite && u.update != nil)
    }

    /// Server, step 2: aggregates what the clients sent (robust rule, DP-FedAvg, or the unmasked
    /// secure sum), adds the noise, composes the round's event, and takes the server optimizer
    /// step on the pseudo-gradient `-Delta`.
    /// - Throws: ``FederatedError`` (a robust rule on too few updates, an outcome that does not
    ///   fit the assignment); the model is unchanged and nothing is composed when it throws.
    @discardableResult
    public func finishRound(
        _ a: RoundAssignment, outcome: RoundOutcome, localSeconds: Double = 0
    ) throws -> RoundReport {
        precondition(a.round == round, "finishRound: round \(a.round) is not the current round \(round)")
        let event = configuration.roundEvent(clientCount: clientCount)
        let clock = ContinuousClock()
        let t1 = clock.now
        setParameters(a.global)
        let byClient = Dictionary(outcome.updates.map { ($0.client, $0) }, uniquingKeysWith: { a, _ in a })
        // In sampled order, whatever order they arrived in (the sums are taken in this order).
        let received = a.sampledClients.compactMap { byClient[$0] }
        // Without secure aggregation the diagnostics come with each update; with it they come
        // masked inside the inputs, and only their sums are read below.
        var lossSum = 0.0
        var nonFinite = 0
        var finiteClients = 0
        if a.secure == nil {
            for u in received {
                if u.finite { lossSum += u.loss } else { nonFinite += 1 }
            }
            finiteClients = received.count - nonFinite
        }
        let dropped = outcome.dropped.map { a.sampledClients[$0] }
        var report: PrivateRoundReport? = nil
        var skipped = false
        var aggregate: [Float]
        if var dp = dpAggregator {
            if let p = a.secure {
                var sum: [Double]? = nil
                var unclipped = 0
                if p.unmask, let s = outcome.secureSum {
                    let decoded = try FixedPointEncoding(scaleBits: p.scaleBits).decode(s)
                    guard decoded.count == Self.secureInputCount(parameterCount: layout.count) else {
                        throw FederatedError(
                            "secure aggregation: a sum of \(decoded.count) coordinates for a model of \(layout.count) (+\(Self.secureDiagnosticCount))"
                        )
                    }
                    sum = Array(decoded.prefix(layout.count))
                    unclipped = Int(decoded[layout.count].rounded())
                    // Clamped: a client that does not follow the protocol cannot make the counts
                    // nonsensical (it can still lie within them).
                    let survivors = a.sampledClients.count - outcome.dropped.count
                    finiteClients = min(max(Int(decoded[layout.count + 1].rounded()), 0), survivors)
                    nonFinite = survivors - finiteClients
                    lossSum = min(
                        max(decoded[layout.count + 2] * Self.secureLossScale, 0),
                        Self.secureLossScale * Double(finiteClients))
                }
                // Too few survivors: nothing is unmasked and the round releases noise only
                // (a zero sum over zero clients), still composed below.
                skipped = sum == nil
                (aggregate, report) = dp.release(
                    clippedSum: sum ?? [Double](repeating: 0, count: layout.count),
                    clients: sum == nil ? 0 : a.sampledClients.count - outcome.dropped.count,
                    unclippedCount: unclipped, noise: &noise)
            } else {
                // A client that never answered (a network dropout) adds nothing; the denominator
                // stays the expected count m.
                (aggregate, report) = dp.aggregate(
                    received.map { $0.update ?? [Float](repeating: .nan, count: layout.count) }, noise: &noise)
            }
            if let event { try ledger.record(event) }
            dpAggregator = dp
        } else {
            let updates = received.compactMap(\.update)
            if updates.isEmpty {
                aggregate = [Float](repeating: 0, count: layout.count)
            } else {
                try configuration.aggregator.check(clients: updates.count)
                aggregate = configuration.aggregator.combine(
                    updates,
                    weights: configuration.weighting == .examples ? received.map { Double($0.examples) } : nil)
            }
        }
        // Server step on the pseudo-gradient -Delta.
        var start = 0
        for p in model.parameters {
            let c = p.scalarCount
            p.gradient = Tensor(aggregate[start..<(start + c)].map { -$0 }, shape: p.value.shape)
            start += c
        }
        serverOptimizer.step(model.parameters)
        let t2 = clock.now
        round += 1
        let maliciousSet = Set(maliciousClients)
        return RoundReport(
            round: round, sampledClients: a.sampledClients,
            maliciousClients: a.sampledClients.filter { maliciousSet.contains($0) }, droppedClients: dropped,
            meanLocalLoss: finiteClients == 0 ? .nan : lossSum / Double(finiteClients), nonFiniteClients: nonFinite,
            unmaskingSkipped: skipped, privacy: report, localSeconds: localSeconds,
            aggregationSeconds: (t2 - t1).seconds)
    }

    /// Client `k`'s update `w_local - w_global` after E local epochs of SGD from `global`, and its
    /// mean loss in the last epoch; under DP a nil update when the local loss became non-finite.
    /// Its shuffles come from Philox stream `0xfed3_0000_0000 + t N + k` of the seed.
    /// - Throws: ``TrainingError/nonFiniteLoss(step:loss:)`` for a non-finite loss without DP.
    func localUpdate(
        client k: Int, round: Int, from global: [Float], on model: Sequential
    ) throws -> ([Float]?, Double) {
        setParameters(global, of: model)
        let data = clientData[k]
        let local = configuration.local
        let optimizer = SGD(learningRate: local.learningRate, momentum: local.momentum)
        var rng = PhiloxRandom(
            seed: configuration.seed, stream: 0xfed3_0000_0000 &+ UInt64(round) &* UInt64(clientCount) &+ UInt64(k))
        var order = Array(0..<data.count)
        var batch = Tensor<Float>(zeros: data.batchShape(min(local.batchSize, data.count)))
        var labels: [Int] = []
        var lastLoss = 0.0
        for epoch in 0..<local.epochs {
            ClientPartition.shuffle(&order, rng: &rng)
            var epochLoss = 0.0
            var start = 0
            while start < data.count {
                let idx = Array(order[start..<min(data.count, start + local.batchSize)])
                start += idx.count
                if batch.leadingCount != idx.count { batch = Tensor(zeros: data.batchShape(idx.count)) }
                data.gather(indices: idx, into: &batch, labels: &labels)
                var context = ForwardContext(training: true, rng: PhiloxRandom(seed: rng.next()))
                let logits = model.forward(batch, context: &context)
                let (losses, dLogits) = loss(logits: logits, labels: labels)
                let l = Double(losses.sum())
                guard l.isFinite else {
                    // Under DP an abort would reveal that one user's data diverged: drop the update.
                    if configuration.privacy != nil { return (nil, .nan) }
                    throw TrainingError.nonFiniteLoss(step: round, loss: l)
                }
                epochLoss += l
                _ = model.backward(dLogits)
                model.zeroGradients()
                model.accumulateGradients(exampleWeights: Tensor(repeating: 1 / Float(idx.count), shape: [idx.count]))
                optimizer.step(model.parameters)
            }
            if epoch == local.epochs - 1 { lastLoss = epochLoss / Double(data.count) }
        }
        let trained = Self.flatParameters(of: model)
        return (zip(trained, global).map { $0 - $1 }, lastLoss)
    }

    /// One client's input to secure aggregation: its update clipped to `C - sqrt(d) / 2^(s+1)`
    /// (per layer: every threshold shrunk by the same factor)
    /// (so that rounding to the grid keeps the encoded update's norm at most `C`, the
    /// sensitivity the noise is calibrated to), encoded, with ``secureDiagnosticCount``
    /// coordinates appended: the unclipped bit `1[||u|| <= C]`, the finite bit and
    /// `loss / secureLossScale` clamped to [0, 1] (0 when not finite). Only the first `d`
    /// coordinates enter the DP sum. The loss is rounded to Float and then to the grid: its
    /// error is at most `secureLossScale (2^-(s+1) + 2^-25)` per client.
    static func encodeClipped(
        _ update: [Float], norm c: Double, encoding: FixedPointEncoding, layout: UpdateLayout, thresholds: [Double]?,
        loss: Double = .nan, finite: Bool = false
    ) throws -> [UInt32] {
        var u = update
        let shrink = (c - encoding.roundingSlack(dimension: u.count)) / c
        let clipped = UpdateClipping.clip(
            &u, norm: c * shrink, layout: layout, thresholds: thresholds?.map { $0 * shrink })
        // The unclipped bit compares the real norm with C_t, as without secure aggregation. The
        // diagnostics are masked with the update: the server learns only their sums.
        let scaledLoss =
            finite && loss.isFinite ? Float(min(max(loss, 0), Self.secureLossScale) / Self.secureLossScale) : 0
        return try encoding.encode(
            u + [clipped.norm <= c ? 1 : 0, finite ? 1 : 0, scaledLoss], bound: max(c, 1))
    }

    /// Coordinates a client appends to its clipped update under secure aggregation, masked with
    /// it, so that the server learns only their sums over the surviving clients: the unclipped
    /// bit (for adaptive clipping), the finite bit and the last-epoch loss over
    /// ``secureLossScale`` (for `train_loss`). Each lies in [0, 1], within the encoding's bound.
    public static let secureDiagnosticCount = 3
    /// Under secure aggregation a client's loss is clamped to [0, this] before it is encoded (a
    /// diagnostic; a larger loss means training diverged).
    public static let secureLossScale = 64.0

    /// The length of a secure-aggregation input for a model of `parameterCount` parameters.
    public static func secureInputCount(parameterCount: Int) -> Int { parameterCount + secureDiagnosticCount }

    // MARK: - Evaluation

    /// Clean test accuracy, backdoor success (when a backdoor attack is configured) and, in
    /// non-private runs only, the honest clients' accuracy percentiles on their own data (one
    /// pass over it).
    public func evaluate(test: Dataset) -> FederatedEvaluation {
        let clean = model.accuracy(test.features, labels: test.labels)
        var asr: Double? = nil
        if let attack = configuration.attack, case .backdoor(let trigger, let target, _) = attack.kind {
            let b = Backdoor(trigger: trigger, target: target, count: 0)
            asr = b.attackSuccessRate(model: model, triggered: b.triggered(test))
        }
        guard configuration.privacy == nil else {
            return FederatedEvaluation(
                cleanAccuracy: clean, backdoorSuccessRate: asr, clientAccuracyP10: nil, clientAccuracyP50: nil,
                clientAccuracyP90: nil)
        }
        let malicious = Set(maliciousClients)
        var accuracies: [Double] = []
        for k in 0..<clientCount where !malicious.contains(k) {
            accuracies.append(model.accuracy(clientData[k].features, labels: clientData[k].labels))
        }
        accuracies.sort()
        func percentile(_ p: Double) -> Double {
            guard !accuracies.isEmpty else { return .nan }
            // Linear interpolation between closest ranks (numpy's default).
            let h = p * Double(accuracies.count - 1)
            let lo = Int(Foundation.floor(h)), hi = min(accuracies.count - 1, lo + 1)
            return accuracies[lo] + (h - Double(lo)) * (accuracies[hi] - accuracies[lo])
        }
        return FederatedEvaluation(
            cleanAccuracy: clean, backdoorSuccessRate: asr, clientAccuracyP10: percentile(0.1),
            clientAccuracyP50: percentile(0.5), clientAccuracyP90: percentile(0.9))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
