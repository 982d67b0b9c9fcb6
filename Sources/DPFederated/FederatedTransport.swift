import Foundation

// One federated round split between the server and the clients, and the transport between them.
// The simulation (``InProcessTransport``) and the network (DPFederatedNetwork) run the same
// client function, ``FederatedTrainer/clientUpdate(client:assignment:)`` (and
// ``FederatedTrainer/secureInput(_:parameters:)``), and the same server functions,
// ``FederatedTrainer/beginRound()`` and ``FederatedTrainer/finishRound(_:outcome:localSeconds:)``.

/// What the server tells the clients at the start of a round.
public struct RoundAssignment: Sendable, Equatable {
    /// The round's index (0 for the first): with the seed and the client id it determines the
    /// client's local randomness.
    public var round: Int
    /// The clients sampled this round (ascending). Secure aggregation numbers them by position.
    public var sampledClients: [Int]
    /// The global model, flat.
    public var global: [Float]
    /// Under secure aggregation: what the clients need to encode and mask their inputs.
    public var secure: SecureRoundParameters?

    public init(round: Int, sampledClients: [Int], global: [Float], secure: SecureRoundParameters? = nil) {
        self.round = round
        self.sampledClients = sampledClients
        self.global = global
        self.secure = secure
    }
}

/// A secure-aggregation round's public parameters.
public struct SecureRoundParameters: Sendable, Equatable {
    public var scaleBits: Int
    /// `C_t`: the norm the clients clip to (less the rounding slack).
    public var clippingNorm: Double
    /// Per-layer thresholds at `C_t`, nil for flat clipping.
    public var layerThresholds: [Double]?
    /// Shamir threshold among the sampled clients.
    public var threshold: Int
    /// Positions (in ``RoundAssignment/sampledClients``) that the configured dropout
    /// probability removes before they send their masked input (drawn by the server).
    public var droppedBeforeInput: [Int]
    /// False when too few clients were sampled or survive for the sum to be unmasked: the round
    /// then releases noise only and no client sends an input.
    public var unmask: Bool

    public init(
        scaleBits: Int, clippingNorm: Double, layerThresholds: [Double]?, threshold: Int, droppedBeforeInput: [Int],
        unmask: Bool
    ) {
        self.scaleBits = scaleBits
        self.clippingNorm = clippingNorm
        self.layerThresholds = layerThresholds
        self.threshold = threshold
        self.droppedBeforeInput = droppedBeforeInput
        self.unmask = unmask
    }
}

/// One client's result of a round.
public struct ClientUpdate: Sendable, Equatable {
    public var client: Int
    /// `w_local - w_global`, after an attacker's scaling; nil when the local loss became
    /// non-finite (under DP), and nil in what the server receives under secure aggregation.
    public var update: [Float]?
    /// The mean local loss of the last local epoch (a non-private diagnostic, as in DP-SGD).
    public var loss: Double
    public var examples: Int
    /// False when the local loss became non-finite (the update counts as zero, clipped).
    public var finite: Bool

    public init(client: Int, update: [Float]?, loss: Double, examples: Int, finite: Bool) {
        self.client = client
        self.update = update
        self.loss = loss
        self.examples = examples
        self.finite = finite
    }
    /// What the server receives from the client under secure aggregation: only that it
    /// answered. Its update and its diagnostics (loss, finite flag) travel masked in its
    /// input (``FederatedTrainer/secureInput(_:parameters:)``); the example count not at all.
    public var secureReceipt: ClientUpdate {
        ClientUpdate(client: client, update: nil, loss: .nan, examples: 0, finite: true)
    }

    /// Whether this is a ``secureReceipt`` (field by field: a NaN loss is never `==` itself).
    public var isSecureReceipt: Bool { update == nil && loss.isNaN && examples == 0 && finite }
}

/// What the server holds at the end of a round's collection.
public struct RoundOutcome: Sendable, Equatable {
    /// The clients that answered (in any order): with their updates in plain mode, as
    /// ``ClientUpdate/secureReceipt`` (no update, no diagnostics) under secure aggregation.
    public var updates: [ClientUpdate]
    /// Under secure aggregation: the unmasked sum, mod `2^32`, of the surviving clients' encoded
    /// inputs (nil when the round was not unmasked).
    public var secureSum: [UInt32]?
    /// Positions (in ``RoundAssignment/sampledClients``) that dropped out: the configured
    /// dropouts and, over the network, clients that disconnected.
    public var dropped: [Int]

    public init(updates: [ClientUpdate], secureSum: [UInt32]? = nil, dropped: [Int] = []) {
        self.updates = updates
        self.secureSum = secureSum
        self.dropped = dropped
    }
}

/// Carries a round's assignment to the sampled clients and brings back what the server may see.
public protocol FederatedTransport {
    /// - Throws: ``FederatedError`` when the round cannot complete (secure aggregation below its
    ///   threshold, a client error); nothing is composed then.
    mutating func collect(_ assignment: RoundAssignment) throws -> RoundOutcome
}

/// The simulation: every client in this process, on the server's own trainer; secure
/// aggregation through ``SecureAggregation/run(inputs:droppedBeforeInput:round:)``.
public struct InProcessTransport: FederatedTransport {
    public let trainer: FederatedTrainer

    public init(trainer: FederatedTrainer) { self.trainer = trainer }

    public mutating func collect(_ a: RoundAssignment) throws -> RoundOutcome {
        var updates = try trainer.clientUpdates(clients: a.sampledClients, assignment: a)
        guard let p = a.secure else { return RoundOutcome(updates: updates) }
        var sum: [UInt32]? = nil
        if p.unmask {
            let inputs = try updates.map { try trainer.secureInput($0, parameters: p) }
            let protocolRound = try SecureAggregation(threshold: p.threshold, clients: inputs.count)
            sum = try protocolRound.run(
                inputs: inputs, droppedBeforeInput: Set(p.droppedBeforeInput), round: UInt64(a.round)
            ).sum
        }
        // What the server keeps: who answered, never an individual update or diagnostic.
        updates = updates.map(\.secureReceipt)
        return RoundOutcome(updates: updates, secureSum: sum, dropped: p.droppedBeforeInput)
    }
}
