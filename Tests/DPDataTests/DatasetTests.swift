import DPSchema
import DPTensor
import Foundation
import Testing

@testable import DPData

@Suite("Dataset, CSV, synthetic data, registry")
struct DatasetTests {
    // MARK: - Dataset

    /// 10 examples of shape [2, 3]: example i holds 100 i + k at flat position k; label i % 3.
    static func numbered() -> Dataset {
        let x = (0..<60).map { Float(($0 / 6) * 100 + $0 % 6) }
        return Dataset(
            name: "numbered", features: Tensor(x, shape: [10, 2, 3]), labels: (0..<10).map { $0 % 3 }, classCount: 3)
    }

    @Test(arguments: [[Int](), [3], [9, 0, 4, 4], Array(0..<10).reversed()])
    func gatherCopiesTheSelectedExamples(_ indices: [Int]) {
        let data = Self.numbered()
        var batch = Tensor<Float>(zeros: [1])
        var labels: [Int] = []
        data.gather(indices: indices, into: &batch, labels: &labels)
        #expect(batch.shape == [indices.count, 2, 3])
        #expect(labels == indices.map { $0 % 3 })
        for (row, i) in indices.enumerated() {
            for k in 0..<6 { #expect(batch[row, k / 3, k % 3] == Float(i * 100 + k)) }
        }
    }

    @Test func gatherReusesABatchOfTheRightShape() {
        let data = Self.numbered()
        var batch = Tensor<Float>(zeros: [3, 2, 3])
        var labels: [Int] = []
        labels.reserveCapacity(3)
        let before = batch.withUnsafeBufferPointer { $0.baseAddress }
        let labelsBefore = labels.withUnsafeBufferPointer { $0.baseAddress }
        data.gather(indices: [1, 2, 3], into: &batch, labels: &labels)
        data.gather(indices: [7, 8, 9], into: &batch, labels: &labels)
        #expect(batch.withUnsafeBufferPointer { $0.baseAddress } == before)
        #expect(labels.withUnsafeBufferPointer { $0.baseAddress } == labelsBefore)
        #expect(batch[2, 1, 2] == 905 && labels == [1, 2, 0])
    }

    @Test(arguments: [0.0, 0.3, 0.5, 1.0])
    func splitIsStratifiedDisjointAndReproducible(_ fraction: Double) {
        let data = SyntheticData.gaussianMixture(
            classes: 4, dimensions: 3, examplesPerClass: 25, separation: 2, seed: 1)
        let (a, b) = data.split(fraction: fraction, seed: 9)
        #expect(a.count == Int((fraction * 100).rounded()) && a.count + b.count == 100)
        #expect(a.classCounts.allSatisfy { abs(Double($0) - fraction * 25) <= 1 })
        // Every example lands in exactly one part: compare first features as identifiers.
        let ids =
            (a.features.scalars.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)
            + b.features.scalars.enumerated().filter { $0.offset % 3 == 0 }.map(\.element)).sorted()
        #expect(ids == data.features.scalars.enumerated().filter { $0.offset % 3 == 0 }.map(\.element).sorted())
        #expect(data.split(fraction: fraction, seed: 9).first.features == a.features)
    }

    @Test(arguments: [false, true])
    func standardizationUsesTrainingStatisticsOnly(perChannel: Bool) {
        // Two channels; train channel c is c + {0, 2} noise-free, test is shifted by 10.
        var trainX: [Float] = [], testX: [Float] = []
        for i in 0..<8 {
            for c in 0..<2 {
                for _ in 0..<4 {
                    trainX.append(Float(c + 2 * (i % 2)))
                    testX.append(Float(c + 2 * (i % 2) + 10))
                }
            }
        }
        let train = Dataset(
            name: "train", features: Tensor(trainX, shape: [8, 2, 2, 2]), labels: [Int](repeating: 0, count: 8),
            classCount: 1)
        let test = Dataset(
            name: "test", features: Tensor(testX, shape: [8, 2, 2, 2]), labels: [Int](repeating: 0, count: 8),
            classCount: 1)
        var pair = TrainTestSplit(train: train, test: test)
        let stats = pair.standardize(perChannel: perChannel)
        let expected = Standardization.fit(to: train, perChannel: perChannel)
        #expect(stats == expected)
        if perChannel {
            #expect(stats.mean == [1, 2] && stats.standardDeviation == [1, 1])
        } else {
            #expect(stats.mean == [1.5])
        }
        #expect(abs(pair.train.features.mean()) < 1e-6)
        #expect(abs(pair.test.features.mean() - 10 / stats.standardDeviation[0]) < 1e-4)
        // The test set is transformed with the training statistics, not its own.
        var refit = test
        Standardization.fit(to: test, perChannel: perChannel).apply(to: &refit)
        #expect(refit.features != pair.test.features)
    }

    @Test func constantFeaturesAreOnlyCentred() {
        let d = Dataset(name: "c", features: Tensor([3, 1, 3, 2], shape: [2, 2]), labels: [0, 0], classCount: 1)
        let s = Standardization.fit(to: d, perChannel: true)
        #expect(s.mean == [3, 1.5] && s.standardDeviation == [1, 0.5])
    }

    // MARK: - CSV

    @Test func csvWithIntegerLabels() throws {
        let text = "x1, x2,label\n1.5,2,1\n\n-3e2, 4 ,0\r\n0,0,3\n"
        let (d, columns) = try CSVDataset.parse(text, path: "t.csv", name: "t")
        #expect(columns == ["x1", "x2"])
        #expect(d.features == Tensor([1.5, 2, -300, 4, 0, 0], shape: [3, 2]))
        #expect(d.labels == [1, 0, 3] && d.classCount == 4)
    }

    @Test func csvWithStringLabelsReportsTheMapping() throws {
        let text = "species,a,b\n\"setosa\",1,2\nvirginica,3,4\nversicolor,5,6\nsetosa,7,8\n"
        let (d, columns) = try CSVDataset.parse(text, path: "iris.csv", labelColumn: "species", name: "iris")
        #expect(columns == ["a", "b"])
        #expect(d.classNames == ["setosa", "versicolor", "virginica"])
        #expect(d.labels == [0, 2, 1, 0])
        let (t, _) = try CSVDataset.parse(
            "species,a,b\nvirginica,0,0\n", path: "test.csv", labelColumn: "species",
            classNames: d.classNames, featureColumns: columns, name: "test")
        #expect(t.labels == [2] && t.classCount == 3)
    }

    static let csvErrors: [(text: String, expected: String)] = [
        ("a,b,label\n1,2,0\n3,x,1\n", "t.csv: line 3, column 'b' (2): 'x' is not a finite number"),
        ("a,b,label\n1,2,0\n3,nan,1\n", "line 3, column 'b' (2): 'nan' is not a finite number"),
        ("a,b,label\n1,2,0\n3,4\n", "t.csv: line 3: ragged row: 2 fields, the header has 3"),
        ("a,b,class\n1,2,0\n", "t.csv: line 1: no label column 'label' in the header (columns: a, b, class)"),
        ("a,label\n1,-1\n", "line 2, column 'label' (2): integer label -1 is negative"),
        (
            "a,label\n1,0\n2,1000000000000\n",
            "line 3, column 'label' (2): integer label 1000000000000 would make 1000000000001 classes"
        ),
        ("a,label\n", "no data rows after the header"),
        ("", "t.csv: line 1: the file is empty"),
    ]

    @Test(arguments: csvErrors)
    func csvErrorsNameFileLineAndColumn(_ c: (text: String, expected: String)) {
        let e = dataError { _ = try CSVDataset.parse(c.text, path: "t.csv", name: "t") }
        #expect(e?.description.contains(c.expected) == true, "\(String(describing: e))")
        #expect(e?.description.contains("Fix:") == true)
    }

    @Test func csvTestFileMustMatchTheTrainingFile() {
        let unknown = dataError {
            _ = try CSVDataset.parse(
                "a,label\n1,dog\n", path: "t.csv", classNames: ["cat"], featureColumns: ["a"], name: "t")
        }
        #expect(
            unknown?.description.contains(
                "line 2, column 'label' (2): label 'dog' is not one of the training classes [cat]") == true)
        let columns = dataError {
            _ = try CSVDataset.parse(
                "b,label\n1,cat\n", path: "t.csv", classNames: ["cat"], featureColumns: ["a"], name: "t")
        }
        #expect(columns?.description.contains("differ from the training set's [a]") == true)
    }

    // MARK: - Synthetic data

    @Test func gaussianMixtureIsReproducibleBalancedAndSeparated() {
        let a = SyntheticData.gaussianMixture(classes: 3, dimensions: 50, examplesPerClass: 200, separation: 6, seed: 4)
        let b = SyntheticData.gaussianMixture(classes: 3, dimensions: 50, examplesPerClass: 200, separation: 6, seed: 4)
        let c = SyntheticData.gaussianMixture(classes: 3, dimensions: 50, examplesPerClass: 200, separation: 6, seed: 5)
        let t = SyntheticData.gaussianMixture(
            classes: 3, dimensions: 50, examplesPerClass: 200, separation: 6, seed: 4, part: .test)
        #expect(a.features == b.features && a.labels == b.labels)
        #expect(a.features != c.features && a.features != t.features)
        #expect(a.classCounts == [200, 200, 200])
        // Nearest class mean of the training set classifies the test set well at separation 6.
        #expect(nearestMeanAccuracy(train: a, test: t) > 0.95)
    }

    @Test func shapesAreReproducibleBalancedAndInRange() {
        let a = SyntheticData.shapes(count: 200, seed: 1)
        #expect(a.features.shape == [200, 1, 28, 28])
        #expect(a.features == SyntheticData.shapes(count: 200, seed: 1).features)
        #expect(a.features != SyntheticData.shapes(count: 200, seed: 2).features)
        #expect(a.features != SyntheticData.shapes(count: 200, seed: 1, part: .test).features)
        #expect(a.classCounts == [Int](repeating: 20, count: 10))
        let scalars = a.features.scalars
        #expect(scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        // A prefix of a larger set is the smaller set: each image has its own random stream.
        #expect(SyntheticData.shapes(count: 250, seed: 1).features.rows(0..<200) == a.features)
    }

    @Test func shapesAreLearnableButNotTrivial() {
        let train = SyntheticData.shapes(count: 2000, seed: 7)
        let test = SyntheticData.shapes(count: 1000, seed: 7, part: .test)
        let accuracy = nearestMeanAccuracy(train: train, test: test)
        #expect(accuracy > 0.3 && accuracy < 0.95, "nearest-class-mean accuracy \(accuracy)")
    }

    /// The accuracy on `test` of the nearest class mean of `train` (a weak linear classifier).
    func nearestMeanAccuracy(train: Dataset, test: Dataset) -> Double {
        let d = train.exampleSize, k = train.classCount
        var means = [Double](repeating: 0, count: k * d)
        train.features.withUnsafeBufferPointer { p in
            for i in 0..<train.count { for j in 0..<d { means[train.labels[i] * d + j] += Double(p[i * d + j]) } }
        }
        let counts = train.classCounts
        for c in 0..<k { for j in 0..<d { means[c * d + j] /= Double(max(1, counts[c])) } }
        var correct = 0
        test.features.withUnsafeBufferPointer { p in
            for i in 0..<test.count {
                var best = 0, bestDistance = Double.infinity
                for c in 0..<k {
                    var s = 0.0
                    for j in 0..<d {
                        let e = Double(p[i * d + j]) - means[c * d + j]
                        s += e * e
                    }
                    if s < bestDistance {
                        bestDistance = s
                        best = c
                    }
                }
                if best == test.labels[i] { correct += 1 }
            }
        }
        return Double(correct) / Double(test.count)
    }

    // MARK: - Registry

    @Test func registryLoadsByNameWithTheSchemaDefaultsAndRejectsUnknownNames() throws {
        let registry = DatasetRegistry.standard
        #expect(registry.names == ["fashion-mnist", "synthetic-shapes", "gaussian-mixture", "csv"])
        let mixture = try registry.request(
            "gaussian-mixture", parameters: ["classes": .int(3), "dimensions": .int(4)],
            trainSize: 30, testSize: 15)
        let pair = try registry.load(mixture)
        #expect(pair.train.count == 30 && pair.test.count == 15 && pair.train.exampleShape == [4])
        #expect(try registry.trainingSetSize(mixture) == 30)
        // One default per parameter, from the schema: gaussian-mixture has 20 dimensions.
        let defaults = try registry.request("gaussian-mixture", trainSize: 8, testSize: 4)
        #expect(try registry.declaredExamples(defaults)?.shape == [20])
        #expect(try registry.load(defaults).train.exampleShape == [20])
        let shapes = try registry.load(registry.request("synthetic-shapes", trainSize: 20, testSize: 10))
        #expect(shapes.train.features.shape == [20, 1, 28, 28])

        let unknown = dataError { _ = try registry.request("mnist") }
        #expect(
            unknown?.description
                == "unknown dataset 'mnist'. Fix: use one of fashion-mnist, synthetic-shapes, gaussian-mixture, csv.")
    }

    @Test func registryLoadsCSVWithAndWithoutATestFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.cleanup() }
        var rows = "f,g,label\n"
        for i in 0..<20 { rows += "\(i),\(2 * i),\(i % 2 == 0 ? "even" : "odd")\n" }
        try dir.write(rows, to: "train.csv")
        try dir.write("f,g,label\n1,1,odd\n", to: "test.csv")
        let registry = DatasetRegistry.standard
        // Without a test file the last test_size rows (default a fifth) are held out, in file order.
        let request = try registry.request("csv", path: dir.file("train.csv"), testSize: 5)
        let held = try registry.load(request)
        #expect(held.train.count == 15 && held.test.count == 5 && held.train.classNames == ["even", "odd"])
        #expect(held.test.features[0, 0] == 15)
        #expect(try registry.trainingSetSize(request) == 15)
        #expect(try registry.trainingSetSize(registry.request("csv", path: dir.file("train.csv"))) == 16)
        // train_size larger than the file: the file's count, not train_size.
        #expect(
            try registry.trainingSetSize(registry.request("csv", path: dir.file("train.csv"), trainSize: 1000)) == 16)
        let both = try registry.load(
            registry.request(
                "csv", parameters: ["test_path": .string(dir.file("test.csv"))],
                path: dir.file("train.csv")))
        #expect(both.train.count == 20 && both.test.labels == [1])
    }
}
