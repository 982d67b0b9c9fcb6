import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

let elementwiseShapes: [Shape] = [[1], [0, 4], [3, 5], [2, 3, 4]]

func checkElementwise<S: TensorScalar>(_: S.Type, shape: Shape) {
    let a: Tensor<S> = randomTensor(shape, seed: 11)
    var b: Tensor<S> = randomTensor(shape, seed: 12)
    b.add(3) // keep the divisor away from 0
    let (da, db) = (doubles(a), doubles(b))
    let tol = tolerance(S.self)
    expectClose(doubles(a + b), zip(da, db).map(+), tol: tol, "+")
    expectClose(doubles(a - b), zip(da, db).map(-), tol: tol, "-")
    expectClose(doubles(a * b), zip(da, db).map(*), tol: tol, "*")
    expectClose(doubles(a / b), zip(da, db).map(/), tol: tol, "/")
    expectClose(doubles(a * 2), da.map { 2 * $0 }, tol: tol, "a * s")
    expectClose(doubles(2 * a), da.map { 2 * $0 }, tol: tol, "s * a")
    expectClose(doubles(a + 1), da.map { 1 + $0 }, tol: tol, "a + s")
    expectClose(doubles(a - 1), da.map { $0 - 1 }, tol: tol, "a - s")
    expectClose(doubles(-a), da.map { -$0 }, tol: tol, "-a")
    expectClose(doubles(relu(a)), da.map { max($0, 0) }, tol: tol, "relu")
    expectClose(doubles(tanh(a)), da.map { Glibc.tanh($0) }, tol: tol, "tanh")
    expectClose(doubles(sigmoid(a)), da.map { 1 / (1 + Glibc.exp(-$0)) }, tol: tol, "sigmoid")
    expectClose(doubles(exp(a)), da.map { Glibc.exp($0) }, tol: tol, "exp")
    expectClose(doubles(log(b)), db.map { Glibc.log($0) }, tol: tol, "log")
    // Each in-place form gives exactly what its function gives.
    let inPlace: [(name: String, x: Tensor<S>, apply: (inout Tensor<S>) -> Void, function: (Tensor<S>) -> Tensor<S>)] =
        [
            ("relu", a, { $0.applyRelu() }, { relu($0) }), ("tanh", a, { $0.applyTanh() }, { tanh($0) }),
            ("sigmoid", a, { $0.applySigmoid() }, { sigmoid($0) }), ("exp", a, { $0.applyExp() }, { exp($0) }),
            ("log", b, { $0.applyLog() }, { log($0) }),
        ]
    for op in inPlace {
        var y = op.x
        op.apply(&y)
        #expect(y == op.function(op.x), "\(op.name)")
    }
}

@Test("element-wise arithmetic and activations against scalar math", arguments: elementwiseShapes)
func elementwiseMatchesScalarMath(shape: Shape) {
    checkElementwise(Float.self, shape: shape)
    checkElementwise(Double.self, shape: shape)
}

func checkSaturation<S: TensorScalar>(_: S.Type) {
    let x = Tensor<S>([-1000, -100, -20, 0, 20, 100, 1000])
    let s = sigmoid(x).scalars
    #expect(s.allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
    #expect(s[0] == 0 && s[6] == 1 && s[3] == 0.5)
    #expect(abs(Double(s[2]) - 2.061153622438558e-09) < 1e-15 + 1e-5 * 2.06e-9)
    let t = tanh(x).scalars
    #expect(t[0] == -1 && t[6] == 1 && t[3] == 0)
    #expect(relu(x).scalars == [0, 0, 0, 0, 20, 100, 1000])
    #expect(exp(Tensor<S>([-1000])).scalar == 0)
    #expect(log(Tensor<S>([0])).scalar == -.infinity)
}

@Test("sigmoid, tanh, exp, log at large |x| saturate without NaN")
func activationsSaturate() {
    checkSaturation(Float.self)
    checkSaturation(Double.self)
}

@Test("addRowVector and scaleRows")
func broadcastOps() {
    var a: Tensor<Double> = randomTensor([4, 3], seed: 13)
    let a0 = a
    let row = Tensor<Double>([1, 2, 3])
    a.addRowVector(row)
    for i in 0..<4 { for j in 0..<3 { #expect(abs(a[i, j] - (a0[i, j] + row[j])) < 1e-15) } }
    let f = Tensor<Double>([1, 0, -2, 0.5])
    var b = a0
    b.scaleRows(by: f)
    for i in 0..<4 { for j in 0..<3 { #expect(abs(b[i, j] - a0[i, j] * f[i]) < 1e-15) } }
}

// MARK: - Reductions

func naiveAxisSum(_ d: [Double], _ shape: Shape, axis: Int) -> [Double] {
    var outer = 1, inner = 1
    for i in 0..<axis { outer *= shape[i] }
    for i in (axis + 1)..<shape.rank { inner *= shape[i] }
    let n = shape[axis]
    var out = [Double](repeating: 0, count: outer * inner)
    for o in 0..<outer { for k in 0..<n { for i in 0..<inner { out[o * inner + i] += d[(o * n + k) * inner + i] } } }
    return out
}

func checkReductions<S: TensorScalar>(_: S.Type, shape: Shape) {
    let a: Tensor<S> = randomTensor(shape, seed: 14)
    let d = doubles(a)
    let tol = tolerance(S.self) * 10
    expectClose([Double(a.sum())], [d.reduce(0, +)], tol: tol, "sum \(shape)")
    if d.isEmpty {
        #expect(a.mean().isNaN)
    } else {
        expectClose([Double(a.mean())], [d.reduce(0, +) / Double(d.count)], tol: tol, "mean \(shape)")
        #expect(Double(a.max()) == d.max()!)
        #expect(a.argmax() == d.firstIndex(of: d.max()!)!)
    }
    for axis in 0..<shape.rank {
        var outShape = shape.array
        outShape.remove(at: axis)
        let s = a.sum(alongAxis: axis)
        #expect(s.shape == Shape(outShape))
        let ref = naiveAxisSum(d, shape, axis: axis)
        expectClose(doubles(s), ref, tol: tol, "sum axis \(axis) \(shape)")
        let m = a.mean(alongAxis: axis)
        if shape[axis] == 0 {
            #expect(m.scalars.allSatisfy { $0.isNaN })
        } else {
            expectClose(doubles(m), ref.map { $0 / Double(shape[axis]) }, tol: tol, "mean axis \(axis) \(shape)")
        }
    }
    if shape.rank >= 1 && (shape.trailingCount > 0 || shape[0] == 0) {
        let cols = shape.trailingCount
        let ref = (0..<shape[0]).map { r in
            let row = Array(d[(r * cols)..<((r + 1) * cols)])
            return row.firstIndex(of: row.max()!)!
        }
        #expect(a.argmaxRows() == ref)
    }
}

@Test(
    "sum, mean (all and per axis), max, argmax, argmaxRows against loops",
    arguments: [[1], [1, 1], [0, 3], [3, 0], [5, 7], [2, 3, 4], [1000]] as [Shape])
func reductionsMatchNaive(shape: Shape) {
    checkReductions(Float.self, shape: shape)
    checkReductions(Double.self, shape: shape)
}

@Test("sum of many Floats stays accurate")
func longSumAccuracy() {
    let n = 1 << 20
    let a = Tensor<Float>(repeating: 0.1, shape: [n])
    #expect(abs(Double(a.sum()) - Double(Float(0.1)) * Double(n)) < 1e-3)
}

@Test("argmax takes the first of ties")
func argmaxTies() {
    let a = Tensor<Float>([1, 3, 3, 2, 3, 3], shape: [2, 3])
    #expect(a.argmax() == 1)
    #expect(a.argmaxRows() == [1, 1])
}

// MARK: - Softmax

func checkSoftmax<S: TensorScalar>(_: S.Type, scale: Double) {
    var logits: Tensor<S> = randomTensor([6, 10], seed: 15)
    logits.scale(by: S(scale))
    let d = doubles(logits)
    var refLog = [Double](), refSoft = [Double]()
    for r in 0..<6 {
        let row = Array(d[(r * 10)..<((r + 1) * 10)])
        let m = row.max()!
        let lse = m + Glibc.log(row.map { Glibc.exp($0 - m) }.reduce(0, +))
        refLog += row.map { $0 - lse }
        refSoft += row.map { Glibc.exp($0 - lse) }
    }
    let ls = logSoftmax(logits), sm = softmax(logits)
    #expect(ls.scalars.allSatisfy { $0.isFinite })
    expectClose(doubles(ls), refLog, tol: tolerance(S.self) * 10 * max(1, scale / 100), "logSoftmax scale \(scale)")
    expectClose(doubles(sm), refSoft, tol: tolerance(S.self) * 10, "softmax scale \(scale)")
    for r in 0..<6 {
        expectClose([doubles(sm)[(r * 10)..<((r + 1) * 10)].reduce(0, +)], [1], tol: tolerance(S.self) * 10, "row sum")
    }
}

@Test("logSoftmax and softmax against a Double reference, stable for logits of 1e4", arguments: [1.0, 30, 1e4])
func softmaxMatchesReference(scale: Double) {
    checkSoftmax(Float.self, scale: scale)
    checkSoftmax(Double.self, scale: scale)
}

@Test("softmax of logits 1e4 apart is one-hot, and of a zero-row batch is empty")
func softmaxEdges() {
    let x = Tensor<Float>([1e4, 0, -1e4], shape: [1, 3])
    #expect(softmax(x).scalars == [1, 0, 0])
    #expect(logSoftmax(x).scalars == [0, -1e4, -2e4])
    let empty = Tensor<Float>(zeros: [0, 5])
    #expect(softmax(empty).shape == [0, 5])
}

// MARK: - Views and copy-on-write

@Test("rows() and reshaped() share storage; writes copy first")
func viewsShareStorageAndCopyOnWrite() {
    let a: Tensor<Float> = randomTensor([4, 3], seed: 16)
    let r = a.rows(1..<3)
    #expect(r.sharesStorage(with: a))
    #expect(r.shape == [2, 3])
    #expect(r.scalars == Array(a.scalars[3..<9]))
    let v = a.reshaped([3, 4])
    #expect(v.sharesStorage(with: a) && v.scalars == a.scalars)
    let row = a[row: 2]
    #expect(row.shape == [3] && row.sharesStorage(with: a) && row.scalars == Array(a.scalars[6..<9]))
    #expect(a.rows(0..<0).shape == [0, 3])

    let original = a.scalars
    var w = r
    w[0, 0] = 100
    #expect(!w.sharesStorage(with: a))
    #expect(a.scalars == original)
    #expect(w[0, 0] == 100 && w[1, 2] == a[2, 2])

    var copy = a
    copy.scale(by: 2)
    #expect(a.scalars == original)
    #expect(copy.scalars == original.map { 2 * $0 })

    var unique = Tensor<Float>(zeros: [3])
    let before = unique
    unique.fill(1)
    #expect(before.scalars == [0, 0, 0])
}

@Test("in-place operations on a uniquely referenced tensor keep its storage")
func inPlaceKeepsUniqueStorage() {
    var a: Tensor<Double> = randomTensor([5, 5], seed: 17)
    let id = a.withUnsafeBufferPointer { $0.baseAddress }
    a.scale(by: 3)
    a.applyTanh()
    a.add(1)
    #expect(a.withUnsafeBufferPointer { $0.baseAddress } == id)
}

@Test("init(unsafeUninitializedShape:initializingWith:) keeps what the body writes; an empty shape works")
func unsafeUninitializedInit() {
    let t = Tensor<Float>(unsafeUninitializedShape: [2, 3]) { p in for i in 0..<p.count { p[i] = Float(i) } }
    #expect(t == Tensor([0, 1, 2, 3, 4, 5], shape: [2, 3]))
    let e = Tensor<Double>(unsafeUninitializedShape: [0, 4]) { p in #expect(p.count == 0) }
    #expect(e.shape == [0, 4] && e.scalarCount == 0)
    struct Stop: Error {}
    #expect(throws: Stop.self) { _ = try Tensor<Float>(unsafeUninitializedShape: [3]) { _ in throw Stop() } }
}
