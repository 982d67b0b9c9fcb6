import Foundation
import Testing

@_spi(Testing) @testable import DPCrypto

/// Two RSA-3072 key pairs and a signing key, made once per test process (RSA generation takes
/// a moment).
enum TestKeys {
    static let alice = try! RecipientPrivateKey.generate()
    static let bob = try! RecipientPrivateKey.generate()
    static let signer = SigningKey.generate()
    static let otherSigner = SigningKey.generate()
}

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let url: URL
    var path: String { url.path }

    init(_ name: String = #function) throws {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dpcrypto-\(safe)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }

    func write(_ bytes: [UInt8], to name: String) throws {
        try Data(bytes).write(to: url.appendingPathComponent(name))
    }

    func read(_ name: String) -> [UInt8]? { FileManager.default.contents(atPath: file(name)).map { Array($0) } }

    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: file(name)) }

    /// Names in the folder, hidden ones included (a left-over temporary file shows here).
    var names: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Deterministic bytes: a simple counter-based pattern (no cryptography needed for test data).
func pattern(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
    var x = seed &* 0x9E37_79B9_7F4A_7C15
    return (0..<count).map { _ in
        x ^= x << 13
        x ^= x >> 7
        x ^= x << 17
        return UInt8(truncatingIfNeeded: x)
    }
}

/// The `CryptoError` a call throws (nil if none or another type).
func cryptoError(_ body: () throws -> Void) -> CryptoError? {
    do {
        try body()
        return nil
    } catch let e as CryptoError { return e } catch { return .invalidSetting("unexpected error \(error)") }
}

/// The byte offset where the chunks of an envelope start.
func headerLength(_ envelope: [UInt8]) throws -> Int {
    var source = MemorySource(envelope)
    return try EnvelopeHeader.read(from: &source, path: "<test>").1.count
}
