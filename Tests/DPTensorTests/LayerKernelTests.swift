import Testing

@testable import DPTensor

// The vectorised, batch-parallel Float kernels (Float+LayerKernels.swift, CDPKernels) against
// the generic Swift functions, which ConvolutionTests checks against the definition, and
// against naive loops; at 1 and 2 threads, which must give the same bits.

/// Runs `body` with `threads` BLAS (and so ``ParallelBatch``) threads, then restores the count.
func withThreads<T>(_ threads: Int, _ body: () throws -> T) rethrows -> T {
    try BLASRuntime.withThreadCount(threads, body)
}

/// Geometries the layers accept: odd sizes, rectangular kernels, strides 1 to 3 per axis,
/// padding up to past the kernel, batches large enough to be split (17 > 2 x 8).
let kernelGeometries: [(batch: Int, geometry: ConvGeometry)] = [
    (17, ConvGeometry(channels: 1, height: 28, width: 28, kernel: 8, stride: 2, padding: 3)),
    (17, ConvGeometry(channels: 16, height: 13, width: 13, kernel: 4, stride: 2, padding: 0)),
    (19, ConvGeometry(channels: 3, height: 7, width: 5, kernel: (3, 2), stride: (1, 1), padding: (1, 0))),
    (16, ConvGeometry(channels: 2, height: 9, width: 11, kernel: (2, 3), stride: (3, 2), padding: (2, 1))),
    (16, ConvGeometry(channels: 2, height: 4, width: 4, kernel: 1, stride: 1, padding: 0)),
    (1, ConvGeometry(channels: 2, height: 6, width: 5, kernel: 3, stride: 3, padding: 4)),
    (0, ConvGeometry(channels: 2, height: 6, width: 5, kernel: 3, stride: 1, padding: 1)),
]

@Test(
    "parallelIm2col and parallelCol2im give the generic im2col and col2im's bits, at 1 and 2 threads",
    arguments: kernelGeometries.indices)
func parallelIm2colMatchesTheReference(_ index: Int) {
    let (batch, g) = kernelGeometries[index]
    let x: Tensor<Float> = randomTensor(Shape([batch] + g.inputShape.array), seed: 40)
    var reference = Tensor<Float>(zeros: g.columnShape(batch: batch))
    im2col(x, geometry: g, into: &reference)
    let y: Tensor<Float> = randomTensor(g.columnShape(batch: batch), seed: 41)
    var back = Tensor<Float>(zeros: x.shape)
    col2im(y, geometry: g, into: &back)
    for threads in [1, 2] {
        withThreads(threads) {
            var cols = Tensor<Float>(repeating: .nan, shape: g.columnShape(batch: batch)) // all overwritten
            parallelIm2col(x, geometry: g, into: &cols)
            #expect(cols == reference, "im2col \(g), batch \(batch), \(threads) threads")
            var dx = Tensor<Float>(repeating: .nan, shape: x.shape) // overwritten, not accumulated
            parallelCol2im(y, geometry: g, into: &dx)
            #expect(dx == back, "col2im \(g), batch \(batch), \(threads) threads")
            // Batch-interleaved [K, B L]: example b's [K, L] matrix is column block b.
            let k = g.patchSize, l = g.outputPositions
            var interleaved = Tensor<Float>(repeating: .nan, shape: [k, batch * l])
            parallelIm2col(x, geometry: g, into: &interleaved)
            #expect(interleaved == interleave(reference, k: k, l: l), "interleaved im2col \(g), \(threads) threads")
            var dxi = Tensor<Float>(repeating: .nan, shape: x.shape)
            parallelCol2im(interleave(y, k: k, l: l), geometry: g, into: &dxi)
            #expect(dxi == back, "interleaved col2im \(g), batch \(batch), \(threads) threads")
        }
    }
}

/// `[B, K, L]` to `[K, B L]` by the definition.
func interleave(_ t: Tensor<Float>, k: Int, l: Int) -> Tensor<Float> {
    let b = t.shape[0], v = t.scalars
    var out = [Float](repeating: 0, count: v.count)
    for e in 0..<b {
        for r in 0..<k {
            for j in 0..<l { out[r * b * l + e * l + j] = v[(e * k + r) * l + j] }
        }
    }
    return Tensor(out, shape: [k, b * l])
}

@Test("swapLeadingAxes (with and without the added row values) and scaleMiddleAxis match the definition")
func layoutChangesMatchTheDefinition() {
    let (p, q, l) = (16, 37, 64) // large enough to be split across 2 threads
    let x: Tensor<Float> = randomTensor([p, q, l], seed: 44)
    let add: Tensor<Float> = randomTensor([p], seed: 45)
    let v = x.scalars, a = add.scalars
    for threads in [1, 2] {
        withThreads(threads) {
            for withAdd in [false, true] {
                var y = Tensor<Float>(repeating: .nan, shape: [q, p, l])
                swapLeadingAxes(x, p: p, q: q, l: l, adding: withAdd ? add : nil, into: &y)
                var ref = [Float](repeating: 0, count: v.count)
                for i in 0..<p {
                    for j in 0..<q {
                        for t in 0..<l { ref[(j * p + i) * l + t] = v[(i * q + j) * l + t] + (withAdd ? a[i] : 0) }
                    }
                }
                #expect(y.scalars == ref, "swapLeadingAxes add \(withAdd), \(threads) threads")
            }
            let w: Tensor<Float> = randomTensor([q], seed: 46)
            var z = Tensor<Float>(repeating: .nan, shape: [p, q, l])
            scaleMiddleAxis(x, p: p, q: q, l: l, by: w, into: &z)
            let wv = w.scalars
            let ref = v.indices.map { wv[($0 / l) % q] * v[$0] }
            #expect(z.scalars == ref, "scaleMiddleAxis, \(threads) threads")
        }
    }
}

@Test(
    "the C tanh gives Float.vectorizableTanh's bits on a dense sweep and special values; its backward is dy (1 - y^2)")
func cTanhMatchesTheSwiftReference() {
    var xs: [Float] = [0, -0, .infinity, -.infinity, .nan, 0.625, -0.625, 9.5, -9.5, 1e-30, .leastNonzeroMagnitude]
    var v: Float = -12
    while v <= 12 {
        xs.append(v)
        v += 1.0 / 4096
    }
    for threads in [1, 2] {
        withThreads(threads) {
            var out = [Float](repeating: 0, count: xs.count)
            xs.withUnsafeBufferPointer { Float.vectorizableTanh($0.baseAddress!, into: &out, count: xs.count) }
            for (x, y) in zip(xs, out) {
                let ref = Float.vectorizableTanh(x)
                #expect(
                    y.bitPattern == ref.bitPattern || (y.isNaN && ref.isNaN),
                    "tanh(\(x)): C \(y), Swift \(ref), \(threads) threads")
            }
            let dy = xs.indices.map { Float($0 % 7) - 3 }
            var dx = [Float](repeating: .nan, count: xs.count)
            Float.tanhBackward(outputGradient: dy, output: out, into: &dx, count: xs.count)
            for i in xs.indices where !out[i].isNaN {
                #expect(dx[i] == dy[i] * (1 - out[i] * out[i]), "tanh backward at \(xs[i])")
            }
        }
    }
}

/// Max pooling by the definition: the first largest element of each window, row-major.
func naiveMaxPool(_ x: Tensor<Float>, kernel k: Int, stride s: Int) -> (y: [Float], argmax: [Int32]) {
    let b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3]
    let ho = (h - k) / s + 1, wo = (w - k) / s + 1
    let v = x.scalars
    var y: [Float] = [], am: [Int32] = []
    for p in 0..<(b * c) {
        for oy in 0..<ho {
            for ox in 0..<wo {
                var best = oy * s * w + ox * s
                for ky in 0..<k {
                    for kx in 0..<k {
                        let i = (oy * s + ky) * w + ox * s + kx
                        if v[p * h * w + i] > v[p * h * w + best] { best = i }
                    }
                }
                y.append(v[p * h * w + best])
                am.append(Int32(best))
            }
        }
    }
    return (y, am)
}

@Test(
    "parallelMaxPool2d and its backward match the definition (ties go to the first), at 1 and 2 threads",
    arguments: [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (1, 1), (4, 3)])
func parallelMaxPoolMatchesTheDefinition(_ window: (Int, Int)) {
    let (k, s) = window
    var rng = PhiloxRandom(seed: 42)
    // Values on a coarse grid so that windows hold ties; odd, non-square planes; 70 planes (> 2 x 64).
    let x = Tensor<Float>(uniform: [7, 10, 9, 8], in: -2...2, using: &rng).map { ($0 * 2).rounded() }
    let (ref, refArgmax) = naiveMaxPool(x, kernel: k, stride: s)
    let ho = (9 - k) / s + 1, wo = (8 - k) / s + 1
    let dy: Tensor<Float> = randomTensor([7, 10, ho, wo], seed: 43)
    // The adjoint by the definition: each output gradient added at its arg-max, in output order.
    var refDx = [Float](repeating: 0, count: x.scalarCount)
    let dyv = dy.scalars
    for j in refArgmax.indices { refDx[(j / (ho * wo)) * 72 + Int(refArgmax[j])] += dyv[j] }
    for threads in [1, 2] {
        withThreads(threads) {
            var y = Tensor<Float>(repeating: .nan, shape: [7, 10, ho, wo])
            var argmax = [Int32](repeating: -1, count: y.scalarCount)
            parallelMaxPool2d(x, kernel: k, stride: s, into: &y, argmax: &argmax)
            #expect(y.scalars == ref && argmax == refArgmax, "k \(k) s \(s), \(threads) threads")
            var dx = Tensor<Float>(repeating: .nan, shape: x.shape)
            parallelMaxPool2dBackward(dy, argmax: argmax, into: &dx)
            #expect(dx.scalars == refDx, "backward k \(k) s \(s), \(threads) threads")
        }
    }
}

@Test("reuseForOverwrite keeps unshared storage of the right size and never touches shared storage")
func reuseForOverwriteRespectsValueSemantics() {
    var a = Tensor<Float>(repeating: 1, shape: [2, 3])
    let before = a
    a.reuseForOverwrite(shape: [3, 2]) // shared with `before`: new storage
    #expect(!a.sharesStorage(with: before) && before.scalars == [1, 1, 1, 1, 1, 1] && a.shape == [3, 2])
    a.withUnsafeMutableBufferPointer { $0.update(repeating: 5) }
    var view = a
    view.reuseForOverwrite(shape: [6]) // `a` still holds it: new storage
    #expect(!view.sharesStorage(with: a))
    var solo = Tensor<Float>(zeros: [4])
    let address = solo.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) }
    solo.reuseForOverwrite(shape: [2, 2])
    #expect(solo.withUnsafeBufferPointer { Int(bitPattern: $0.baseAddress) } == address && solo.shape == [2, 2])
}
