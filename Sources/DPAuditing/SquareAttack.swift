import DPLayers
import DPTensor

// The Square Attack under L-inf (Andriushchenko, Croce, Flammarion and Hein, ECCV 2020,
// Algorithm 1 with the L-inf proposal of their Section 3.1): a random search that reads only the
// model's logits. It is the check against gradient masking: a model whose gradients are broken
// (saturated, shattered or obfuscated) resists PGD but not a search that never looks at them, so
// robust accuracy under PGD far above the Square Attack's means PGD's figure is not to be trusted.
//
// Per example:
// 1. start at a vertex of the L-inf box made of vertical stripes: every column of every channel
//    moves by +epsilon or -epsilon (a fair coin), then the clip to the valid range;
// 2. for each further query, pick a square window of side s at a uniform position and give each
//    channel's window a fresh +epsilon or -epsilon around the clean input (clipped), drawn again
//    (up to 10 times) while it would not change the current point;
// 3. keep the proposal when it lowers the margin `z_y - max_{k != y} z_k`; stop once the margin is
//    negative (the example is misclassified).
// The side s is `round(sqrt(p h w))`, between 1 and h - 1, where p starts at 0.3 (the paper's
// MNIST setting) and halves at 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 of 10,000
// queries (rescaled to `steps` queries), as in their code. Every point the search visits is
// `x0 + delta` with |delta_j| <= epsilon, clipped to the valid range: it never leaves the budget.
// Flat examples `[d]` are searched the same way as a `1 x d` image, with windows of `p d` coordinates.

extension AdversarialAttack {
    /// The fraction of pixels the window covers after `query` of `steps` queries.
    static func squareFraction(query: Int, steps: Int, initial: Double = 0.3) -> Double {
        let it = Int(Double(query) / Double(steps) * 10_000)
        let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000].filter { it > $0 }.count
        return initial / Double(1 << halvings)
    }

    /// Per-example margins `z_y - max_{k != y} z_k` (negative: misclassified).
    func margins(model: Sequential, x: Tensor<Float>, labels: [Int], input: AdversarialInput) -> [Float] {
        let logits = model(input.forward(x))
        let c = logits.shape[1]
        return logits.withUnsafeBufferPointer { z in
            labels.indices.map { i in
                var other = -Float.infinity
                for k in 0..<c where k != labels[i] { other = max(other, z[i * c + k]) }
                return z[i * c + labels[i]] - other
            }
        }
    }

    /// The Square Attack's adversarial inputs of one batch (raw space).
    func squarePerturb(
        model: Sequential, inputs x0: Tensor<Float>, labels: [Int], input: AdversarialInput,
        random: inout PhiloxRandom
    ) -> Tensor<Float> {
        let n = x0.leadingCount, d = x0.shape.trailingCount
        let dims = x0.shape.array
        let (c, h, w) = dims.count == 4 ? (dims[1], dims[2], dims[3]) : (1, 1, d)
        let eps = Float(epsilon)
        let lower = validRange?.lowerBound ?? -.infinity, upper = validRange?.upperBound ?? .infinity
        let clean = x0.scalars
        func moved(_ j: Int, _ sign: Bool) -> Float { min(max(clean[j] + (sign ? eps : -eps), lower), upper) }

        var best = x0
        var bestMargin = [Float](repeating: .infinity, count: n)
        for _ in 0..<restarts {
            var x = clean
            for e in 0..<n {
                for ch in 0..<c {
                    for col in 0..<w {
                        let sign = Bool.random(using: &random)
                        for row in 0..<h {
                            let j = ((e * c + ch) * h + row) * w + col
                            x[j] = moved(j, sign)
                        }
                    }
                }
            }
            var margin = margins(model: model, x: Tensor(x, shape: x0.shape), labels: labels, input: input)
            var query = 1
            while query < steps {
                let active = (0..<n).filter { margin[$0] >= 0 }
                if active.isEmpty { break }
                let p = Self.squareFraction(query: query, steps: steps)
                let (sh, sw) =
                    h == 1
                    ? (1, min(max(Int((p * Double(w)).rounded()), 1), w))
                    : { s in (s, s) }(min(max(Int((p * Double(h * w)).squareRoot().rounded()), 1), h - 1))
                var candidate = [Float](repeating: 0, count: active.count * d)
                for (k, e) in active.enumerated() {
                    for j in 0..<d { candidate[k * d + j] = x[e * d + j] }
                    let top = Int.random(in: 0...(h - sh), using: &random)
                    let left = Int.random(in: 0...(w - sw), using: &random)
                    for ch in 0..<c {
                        for _ in 0..<10 {
                            let sign = Bool.random(using: &random)
                            var changed = false
                            for row in top..<(top + sh) {
                                for col in left..<(left + sw) {
                                    let offset = (ch * h + row) * w + col
                                    let v = moved(e * d + offset, sign)
                                    if abs(v - x[e * d + offset]) >= 1e-7 { changed = true }
                                    candidate[k * d + offset] = v
                                }
                            }
                            if changed { break }
                        }
                    }
                }
                let m = margins(
                    model: model, x: Tensor(candidate, shape: x0.shape.withLeading(active.count)),
                    labels: active.map { labels[$0] },
                    input: input)
                for (k, e) in active.enumerated() where m[k] < margin[e] {
                    margin[e] = m[k]
                    for j in 0..<d { x[e * d + j] = candidate[k * d + j] }
                }
                query += 1
            }
            best.withUnsafeMutableBufferPointer { b in
                for e in 0..<n where margin[e] < bestMargin[e] {
                    bestMargin[e] = margin[e]
                    for j in (e * d)..<((e + 1) * d) { b[j] = x[j] }
                }
            }
        }
        return best
    }
}
