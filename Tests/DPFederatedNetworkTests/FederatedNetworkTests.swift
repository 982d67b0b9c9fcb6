import Crypto
import DPData
import DPFederated
import DPLayers
import DPTensor
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

@testable import DPFederatedNetwork

// The federated protocol over real TLS sockets on 127.0.0.1 (port 0), with the server and three
// client processes as threads of this test: the final model must equal the simulation's bit for
// bit, plain and under secure aggregation; a client process that disconnects is a dropout;
// disagreeing or unreachable peers and bad TLS files get clear errors.

// MARK: - Messages

@Test func everyMessageSurvivesEncodingAndDecoding() throws {
    let share = Shamir.Share(x: 3, values: [1, 2, (1 << 61) - 2, 4, 5], secretLength: 32)
    let messages: [FederatedMessage] = [
        .hello(.init(configHash: "abc123", seed: 7, host: 1, hosts: 3)), .welcome(configHash: "abc123", seed: 7),
        .refused("no"),
        .round(
            RoundAssignment(
                round: 4, sampledClients: [0, 5, 9], global: [1.5, -0.0, .nan, .infinity, .leastNonzeroMagnitude])),
        .round(
            RoundAssignment(
                round: 0, sampledClients: [2], global: [0.25],
                secure: SecureRoundParameters(
                    scaleBits: 16, clippingNorm: 0.7, layerThresholds: [0.5, 0.49], threshold: 2,
                    droppedBeforeInput: [1], unmask: true))),
        .updates([
            ClientUpdate(client: 3, update: [1, -2, 3.5e-8], loss: 0.5, examples: 12, finite: true),
            ClientUpdate(client: 4, update: nil, loss: .nan, examples: 3, finite: false),
        ]),
        .advertise([.init(position: 0, maskKey: Array(repeating: 7, count: 32), encryptionKey: [1, 2])]),
        .keys([.init(position: 2, maskKey: [9], encryptionKey: [])]),
        .shares([.init(from: 0, to: 1, sealed: [1, 2, 3]), .init(from: 1, to: 0, sealed: [])]),
        .maskedInputs([.init(position: 1, words: [0, 1, .max])]),
        .unmaskRequest(survivors: [0, 2], dropped: [1]),
        .unmaskShares([.init(position: 0, seeds: [0: share, 2: share], keys: [1: share])]),
        .finished, .failed("why"),
    ]
    for m in messages {
        var frame = m.frame()
        #expect(frame.readInteger(as: UInt32.self) == UInt32(frame.readableBytes))
        let decoded = try FederatedMessage(decoding: &frame)
        // NaN != NaN: compare the bit patterns of the floats through a second encoding.
        #expect(decoded.frame() == m.frame(), "\(m.kindName)")
    }
    // Truncated, padded and forged counts are errors, not traps.
    var whole = FederatedMessage.updates([ClientUpdate(client: 1, update: [1, 2], loss: 0, examples: 1, finite: true)])
        .frame()
    whole.moveReaderIndex(forwardBy: 4)
    var truncated = whole.getSlice(at: whole.readerIndex, length: whole.readableBytes - 3)!
    #expect(throws: ProtocolError.self) { try FederatedMessage(decoding: &truncated) }
    var padded = whole
    padded.writeInteger(UInt8(0))
    #expect(throws: ProtocolError.self) { try FederatedMessage(decoding: &padded) }
    var forged = ByteBufferAllocator().buffer(capacity: 16)
    forged.writeInteger(UInt8(5))
    forged.writeInteger(Int64(1) << 60)
    #expect(throws: ProtocolError.self) { try FederatedMessage(decoding: &forged) }
    var unknown = ByteBufferAllocator().buffer(capacity: 1)
    unknown.writeInteger(UInt8(99))
    #expect(throws: ProtocolError.self) { try FederatedMessage(decoding: &unknown) }
}

// MARK: - Loopback federation

/// A CA and a server certificate for 127.0.0.1 and localhost, made with the openssl CLI.
struct TestCertificates {
    let directory: URL
    var ca: String { directory.appendingPathComponent("ca.pem").path }
    var certificate: String { directory.appendingPathComponent("server.pem").path }
    var key: String { directory.appendingPathComponent("server.key").path }

    static let shared: Result<TestCertificates, Error> = Result { try TestCertificates() }

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "dpkit-fednet-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let d = directory.path
        try Self.openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=DPKit test CA", "-keyout", "\(d)/ca.key", "-out", "\(d)/ca.pem")
        try Self.openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "\(d)/server.key", "-out", "\(d)/server.csr")
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
            toFile: "\(d)/san.ext", atomically: true, encoding: .utf8)
        try Self.openssl(
            "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "\(d)/san.ext", "-out", "\(d)/server.pem")
    }

    static func openssl(_ arguments: String...) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl"] + arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NetworkError("openssl \(arguments.first ?? "") failed: install openssl (make deps does)")
        }
    }
}

func federation(
    secure: Bool, dropout: Double = 0, privacy: Bool = true
) throws -> () throws -> FederatedTrainer {
    let train = SyntheticData.gaussianMixture(classes: 3, dimensions: 8, examplesPerClass: 40, separation: 4, seed: 1)
    let partition = try ClientPartition.make(labels: train.labels, classCount: 3, clients: 12, scheme: .iid, seed: 1)
    let configuration = FederatedConfiguration(
        rounds: 3, sampling: .poisson, clientsPerRound: 6,
        local: LocalTraining(epochs: 2, batchSize: 4, learningRate: 0.2),
        server: .fedAvgM(learningRate: 1, momentum: 0.5),
        privacy: privacy
            ? UserLevelPrivacy(
                noiseMultiplier: 0.8, clippingNorm: 0.5,
                clipping: .adaptive(targetQuantile: 0.5, learningRate: 0.2, countNoiseMultiplier: 2)) : nil,
        secureAggregation: secure
            ? SecureAggregationSettings(
                scaleBits: 16, thresholdFraction: 0.6, dropoutProbability: dropout, minimumClients: 2)
            : nil,
        seed: 11)
    return {
        try FederatedTrainer(
            model: try ModelBuilder.build(
                specs: [.linear(outputs: 6, bias: true), .tanh, .linear(outputs: 3, bias: true)], inputShape: [8],
                seed: 2),
            data: train, partition: partition, configuration: configuration)
    }
}

final class Box<T>: @unchecked Sendable {
    let lock = NSLock()
    var value: T
    init(_ value: T) { self.value = value }
    func set(_ v: T) {
        lock.lock()
        value = v
        lock.unlock()
    }
}

/// Runs `rounds` rounds on a server trainer with `processes` client processes (threads), each
/// with its own trainer. Returns the server's trainer, its reports and each client's error.
func runOverNetwork(
    _ make: @escaping () throws -> FederatedTrainer, rounds: Int, processes: Int = 3,
    clientHash: @escaping (Int) -> String = { _ in "hash" }, disconnect: [Int: Int] = [:], timeout: Double = 20,
    observe: ((Int, FederatedMessage) -> Void)? = nil,
    observeSelfSeeds: ((Int, [Int: [UInt8]]) -> Void)? = nil, warnings: Box<[String]>? = nil,
    beforeAccept: ((_ port: Int) throws -> Void)? = nil,
    beforeRound: ((_ port: Int, _ round: Int) throws -> Void)? = nil
) throws -> (FederatedTrainer, [Result<RoundReport, Error>], [Error?]) {
    let certs = try TestCertificates.shared.get()
    let server = try FederatedServer(
        options: .init(
            listen: NetworkAddress(host: "127.0.0.1", port: 0), certificate: certs.certificate, key: certs.key,
            processes: processes, timeout: timeout))
    server.warn = { w in
        warnings?.lock.lock()
        warnings?.value.append(w)
        warnings?.lock.unlock()
    }
    server.observe = observe
    server.observeSelfSeeds = observeSelfSeeds
    let port = try server.start()
    try beforeAccept?(port)
    let errors = Box<[Error?]>(Array(repeating: nil, count: processes))
    let group = DispatchGroup()
    for i in 0..<processes {
        group.enter()
        let thread = Thread {
            defer { group.leave() }
            do {
                let client = try FederatedClient(
                    options: .init(
                        server: NetworkAddress(host: "127.0.0.1", port: port), ca: certs.ca, host: i, hosts: processes,
                        connectTimeout: 5, timeout: 20))
                client.disconnectInRound = disconnect[i]
                try client.connect(configHash: clientHash(i), seed: 0)
                try client.serve(trainer: try make())
            } catch {
                errors.lock.lock()
                errors.value[i] = error
                errors.lock.unlock()
            }
        }
        thread.stackSize = 8 << 20
        thread.start()
    }
    let trainer = try make()
    server.minimumSecureClients = trainer.configuration.secureAggregation?.minimumClients ?? 1
    var reports: [Result<RoundReport, Error>] = []
    do {
        try server.acceptClients(configHash: "hash", seed: 0)
        var transport = server
        for round in 0..<rounds {
            try beforeRound?(port, round)
            let r = Result { try trainer.runRound(transport: &transport) }
            reports.append(r)
            if case .failure = r { break }
        }
        if case .failure(let e)? = reports.last { server.finish(failure: "\(e)") } else { server.finish() }
    } catch {
        server.finish(failure: "\(error)")
        group.wait()
        throw error
    }
    group.wait()
    return (trainer, reports, errors.value)
}

func bits(_ x: [Float]) -> [UInt32] { x.map(\.bitPattern) }

@Test(arguments: [false, true])
func threeClientProcessesOverTLSGiveTheSimulationsModelBitForBit(secure: Bool) throws {
    let make = try federation(secure: secure)
    let simulation = try make()
    var simulated: [RoundReport] = []
    for _ in 0..<3 { simulated.append(try simulation.runRound()) }
    let (network, reports, errors) = try runOverNetwork(make, rounds: 3)
    #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
    let got = try reports.map { try $0.get() }
    #expect(got.map(\.sampledClients) == simulated.map(\.sampledClients))
    #expect(got.map(\.meanLocalLoss.bitPattern) == simulated.map(\.meanLocalLoss.bitPattern))
    #expect(got.map(\.privacy) == simulated.map(\.privacy))
    #expect(got.allSatisfy { !$0.sampledClients.isEmpty })
    // Under secure aggregation every round really unmasked a sum (none skipped for too few clients).
    #expect(got.map(\.unmaskingSkipped) == Array(repeating: false, count: 3))
    #expect(simulated.map(\.unmaskingSkipped) == Array(repeating: false, count: 3))
    #expect(bits(network.flatParameters()) == bits(simulation.flatParameters()))
    #expect(network.ledger == simulation.ledger)
    #expect(network.ledger.entries.reduce(0) { $0 + $1.count } == 3)
    #expect(bits(network.flatParameters()) != bits(try make().flatParameters()))
}

@Test func underSecureAggregationTheServerHoldsNoUnmaskedUpdate() throws {
    // Everything the server receives: no individual update, and every masked input differs
    // from the client's encoded input in (almost) every word, even after the server removes the
    // self mask PRG(b_u) it rebuilds while unmasking (so the pairwise masks must be there too: a
    // word of a uniform mask equals zero with probability 2^-32; at most 1% of equal words is
    // allowed). The masks' uniformity is tested in DPFederatedTests.
    let make = try federation(secure: true)
    let received = Box<[FederatedMessage]>([])
    let selfSeeds = Box<[Int: [Int: [UInt8]]]>([:])
    let (_, reports, errors) = try runOverNetwork(
        make, rounds: 2,
        observe: { _, m in
            received.lock.lock()
            received.value.append(m)
            received.lock.unlock()
        },
        observeSelfSeeds: { round, seeds in selfSeeds.set(selfSeeds.value.merging([round: seeds]) { $1 }) })
    #expect(errors.allSatisfy { $0 == nil })
    #expect(reports.allSatisfy { (try? $0.get()) != nil })
    // The clients' true inputs, round by round, from a simulation of the same run.
    let reference = try make()
    var inputs: [[Int: [UInt32]]] = []
    for _ in 0..<2 {
        let a = try reference.beginRound()
        var byPosition: [Int: [UInt32]] = [:]
        for (position, k) in a.sampledClients.enumerated() {
            byPosition[position] = try reference.secureInput(
                try reference.clientUpdate(client: k, assignment: a), parameters: a.secure!)
        }
        inputs.append(byPosition)
        var transport = InProcessTransport(trainer: reference)
        try reference.finishRound(a, outcome: try transport.collect(a))
    }
    // Each of the 3 processes sends one diagnostics message per round, before any masked input
    // of that round can be sent (the keys go out after all of them): they count the rounds.
    var diagnostics = 0
    var maskedCount = 0
    for m in received.value {
        switch m {
        case .updates(let us):
            // Who answered, nothing more: no update, no loss, no example count.
            #expect(us.allSatisfy { $0.isSecureReceipt })
            diagnostics += 1
        case .maskedInputs(let ms):
            let round = diagnostics / 3 - 1
            for x in ms {
                maskedCount += 1
                let plain = inputs[round][x.position]!
                let equal = zip(plain, x.words).filter { $0 == $1 }.count
                #expect(equal * 100 <= plain.count, "position \(x.position): \(equal) of \(plain.count) words unmasked")
                // Without the self mask: what the server can compute once it rebuilt b_u.
                guard let seed = selfSeeds.value[round]?[x.position] else {
                    Issue.record("round \(round + 1): no self-mask seed rebuilt for position \(x.position)")
                    continue
                }
                let selfMask = try MaskGenerator.expand(seed: SymmetricKey(data: seed), count: x.words.count)
                let withoutSelfMask = zip(x.words, selfMask).map { $0 &- $1 }
                let exposed = zip(plain, withoutSelfMask).filter { $0 == $1 }.count
                #expect(
                    exposed * 100 <= plain.count,
                    "position \(x.position): \(exposed) of \(plain.count) words exposed without the self mask")
            }
        default: break
        }
    }
    #expect(maskedCount >= 6)
    #expect(selfSeeds.value.keys.sorted() == [0, 1])
}

@Test func configuredSecureAggregationDropoutsMatchTheSimulation() throws {
    // Dropout probability 0.3: the server draws the same dropouts; the survivors' shares unmask.
    let make = try federation(secure: true, dropout: 0.3)
    let simulation = try make()
    var dropped: [[Int]] = []
    for _ in 0..<3 { dropped.append(try simulation.runRound().droppedClients) }
    #expect(dropped.contains { !$0.isEmpty })
    let (network, reports, errors) = try runOverNetwork(make, rounds: 3)
    #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
    #expect(try reports.map { try $0.get().droppedClients } == dropped)
    #expect(bits(network.flatParameters()) == bits(simulation.flatParameters()))
}

/// The simulation with the clients of `host` (of `hosts`) gone from round `from` on: what the
/// server must compute when that client process disconnects.
struct LosingTransport: FederatedTransport {
    var inner: InProcessTransport
    let host: Int, hosts: Int, from: Int

    mutating func collect(_ a: RoundAssignment) throws -> RoundOutcome {
        guard a.round >= from else { return try inner.collect(a) }
        let lost = Set(a.sampledClients.indices.filter { a.sampledClients[$0] % hosts == host })
        let t = inner.trainer
        var updates = try a.sampledClients.filter { $0 % hosts != host }.map {
            try t.clientUpdate(client: $0, assignment: a)
        }
        guard let p = a.secure else {
            return RoundOutcome(updates: updates, dropped: lost.sorted())
        }
        guard p.unmask else { return RoundOutcome(updates: updates, dropped: p.droppedBeforeInput) }
        // The plain fixed-point sum of the survivors' inputs (what unmasking must give).
        var sum = [UInt32](repeating: 0, count: FederatedTrainer.secureInputCount(parameterCount: a.global.count))
        let gone = lost.union(p.droppedBeforeInput)
        for (position, k) in a.sampledClients.enumerated() where !gone.contains(position) {
            let x = try t.secureInput(try t.clientUpdate(client: k, assignment: a), parameters: p)
            for j in sum.indices { sum[j] &+= x[j] }
        }
        updates = updates.map(\.secureReceipt)
        return RoundOutcome(updates: updates, secureSum: sum, dropped: gone.sorted())
    }
}

@Test(arguments: [false, true])
func aClientProcessThatDisconnectsIsADropout(secure: Bool) throws {
    // Client process 3 of 4 disconnects when round 2 arrives: from then on its clients send
    // nothing. Plain DP: the sum of the others over the expected count; secure: the others'
    // inputs unmasked (their pairwise masks with the lost clients never formed). Both equal a
    // simulation without those clients, bit for bit.
    let make = try federation(secure: secure)
    let expected = try make()
    var transport = LosingTransport(inner: InProcessTransport(trainer: expected), host: 3, hosts: 4, from: 1)
    var simulated: [RoundReport] = []
    for _ in 0..<3 { simulated.append(try expected.runRound(transport: &transport)) }
    let (network, reports, errors) = try runOverNetwork(make, rounds: 3, processes: 4, disconnect: [3: 1])
    #expect(errors[0] == nil && errors[1] == nil && errors[2] == nil && errors[3] != nil)
    let got = try reports.map { try $0.get() }
    #expect(got.map(\.droppedClients) == simulated.map(\.droppedClients))
    #expect(got[1].droppedClients.contains { $0 % 4 == 3 } && got[2].droppedClients.contains { $0 % 4 == 3 })
    #expect(got.map(\.meanLocalLoss.bitPattern) == simulated.map(\.meanLocalLoss.bitPattern))
    #expect(bits(network.flatParameters()) == bits(expected.flatParameters()))
}

@Test func secureAggregationBelowTheThresholdFailsTheRoundClearly() throws {
    // Two of three client processes gone: fewer than the threshold survive, and the round fails
    // with an error that says so (nothing is unmasked, nothing composed).
    let make = try federation(secure: true)
    let (network, reports, _) = try runOverNetwork(make, rounds: 3, disconnect: [1: 1, 2: 1])
    guard case .failure(let error)? = reports.last else {
        Issue.record("the round with two of three client processes gone did not fail")
        return
    }
    #expect("\(error)".contains("below the threshold"), "\(error)")
    #expect(network.ledger.entries.reduce(0) { $0 + $1.count } == 1)
}

@Test func aClientOfAnotherRunIsRefused() throws {
    let make = try federation(secure: false)
    #expect(throws: NetworkError.self) {
        _ = try runOverNetwork(
            make, rounds: 1, processes: 2, clientHash: { $0 == 1 ? "other" : "hash" }, timeout: 2)
    }
    // The client's own error names the config hash; the server times out naming the missing I/K.
    let certs = try TestCertificates.shared.get()
    let server = try FederatedServer(
        options: .init(
            listen: NetworkAddress(host: "127.0.0.1", port: 0), certificate: certs.certificate, key: certs.key,
            processes: 1, timeout: 2))
    server.warn = { _ in }
    let port = try server.start()
    let clientError = Box<Error?>(nil)
    let done = DispatchSemaphore(value: 0)
    Thread {
        do {
            let c = try FederatedClient(
                options: .init(server: .init(host: "127.0.0.1", port: port), ca: certs.ca, host: 0, hosts: 1))
            try c.connect(configHash: "other", seed: 0)
        } catch { clientError.set(error) }
        done.signal()
    }.start()
    #expect {
        try server.acceptClients(configHash: "server-run-hash", seed: 12345)
    } throws: { "\($0)".contains("0/1") }
    done.wait()
    server.finish()
    let refusal = "\(clientError.value.map { "\($0)" } ?? "")"
    #expect(refusal.contains("config hash other"), "\(refusal)")
    // The refusal tells an unauthenticated peer nothing of the server's run.
    #expect(!refusal.contains("server-run-hash") && !refusal.contains("12345"), "\(refusal)")
}

@Test func unreachableServersBusyPortsAndBadTLSFilesAreClearErrors() throws {
    let certs = try TestCertificates.shared.get()
    // Unreachable: nothing listens on the port of a closed server.
    let probe = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: 0), certificate: certs.certificate, key: certs.key, processes: 1))
    let port = try probe.start()
    // Port in use.
    let second = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: port), certificate: certs.certificate, key: certs.key, processes: 1))
    #expect { try second.start() } throws: { "\($0)".contains("127.0.0.1:\(port)") && "\($0)".contains("in use") }
    probe.finish()
    let client = try FederatedClient(
        options: .init(
            server: .init(host: "127.0.0.1", port: port), ca: certs.ca, host: 0, hosts: 1, connectTimeout: 0.5))
    #expect { try client.connect(configHash: "h", seed: 0) } throws: {
        "\($0)".contains("cannot reach the federated server at 127.0.0.1:\(port)")
    }
    // Bad TLS files.
    let missing = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: 0), certificate: "/nonexistent.pem", key: certs.key, processes: 1))
    #expect { try missing.start() } throws: { "\($0)".contains("--tls-cert /nonexistent.pem: no such file") }
    let swapped = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: 0), certificate: certs.key, key: certs.certificate, processes: 1))
    #expect { try swapped.start() } throws: { "\($0)".contains("--tls-cert") }
    let noCA = try FederatedClient(
        options: .init(server: .init(host: "127.0.0.1", port: port), ca: "/nonexistent-ca.pem", host: 0, hosts: 1))
    #expect { try noCA.connect(configHash: "h", seed: 0) } throws: { "\($0)".contains("--ca /nonexistent-ca.pem") }
    #expect(throws: NetworkError.self) { try FederatedClient.parseHosts("3/3") }
    #expect(throws: NetworkError.self) { try NetworkAddress(parsing: "localhost", flag: "--listen") }
}

@Test func aClientThatDoesNotTrustTheServersCertificateRefusesIt() throws {
    // A CA that did not sign the server's certificate: the TLS handshake fails with a message.
    let certs = try TestCertificates.shared.get()
    let other = try TestCertificates()
    let server = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: 0), certificate: certs.certificate, key: certs.key, processes: 1,
            timeout: 2))
    server.warn = { _ in }
    let port = try server.start()
    defer { server.finish() }
    let client = try FederatedClient(
        options: .init(server: .init(host: "127.0.0.1", port: port), ca: other.ca, host: 0, hosts: 1, timeout: 5))
    #expect { try client.connect(configHash: "h", seed: 0) } throws: { "\($0)".contains("TLS") }
}

@Test(arguments: [-1, Int.min, Int.max])
func aRoundNumberOutOfRangeFromTheServerIsAnErrorNotATrap(round: Int) throws {
    // The round feeds UInt64(round) in the client's local randomness and secure aggregation, and
    // `round + 1` in messages: a faulty server's round must be refused before any of that.
    let make = try federation(secure: true)
    let trainer = try make()
    let client = try FederatedClient(
        options: .init(server: .init(host: "127.0.0.1", port: 1), ca: "/nonexistent-ca.pem", host: 0, hosts: 1))
    let a = RoundAssignment(round: round, sampledClients: [0, 1], global: trainer.flatParameters())
    #expect { try client.answer(a, trainer: trainer) } throws: {
        $0 is NetworkError && "\($0)".contains("round \(round)")
    }
}

// MARK: - Unauthenticated peers

/// A connection to the server that never says hello: plain TCP (no TLS handshake), or TLS.
func strayConnection(port: Int, group: EventLoopGroup, tls: Bool) throws -> Channel {
    let context = tls ? try TLSFiles.clientContext(ca: try TestCertificates.shared.get().ca) : nil
    return try ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let context {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: nil))
                }
            }
        }
        .connect(host: "127.0.0.1", port: port).wait()
}

/// Whether `channel` is closed within `seconds`.
func closes(_ channel: Channel, within seconds: Double) -> Bool {
    let done = DispatchSemaphore(value: 0)
    channel.closeFuture.whenComplete { _ in done.signal() }
    return done.wait(timeout: .now() + seconds) == .success
}

@Test func aBareTCPConnectionDuringARunDoesNotStopIt() throws {
    // Before rounds 2 and 3 a peer opens a TCP connection and never starts TLS: the server closes
    // it without waiting on it, and the run finishes with the simulation's model.
    let make = try federation(secure: true)
    let simulation = try make()
    for _ in 0..<3 { try simulation.runRound() }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let strays = Box<[Channel]>([])
    let (network, reports, errors) = try runOverNetwork(
        make, rounds: 3,
        beforeRound: { port, round in
            if round > 0 { strays.value.append(try strayConnection(port: port, group: group, tls: false)) }
        })
    #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
    #expect(reports.count == 3 && reports.allSatisfy { (try? $0.get()) != nil }, "\(reports)")
    #expect(bits(network.flatParameters()) == bits(simulation.flatParameters()))
    #expect(strays.value.count == 2 && strays.value.allSatisfy { closes($0, within: 5) })
}

@Test func anOversizedFrameBeforeTheHelloClosesThatConnectionAndTheRunGoesOn() throws {
    // Over TLS, before any hello (while the server waits for its client processes), a peer
    // announces a 1 MiB frame (beyond the 64 KiB allowed before a hello is accepted): the server
    // closes that connection with an error naming the limit, at once (not after buffering the
    // frame), and the run goes on.
    let make = try federation(secure: false)
    let simulation = try make()
    for _ in 0..<2 { try simulation.runRound() }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let warnings = Box<[String]>([])
    let stray = Box<Channel?>(nil)
    let (network, reports, errors) = try runOverNetwork(
        make, rounds: 2, warnings: warnings,
        beforeAccept: { port in
            let channel = try strayConnection(port: port, group: group, tls: true)
            var frame = channel.allocator.buffer(capacity: 1028)
            frame.writeInteger(UInt32(1 << 20))
            frame.writeBytes([UInt8](repeating: 7, count: 1024))
            try channel.writeAndFlush(frame).wait()
            stray.set(channel)
        })
    #expect(errors.allSatisfy { $0 == nil }, "\(errors)")
    #expect(reports.count == 2 && reports.allSatisfy { (try? $0.get()) != nil }, "\(reports)")
    #expect(bits(network.flatParameters()) == bits(simulation.flatParameters()))
    #expect(stray.value.map { closes($0, within: 5) } == true)
    #expect(
        warnings.value.contains { $0.contains("before the hello") && $0.contains("\(64 << 10)") }, "\(warnings.value)")
}

@Test func aConnectionWithoutAHelloIsClosedAfterTheHelloTimeout() throws {
    let certs = try TestCertificates.shared.get()
    let server = try FederatedServer(
        options: .init(
            listen: .init(host: "127.0.0.1", port: 0), certificate: certs.certificate, key: certs.key, processes: 1,
            timeout: 5, helloTimeout: 0.5))
    server.warn = { _ in }
    let port = try server.start()
    defer { server.finish() }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let bare = try strayConnection(port: port, group: group, tls: false)
    let idle = try strayConnection(port: port, group: group, tls: true)
    #expect(closes(bare, within: 5) && closes(idle, within: 5))
}
