import DPCrypto
import DPTensor

/// Fashion-MNIST (Xiao, Rasul and Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
/// Benchmarking Machine Learning Algorithms", 2017): 28x28 grey images of 10 kinds of
/// clothing, 60000 for training and 10000 for testing, in MNIST's IDX format.
///
/// On Debian the files come from the package `dataset-fashion-mnist`, in
/// `/usr/share/datasets/fashion-mnist/`.
public enum FashionMNIST {
    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"
    /// Images in the training and test files.
    public static let trainCount = 60_000, testCount = 10_000
    public static let classNames = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ]
    static let installFix =
        "install it with `sudo apt-get install dataset-fashion-mnist` (or `make data`), "
        + "or pass the directory that holds train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        + "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz."

    /// Loads both splits as `[N, 1, 28, 28]` images with pixels scaled to `[0, 1]`.
    ///
    /// Each file may be gzip-compressed (`.gz`) or raw (the name without `.gz`), and either may
    /// be a DPKit envelope (`<name>.dpkenc`, or under its plain name), decrypted in memory with
    /// `key`: the examples are then exactly those of the plain files.
    /// - Throws: ``DataError`` naming the file: missing (with the install command), corrupt,
    ///   encrypted without a key, mismatched image and label counts, or labels outside `0..<10`.
    public static func load(
        directory: String = defaultDirectory, key: DecryptionKey? = nil
    ) throws -> (train: Dataset, test: Dataset) {
        guard FileBytes.isDirectory(directory) else {
            throw DataError.missingFile(path: directory, fix: installFix)
        }
        let train = try loadSplit(directory: directory, prefix: "train", name: "fashion-mnist/train", key: key)
        let test = try loadSplit(directory: directory, prefix: "t10k", name: "fashion-mnist/test", key: key)
        return (train, test)
    }

    /// Loads one IDX image file and its label file as a dataset of `[N, 1, rows, columns]`
    /// images in `[0, 1]`.
    public static func loadIDXPair(
        images imagesPath: String, labels labelsPath: String, classCount: Int,
        name: String, classNames: [String] = [],
        missingFix: String = "check the path.", key: DecryptionKey? = nil
    ) throws -> Dataset {
        let images = try IDX.read(imagesPath, magic: IDX.imageMagic, missingFix: missingFix, key: key)
        let labels = try IDX.read(labelsPath, magic: IDX.labelMagic, missingFix: missingFix, key: key)
        let n = images.dimensions[0], rows = images.dimensions[1], columns = images.dimensions[2]
        guard labels.dimensions[0] == n else {
            throw DataError.countMismatch(
                imagesPath: imagesPath, imageCount: n,
                labelsPath: labelsPath, labelCount: labels.dimensions[0])
        }
        var y = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let label = Int(labels.bytes[i])
            guard label < classCount else {
                throw DataError.labelOutOfRange(path: labelsPath, index: i, label: label, classCount: classCount)
            }
            y[i] = label
        }
        var x = Tensor<Float>(zeros: [n, 1, rows, columns])
        x.withUnsafeMutableBufferPointer { dst in
            images.bytes.withUnsafeBufferPointer { src in
                for i in 0..<src.count { dst[i] = Float(src[i]) / 255 }
            }
        }
        return Dataset(name: name, features: x, labels: y, classCount: classCount, classNames: classNames)
    }

    private static func loadSplit(
        directory: String, prefix: String, name: String, key: DecryptionKey?
    ) throws -> Dataset {
        let imagesPath = locate(directory, "\(prefix)-images-idx3-ubyte")
        let data = try loadIDXPair(
            images: imagesPath, labels: locate(directory, "\(prefix)-labels-idx1-ubyte"),
            classCount: 10, name: name, classNames: classNames, missingFix: installFix, key: key)
        guard data.exampleShape == [1, 28, 28] else {
            throw DataError.unexpectedDimensions(
                path: imagesPath, found: [data.count] + data.exampleShape.array.dropFirst(),
                expected: "[N, 28, 28]")
        }
        return data
    }

    /// The first of `.gz`, raw, `.gz.dpkenc` and `.dpkenc` that exists, else the `.gz` name (so
    /// the error names the file the package installs).
    private static func locate(_ directory: String, _ base: String) -> String {
        let gz = directory + "/" + base + ".gz", raw = directory + "/" + base
        let encrypted = "." + Envelope.fileExtension
        return [gz, raw, gz + encrypted, raw + encrypted].first(where: FileBytes.exists) ?? gz
    }
}
