import DPTensor

/// Synthetic classification tasks, reproducible from a seed, so that examples and tests need
/// no download.
///
/// Every example draws from its own Philox stream (`part` in the high bits, the example index
/// in the low ones), so the data do not depend on the order or the number of threads that
/// generate them, and the train and test parts of one seed never share an example.
public enum SyntheticData {
    /// Which part of a synthetic task to draw: the same task (class means, shapes), different examples.
    public enum Part: UInt64, Sendable, CaseIterable {
        case train = 1
        case test = 2
    }

    @inline(__always) static func stream(_ part: Part, _ index: Int) -> UInt64 { part.rawValue << 40 | UInt64(index) }

    // MARK: - Gaussian mixture

    /// `classes` Gaussian clusters in `dimensions` dimensions: class `c` is
    /// `N(mu_c, I)` with `mu_c = (separation / sqrt 2) u_c`, `u_c` a random unit vector, so two
    /// class means are about `separation` apart (exactly, in expectation, as `dimensions` grows).
    ///
    /// Example `i` has class `i % classes`, so the classes are balanced and interleaved.
    /// The means depend on `seed` only; `part` selects the examples.
    public static func gaussianMixture(
        classes: Int, dimensions: Int, examplesPerClass: Int,
        separation: Float, seed: UInt64, part: Part = .train
    ) -> Dataset {
        precondition(
            classes >= 2 && dimensions >= 1 && examplesPerClass >= 0,
            "gaussianMixture: need classes >= 2, dimensions >= 1, examplesPerClass >= 0")
        var meanRNG = PhiloxRandom(seed: seed, stream: 0)
        var means = [Float](repeating: 0, count: classes * dimensions)
        means.withUnsafeMutableBufferPointer { m in
            for c in 0..<classes {
                let row = UnsafeMutableBufferPointer(rebasing: m[(c * dimensions)..<((c + 1) * dimensions)])
                meanRNG.fillNormal(row)
                var norm: Float = 0
                for x in row { norm += x * x }
                let scale = separation / Float(2).squareRoot() / max(norm.squareRoot(), 1e-12)
                for j in row.indices { row[j] *= scale }
            }
        }
        let n = classes * examplesPerClass
        var x = Tensor<Float>(zeros: [n, dimensions])
        var labels = [Int](repeating: 0, count: n)
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<n {
                let c = i % classes
                labels[i] = c
                var rng = PhiloxRandom(seed: seed, stream: stream(part, i))
                let row = UnsafeMutableBufferPointer(rebasing: p[(i * dimensions)..<((i + 1) * dimensions)])
                rng.fillNormal(row)
                for j in 0..<dimensions { row[j] += means[c * dimensions + j] }
            }
        }
        return Dataset(name: "gaussian-mixture/\(part)", features: x, labels: labels, classCount: classes)
    }

    // MARK: - Shapes

    /// The ten classes of ``shapes(count:size:seed:part:noise:)``.
    public static let shapeClassNames = [
        "horizontal bar", "vertical bar", "rising diagonal", "falling diagonal", "ring",
        "plus", "cross", "square", "triangle", "disk",
    ]

    /// Procedurally drawn grey images `[count, 1, size, size]` of ten kinds of shape
    /// (``shapeClassNames``): bars at four orientations, a ring, a plus, an X, a square
    /// outline, a triangle outline and a filled disk.
    ///
    /// Each image jitters the position (up to 15% of `size` each way), the scale, the stroke
    /// width, the rotation (up to 17 degrees) and the brightness (0.5 to 1), then adds
    /// zero-mean pixel noise of standard deviation `noise` and clips to `[0, 1]`. Example `i`
    /// has class `i % 10`. Drawing is anti-aliased by the distance to the shape's strokes.
    public static func shapes(
        count: Int, size: Int = 28, seed: UInt64, part: Part = .train,
        noise: Float = 0.25
    ) -> Dataset {
        precondition(count >= 0 && size >= 8, "shapes: need count >= 0 and size >= 8")
        var x = Tensor<Float>(zeros: [count, 1, size, size])
        var labels = [Int](repeating: 0, count: count)
        let pixels = size * size
        var segments = [SIMD4<Float>]()
        segments.reserveCapacity(4)
        x.withUnsafeMutableBufferPointer { p in
            for i in 0..<count {
                let c = i % 10
                labels[i] = c
                var rng = PhiloxRandom(seed: seed, stream: stream(part, i))
                let image = UnsafeMutableBufferPointer(rebasing: p[(i * pixels)..<((i + 1) * pixels)])
                drawShape(c, into: image, size: size, segments: &segments, rng: &rng)
                addNoise(image, noise: noise, rng: &rng)
            }
        }
        return Dataset(
            name: "synthetic-shapes/\(part)", features: x, labels: labels, classCount: 10,
            classNames: shapeClassNames)
    }

    @inline(__always) static func uniform(_ rng: inout PhiloxRandom, _ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * rng.nextOpenUnitFloat()
    }

    /// Draws shape `kind` (anti-aliased, in `[0, 1]`) into a zeroed `size` x `size` image.
    static func drawShape(
        _ kind: Int, into image: UnsafeMutableBufferPointer<Float>, size: Int,
        segments: inout [SIMD4<Float>], rng: inout PhiloxRandom
    ) {
        let s = Float(size)
        let cx = s / 2 + uniform(&rng, -0.15, 0.15) * s
        let cy = s / 2 + uniform(&rng, -0.15, 0.15) * s
        let radius = uniform(&rng, 0.2, 0.33) * s
        let halfWidth = uniform(&rng, 0.025, 0.045) * s
        let tilt = uniform(&rng, -0.3, 0.3)
        let brightness = uniform(&rng, 0.5, 1.0)

        // Strokes as segments (x0, y0, x1, y1) in the unit frame, then rotated, scaled, moved.
        segments.removeAll(keepingCapacity: true)
        var ringRadius: Float = 0, diskRadius: Float = 0
        let h: Float = 0.75
        switch kind {
        case 0, 1, 2, 3: segments.append(SIMD4(-1, 0, 1, 0))
        case 4: ringRadius = radius
        case 5, 6:
            segments.append(SIMD4(-1, 0, 1, 0))
            segments.append(SIMD4(0, -1, 0, 1))
        case 7:
            segments.append(SIMD4(-h, -h, h, -h))
            segments.append(SIMD4(h, -h, h, h))
            segments.append(SIMD4(h, h, -h, h))
            segments.append(SIMD4(-h, h, -h, -h))
        case 8:
            let a = SIMD2<Float>(0, -1), b = SIMD2<Float>(0.866, 0.5), d = SIMD2<Float>(-0.866, 0.5)
            segments.append(SIMD4(a.x, a.y, b.x, b.y))
            segments.append(SIMD4(b.x, b.y, d.x, d.y))
            segments.append(SIMD4(d.x, d.y, a.x, a.y))
        default: diskRadius = radius * 0.6
        }
        let baseAngle: Float
        switch kind {
        case 1: baseAngle = 0.5 * Float.pi
        case 2: baseAngle = -0.25 * Float.pi
        case 3, 6: baseAngle = 0.25 * Float.pi
        default: baseAngle = 0
        }
        let angle = baseAngle + tilt
        let co = _cos(angle) * radius, si = _sin(angle) * radius
        for k in segments.indices {
            let v = segments[k]
            segments[k] = SIMD4(
                cx + co * v.x - si * v.y, cy + si * v.x + co * v.y,
                cx + co * v.z - si * v.w, cy + si * v.z + co * v.w)
        }

        let reach = radius + halfWidth + 1.5
        let x0 = max(0, Int(cx - reach)), x1 = min(size - 1, Int(cx + reach) + 1)
        let y0 = max(0, Int(cy - reach)), y1 = min(size - 1, Int(cy + reach) + 1)
        guard x0 <= x1 && y0 <= y1 else { return }
        for py in y0...y1 {
            let y = Float(py) + 0.5
            for px in x0...x1 {
                let x = Float(px) + 0.5
                var d = Float.infinity
                for seg in segments {
                    let ex = seg.z - seg.x, ey = seg.w - seg.y
                    let wx = x - seg.x, wy = y - seg.y
                    let t = min(max((wx * ex + wy * ey) / (ex * ex + ey * ey), 0), 1)
                    let dx = wx - t * ex, dy = wy - t * ey
                    d = min(d, (dx * dx + dy * dy).squareRoot())
                }
                let r = ((x - cx) * (x - cx) + (y - cy) * (y - cy)).squareRoot()
                if ringRadius > 0 { d = min(d, abs(r - ringRadius)) }
                if diskRadius > 0 { d = min(d, max(0, r - diskRadius)) }
                let coverage = min(max(halfWidth + 0.5 - d, 0), 1)
                image[py * size + px] = brightness * coverage
            }
        }
    }

    /// Adds zero-mean noise of standard deviation `noise` (a sum of two uniforms: triangular,
    /// cheap to draw) and clips to `[0, 1]`.
    static func addNoise(_ image: UnsafeMutableBufferPointer<Float>, noise: Float, rng: inout PhiloxRandom) {
        guard noise > 0 else { return }
        // Two 8-bit uniforms per pixel, two pixels per 32-bit draw: (u1 + u2 - 1) has variance
        // about 1/6, so the scale restores the requested deviation.
        let scale = noise * Float(6).squareRoot() / 256
        var j = 0
        let n = image.count
        while j < n {
            let bits = rng.next32()
            let a = Float(bits & 0xff) + Float((bits >> 8) & 0xff) - 255
            image[j] = min(max(image[j] + scale * a, 0), 1)
            if j + 1 < n {
                let b = Float((bits >> 16) & 0xff) + Float(bits >> 24) - 255
                image[j + 1] = min(max(image[j + 1] + scale * b, 0), 1)
            }
            j += 2
        }
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _cos(_ x: Float) -> Float { Glibc.cosf(x) }
@inline(__always) private func _sin(_ x: Float) -> Float { Glibc.sinf(x) }
#endif
