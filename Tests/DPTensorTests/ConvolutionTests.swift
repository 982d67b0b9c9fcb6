import Testing

@testable import DPTensor

#if canImport(Glibc)
import Glibc
#endif

struct ConvCase: Sendable, CustomTestStringConvertible {
    var batch, channels, height, width, kh, kw, stride, padding: Int
    var geometry: ConvGeometry {
        ConvGeometry(
            channels: channels, height: height, width: width, kernel: (kh, kw),
            stride: (stride, stride), padding: (padding, padding))
    }
    var testDescription: String { "B\(batch) C\(channels) \(height)x\(width) k\(kh)x\(kw) s\(stride) p\(padding)" }
}

let convCases: [ConvCase] = [
    ConvCase(batch: 1, channels: 1, height: 1, width: 1, kh: 1, kw: 1, stride: 1, padding: 0),
    ConvCase(batch: 2, channels: 3, height: 5, width: 4, kh: 3, kw: 2, stride: 1, padding: 0),
    ConvCase(batch: 2, channels: 2, height: 7, width: 6, kh: 3, kw: 3, stride: 2, padding: 1),
    ConvCase(batch: 1, channels: 1, height: 10, width: 9, kh: 8, kw: 8, stride: 2, padding: 3),
    ConvCase(batch: 3, channels: 2, height: 4, width: 5, kh: 2, kw: 3, stride: 3, padding: 2),
    ConvCase(batch: 0, channels: 2, height: 4, width: 4, kh: 3, kw: 3, stride: 1, padding: 1),
]

@Test("ConvGeometry output sizes follow floor((H + 2p - k) / s) + 1")
func convGeometrySizes() {
    let g = ConvGeometry(channels: 1, height: 28, width: 28, kernel: 8, stride: 2, padding: 3)
    #expect(g.outputHeight == 14 && g.outputWidth == 14 && g.patchSize == 64 && g.outputPositions == 196)
    #expect(g.columnShape(batch: 256) == [256, 64, 196])
    let h = ConvGeometry(channels: 16, height: 14, width: 14, kernel: 4, stride: 2, padding: 0)
    #expect(h.outputHeight == 6 && h.patchSize == 256)
    let r = ConvGeometry(channels: 2, height: 5, width: 8, kernel: (3, 2), stride: (2, 3), padding: (1, 0))
    #expect(r.outputHeight == 3 && r.outputWidth == 3)
}

/// The input value of one column entry by the definition, 0 in the padding.
func naiveColumnEntry(_ x: [Double], _ c: ConvCase, b: Int, row: Int, col: Int) -> Double {
    let g = c.geometry
    let ch = row / (c.kh * c.kw), i = (row / c.kw) % c.kh, j = row % c.kw
    let oh = col / g.outputWidth, ow = col % g.outputWidth
    let ih = oh * c.stride - c.padding + i, iw = ow * c.stride - c.padding + j
    guard ih >= 0, ih < c.height, iw >= 0, iw < c.width else { return 0 }
    return x[((b * c.channels + ch) * c.height + ih) * c.width + iw]
}

func checkIm2col<S: TensorScalar>(_: S.Type, _ c: ConvCase) {
    let g = c.geometry
    let x: Tensor<S> = randomTensor([c.batch, c.channels, c.height, c.width], seed: 20)
    var cols = Tensor<S>(repeating: 7, shape: g.columnShape(batch: c.batch)) // every scalar is overwritten
    im2col(x, kernel: (c.kh, c.kw), stride: (c.stride, c.stride), padding: (c.padding, c.padding), into: &cols)
    let dx = doubles(x)
    var ref = [Double]()
    for b in 0..<c.batch {
        for r in 0..<g.patchSize {
            for l in 0..<g.outputPositions {
                ref.append(naiveColumnEntry(dx, c, b: b, row: r, col: l))
            }
        }
    }
    #expect(doubles(cols) == ref, "im2col \(c.testDescription)")

    // One example, rank 3 in and rank 2 out, is the same as its slice of the batch.
    if c.batch > 0 {
        var one = Tensor<S>(zeros: [g.patchSize, g.outputPositions])
        im2col(x[row: c.batch - 1], geometry: g, into: &one)
        #expect(one.scalars == cols[row: c.batch - 1].scalars)
    }

    // Adjoint: <im2col(x), y> == <x, col2im(y)>.
    let y: Tensor<S> = randomTensor(g.columnShape(batch: c.batch), seed: 21)
    var back = Tensor<S>(zeros: x.shape)
    col2im(y, geometry: g, into: &back)
    let lhs = zip(doubles(cols), doubles(y)).map(*).reduce(0, +)
    let rhs = zip(dx, doubles(back)).map(*).reduce(0, +)
    expectClose([lhs], [rhs], tol: tolerance(S.self) * 100, "adjoint \(c.testDescription)")

    // col2im accumulates.
    var twice = back
    col2im(y, geometry: g, into: &twice)
    expectClose(doubles(twice), doubles(back).map { 2 * $0 }, tol: tolerance(S.self), "col2im accumulates")
}

@Test("im2col matches its definition; col2im is its adjoint", arguments: convCases)
func im2colMatchesDefinition(c: ConvCase) {
    checkIm2col(Float.self, c)
    checkIm2col(Double.self, c)
}

/// Direct convolution (cross-correlation, as in deep learning) with zero padding.
func naiveConv(_ x: [Double], _ w: [Double], _ c: ConvCase, outChannels: Int) -> [Double] {
    let g = c.geometry
    var y = [Double](repeating: 0, count: c.batch * outChannels * g.outputPositions)
    for b in 0..<c.batch {
        for o in 0..<outChannels {
            for oh in 0..<g.outputHeight {
                for ow in 0..<g.outputWidth {
                    var s = 0.0
                    for ch in 0..<c.channels {
                        for i in 0..<c.kh {
                            for j in 0..<c.kw {
                                let ih = oh * c.stride - c.padding + i, iw = ow * c.stride - c.padding + j
                                if ih < 0 || ih >= c.height || iw < 0 || iw >= c.width { continue }
                                s +=
                                    w[((o * c.channels + ch) * c.kh + i) * c.kw + j]
                                    * x[((b * c.channels + ch) * c.height + ih) * c.width + iw]
                            }
                        }
                    }
                    y[((b * outChannels + o) * g.outputHeight + oh) * g.outputWidth + ow] = s
                }
            }
        }
    }
    return y
}

func checkConvolution<S: TensorScalar>(_: S.Type, _ c: ConvCase) {
    let g = c.geometry, cout = 3
    let x: Tensor<S> = randomTensor([c.batch, c.channels, c.height, c.width], seed: 22)
    let w: Tensor<S> = randomTensor([cout, g.patchSize], seed: 23)
    var cols = Tensor<S>(zeros: g.columnShape(batch: c.batch))
    im2col(x, geometry: g, into: &cols)
    // Forward: one GEMM per example, the output is NCHW directly.
    var y = Tensor<S>(zeros: [c.batch, cout, g.outputPositions])
    for b in 0..<c.batch {
        var yb = Tensor<S>(zeros: [cout, g.outputPositions])
        gemm(w, cols[row: b], into: &yb)
        for k in 0..<yb.scalarCount { y.withUnsafeMutableBufferPointer { $0[b * yb.scalarCount + k] = yb.scalars[k] } }
    }
    let ref = naiveConv(doubles(x), doubles(w), c, outChannels: cout)
    expectClose(doubles(y), ref, tol: tolerance(S.self) * Double(g.patchSize), "conv forward \(c.testDescription)")

    // Input gradient of sum(y * dy): col2im(Wᵀ dy) equals the gradient of the naive convolution,
    // which is linear in x: d/dx_i <conv(x), dy> = <conv(e_i), dy>.
    let dy: Tensor<S> = randomTensor([c.batch, cout, g.outputPositions], seed: 24)
    var dx = Tensor<S>(zeros: x.shape)
    var dcols = Tensor<S>(zeros: g.columnShape(batch: c.batch))
    for b in 0..<c.batch {
        var dcb = Tensor<S>(zeros: [g.patchSize, g.outputPositions])
        gemm(w, transposed: true, dy[row: b], into: &dcb)
        let flat = dcb.scalars
        dcols.withUnsafeMutableBufferPointer { p in for k in 0..<flat.count { p[b * flat.count + k] = flat[k] } }
    }
    col2im(dcols, geometry: g, into: &dx)
    let ddy = doubles(dy), dw = doubles(w)
    var refGrad = [Double](repeating: 0, count: x.scalarCount)
    for i in 0..<x.scalarCount where x.scalarCount <= 400 {
        var e = [Double](repeating: 0, count: x.scalarCount)
        e[i] = 1
        refGrad[i] = zip(naiveConv(e, dw, c, outChannels: cout), ddy).map(*).reduce(0, +)
    }
    if x.scalarCount <= 400 {
        expectClose(
            doubles(dx), refGrad, tol: tolerance(S.self) * Double(g.patchSize),
            "conv input gradient \(c.testDescription)")
    }
}

@Test("im2col + GEMM is the direct convolution; col2im gives its input gradient", arguments: convCases)
func convolutionByGemm(c: ConvCase) {
    checkConvolution(Float.self, c)
    checkConvolution(Double.self, c)
}

@Test("a column shape mismatch names both shapes and the geometry")
func convMismatchMessage() {
    let g = ConvGeometry(channels: 1, height: 28, width: 28, kernel: 8, stride: 2, padding: 3)
    let m = convShapeMessage(
        function: "im2col", input: [4, 1, 28, 28], columns: [4, 64, 195],
        expected: g.columnShape(batch: 4), geometry: g)
    #expect(
        m.contains("[4, 64, 195]") && m.contains("[4, 64, 196]") && m.contains("[4, 1, 28, 28]")
            && m.contains("kernel 8x8"))
}
