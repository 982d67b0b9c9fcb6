import DPFederated
import NIOCore

// The wire protocol between `dpkit federated server` and its clients: one message per frame, a
// frame being a 4-byte big-endian length and that many bytes; a message is a 1-byte kind and its
// fields. Integers are big-endian (Int as Int64), Float and Double as their IEEE bit patterns
// (so models cross the wire bit for bit), arrays and strings as a count and their elements.
// Everything travels inside TLS.

/// The protocol version; a client and a server of different versions refuse each other.
public let federatedProtocolVersion = 2

/// One message of the federated protocol.
public enum FederatedMessage: Equatable, Sendable {
    /// Client -> server, first: who it is and which run it was started for.
    case hello(Hello)
    /// Server -> client: accepted, with the server's own run (config hash and seed), which the
    /// client checks in turn.
    case welcome(configHash: String, seed: Int)
    /// Server -> client: refused (the reason names the fix); the server closes the connection.
    case refused(String)
    /// Server -> clients: a round starts.
    case round(RoundAssignment)
    /// Client -> server: its hosted sampled clients' results (plain mode: with their updates;
    /// secure aggregation: ``ClientUpdate/secureReceipt`` only, who answered).
    case updates([ClientUpdate])
    /// Client -> server (secure aggregation, round 0): each hosted position's public keys.
    case advertise([AdvertisedKeys])
    /// Server -> clients: every position's public keys.
    case keys([AdvertisedKeys])
    /// Shares sealed for another position (client -> server -> client).
    case shares([SealedShare])
    /// Client -> server: masked inputs of hosted positions.
    case maskedInputs([MaskedInput])
    /// Server -> clients: which positions survived and which dropped out.
    case unmaskRequest(survivors: [Int], dropped: [Int])
    /// Client -> server: the shares that unmask the sum.
    case unmaskShares([UnmaskResponse])
    /// Server -> clients: training is over.
    case finished
    /// Either way: the sender cannot go on (the message says why).
    case failed(String)

    public struct Hello: Equatable, Sendable {
        public var version: Int
        /// `config_hash` of the run (as in runs.csv) and its seed.
        public var configHash: String
        public var seed: Int
        /// `--hosts I/K`: this process hosts the clients `k` with `k mod K == I`.
        public var host: Int
        public var hosts: Int

        public init(version: Int = federatedProtocolVersion, configHash: String, seed: Int, host: Int, hosts: Int) {
            self.version = version
            self.configHash = configHash
            self.seed = seed
            self.host = host
            self.hosts = hosts
        }
    }

    public struct AdvertisedKeys: Equatable, Sendable {
        public var position: Int
        public var maskKey: [UInt8]
        public var encryptionKey: [UInt8]
    }

    public struct SealedShare: Equatable, Sendable {
        public var from: Int
        public var to: Int
        public var sealed: [UInt8]
    }

    public struct MaskedInput: Equatable, Sendable {
        public var position: Int
        public var words: [UInt32]
    }

    public struct UnmaskResponse: Equatable, Sendable {
        public var position: Int
        public var seeds: [Int: Shamir.Share]
        public var keys: [Int: Shamir.Share]
    }
}

/// A frame or message that cannot be read.
public struct ProtocolError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - Encoding

extension FederatedMessage {
    /// The largest frame either side accepts (a model of up to 64 M parameters).
    public static let maximumFrameBytes = 256 << 20
    /// The largest frame the server accepts from a connection whose hello it has not accepted
    /// (a hello is well under 1 KiB).
    public static let maximumUnjoinedFrameBytes = 64 << 10

    /// The frame: length prefix and message.
    public func frame(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var body = allocator.buffer(capacity: 64)
        encode(into: &body)
        var out = allocator.buffer(capacity: 4 + body.readableBytes)
        out.writeInteger(UInt32(body.readableBytes))
        out.writeBuffer(&body)
        return out
    }

    func encode(into b: inout ByteBuffer) {
        switch self {
        case .hello(let h):
            b.writeInteger(UInt8(1))
            b.put(h.version)
            b.put(h.configHash)
            b.put(h.seed)
            b.put(h.host)
            b.put(h.hosts)
        case .welcome(let hash, let seed):
            b.writeInteger(UInt8(2))
            b.put(hash)
            b.put(seed)
        case .refused(let s):
            b.writeInteger(UInt8(3))
            b.put(s)
        case .round(let a):
            b.writeInteger(UInt8(4))
            b.put(a.round)
            b.put(a.sampledClients)
            b.put(a.global)
            b.writeInteger(UInt8(a.secure == nil ? 0 : 1))
            if let p = a.secure {
                b.put(p.scaleBits)
                b.put(p.clippingNorm)
                b.writeInteger(UInt8(p.layerThresholds == nil ? 0 : 1))
                if let t = p.layerThresholds { b.put(t) }
                b.put(p.threshold)
                b.put(p.droppedBeforeInput)
                b.writeInteger(UInt8(p.unmask ? 1 : 0))
            }
        case .updates(let us):
            b.writeInteger(UInt8(5))
            b.put(us.count)
            for u in us {
                b.put(u.client)
                b.writeInteger(UInt8(u.update == nil ? 0 : 1))
                if let x = u.update { b.put(x) }
                b.put(u.loss)
                b.put(u.examples)
                b.writeInteger(UInt8(u.finite ? 1 : 0))
            }
        case .advertise(let ks), .keys(let ks):
            if case .advertise = self { b.writeInteger(UInt8(6)) } else { b.writeInteger(UInt8(7)) }
            b.put(ks.count)
            for k in ks {
                b.put(k.position)
                b.put(k.maskKey)
                b.put(k.encryptionKey)
            }
        case .shares(let ss):
            b.writeInteger(UInt8(8))
            b.put(ss.count)
            for s in ss {
                b.put(s.from)
                b.put(s.to)
                b.put(s.sealed)
            }
        case .maskedInputs(let ms):
            b.writeInteger(UInt8(9))
            b.put(ms.count)
            for m in ms {
                b.put(m.position)
                b.put(m.words.count)
                for w in m.words { b.writeInteger(w) }
            }
        case .unmaskRequest(let survivors, let dropped):
            b.writeInteger(UInt8(10))
            b.put(survivors)
            b.put(dropped)
        case .unmaskShares(let rs):
            b.writeInteger(UInt8(11))
            b.put(rs.count)
            for r in rs {
                b.put(r.position)
                for map in [r.seeds, r.keys] {
                    b.put(map.count)
                    for (k, share) in map.sorted(by: { $0.key < $1.key }) {
                        b.put(k)
                        b.put(share.bytes)
                    }
                }
            }
        case .finished: b.writeInteger(UInt8(12))
        case .failed(let s):
            b.writeInteger(UInt8(13))
            b.put(s)
        }
    }

    /// Reads one message (a whole frame's body).
    /// - Throws: ``ProtocolError`` for an unknown kind, truncated fields or bytes left over.
    public init(decoding body: inout ByteBuffer) throws {
        guard let kind = body.readInteger(as: UInt8.self) else { throw ProtocolError("an empty message") }
        switch kind {
        case 1:
            self = .hello(
                Hello(
                    version: try body.int(), configHash: try body.string(), seed: try body.int(), host: try body.int(),
                    hosts: try body.int()))
        case 2: self = .welcome(configHash: try body.string(), seed: try body.int())
        case 3: self = .refused(try body.string())
        case 4:
            var a = RoundAssignment(round: try body.int(), sampledClients: try body.ints(), global: try body.floats())
            if try body.byte() == 1 {
                let scaleBits = try body.int()
                let norm = try body.double()
                let thresholds: [Double]? = try body.byte() == 1 ? try body.doubles() : nil
                a.secure = SecureRoundParameters(
                    scaleBits: scaleBits, clippingNorm: norm, layerThresholds: thresholds, threshold: try body.int(),
                    droppedBeforeInput: try body.ints(), unmask: try body.byte() == 1)
            }
            self = .round(a)
        case 5:
            self = .updates(
                try (0..<body.count(minimumBytes: 26)).map { _ in
                    let client = try body.int()
                    let update: [Float]? = try body.byte() == 1 ? try body.floats() : nil
                    return ClientUpdate(
                        client: client, update: update, loss: try body.double(), examples: try body.int(),
                        finite: try body.byte() == 1)
                })
        case 6, 7:
            let keys = try (0..<body.count(minimumBytes: 24)).map { _ in
                AdvertisedKeys(position: try body.int(), maskKey: try body.bytes(), encryptionKey: try body.bytes())
            }
            self = kind == 6 ? .advertise(keys) : .keys(keys)
        case 8:
            self = .shares(
                try (0..<body.count(minimumBytes: 24)).map { _ in
                    SealedShare(from: try body.int(), to: try body.int(), sealed: try body.bytes())
                })
        case 9:
            self = .maskedInputs(
                try (0..<body.count(minimumBytes: 16)).map { _ in
                    let position = try body.int()
                    let n = try body.count(minimumBytes: 4)
                    guard let words = body.readInts(count: n) else { throw ProtocolError("truncated masked input") }
                    return MaskedInput(position: position, words: words)
                })
        case 10: self = .unmaskRequest(survivors: try body.ints(), dropped: try body.ints())
        case 11:
            self = .unmaskShares(
                try (0..<body.count(minimumBytes: 24)).map { _ in
                    let position = try body.int()
                    var maps: [[Int: Shamir.Share]] = []
                    for _ in 0..<2 {
                        var map: [Int: Shamir.Share] = [:]
                        for _ in 0..<(try body.count(minimumBytes: 16)) {
                            let k = try body.int()
                            var bytes = try body.bytes()[...]
                            do { map[k] = try Shamir.Share(consuming: &bytes) } catch let e as FederatedError {
                                throw ProtocolError(e.description)
                            }
                        }
                        maps.append(map)
                    }
                    return UnmaskResponse(position: position, seeds: maps[0], keys: maps[1])
                })
        case 12: self = .finished
        case 13: self = .failed(try body.string())
        default: throw ProtocolError("unknown message kind \(kind)")
        }
        guard body.readableBytes == 0 else {
            throw ProtocolError("\(body.readableBytes) bytes after a message of kind \(kind)")
        }
    }

    /// A short name for errors ("round", "updates", ...).
    public var kindName: String {
        switch self {
        case .hello: "hello"
        case .welcome: "welcome"
        case .refused: "refused"
        case .round: "round"
        case .updates: "updates"
        case .advertise: "advertise"
        case .keys: "keys"
        case .shares: "shares"
        case .maskedInputs: "masked inputs"
        case .unmaskRequest: "unmask request"
        case .unmaskShares: "unmask shares"
        case .finished: "finished"
        case .failed: "failed"
        }
    }
}

extension ByteBuffer {
    mutating func put(_ v: Int) { writeInteger(Int64(v)) }
    mutating func put(_ v: Double) { writeInteger(v.bitPattern) }
    mutating func put(_ s: String) {
        put(s.utf8.count)
        writeString(s)
    }
    mutating func put(_ v: [Int]) {
        put(v.count)
        for x in v { put(x) }
    }
    mutating func put(_ v: [Double]) {
        put(v.count)
        for x in v { put(x) }
    }
    mutating func put(_ v: [Float]) {
        put(v.count)
        reserveCapacity(minimumWritableBytes: 4 * v.count)
        for x in v { writeInteger(x.bitPattern) }
    }
    mutating func put(_ v: [UInt8]) {
        put(v.count)
        writeBytes(v)
    }

    mutating func byte() throws -> UInt8 {
        guard let v = readInteger(as: UInt8.self) else { throw ProtocolError("a truncated message") }
        return v
    }
    mutating func int() throws -> Int {
        guard let v = readInteger(as: Int64.self) else { throw ProtocolError("a truncated message") }
        guard let i = Int(exactly: v) else { throw ProtocolError("an integer out of range") }
        return i
    }
    mutating func double() throws -> Double {
        guard let v = readInteger(as: UInt64.self) else { throw ProtocolError("a truncated message") }
        return Double(bitPattern: v)
    }
    /// A count of elements of at least `minimumBytes` each, checked against what is left (so a
    /// forged count cannot make the reader allocate beyond the frame).
    mutating func count(minimumBytes: Int) throws -> Int {
        let n = try int()
        guard n >= 0, n <= readableBytes / max(1, minimumBytes) else {
            throw ProtocolError("a count of \(n) beyond the \(readableBytes) bytes left")
        }
        return n
    }
    mutating func ints() throws -> [Int] { try (0..<count(minimumBytes: 8)).map { _ in try int() } }
    mutating func doubles() throws -> [Double] { try (0..<count(minimumBytes: 8)).map { _ in try double() } }
    mutating func floats() throws -> [Float] {
        let n = try count(minimumBytes: 4)
        guard let words: [UInt32] = readInts(count: n) else { throw ProtocolError("a truncated message") }
        return words.map(Float.init(bitPattern:))
    }
    mutating func bytes() throws -> [UInt8] {
        let n = try count(minimumBytes: 1)
        guard let b = readBytes(length: n) else { throw ProtocolError("a truncated message") }
        return b
    }
    mutating func string() throws -> String {
        let n = try count(minimumBytes: 1)
        guard let s = readString(length: n) else { throw ProtocolError("a truncated or non-UTF-8 string") }
        return s
    }
    mutating func readInts(count n: Int) -> [UInt32]? {
        guard readableBytes >= 4 * n else { return nil }
        var out = [UInt32](repeating: 0, count: n)
        for i in 0..<n { out[i] = readInteger(as: UInt32.self)! }
        return out
    }
}
