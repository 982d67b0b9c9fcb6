import Crypto
import DPFederated
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A client process of a federated run over the network: it hosts the clients `k` with
/// `k mod K == I` (`--hosts I/K`), connects to the server with TLS (the server's certificate
/// must chain to `--ca`), and answers each round with ``FederatedTrainer/clientUpdates(clients:assignment:)``
/// on its own trainer; under secure aggregation it runs the clients' side of the protocol
/// (``SecureAggregationClient``), sealing every share for its receiver.
public final class FederatedClient {
    public struct Options: Sendable {
        public var server: NetworkAddress
        public var ca: String
        public var host: Int
        public var hosts: Int
        /// Seconds to keep trying to reach the server.
        public var connectTimeout: Double
        /// Seconds to wait for the server's next message.
        public var timeout: Double

        public init(
            server: NetworkAddress, ca: String, host: Int, hosts: Int, connectTimeout: Double = 30,
            timeout: Double = 600
        ) {
            self.server = server
            self.ca = ca
            self.host = host
            self.hosts = hosts
            self.connectTimeout = connectTimeout
            self.timeout = timeout
        }
    }

    public let options: Options
    let mailbox = Mailbox()
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var peer: Peer?
    /// Rounds answered so far.
    public private(set) var rounds = 0
    /// For tests of dropouts: the round (from 0) in which this process disconnects as soon as
    /// the assignment arrives.
    var disconnectInRound: Int?

    /// - Throws: ``NetworkError`` for `--hosts` outside `0 <= I < K`.
    public init(options: Options) throws {
        guard options.hosts >= 1, (0..<options.hosts).contains(options.host) else {
            throw NetworkError("--hosts \(options.host)/\(options.hosts): expected I/K with 0 <= I < K")
        }
        self.options = options
    }

    deinit {
        peer?.close()
        try? group.syncShutdownGracefully()
    }

    /// Parses `I/K`.
    public static func parseHosts(_ text: String) throws -> (host: Int, hosts: Int) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let k = Int(parts[1]), k >= 1, (0..<k).contains(i) else {
            throw NetworkError("--hosts \(text): expected I/K with 0 <= I < K, such as 0/3")
        }
        return (i, k)
    }

    /// Connects (retrying until ``Options/connectTimeout``), says hello and waits for the welcome.
    /// - Throws: ``NetworkError`` when the server cannot be reached, the TLS handshake fails, or
    ///   the server refuses this client (another run, another `K`, a taken `I`).
    public func connect(configHash: String, seed: Int) throws {
        let context = try TLSFiles.clientContext(ca: options.ca)
        let address = options.server
        let hostname: String? = address.isIPAddress ? nil : address.host
        let mailbox = self.mailbox
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: hostname))
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(FrameDecoder(gate: JoinGate(joined: true))))
                    try channel.pipeline.syncOperations.addHandler(MessageHandler(id: 0, mailbox: mailbox))
                }
            }
        let deadline = Date(timeIntervalSinceNow: options.connectTimeout)
        var lastError = ""
        while peer == nil {
            do {
                peer = Peer(channel: try bootstrap.connect(host: address.host, port: address.port).wait())
            } catch {
                lastError = "\(error)"
                guard deadline.timeIntervalSinceNow > 0 else {
                    throw NetworkError(
                        "cannot reach the federated server at \(address) within \(Int(options.connectTimeout)) s (\(lastError)); is `dpkit federated server` listening there?"
                    )
                }
                Thread.sleep(forTimeInterval: 0.25)
            }
        }
        peer?.send(
            .hello(.init(configHash: configHash, seed: seed, host: options.host, hosts: options.hosts)))
        switch try next(phase: "the welcome") {
        case .welcome(let hash, let s):
            // Both sides check: a server of another run is refused here too.
            guard hash == configHash, s == seed else {
                peer?.close()
                throw NetworkError(
                    "the server at \(address) runs config hash \(hash) and seed \(s), this client \(configHash) and seed \(seed): start the client with the server's config"
                )
            }
            return
        case .refused(let reason):
            // The server names no values of its own run to an unauthenticated peer; this client's are printed here.
            throw NetworkError(
                "the server at \(address) refused this client (config hash \(configHash), seed \(seed), --hosts \(options.host)/\(options.hosts)): \(reason)"
            )
        case let m: throw NetworkError("the server at \(address) sent \(m.kindName) instead of a welcome")
        }
    }

    /// The server's next message.
    func next(phase: String) throws -> FederatedMessage {
        guard let (_, event) = mailbox.next(timeout: options.timeout) else {
            throw NetworkError(
                "no message from the server at \(options.server) within \(Int(options.timeout)) s (waiting for \(phase))"
            )
        }
        switch event {
        case .message(.failed(let reason)): throw NetworkError("the server at \(options.server) stopped: \(reason)")
        case .message(let m): return m
        case .closed(let reason):
            let tls = reason.map { $0.hasPrefix("TLS") } ?? false
            throw NetworkError(
                tls
                    ? "the TLS connection to \(options.server) failed: \(reason!) (is --ca the CA that signed the server's certificate, and does the certificate name \(options.server.host)?)"
                    : "the server at \(options.server) closed the connection\(reason.map { " (\($0))" } ?? "") while this client waited for \(phase)"
            )
        case .opened: return try next(phase: phase)
        }
    }

    /// Answers rounds until the server says training is over.
    /// - Throws: ``NetworkError`` (connection, protocol), ``FederatedError`` and training errors
    ///   of local training (sent to the server first, so the run fails with the reason).
    public func serve(trainer: FederatedTrainer) throws {
        while true {
            let message = try next(phase: "the next round")
            switch message {
            case .finished:
                peer?.close()
                return
            case .round(let a):
                if let r = disconnectInRound, a.round == r {
                    peer?.close()
                    throw NetworkError(
                        "client \(options.host)/\(options.hosts) disconnected in round \(r + 1) (on purpose)")
                }
                do { try answer(a, trainer: trainer) } catch let e as NetworkError { throw e } catch {
                    peer?.sendAndWait(.failed("\(error)"))
                    throw error
                }
                rounds += 1
            case let m: throw NetworkError("the server sent \(m.kindName) between rounds")
            }
        }
    }

    func hosted(_ a: RoundAssignment) -> [(position: Int, client: Int)] {
        a.sampledClients.enumerated().filter { $0.element % options.hosts == options.host }.map {
            ($0.offset, $0.element)
        }
    }

    func answer(_ a: RoundAssignment, trainer: FederatedTrainer) throws {
        // The round feeds UInt64 conversions and `round + 1` in messages: a negative or maximal
        // one from a faulty server is an error here, not a trap.
        guard a.round >= 0 && a.round < Int.max else {
            throw NetworkError(
                "the server's assignment has round \(a.round), not a round number in 0..<\(Int.max): the server at \(options.server) is faulty or not a DPKit federated server"
            )
        }
        let mine = hosted(a)
        guard a.sampledClients.allSatisfy({ (0..<trainer.clientCount).contains($0) }),
            a.global.count == trainer.flatParameters().count
        else {
            throw NetworkError(
                "round \(a.round + 1): the server's assignment does not fit this config (clients 0..<\(trainer.clientCount), a model of \(trainer.flatParameters().count) parameters)"
            )
        }
        let results = try trainer.clientUpdates(clients: mine.map(\.client), assignment: a)
        guard let p = a.secure else {
            peer?.send(.updates(results))
            return
        }
        // Secure aggregation: the server learns who answered, never an update or a diagnostic
        // (those travel masked in the inputs).
        peer?.send(.updates(results.map(\.secureReceipt)))
        guard p.unmask else { return }
        let n = a.sampledClients.count
        _ = try SecureAggregation(threshold: p.threshold, clients: n)
        var inputs: [Int: [UInt32]] = [:]
        var clients: [Int: SecureAggregationClient] = [:]
        for ((position, _), u) in zip(mine, results) {
            inputs[position] = try trainer.secureInput(u, parameters: p)
            clients[position] = SecureAggregationClient(index: position, round: UInt64(a.round))
        }
        peer?.send(
            .advertise(
                mine.map {
                    let c = clients[$0.position]!
                    return .init(
                        position: $0.position, maskKey: Array(c.publicKey.rawRepresentation),
                        encryptionKey: Array(c.encryptionPublicKey.rawRepresentation))
                }))
        guard case .keys(let keys) = try next(phase: "the public keys") else {
            throw NetworkError("round \(a.round + 1): the server did not send the public keys")
        }
        var maskKeys: [Int: Curve25519PublicKey] = [:]
        var encryptionKeys: [Int: Curve25519PublicKey] = [:]
        for k in keys {
            guard (0..<n).contains(k.position) else {
                throw NetworkError("the server sent a key of position \(k.position)")
            }
            maskKeys[k.position] = try Curve25519PublicKey(rawRepresentation: k.maskKey)
            encryptionKeys[k.position] = try Curve25519PublicKey(rawRepresentation: k.encryptionKey)
        }
        // Shares: kept directly for positions of this process, sealed for the others.
        var sealed: [FederatedMessage.SealedShare] = []
        for (u, c) in clients.sorted(by: { $0.key < $1.key }) {
            let shares = c.shares(threshold: p.threshold, count: n)
            for v in maskKeys.keys.sorted() {
                if let local = clients[v] {
                    local.receive(from: u, key: shares[v].key, seed: shares[v].seed)
                } else {
                    sealed.append(
                        .init(
                            from: u, to: v,
                            sealed: try c.sealShare(shares[v], to: v, peerEncryptionKey: encryptionKeys[v]!)))
                }
            }
        }
        peer?.send(.shares(sealed))
        guard case .shares(let incoming) = try next(phase: "the peers' shares") else {
            throw NetworkError("round \(a.round + 1): the server did not relay the shares")
        }
        var sharedPeers = Set(clients.keys)
        for s in incoming {
            guard let c = clients[s.to], let key = encryptionKeys[s.from] else {
                throw NetworkError(
                    "round \(a.round + 1): the server relayed a share for position \(s.to) from \(s.from)")
            }
            try c.openShare(s.sealed, from: s.from, peerEncryptionKey: key)
            sharedPeers.insert(s.from)
        }
        // Masked inputs, masked against the peers that shared their keys.
        let peers = maskKeys.filter { sharedPeers.contains($0.key) }
        var masked: [FederatedMessage.MaskedInput] = []
        for (u, c) in clients.sorted(by: { $0.key < $1.key }) where !p.droppedBeforeInput.contains(u) {
            masked.append(.init(position: u, words: try c.maskedInput(inputs[u]!, peers: peers)))
        }
        peer?.send(.maskedInputs(masked))
        guard case .unmaskRequest(let survivors, let dropped) = try next(phase: "the unmasking request") else {
            throw NetworkError("round \(a.round + 1): the server did not ask for the unmasking shares")
        }
        var responses: [FederatedMessage.UnmaskResponse] = []
        for (u, c) in clients.sorted(by: { $0.key < $1.key }) where survivors.contains(u) {
            // Refuses to reveal both shares of one client (which would unmask it).
            let r = try c.unmaskingShares(survivors: Set(survivors), dropped: Set(dropped))
            responses.append(.init(position: u, seeds: r.seeds, keys: r.keys))
        }
        peer?.send(.unmaskShares(responses))
    }
}
