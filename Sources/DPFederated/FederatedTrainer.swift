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
    /// without noise, like DP-SGD's training loss.
    public var meanLocalLoss: Double
    /// Sampled clients whose local loss became non-finite. Under DP their update counts as zero
    /// (and as clipped for adaptive clipping) instead of aborting the run, which would release
    /// a data-dependent signal; without DP the round throws instead.
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

/// Federated training simulated in one process: rounds of client sampling, local SGD on each
/// sampled client, aggregation (robust, DP-FedAvg, optionally through secure aggregation) and a
/// server optimizer step.
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

    public func flatParameters() -> [Float] { model.parameters.flatMap(\.value.scalars) }

    public func setParameters(_ flat: [Float]) {
        precondition(flat.count == layout.count, "setParameters: \(flat.count) scalars for \(layout.count)")
        var start = 0
        for p in model.parameters {
            let c = p.scalarCount
            p.value = Tensor(Array(flat[start..<(start + c)]), shape: p.value.shape)
            start += c
        }
    }

    // MARK: - One round

    /// Runs one round.
    /// - Throws: ``FederatedError`` (secure aggregation below its threshold, a robust rule on too
    ///   few updates) and ``TrainingError/nonFiniteLoss(step:loss:)``; the model is unchanged
    ///   and nothing is composed when it throws.
    @discardableResult
    public func runRound() throws -> RoundReport {
        let event = configuration.roundEvent(clientCount: clientCount)
        var sampled: [Int] = []
        sampler.nextBatch(into: &sampled)
        let global = flatParameters()
        let clock = ContinuousClock()
        let t0 = clock.now
        var updates: [[Float]] = []
        var sizes: [Double] = []
        var lossSum = 0.0
        var nonFinite = 0
        let maliciousSet = Set(maliciousClients)
        for k in sampled {
            let (update, l) = try localUpdate(client: k, from: global)
            guard var u = update else {
                // Only under DP (localUpdate throws otherwise): a zero update, counted as clipped.
                nonFinite += 1
                updates.append([Float](repeating: .nan, count: layout.count))
                sizes.append(Double(clientData[k].count))
                continue
            }
            if maliciousSet.contains(k), let attack = configuration.attack {
                var factor = attack.boost
                if case .updateScaling(let f) = attack.kind { factor *= f }
                if factor != 1 { for j in u.indices { u[j] *= Float(factor) } }
            }
            updates.append(u)
            sizes.append(Double(clientData[k].count))
            lossSum += l
        }
        let finiteClients = sampled.count - nonFinite
        setParameters(global)
        let t1 = clock.now
        var dropped: [Int] = []
        var report: PrivateRoundReport? = nil
        var skipped = false
        var aggregate: [Float]
        if var dp = dpAggregator {
            if let s = configuration.secureAggregation {
                let (sum, unclipped, drops) = try secureSum(updates, settings: s, aggregator: dp)
                dropped = drops.map { sampled[$0] }
                // Too few survivors: nothing is unmasked and the round releases noise only
                // (a zero sum over zero clients), still composed below.
                skipped = sum == nil
                (aggregate, report) = dp.release(
                    clippedSum: sum ?? [Double](repeating: 0, count: layout.count),
                    clients: sum == nil ? 0 : updates.count - drops.count, unclippedCount: unclipped, noise: &noise)
            } else {
                (aggregate, report) = dp.aggregate(updates, noise: &noise)
            }
            if let event { try ledger.record(event) }
            dpAggregator = dp
        } else if updates.isEmpty {
            aggregate = [Float](repeating: 0, count: layout.count)
        } else {
            try configuration.aggregator.check(clients: updates.count)
            aggregate = configuration.aggregator.combine(
                updates, weights: configuration.weighting == .examples ? sizes : nil)
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
        return RoundReport(
            round: round, sampledClients: sampled, maliciousClients: sampled.filter { maliciousSet.contains($0) },
            droppedClients: dropped, meanLocalLoss: finiteClients == 0 ? .nan : lossSum / Double(finiteClients),
            nonFiniteClients: nonFinite, unmaskingSkipped: skipped, privacy: report, localSeconds: (t1 - t0).seconds,
            aggregationSeconds: (t2 - t1).seconds)
    }

    /// Client `k`'s update `w_local - w_global` after E local epochs of SGD from `global`, and its
    /// mean loss in the last epoch; under DP a nil update when the local loss became non-finite.
    /// - Throws: ``TrainingError/nonFiniteLoss(step:loss:)`` for a non-finite loss without DP.
    func localUpdate(client k: Int, from global: [Float]) throws -> ([Float]?, Double) {
        setParameters(global)
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
        let trained = flatParameters()
        return (zip(trained, global).map { $0 - $1 }, lastLoss)
    }

    /// The clipped updates summed through secure aggregation: each client clips to
    /// `C_t - slack` (so that rounding to the fixed-point grid keeps its norm at most `C_t`,
    /// the sensitivity the noise is calibrated to), encodes, appends its unclipped bit as one
    /// more coordinate, and masks; the server unmasks the sum only.
    func secureSum(
        _ updates: [[Float]], settings s: SecureAggregationSettings, aggregator dp: DPFedAvgAggregator
    ) throws -> (sum: [Double]?, unclipped: Int, dropped: [Int]) {
        let n = updates.count
        let d = layout.count
        guard n >= s.minimumClients else { return (nil, 0, []) }
        let encoding = try FixedPointEncoding(scaleBits: s.scaleBits)
        let c = dp.clippingNorm
        let slack = encoding.roundingSlack(dimension: d)
        guard slack < c / 2 else {
            throw FederatedError(
                "secure aggregation: rounding \(d) coordinates to 2^-\(s.scaleBits) can add norm \(slack), too much for clipping norm \(c); use more scale bits"
            )
        }
        try encoding.checkCapacity(bound: max(c, 1), clients: n)
        let inputs = try updates.map {
            try Self.encodeClipped($0, norm: c, encoding: encoding, layout: layout, thresholds: dp.thresholds)
        }
        var drops = Set<Int>()
        for i in 0..<n where s.dropoutProbability > 0 && dropoutRandom.nextOpenUnitDouble() < s.dropoutProbability {
            drops.insert(i)
        }
        // Unmasking the sum of one or two inputs would reveal them (to each other, or outright):
        // below the minimum nothing is unmasked.
        if n - drops.count < s.minimumClients { return (nil, 0, drops.sorted()) }
        let protocolRound = try SecureAggregation(threshold: s.threshold(clients: n), clients: n)
        let result = try protocolRound.run(inputs: inputs, droppedBeforeInput: drops, round: UInt64(round))
        let decoded = encoding.decode(result.sum)
        return (Array(decoded.prefix(d)), Int(decoded[d].rounded()), drops.sorted())
    }

    /// One client's input to secure aggregation: its update clipped to `C - sqrt(d) / 2^(s+1)`
    /// (per layer: every threshold shrunk by the same factor)
    /// (so that rounding to the grid keeps the encoded update's norm at most `C`, the
    /// sensitivity the noise is calibrated to), encoded, with the unclipped bit `1[||u|| <= C]`
    /// appended as one more coordinate.
    static func encodeClipped(
        _ update: [Float], norm c: Double, encoding: FixedPointEncoding, layout: UpdateLayout, thresholds: [Double]?
    ) throws -> [UInt32] {
        var u = update
        let shrink = (c - encoding.roundingSlack(dimension: u.count)) / c
        let clipped = UpdateClipping.clip(
            &u, norm: c * shrink, layout: layout, thresholds: thresholds?.map { $0 * shrink })
        // The unclipped bit compares the real norm with C_t, as without secure aggregation.
        return try encoding.encode(u + [clipped.norm <= c ? 1 : 0], bound: max(c, 1))
    }

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
