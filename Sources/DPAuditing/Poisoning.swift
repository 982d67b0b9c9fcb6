import DPData
import DPLayers
import DPTensor

// MARK: - Backdoor trigger

/// Where a trigger patch sits in an image.
public enum TriggerPosition: String, Sendable, CaseIterable, Codable {
    case topLeft = "top-left", topRight = "top-right", bottomLeft = "bottom-left", bottomRight = "bottom-right"
}

/// A square patch of constant value stamped on every channel of an image (BadNets, Gu et al.
/// 2017): `size` x `size` pixels at `margin` pixels from the corner `position`, in raw input
/// units (before the model's input scaling).
public struct BackdoorTrigger: Hashable, Sendable, Codable {
    public var size: Int
    public var position: TriggerPosition
    public var margin: Int
    public var value: Float

    public init(size: Int, position: TriggerPosition = .bottomRight, margin: Int = 1, value: Float = 1) {
        self.size = size
        self.position = position
        self.margin = margin
        self.value = value
    }

    /// - Throws: ``AuditError`` when the examples are not images `[C, H, W]` or the patch does
    ///   not fit in them.
    public func check(exampleShape s: Shape) throws {
        guard s.rank == 3 else {
            throw AuditError(
                "a backdoor trigger is a patch of pixels and needs image examples [channels, height, width]; this data has examples \(s.array)"
            )
        }
        guard size >= 1, margin >= 0 else {
            throw AuditError("trigger patch_size \(size) must be >= 1 and margin \(margin) >= 0")
        }
        let h = s[1], w = s[2]
        guard size + margin <= min(h, w) else {
            throw AuditError(
                "trigger patch \(size)x\(size) at margin \(margin) does not fit in \(h)x\(w) images; use patch_size <= \(max(0, min(h, w) - margin)) (or a smaller margin)"
            )
        }
    }

    /// Stamps the patch on every example of `x` (`[n, C, H, W]`), in place.
    public func stamp(_ x: inout Tensor<Float>) {
        let c = x.shape[1], h = x.shape[2], w = x.shape[3]
        let top = (position == .topLeft || position == .topRight) ? margin : h - margin - size
        let left = (position == .topLeft || position == .bottomLeft) ? margin : w - margin - size
        let n = x.leadingCount
        x.withUnsafeMutableBufferPointer { p in
            for e in 0..<n {
                for ch in 0..<c {
                    let base = (e * c + ch) * h * w
                    for r in top..<(top + size) {
                        for col in left..<(left + size) { p[base + r * w + col] = value }
                    }
                }
            }
        }
    }
}

// MARK: - Poisoning attacks

/// A backdoor: `count` training examples of other classes than `target`, copied with the
/// trigger stamped on them and labelled `target`, are *added* to the training set. Success is
/// measured on the test examples of other classes: the fraction predicted `target` once
/// triggered (the attack success rate).
public struct Backdoor: Hashable, Sendable {
    public var trigger: BackdoorTrigger
    public var target: Int
    public var count: Int

    public init(trigger: BackdoorTrigger, target: Int, count: Int) {
        self.trigger = trigger
        self.target = target
        self.count = count
    }

    /// The training set with the poisoned copies appended (the sources drawn from `seed`,
    /// Philox stream `0xbad0`).
    /// - Throws: ``AuditError`` for a trigger that does not fit, a target that is no class, or
    ///   more poisoned examples than candidates.
    public func poison(_ train: Dataset, seed: UInt64) throws -> Dataset {
        try trigger.check(exampleShape: train.exampleShape)
        guard target >= 0, target < train.classCount else {
            throw AuditError("backdoor target class \(target) is not a class of the data (0..<\(train.classCount))")
        }
        let candidates = train.labels.indices.filter { train.labels[$0] != target }
        guard count >= 0, count <= candidates.count else {
            throw AuditError(
                "backdoor count \(count): only \(candidates.count) training examples are not of class \(target); use at most that"
            )
        }
        var rng = PhiloxRandom(seed: seed, stream: 0xbad0)
        var pool = candidates
        for i in 0..<count { pool.swapAt(i, i + Int(rng.next() % UInt64(pool.count - i))) }
        var sources = train.subset(Array(pool.prefix(count)))
        sources.mapFeatures { trigger.stamp(&$0) }
        let poisoned = Dataset(
            name: train.name + "+backdoor", features: sources.features, labels: Array(repeating: target, count: count),
            classCount: train.classCount, classNames: train.classNames)
        return train.appending(poisoned)
    }

    /// The test examples not of class `target`, with the trigger stamped (raw inputs).
    public func triggered(_ test: Dataset) -> Dataset {
        var t = test.subset(test.labels.indices.filter { test.labels[$0] != target })
        t.mapFeatures { trigger.stamp(&$0) }
        return t
    }

    /// The fraction of `triggered` examples (from ``triggered(_:)``, scaled as the model's
    /// inputs) that `model` classifies as `target`; NaN for none.
    public func attackSuccessRate(model: Sequential, triggered: Dataset) -> Double {
        guard triggered.count > 0 else { return .nan }
        let hits = model.predict(triggered.features).filter { $0 == target }.count
        return Double(hits) / Double(triggered.count)
    }
}

/// Label flipping: a `fraction` of the training examples of class `source` (of every class but
/// `target` when nil) get the label `target`, in place. Each flip replaces an example, which is
/// two neighbouring steps under add/remove and one under replace-one.
public struct LabelFlipping: Hashable, Sendable {
    public var fraction: Double
    public var source: Int?
    public var target: Int

    public init(fraction: Double, source: Int?, target: Int) {
        self.fraction = fraction
        self.source = source
        self.target = target
    }

    /// The training set with labels flipped, and how many (drawn from `seed`, stream `0xf11b`).
    public func poison(_ train: Dataset, seed: UInt64) throws -> (data: Dataset, flipped: Int) {
        for (name, c) in [("target", target), ("source", source ?? target)] where c < 0 || c >= train.classCount {
            throw AuditError("label flipping \(name) class \(c) is not a class of the data (0..<\(train.classCount))")
        }
        guard source != target else {
            throw AuditError("label flipping source and target are both \(target); give two classes")
        }
        let candidates = train.labels.indices.filter { i in
            source.map { train.labels[i] == $0 } ?? (train.labels[i] != target)
        }
        let k = Int((fraction * Double(candidates.count)).rounded())
        var rng = PhiloxRandom(seed: seed, stream: 0xf11b)
        var pool = candidates
        for i in 0..<k { pool.swapAt(i, i + Int(rng.next() % UInt64(pool.count - i))) }
        var labels = train.labels
        for i in pool.prefix(k) { labels[i] = target }
        let out = Dataset(
            name: train.name, features: train.features, labels: labels, classCount: train.classCount,
            classNames: train.classNames)
        return (out, k)
    }
}

// MARK: - Group privacy

/// What (epsilon, delta)-DP says about datasets that differ in `k` examples.
///
/// Group privacy (Dwork and Roth 2014, Theorem 2.2 for delta = 0; Vadhan 2017, "The complexity
/// of differential privacy", Lemma 2.2): chaining the guarantee along the `k` neighbouring steps
/// from `D` to `D'` gives, for every set of outcomes `S`,
/// `P[M(D') in S] <= e^(k eps) P[M(D) in S] + delta_k`, with
/// `delta_k = sum_{i<k} e^(i eps) delta <= k e^((k-1) eps) delta`; DPKit reports the latter,
/// `(epsilon_k, delta_k) = (k eps, k e^((k-1) eps) delta)`. An attack whose success probability
/// is `p` against the clean training set succeeds with probability at most
/// `min(1, e^(k eps) p + delta_k)` with `k` poisoned examples (``outcomeBound(probability:)``).
/// The neighbouring relation is the run's: `k` added examples are `k` add/remove steps.
public struct GroupPrivacy: Hashable, Sendable {
    public var epsilon: Double
    public var delta: Double
    public var groupSize: Int

    public init(epsilon: Double, delta: Double, groupSize k: Int) {
        precondition(k >= 0, "GroupPrivacy: group size \(k) must be >= 0")
        self.epsilon = epsilon
        self.delta = delta
        self.groupSize = k
    }

    /// `k eps`.
    public var groupEpsilon: Double { Double(groupSize) * epsilon }
    /// `k e^((k-1) eps) delta` (0 for k = 0); may exceed 1, then the bound is vacuous.
    public var groupDelta: Double {
        groupSize == 0 ? 0 : Double(groupSize) * Double.exp(Double(groupSize - 1) * epsilon) * delta
    }

    /// `min(1, e^(k eps) p + delta_k)`.
    public func outcomeBound(probability p: Double) -> Double {
        min(1, Double.exp(groupEpsilon) * p + groupDelta)
    }
}
