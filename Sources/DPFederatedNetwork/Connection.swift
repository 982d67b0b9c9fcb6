import Crypto
import DPFederated
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

// The NIO side: TLS, frames, and a mailbox that turns a connection's events into blocking
// receives for the server's and clients' driver threads (which run the federated trainer's
// synchronous code; nothing blocks an event loop).

/// An error of the networked federated run: the message names the address, file or client and the fix.
public struct NetworkError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a connection reports to its driver.
enum ConnectionEvent {
    /// A connection was accepted (server side).
    case opened(Peer)
    case message(FederatedMessage)
    /// The connection closed (with the reason, when it was an error).
    case closed(String?)
}

/// Events of one or more connections, in arrival order; receives block with a timeout.
final class Mailbox: @unchecked Sendable {
    private let condition = NSCondition()
    private var queue: [(connection: Int, event: ConnectionEvent)] = []

    func post(_ connection: Int, _ event: ConnectionEvent) {
        condition.lock()
        queue.append((connection, event))
        condition.signal()
        condition.unlock()
    }

    /// The next event, or nil when none arrives within `timeout` seconds.
    func next(timeout: Double) -> (connection: Int, event: ConnectionEvent)? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty {
            if !condition.wait(until: deadline) && queue.isEmpty { return nil }
        }
        return queue.removeFirst()
    }
}

/// Whether a connection's peer has been accepted (its hello): until then its frames are capped
/// at ``FederatedMessage/maximumUnjoinedFrameBytes``, so an unauthenticated peer cannot make the
/// server buffer a model-sized frame. Set from the driver thread, read on the event loop.
final class JoinGate: @unchecked Sendable {
    private let lock = NSLock()
    private var joined: Bool

    init(joined: Bool) { self.joined = joined }

    var isJoined: Bool {
        lock.lock()
        defer { lock.unlock() }
        return joined
    }

    func join() {
        lock.lock()
        joined = true
        lock.unlock()
    }

    var frameLimit: Int { isJoined ? FederatedMessage.maximumFrameBytes : FederatedMessage.maximumUnjoinedFrameBytes }
}

/// Length-prefixed frames (``FederatedMessage/frame(allocator:)``).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let gate: JoinGate

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        let limit = gate.frameLimit
        guard Int(length) <= limit else {
            throw ProtocolError(
                gate.isJoined
                    ? "a frame of \(length) bytes, beyond the limit of \(limit): not a DPKit federated peer"
                    : "a frame of \(length) bytes before the hello was accepted, beyond the limit of \(limit) for unjoined peers: not a DPKit federated client"
            )
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    mutating func decodeLast(
        context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws
        -> DecodingState
    {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}

/// Decodes frames into messages and posts every event to the mailbox.
final class MessageHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let id: Int
    let mailbox: Mailbox
    private var closed = false

    init(id: Int, mailbox: Mailbox) {
        self.id = id
        self.mailbox = mailbox
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        do { mailbox.post(id, .message(try FederatedMessage(decoding: &frame))) } catch {
            close(context, "\(error)")
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        close(context, Self.describe(error))
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !closed {
            closed = true
            mailbox.post(id, .closed(nil))
        }
        context.fireChannelInactive()
    }

    private func close(_ context: ChannelHandlerContext, _ reason: String) {
        if !closed {
            closed = true
            mailbox.post(id, .closed(reason))
        }
        context.close(promise: nil)
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? NIOSSLError { return "TLS: \(e)" }
        if let e = error as? BoringSSLError { return "TLS: \(e)" }
        return "\(error)"
    }
}

/// One peer: its channel and sends that never block the caller for long.
final class Peer: @unchecked Sendable {
    let channel: Channel
    let gate: JoinGate

    init(channel: Channel, gate: JoinGate = JoinGate(joined: true)) {
        self.channel = channel
        self.gate = gate
    }

    func send(_ message: FederatedMessage) {
        channel.writeAndFlush(message.frame(allocator: channel.allocator), promise: nil)
    }

    /// Sends and waits until the bytes are handed to the socket (before closing), at most
    /// `timeout` seconds: a peer that never finished its TLS handshake cannot hold the caller.
    func sendAndWait(_ message: FederatedMessage, timeout: Double = 5) {
        let done = DispatchSemaphore(value: 0)
        channel.writeAndFlush(message.frame(allocator: channel.allocator)).whenComplete { _ in done.signal() }
        _ = done.wait(timeout: .now() + timeout)
    }

    /// Sends, then closes once the bytes are written (or the write failed); returns at once.
    func sendAndClose(_ message: FederatedMessage) {
        let channel = self.channel
        channel.writeAndFlush(message.frame(allocator: channel.allocator)).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Closes without waiting.
    func closeNow() { channel.close(promise: nil) }

    /// Closes and waits, at most `timeout` seconds.
    func close(timeout: Double = 5) {
        let done = DispatchSemaphore(value: 0)
        channel.close().whenComplete { _ in done.signal() }
        _ = done.wait(timeout: .now() + timeout)
    }
}

// MARK: - TLS

enum TLSFiles {
    static func readable(_ path: String, flag: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw NetworkError("\(flag) \(path): no such file (give a PEM file)")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw NetworkError("\(flag) \(path): not readable (check its permissions)")
        }
    }

    /// The server's TLS context from a PEM certificate chain and its PEM private key.
    static func serverContext(certificate: String, key: String) throws -> NIOSSLContext {
        try readable(certificate, flag: "--tls-cert")
        try readable(key, flag: "--tls-key")
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(certificate) } catch {
            throw NetworkError("--tls-cert \(certificate): not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw NetworkError("--tls-cert \(certificate): no certificate in the file") }
        let privateKey: NIOSSLPrivateKey
        do { privateKey = try NIOSSLPrivateKey(file: key, format: .pem) } catch {
            throw NetworkError("--tls-key \(key): not a PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw NetworkError(
                "--tls-cert \(certificate) and --tls-key \(key) do not make a TLS identity (\(error)); is the key the certificate's?"
            )
        }
    }

    /// The client's TLS context: the server's certificate must chain to the CA in `ca` and name
    /// the address connected to (a DNS name, or an IP address in its subject alternative names).
    static func clientContext(ca: String) throws -> NIOSSLContext {
        try readable(ca, flag: "--ca")
        let roots: [NIOSSLCertificate]
        do { roots = try NIOSSLCertificate.fromPEMFile(ca) } catch {
            throw NetworkError("--ca \(ca): not a PEM certificate (\(error))")
        }
        guard !roots.isEmpty else { throw NetworkError("--ca \(ca): no certificate in the file") }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(roots)
        configuration.certificateVerification = .fullVerification
        configuration.minimumTLSVersion = .tlsv12
        do { return try NIOSSLContext(configuration: configuration) } catch {
            throw NetworkError("--ca \(ca): cannot build a TLS context (\(error))")
        }
    }
}

/// `HOST:PORT` (`[v6]:PORT` for IPv6).
public struct NetworkAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// - Throws: ``NetworkError`` naming the flag for anything but `HOST:PORT` with a port in 0...65535.
    public init(parsing text: String, flag: String) throws {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port), colon != text.startIndex
        else {
            throw NetworkError("\(flag) \(text): expected HOST:PORT, such as 127.0.0.1:7443")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        self.init(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Whether `host` is an IP literal (then TLS checks the certificate against the address).
    var isIPAddress: Bool { (try? SocketAddress(ipAddress: host, port: 0)) != nil }
}

typealias Curve25519PublicKey = Curve25519.KeyAgreement.PublicKey
