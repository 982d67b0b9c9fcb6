import DPCrypto
import DPData
import Foundation

/// `dpkit bench-encryption`: envelope throughput on one core (the code is single-threaded) and
/// what encryption adds to loading Fashion-MNIST.
///
/// Throughput is plaintext megabytes (10^6 bytes) per second of wall time over a whole file on
/// the local disk with a warm page cache: file to file (read, AES-256-GCM, write, fsync,
/// link) and file to memory (as training reads an encrypted dataset). Each figure is the median
/// of `repeats` runs; RSA key generation is outside the timing, RSA wrapping and unwrapping
/// (well under a millisecond) inside.
public enum EncryptionBenchmark {
    public struct Result: Codable, Sendable {
        public var sizeBytes: Int
        public var chunkBytes: Int
        public var repeats: Int
        /// Streaming from memory to a sink that drops the bytes: the envelope code and the
        /// cipher alone, no allocation or file system.
        public var encryptStreamMBps: Double
        public var decryptStreamMBps: Double
        /// Memory to memory into a new array (page faults of fresh memory included).
        public var encryptMemoryMBps: Double
        public var decryptMemoryMBps: Double
        /// The same per second of this thread's CPU time: the speed of one core whatever else
        /// runs on the machine.
        public var encryptMemoryMBPerCPUSecond: Double
        public var decryptMemoryMBPerCPUSecond: Double
        /// File to file, fsync included: bounded by the disk.
        public var encryptFileMBps: Double
        public var decryptFileMBps: Double
        /// File (page cache) to memory: how training reads an encrypted dataset.
        public var decryptToMemoryMBps: Double
        /// Seconds to load Fashion-MNIST from the plain and from the encrypted files (median), when measured.
        public var fashionMNISTPlainSeconds: Double?
        public var fashionMNISTEncryptedSeconds: Double?

        enum CodingKeys: String, CodingKey {
            case sizeBytes = "size_bytes", chunkBytes = "chunk_bytes", repeats
            case encryptStreamMBps = "encrypt_stream_mb_per_s", decryptStreamMBps = "decrypt_stream_mb_per_s"
            case encryptMemoryMBps = "encrypt_memory_mb_per_s", decryptMemoryMBps = "decrypt_memory_mb_per_s"
            case encryptMemoryMBPerCPUSecond = "encrypt_memory_mb_per_cpu_s"
            case decryptMemoryMBPerCPUSecond = "decrypt_memory_mb_per_cpu_s"
            case encryptFileMBps = "encrypt_file_mb_per_s", decryptFileMBps = "decrypt_file_mb_per_s"
            case decryptToMemoryMBps = "decrypt_to_memory_mb_per_s"
            case fashionMNISTPlainSeconds = "fashion_mnist_plain_seconds"
            case fashionMNISTEncryptedSeconds = "fashion_mnist_encrypted_seconds"
        }

        /// Seconds encryption adds to loading Fashion-MNIST.
        public var fashionMNISTOverheadSeconds: Double? {
            guard let p = fashionMNISTPlainSeconds, let e = fashionMNISTEncryptedSeconds else { return nil }
            return e - p
        }
    }

    /// Runs the benchmark in a new folder under `directory`, removed afterwards.
    /// - Parameters:
    ///   - sizeBytes: the size of the test file (random bytes).
    ///   - fashionMNIST: a folder with the four Fashion-MNIST files to time loading; nil: skipped.
    public static func run(
        sizeBytes: Int, repeats: Int = 3, directory: URL = FileManager.default.temporaryDirectory,
        fashionMNIST: String? = nil
    ) throws -> Result {
        let fm = FileManager.default
        let work = directory.appendingPathComponent("dpkit-bench-encryption-\(UUID().uuidString)")
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: work) }
        let key = try RecipientPrivateKey.generate()
        let recipients: [EncryptionRecipient] = [.publicKey(key.publicKey)]
        let plain = work.appendingPathComponent("plain").path
        try writeRandomFile(plain, bytes: sizeBytes)

        /// Median wall seconds and median CPU seconds of this thread (user and system).
        func measure(_ body: (Int) throws -> Void) rethrows -> (wall: Double, cpu: Double) {
            var wall: [Double] = [], cpu: [Double] = []
            for i in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds, cpuStart = threadCPUSeconds()
                try body(i)
                wall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                cpu.append(threadCPUSeconds() - cpuStart)
            }
            return (wall.sorted()[wall.count / 2], cpu.sorted()[cpu.count / 2])
        }
        func median(_ body: (Int) throws -> Void) rethrows -> Double { try measure(body).wall }
        let megabytes = Double(sizeBytes) / 1e6
        var inMemory: (encrypt: (wall: Double, cpu: Double), decrypt: (wall: Double, cpu: Double)) = ((0, 0), (0, 0))
        var stream: (encrypt: Double, decrypt: Double) = (0, 0)
        do {
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: plain)))
            var envelope: [UInt8] = []
            inMemory.encrypt = try measure { _ in envelope = try Envelope.encrypt(bytes, for: recipients) }
            // Streams from the arrays (already in memory) into a sink that only counts.
            func reader(_ data: [UInt8]) -> (UnsafeMutableRawBufferPointer) -> Int {
                var offset = 0
                return { buffer in
                    let n = min(buffer.count, data.count - offset)
                    data.withUnsafeBytes {
                        buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n)
                    }
                    offset += n
                    return n
                }
            }
            var counted = 0
            stream.encrypt = try median { _ in
                try Envelope.encryptStream(read: reader(bytes), write: { counted += $0.count }, recipients: recipients)
            }
            stream.decrypt = try median { _ in
                try Envelope.decryptStream(
                    read: reader(envelope), write: { counted += $0.count }, key: .privateKey(key))
            }
            inMemory.decrypt = try measure { _ in
                let plaintext = try Envelope.decrypt(envelope, key: .privateKey(key))
                precondition(plaintext.count == sizeBytes)
            }
        }
        let encrypt = try median { i in
            try Envelope.encryptFile(at: plain, to: plain + ".\(i).dpkenc", recipients: recipients)
        }
        let decrypt = try median { i in
            try Envelope.decryptFile(at: plain + ".0.dpkenc", to: plain + ".\(i).out", key: .privateKey(key))
        }
        for i in 0..<repeats { try? fm.removeItem(atPath: plain + ".\(i).out") }
        let toMemory = try median { _ in
            let bytes = try Envelope.decryptFile(at: plain + ".0.dpkenc", key: .privateKey(key))
            precondition(bytes.count == sizeBytes)
        }
        var result = Result(
            sizeBytes: sizeBytes, chunkBytes: 1 << Int(Envelope.defaultChunkSizeLog2), repeats: repeats,
            encryptStreamMBps: megabytes / stream.encrypt, decryptStreamMBps: megabytes / stream.decrypt,
            encryptMemoryMBps: megabytes / inMemory.encrypt.wall, decryptMemoryMBps: megabytes / inMemory.decrypt.wall,
            encryptMemoryMBPerCPUSecond: megabytes / inMemory.encrypt.cpu,
            decryptMemoryMBPerCPUSecond: megabytes / inMemory.decrypt.cpu,
            encryptFileMBps: megabytes / encrypt, decryptFileMBps: megabytes / decrypt,
            decryptToMemoryMBps: megabytes / toMemory)
        for i in 0..<repeats { try? fm.removeItem(atPath: plain + ".\(i).dpkenc") }
        try? fm.removeItem(atPath: plain)

        if let source = fashionMNIST {
            let encrypted = work.appendingPathComponent("fashion-mnist").path
            try fm.createDirectory(atPath: encrypted, withIntermediateDirectories: true)
            for name in try fm.contentsOfDirectory(atPath: source) where name.contains("-ubyte") {
                try Envelope.encryptFile(
                    at: source + "/" + name, to: encrypted + "/" + name + ".dpkenc", recipients: recipients)
            }
            _ = try FashionMNIST.load(directory: source) // warm the page cache
            result.fashionMNISTPlainSeconds = try median { _ in _ = try FashionMNIST.load(directory: source) }
            result.fashionMNISTEncryptedSeconds = try median { _ in
                _ = try FashionMNIST.load(directory: encrypted, key: .privateKey(key))
            }
        }
        return result
    }

    /// CPU seconds this thread has used.
    static func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// A file of `bytes` random bytes (the system generator, 1 MiB at a time).
    static func writeRandomFile(_ path: String, bytes: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = FileHandle(forWritingAtPath: path)
        else { throw CryptoError.io(path: path, action: "create", reason: "cannot create the test file") }
        defer { try? handle.close() }
        var generator = SystemRandomNumberGenerator()
        var left = bytes
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while left > 0 {
            let n = min(left, block.count)
            block.withUnsafeMutableBytes { p in
                for i in stride(from: 0, to: n - n % 8, by: 8) {
                    p.storeBytes(of: generator.next(), toByteOffset: i, as: UInt64.self)
                }
            }
            try handle.write(contentsOf: block[..<n])
            left -= n
        }
    }
}
