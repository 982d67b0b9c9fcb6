import DPData
import DPTensor
import Foundation

/// How a dataset is split over the clients.
public enum PartitionScheme: Hashable, Sendable, CustomStringConvertible {
    /// A uniformly random permutation cut into `N` parts whose sizes differ by at most one.
    case iid
    /// Label shards (McMahan et al. 2017, "Communication-efficient learning of deep networks
    /// from decentralized data", the pathological non-IID split): the examples sorted by label
    /// are cut into `N * shardsPerClient` shards of equal size, and each client receives
    /// `shardsPerClient` shards drawn without replacement. With 2 shards per client most
    /// clients see at most two classes.
    case labelShards(shardsPerClient: Int)
    /// Dirichlet label skew, the convention of Hsu, Qi and Brown 2019 ("Measuring the effects of
    /// non-identical data distribution for federated visual classification"): client `k` draws
    /// its class proportions `q_k ~ Dir(alpha * p)` over the classes, `p` the class frequencies
    /// of the whole dataset, and receives `floor(n / N)` (or one more) examples whose labels are
    /// drawn from `q_k` without replacement from what is left (when a class runs out, `q_k` is
    /// renormalised over the classes that remain). Small alpha (0.1): one or two classes per
    /// client; large alpha (100): close to IID. Every client gets the same number of examples;
    /// only the labels are skewed. (The other convention, `Dir(alpha)` over clients per class,
    /// skews the sizes as well; it is not offered.)
    case dirichlet(alpha: Double)

    public var description: String {
        switch self {
        case .iid: return "iid"
        case .labelShards(let k): return "label-shards(\(k) per client)"
        case .dirichlet(let a): return "dirichlet(alpha \(a), Hsu et al. 2019 convention)"
        }
    }
}

/// Which examples of a dataset each client holds.
public struct ClientPartition: Sendable, Equatable {
    /// `clients[k]`: the indices (ascending) of client `k`'s examples in the partitioned dataset.
    public let clients: [[Int]]
    public let scheme: PartitionScheme
    public let seed: UInt64

    public var clientCount: Int { clients.count }
    /// Examples per client.
    public var sizes: [Int] { clients.map(\.count) }

    /// Splits `labels` (classes `0..<classCount`) over `clientCount` clients.
    ///
    /// The split is a function of the labels, the scheme and the seed only (Philox stream
    /// `0xfed0`), never of the features.
    /// - Throws: ``FederatedError`` for fewer than one client, alpha <= 0 or not finite, fewer
    ///   than one shard per client, and any split that leaves a client with no examples (more
    ///   clients than examples, shards of size zero), naming the numbers and the fix.
    public static func make(
        labels: [Int], classCount: Int, clients clientCount: Int, scheme: PartitionScheme, seed: UInt64
    ) throws -> ClientPartition {
        let n = labels.count
        guard clientCount >= 1 else {
            throw FederatedError("federated clients = \(clientCount): there must be at least one client")
        }
        guard n >= clientCount else {
            throw FederatedError(
                "the partition would leave clients with no data: \(n) examples for \(clientCount) clients; use at most \(n) clients"
            )
        }
        var rng = PhiloxRandom(seed: seed, stream: 0xfed0)
        var parts: [[Int]]
        switch scheme {
        case .iid:
            var order = Array(0..<n)
            shuffle(&order, rng: &rng)
            parts = cut(order, into: clientCount)
        case .labelShards(let k):
            guard k >= 1 else {
                throw FederatedError("label shards per client = \(k): it must be at least 1 (2 in McMahan et al. 2017)")
            }
            let shards = clientCount * k
            guard n / shards >= 1 else {
                throw FederatedError(
                    "label shards: \(n) examples cut into \(clientCount) clients x \(k) shards = \(shards) shards leaves shards with no data; use fewer clients or fewer shards per client (at most \(n / clientCount))"
                )
            }
            // Sorted by label (stable within a label, so the split is a function of the labels).
            let byLabel = (0..<n).sorted { (labels[$0], $0) < (labels[$1], $1) }
            let shardList = cut(byLabel, into: shards)
            var shardOrder = Array(0..<shards)
            shuffle(&shardOrder, rng: &rng)
            parts = (0..<clientCount).map { c in shardOrder[(c * k)..<((c + 1) * k)].flatMap { shardList[$0] } }
        case .dirichlet(let alpha):
            guard alpha > 0, alpha.isFinite else {
                throw FederatedError(
                    "dirichlet alpha = \(alpha): it must be finite and > 0 (0.1 strongly skewed, 100 close to IID)")
            }
            parts = dirichlet(labels: labels, classCount: classCount, clients: clientCount, alpha: alpha, rng: &rng)
        }
        if let empty = parts.firstIndex(where: \.isEmpty) {
            throw FederatedError(
                "the partition \(scheme) leaves client \(empty) with no data; use fewer clients (\(clientCount) for \(n) examples)"
            )
        }
        parts = parts.map { $0.sorted() }
        return ClientPartition(clients: parts, scheme: scheme, seed: seed)
    }

    public init(clients: [[Int]], scheme: PartitionScheme, seed: UInt64) {
        self.clients = clients
        self.scheme = scheme
        self.seed = seed
    }

    /// Each client's label histogram, `[client][class]`.
    public func labelHistograms(labels: [Int], classCount: Int) -> [[Int]] {
        clients.map { idx in
            var h = [Int](repeating: 0, count: classCount)
            for i in idx { h[labels[i]] += 1 }
            return h
        }
    }

    /// Client `k`'s dataset.
    public func data(ofClient k: Int, in dataset: Dataset) -> Dataset {
        dataset.subset(clients[k], name: "\(dataset.name)/client-\(k)")
    }

    // MARK: - Helpers

    static func shuffle(_ a: inout [Int], rng: inout PhiloxRandom) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            a.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
    }

    /// `a` cut into `parts` consecutive pieces whose sizes differ by at most one.
    static func cut(_ a: [Int], into parts: Int) -> [[Int]] {
        let base = a.count / parts, extra = a.count % parts
        var out: [[Int]] = []
        var start = 0
        for p in 0..<parts {
            let size = base + (p < extra ? 1 : 0)
            out.append(Array(a[start..<(start + size)]))
            start += size
        }
        return out
    }

    static func dirichlet(
        labels: [Int], classCount: Int, clients: Int, alpha: Double, rng: inout PhiloxRandom
    ) -> [[Int]] {
        let n = labels.count
        var pools = [[Int]](repeating: [], count: classCount)
        for i in 0..<n { pools[labels[i]].append(i) }
        for c in 0..<classCount { shuffle(&pools[c], rng: &rng) }
        let prior = pools.map { Double($0.count) / Double(n) }
        let sizes = cut(Array(0..<n), into: clients).map(\.count)
        var parts: [[Int]] = []
        parts.reserveCapacity(clients)
        for k in 0..<clients {
            // q_k ~ Dir(alpha p), over the classes present in the data.
            let logGammas = prior.map { p in p > 0 ? logGamma(shape: alpha * p, rng: &rng) : -Double.infinity }
            let top = logGammas.max() ?? 0
            var q = logGammas.map { Foundation.exp($0 - top) }
            var mine: [Int] = []
            mine.reserveCapacity(sizes[k])
            for _ in 0..<sizes[k] {
                var total = 0.0
                for c in 0..<classCount where !pools[c].isEmpty { total += q[c] }
                if total <= 0 {
                    // Every class this client favours has run out: fall back to the prior over
                    // the classes left.
                    for c in 0..<classCount { q[c] = pools[c].isEmpty ? 0 : Double(pools[c].count) }
                    total = q.reduce(0, +)
                }
                var u = rng.nextOpenUnitDouble() * total
                var pick = -1
                for c in 0..<classCount where !pools[c].isEmpty {
                    pick = c
                    u -= q[c]
                    if u <= 0 { break }
                }
                mine.append(pools[pick].removeLast())
            }
            parts.append(mine)
        }
        return parts
    }

    /// `log G`, `G ~ Gamma(shape, 1)` (Marsaglia and Tsang 2000; for shape < 1 the boost
    /// `G(a) = G(a + 1) U^(1/a)`, kept in logs so that tiny shapes do not underflow to zero).
    static func logGamma(shape a: Double, rng: inout PhiloxRandom) -> Double {
        if a < 1 {
            return logGamma(shape: a + 1, rng: &rng) + Foundation.log(rng.nextOpenUnitDouble()) / a
        }
        let d = a - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            var x = 0.0, v = 0.0
            repeat {
                x = rng.nextNormalDouble()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = rng.nextOpenUnitDouble()
            if Foundation.log(u) < 0.5 * x * x + d - d * v + d * Foundation.log(v) {
                return Foundation.log(d * v)
            }
        }
    }
}
