import DPTensor
import Foundation
import Testing

@testable import DPData

@Suite("IDX and gzip")
struct IDXTests {
    @Test(arguments: [false, true])
    func roundTrip(gzip: Bool) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (images, labels) = smallIDXPair(n: 5)
        let suffix = gzip ? ".gz" : ""
        try images.write(to: dir.file("images" + suffix), gzip: gzip)
        try labels.write(to: dir.file("labels" + suffix), gzip: gzip)
        #expect(try IDX.read(dir.file("images" + suffix), magic: IDX.imageMagic) == images)
        #expect(try IDX.read(dir.file("labels" + suffix), magic: IDX.labelMagic) == labels)

        let data = try FashionMNIST.loadIDXPair(
            images: dir.file("images" + suffix), labels: dir.file("labels" + suffix),
            classCount: 10, name: "small")
        #expect(data.features.shape == [5, 1, 4, 3])
        #expect(data.labels == [0, 1, 2, 3, 4])
        #expect(data.features[2, 0, 1, 2] == Float(((2 * 12 + 5) * 7) % 256) / 255)
    }

    @Test func gzipRoundTripOfLargeEmptyAndMultiMemberInputs() throws {
        var rng = PhiloxRandom(seed: 3)
        let big = (0..<300_000).map { _ in UInt8(truncatingIfNeeded: rng.next32() % 7) }
        #expect(try Gzip.decompress(Gzip.compress(big)) == big)
        #expect(try Gzip.decompress(Gzip.compress([])) == [])
        #expect(try Gzip.decompress(Gzip.compress([1, 2]) + Gzip.compress([3])) == [1, 2, 3])
    }

    /// A corruption of the encoded image and label files, and a fragment of the message it must produce.
    struct Corruption: CustomStringConvertible, Sendable {
        let description: String
        let expected: String
        var gzipImages = true
        let damage: @Sendable (_ images: inout [UInt8], _ labels: inout [UInt8]) -> Void
    }

    static let corruptions: [Corruption] = [
        Corruption(
            description: "truncated",
            expected: "truncated IDX file: the header's dimensions need 76 bytes, the file has 64"
        ) { images, _ in
            images.removeLast(12)
        },
        Corruption(description: "trailing bytes", expected: "3 bytes after the data") { images, _ in
            images += [1, 2, 3]
        },
        Corruption(description: "bad magic", expected: "bad IDX magic 0x00000802, expected 0x00000803") { images, _ in
            images[3] = 2
        },
        Corruption(
            description: "images given as labels",
            expected: "bad IDX magic 0x00000803, expected 0x00000801"
        ) { images, labels in
            labels = images
        },
        Corruption(description: "count mismatch", expected: "has 5 images but") { _, labels in
            labels = IDX(dimensions: [4], bytes: [0, 1, 2, 3]).encoded()
        },
        Corruption(description: "label out of range", expected: "label 12 of example 3 is out of range 0..<10") {
            _, labels in
            labels[8 + 3] = 12
        },
        Corruption(description: "not gzip but .gz name", expected: "not a gzip file", gzipImages: false) { _, _ in },
    ]

    @Test(arguments: corruptions)
    func corruptFilesGiveTheirError(_ c: Corruption) throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (imageIDX, labelIDX) = smallIDXPair(n: 5)
        var images = imageIDX.encoded(), labels = labelIDX.encoded()
        c.damage(&images, &labels)
        try dir.write(c.gzipImages ? Gzip.compress(images) : images, to: "images.gz")
        try dir.write(Gzip.compress(labels), to: "labels.gz")
        let error = dataError {
            _ = try FashionMNIST.loadIDXPair(
                images: dir.file("images.gz"), labels: dir.file("labels.gz"),
                classCount: 10, name: "bad")
        }
        let text = error?.description ?? "no error"
        #expect(text.contains(c.expected), "\(text)")
        #expect(text.contains(".gz"), "the message names the file: \(text)")
        #expect(text.contains("Fix:"), "\(text)")
    }

    @Test func truncatedAndCorruptGzip() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (images, _) = smallIDXPair(n: 50)
        let gz = Gzip.compress(images.encoded())
        try dir.write(Array(gz.prefix(gz.count / 2)), to: "cut.gz")
        var flipped = gz
        for k in 12..<(flipped.count - 8) { flipped[k] ^= 0xA5 }
        try dir.write(flipped, to: "flipped.gz")
        try dir.write([0x1f, 0x8b, 8], to: "tiny.gz")

        let cut = dataError { _ = try IDX.read(dir.file("cut.gz"), magic: IDX.imageMagic) }
        #expect(cut == .truncatedGzip(path: dir.file("cut.gz")))
        #expect(cut?.description.contains("truncated gzip stream") == true)
        let tiny = dataError { _ = try IDX.read(dir.file("tiny.gz"), magic: IDX.imageMagic) }
        #expect(tiny == .truncatedGzip(path: dir.file("tiny.gz")))
        let bad = dataError { _ = try IDX.read(dir.file("flipped.gz"), magic: IDX.imageMagic) }
        #expect(bad?.description.contains("flipped.gz") == true, "\(String(describing: bad))")
        switch bad {
        case .corruptGzip?, .truncatedGzip?: break
        default: Issue.record("flipped bytes gave \(String(describing: bad))")
        }
    }

    @Test func missingDirectoryAndFileSayHowToInstall() throws {
        let missing = dataError { _ = try FashionMNIST.load(directory: "/nonexistent/fashion") }
        #expect(missing?.description.contains("/nonexistent/fashion") == true)
        #expect(missing?.description.contains("sudo apt-get install dataset-fashion-mnist") == true)

        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        let (images, labels) = smallIDXPair(n: 3, rows: 28, columns: 28)
        try images.write(to: dir.file("train-images-idx3-ubyte.gz"), gzip: true)
        try labels.write(to: dir.file("train-labels-idx1-ubyte"), gzip: false) // raw files are accepted too
        let noTest = dataError { _ = try FashionMNIST.load(directory: dir.path) }
        #expect(
            noTest?.description.contains("t10k-images-idx3-ubyte.gz: not found") == true,
            "\(String(describing: noTest))")
        #expect(noTest?.description.contains("make data") == true)

        try images.write(to: dir.file("t10k-images-idx3-ubyte.gz"), gzip: true)
        try labels.write(to: dir.file("t10k-labels-idx1-ubyte.gz"), gzip: true)
        let (train, test) = try FashionMNIST.load(directory: dir.path)
        #expect(train.count == 3 && test.count == 3 && train.exampleShape == [1, 28, 28])
        #expect(train.classNames[9] == "Ankle boot")
    }

    @Test(
        .enabled(
            if: FileManager.default.fileExists(atPath: FashionMNIST.defaultDirectory),
            "Fashion-MNIST is not installed (sudo apt-get install dataset-fashion-mnist)"))
    func realFashionMNIST() throws {
        let (train, test) = try FashionMNIST.load()
        #expect(train.features.shape == [60000, 1, 28, 28])
        #expect(test.features.shape == [10000, 1, 28, 28])
        #expect(train.labels.allSatisfy { (0..<10).contains($0) })
        #expect(test.labels.allSatisfy { (0..<10).contains($0) })
        #expect(train.classCounts == [Int](repeating: 6000, count: 10))
        #expect(test.classCounts == [Int](repeating: 1000, count: 10))
        #expect(train.features.max() <= 1 && train.features.max() > 0.99)
    }
}
