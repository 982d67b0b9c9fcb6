import DPFederated
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// The server of a federated run over the network: it listens with TLS, waits for its `K`
/// client processes (each hosting the clients `k` with `k mod K == I`), and is the
/// ``FederatedTransport`` of the server's ``FederatedTrainer``: each round it sends the
/// assignment, and collects the updates (plain mode) or relays secure aggregation (public keys,
/// sealed shares, masked inputs, unmasking shares) and unmasks the sum.
///
/// A client process that disconnects is a dropout from then on: its sampled clients send
/// nothing. In plain mode the round goes on without them (under DP the denominator stays the
/// expected count); under secure aggregation they are recovered through the survivors' shares
/// while at least the threshold and the minimum of clients survive, and otherwise the round fails.
public final class FederatedServer: FederatedTransport {
    public struct Options: Sendable {
        public var listen: NetworkAddress
        public var certificate: String
        public var key: String
        /// `K`: the client processes.
        public var processes: Int
        /// Seconds to wait for the client processes to connect, and for each phase of a round.
        public var timeout: Double
        /// Seconds a connection may stay open without an accepted hello before it is closed.
        public var helloTimeout: Double

        public init(
            listen: NetworkAddress, certificate: String, key: String, processes: Int, timeout: Double = 600,
            helloTimeout: Double = 30
        ) {
            self.listen = listen
            self.certificate = certificate
            self.key = key
            self.processes = processes
            self.timeout = timeout
            self.helloTimeout = helloTimeout
        }
    }

    public let options: Options
    let mailbox = Mailbox()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var listener: Channel?
    /// Open connections (by connection id) and the host index of those that said hello.
    var peers: [Int: Peer] = [:]
    var hostOf: [Int: Int] = [:]
    var connectionOf: [Int: Int] = [:]
    /// Client processes that disconnected after joining.
    public private(set) var lostHosts: Set<Int> = []
    /// Called with each warning (a lost client process); default: standard error.
    public var warn: (String) -> Void = { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) }
    /// The minimum of surviving clients under secure aggregation (the config's `min_clients`).
    public var minimumSecureClients = 1
    private var shutDown = false
    /// For tests: sees every message a joined client process sends (what the server holds).
    var observe: ((Int, FederatedMessage) -> Void)?
    /// For tests: each secure round's self-mask seeds, rebuilt from the survivors' shares while
    /// unmasking (by position).
    var observeSelfSeeds: ((_ round: Int, _ seeds: [Int: [UInt8]]) -> Void)?

    public init(options: Options) throws {
        guard options.processes >= 1 else {
            throw NetworkError("--processes \(options.processes): at least one client process")
        }
        self.options = options
    }

    deinit { shutdown() }

    /// Binds the listening socket with TLS.
    /// - Returns: the port (the one chosen when the address's port is 0).
    /// - Throws: ``NetworkError`` for unusable TLS files or an address that cannot be bound.
    @discardableResult
    public func start() throws -> Int {
        let context = try TLSFiles.serverContext(certificate: options.certificate, key: options.key)
        let mailbox = self.mailbox
        let counter = ConnectionCounter()
        let helloTimeout = TimeAmount.nanoseconds(Int64(max(0.001, options.helloTimeout) * 1e9))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let id = counter.next()
                    let handler = MessageHandler(id: id, mailbox: mailbox)
                    let gate = JoinGate(joined: false)
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(gate: gate)))
                    try channel.pipeline.syncOperations.addHandler(handler)
                    // A connection without an accepted hello in time (a bare TCP connect, a stalled
                    // TLS handshake) is closed: it cannot hold memory or a slot.
                    channel.eventLoop.scheduleTask(in: helloTimeout) {
                        if !gate.isJoined { channel.close(promise: nil) }
                    }
                    mailbox.post(id, .opened(Peer(channel: channel, gate: gate)))
                }
            }
        do {
            listener = try bootstrap.bind(host: options.listen.host, port: options.listen.port).wait()
        } catch {
            let reason = "\(error)"
            let hint =
                reason.contains("in use") || reason.contains("EADDRINUSE") || reason.contains("98")
                ? "the port is in use: stop the other process or choose another port" : "check the address"
            throw NetworkError("--listen \(options.listen): cannot listen there (\(reason)); \(hint)")
        }
        return listener?.localAddress?.port ?? options.listen.port
    }

    /// Waits until all `K` client processes have connected and agreed on the run (config hash
    /// and seed); refuses others with a message that names the fix.
    /// - Throws: ``NetworkError`` when they are not all there within ``Options/timeout``.
    public func acceptClients(configHash: String, seed: Int) throws {
        let k = options.processes
        let deadline = Date(timeIntervalSinceNow: options.timeout)
        while hostOf.count < k {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let (id, event) = mailbox.next(timeout: left) else {
                let missing = (0..<k).filter { connectionOf[$0] == nil }.map { "\($0)/\(k)" }
                throw NetworkError(
                    "only \(hostOf.count) of \(k) client processes joined \(options.listen) within \(Int(options.timeout)) s; start `dpkit federated client --hosts I/\(k)` for I/K in \(missing)"
                )
            }
            switch event {
            case .opened(let peer): peers[id] = peer
            case .closed(let reason):
                if let reason, hostOf[id] == nil { warn("closed a connection that had not joined: \(reason)") }
                drop(connection: id)
            case .message(.hello(let h)):
                if let reason = refusal(h, configHash: configHash, seed: seed) {
                    warn("refused a client process: \(reason)")
                    peers[id]?.sendAndClose(.refused(reason))
                    peers[id] = nil
                } else {
                    hostOf[id] = h.host
                    connectionOf[h.host] = id
                    peers[id]?.gate.join()
                    peers[id]?.send(.welcome(configHash: configHash, seed: seed))
                }
            case .message(let m):
                refuse(connection: id, "expected hello, got \(m.kindName)")
            }
        }
    }

    func refusal(_ h: FederatedMessage.Hello, configHash: String, seed: Int) -> String? {
        if h.version != federatedProtocolVersion {
            return
                "protocol version \(h.version), but the server speaks \(federatedProtocolVersion): use the same dpkit on both sides"
        }
        if h.configHash != configHash || h.seed != seed {
            return
                "the client's config hash and seed do not match this server's run: start the client with the server's config (the same file, or one that resolves to the same run, and the same --seed)"
        }
        if h.hosts != options.processes {
            return
                "--hosts \(h.host)/\(h.hosts), but the server runs \(options.processes) client processes (--processes): use --hosts I/\(options.processes)"
        }
        if h.host < 0 || h.host >= h.hosts {
            return "--hosts \(h.host)/\(h.hosts): I must be in 0..<\(h.hosts)"
        }
        if connectionOf[h.host] != nil || lostHosts.contains(h.host) {
            return "--hosts \(h.host)/\(h.hosts) is already taken by another client process"
        }
        return nil
    }

    func refuse(connection id: Int, _ reason: String) {
        if hostOf[id] == nil {
            // Not joined: no wait on a peer that may never read.
            peers[id]?.sendAndClose(.failed(reason))
            peers[id] = nil
        } else {
            peers[id]?.sendAndWait(.failed(reason))
            drop(connection: id)
        }
    }

    /// Forgets a connection; a joined client process becomes a lost host.
    func drop(connection id: Int, reason: String? = nil) {
        peers[id]?.close()
        peers[id] = nil
        if let h = hostOf.removeValue(forKey: id) {
            connectionOf[h] = nil
            lostHosts.insert(h)
            warn(
                "client process \(h)/\(options.processes) disconnected\(reason.map { " (\($0))" } ?? ""): its clients count as dropouts from now on"
            )
        }
    }

    /// The live hosts, ascending.
    var liveHosts: [Int] { connectionOf.keys.sorted() }

    func host(of client: Int) -> Int { client % options.processes }

    /// Sends the end of training (or the failure) to every client process and closes.
    public func finish(failure: String? = nil) {
        for h in liveHosts {
            if let id = connectionOf[h], let p = peers[id] { p.sendAndWait(failure.map { .failed($0) } ?? .finished) }
        }
        shutdown()
    }

    func shutdown() {
        guard !shutDown else { return }
        shutDown = true
        for (_, p) in peers { p.close() }
        peers = [:]
        try? listener?.close().wait()
        try? group.syncShutdownGracefully()
    }

    // MARK: - Rounds

    /// Waits for the next message of a live host until `deadline` (one per phase of a round, so
    /// other connections' events cannot extend it); a disconnection is recorded and reported as
    /// nil message for that host.
    /// - Throws: ``NetworkError`` on timeout (naming the hosts still awaited) or a client's failure.
    func nextMessage(
        round: Int, deadline: Date, waitingFor: @autoclosure () -> [Int], phase: String
    ) throws -> (
        host: Int, message: FederatedMessage?
    ) {
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let (id, event) = mailbox.next(timeout: left) else {
                throw NetworkError(
                    "round \(round + 1): no \(phase) from client processes \(waitingFor().map { "\($0)/\(options.processes)" }) within \(Int(options.timeout)) s"
                )
            }
            switch event {
            case .opened(let peer):
                // A late connection: nobody may join a running experiment. Closed at once,
                // without waiting on it (it may never finish its TLS handshake).
                peer.closeNow()
            case .closed(let reason):
                guard let h = hostOf[id] else {
                    if let reason { warn("closed a connection that had not joined: \(reason)") }
                    peers[id] = nil
                    continue
                }
                drop(connection: id, reason: reason)
                return (h, nil)
            case .message(let m):
                guard let h = hostOf[id] else {
                    refuse(connection: id, "not a joined client process")
                    continue
                }
                observe?(h, m)
                if case .failed(let reason) = m {
                    throw NetworkError("round \(round + 1): client process \(h)/\(options.processes) failed: \(reason)")
                }
                return (h, m)
            }
        }
    }

    func send(_ message: FederatedMessage, to h: Int) {
        if let id = connectionOf[h], let p = peers[id] { p.send(message) }
    }

    public func collect(_ a: RoundAssignment) throws -> RoundOutcome {
        for h in liveHosts { send(.round(a), to: h) }
        // Phase 1: every live host's results (under secure aggregation: who answered, nothing more).
        var updates: [ClientUpdate] = []
        var answered = Set<Int>()
        var advertised: [Int: FederatedMessage.AdvertisedKeys] = [:]
        var advertisedHosts = Set<Int>()
        let unmask = a.secure?.unmask ?? false
        let positions = Dictionary(uniqueKeysWithValues: a.sampledClients.enumerated().map { ($1, $0) })
        func hostedPositions(_ h: Int) -> Set<Int> {
            Set(a.sampledClients.enumerated().filter { host(of: $1) == h }.map(\.offset))
        }
        let deadline = Date(timeIntervalSinceNow: options.timeout)
        while !(Set(liveHosts).isSubset(of: answered) && (!unmask || Set(liveHosts).isSubset(of: advertisedHosts))) {
            let (h, m) = try nextMessage(
                round: a.round, deadline: deadline, waitingFor: self.liveHosts.filter { !answered.contains($0) },
                phase: "updates")
            switch m {
            case nil: continue
            case .updates(let us)?:
                guard !answered.contains(h),
                    us.allSatisfy({ positions[$0.client] != nil && host(of: $0.client) == h })
                else { throw protocolFailure(h, a, "updates for clients it does not host this round") }
                if a.secure != nil, us.contains(where: { $0.update != nil }) {
                    throw protocolFailure(h, a, "an individual update under secure aggregation")
                }
                // A client's loss, finite flag and example count travel masked in its input.
                if a.secure != nil, !us.allSatisfy(\.isSecureReceipt) {
                    throw protocolFailure(h, a, "a client's diagnostics in clear under secure aggregation")
                }
                if us.contains(where: { $0.update.map { $0.count != a.global.count } ?? false }) {
                    throw protocolFailure(
                        h, a, "an update whose length is not the model's \(a.global.count) parameters")
                }
                answered.insert(h)
                updates += us
            case .advertise(let ks)? where unmask:
                guard !advertisedHosts.contains(h), ks.allSatisfy({ hostedPositions(h).contains($0.position) }) else {
                    throw protocolFailure(h, a, "keys for positions it does not host")
                }
                advertisedHosts.insert(h)
                for k in ks { advertised[k.position] = k }
            case let m?: throw protocolFailure(h, a, "an unexpected \(m.kindName) message")
            }
        }
        guard let p = a.secure else {
            let got = Set(updates.map(\.client))
            return RoundOutcome(
                updates: updates, dropped: a.sampledClients.indices.filter { !got.contains(a.sampledClients[$0]) })
        }
        guard p.unmask else { return RoundOutcome(updates: updates, dropped: p.droppedBeforeInput) }
        let sum = try secureSum(a, p, advertised: advertised, hostedPositions: hostedPositions)
        return RoundOutcome(updates: updates, secureSum: sum.sum, dropped: sum.dropped)
    }

    func protocolFailure(_ h: Int, _ a: RoundAssignment, _ what: String) -> NetworkError {
        NetworkError(
            "round \(a.round + 1): client process \(h)/\(options.processes) sent \(what); the round is abandoned")
    }

    /// Relays secure aggregation among the hosts and unmasks the sum: the server holds public
    /// keys, sealed shares it cannot open, masked inputs, and the shares that unmask the sum.
    func secureSum(
        _ a: RoundAssignment, _ p: SecureRoundParameters, advertised: [Int: FederatedMessage.AdvertisedKeys],
        hostedPositions: (Int) -> Set<Int>
    ) throws -> (sum: [UInt32], dropped: [Int]) {
        let n = a.sampledClients.count
        let needed = max(p.threshold, minimumSecureClients)
        func check(_ count: Int, _ step: String) throws {
            guard count >= needed else {
                throw FederatedError(
                    "secure aggregation: only \(count) of \(n) clients \(step), below the threshold \(p.threshold) (and minimum \(minimumSecureClients)); the round is abandoned and nothing is unmasked"
                )
            }
        }
        try check(advertised.count, "advertised keys")
        let keys = advertised.values.sorted { $0.position < $1.position }
        for h in liveHosts { send(.keys(keys), to: h) }
        // Shares: collected from every live host, then routed to the hosts of their receivers.
        var shares: [FederatedMessage.SealedShare] = []
        var shared = Set<Int>() // positions whose host sent its shares
        var answered = Set<Int>()
        var deadline = Date(timeIntervalSinceNow: options.timeout)
        while !Set(liveHosts).isSubset(of: answered) {
            let (h, m) = try nextMessage(
                round: a.round, deadline: deadline, waitingFor: self.liveHosts.filter { !answered.contains($0) },
                phase: "shares")
            switch m {
            case nil: continue
            case .shares(let ss)?:
                let mine = hostedPositions(h)
                guard !answered.contains(h), ss.allSatisfy({ mine.contains($0.from) && advertised[$0.to] != nil })
                else { throw protocolFailure(h, a, "shares from or to positions it may not use") }
                answered.insert(h)
                shares += ss
                shared.formUnion(mine.intersection(advertised.keys))
            case let m?: throw protocolFailure(h, a, "an unexpected \(m.kindName) message")
            }
        }
        try check(shared.count, "shared their keys")
        for h in liveHosts {
            let mine = hostedPositions(h)
            send(.shares(shares.filter { mine.contains($0.to) && shared.contains($0.from) }), to: h)
        }
        // Masked inputs of the survivors.
        var masked: [Int: [UInt32]] = [:]
        answered = []
        deadline = Date(timeIntervalSinceNow: options.timeout)
        while !Set(liveHosts).isSubset(of: answered) {
            let (h, m) = try nextMessage(
                round: a.round, deadline: deadline, waitingFor: self.liveHosts.filter { !answered.contains($0) },
                phase: "masked inputs")
            switch m {
            case nil: continue
            case .maskedInputs(let ms)?:
                let mine = hostedPositions(h)
                guard !answered.contains(h),
                    ms.allSatisfy({
                        mine.contains($0.position) && shared.contains($0.position)
                            && !p.droppedBeforeInput.contains($0.position)
                            && $0.words.count == FederatedTrainer.secureInputCount(parameterCount: a.global.count)
                    })
                else { throw protocolFailure(h, a, "masked inputs it may not send") }
                answered.insert(h)
                for x in ms { masked[x.position] = x.words }
            case let m?: throw protocolFailure(h, a, "an unexpected \(m.kindName) message")
            }
        }
        try check(masked.count, "sent their masked input")
        let survivors = masked.keys.sorted()
        let dropped = shared.subtracting(survivors).sorted()
        for h in liveHosts { send(.unmaskRequest(survivors: survivors, dropped: dropped), to: h) }
        var responses: [(seeds: [Int: Shamir.Share], keys: [Int: Shamir.Share])] = []
        answered = []
        deadline = Date(timeIntervalSinceNow: options.timeout)
        while !Set(liveHosts).isSubset(of: answered) {
            let (h, m) = try nextMessage(
                round: a.round, deadline: deadline, waitingFor: self.liveHosts.filter { !answered.contains($0) },
                phase: "unmasking shares")
            switch m {
            case nil: continue
            case .unmaskShares(let rs)?:
                let mine = hostedPositions(h)
                guard !answered.contains(h), rs.allSatisfy({ mine.contains($0.position) && masked[$0.position] != nil })
                else { throw protocolFailure(h, a, "unmasking shares it may not send") }
                // Shares of 32-byte secrets (X25519 keys, self-mask seeds) at points 1...n only:
                // anything else could not be interpolated.
                let wellFormed = rs.allSatisfy { r in
                    (Array(r.seeds.values) + Array(r.keys.values)).allSatisfy {
                        $0.secretLength == 32 && $0.values.count == 5 && (1...UInt64(n)).contains($0.x)
                            && $0.values.allSatisfy { $0 < Shamir.prime }
                    }
                }
                guard wellFormed else { throw protocolFailure(h, a, "malformed unmasking shares") }
                answered.insert(h)
                responses += rs.sorted { $0.position < $1.position }.map { ($0.seeds, $0.keys) }
            case let m?: throw protocolFailure(h, a, "an unexpected \(m.kindName) message")
            }
        }
        var publicKeys: [Int: Curve25519PublicKey] = [:]
        for (position, k) in advertised where shared.contains(position) {
            publicKeys[position] = try Curve25519PublicKey(rawRepresentation: k.maskKey)
        }
        let (sum, selfSeeds) = try SecureAggregation.unmask(
            masked: masked, dropped: Set(dropped), publicKeys: publicKeys, responses: responses,
            threshold: p.threshold,
            dimension: FederatedTrainer.secureInputCount(parameterCount: a.global.count), round: UInt64(a.round))
        observeSelfSeeds?(a.round, selfSeeds)
        // Every position that sent no input dropped out (configured dropouts included).
        let all = Set(0..<n)
        return (sum, all.subtracting(survivors).sorted())
    }
}

final class ConnectionCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
