import DPAccounting

/// Which accountant answers a question: RDP (an upper bound, fast) or PLD (numerically tight,
/// with certified lower and upper bounds; the upper bound is what a budget uses).
public enum AccountantKind: String, Codable, Sendable, CaseIterable {
    case rdp, pld

    /// A fresh accountant of this kind for events under `relation`.
    public func make(relation: NeighboringRelation = .addOrRemoveOne) -> any PrivacyAccountant {
        switch self {
        case .rdp: return RDPAccountant(neighboringRelation: relation)
        case .pld: return PLDAccountant(neighboringRelation: relation)
        }
    }
}

/// Budget arithmetic on ledgers.
public enum PrivacyBudget {
    /// Epsilon (the accountant's upper bound) of everything in `ledger`.
    public static func epsilon(ledger: PrivacyLedger, delta: Double, accountant: AccountantKind = .rdp) throws -> Double
    {
        try report(ledger: ledger, delta: delta, accountant: accountant).epsilon
    }

    /// The accountant's full report for `ledger`. An empty ledger spends nothing: epsilon 0.
    public static func report(ledger: PrivacyLedger, delta: Double, accountant: AccountantKind) throws -> EpsilonReport
    {
        if ledger.entries.isEmpty {
            return EpsilonReport(
                epsilon: 0, delta: delta, accountant: accountant.rawValue,
                epsilonLower: accountant == .pld ? 0 : nil, epsilonUpper: accountant == .pld ? 0 : nil)
        }
        return try ledger.epsilon(delta: delta, accountant: accountant.make(relation: try ledger.neighboringRelation()))
    }

    /// The largest k such that `ledger` followed by k runs of `step` stays within `targetEpsilon`
    /// at `delta` (0 if even the ledger alone is over). Epsilon grows with k, so bisection is exact.
    public static func maximumAdditionalSteps(
        ledger: PrivacyLedger, step: DpEvent, targetEpsilon: Double,
        delta: Double, accountant: AccountantKind,
        limit: Int = 1 << 40
    ) throws -> Int {
        func fits(_ k: Int) throws -> Bool {
            var l = ledger
            try l.record(step, count: k)
            return try epsilon(ledger: l, delta: delta, accountant: accountant) <= targetEpsilon
        }
        if try !fits(0) { return 0 }
        if try !fits(1) { return 0 }
        var good = 1, bad = 2
        while try fits(bad) {
            good = bad
            if bad >= limit { return limit }
            bad *= 2
        }
        while bad - good > 1 {
            let mid = good + (bad - good) / 2
            if try fits(mid) { good = mid } else { bad = mid }
        }
        return good
    }
}

extension PrivacyLedger {
    /// The number of steps recorded (the sum of the entries' counts).
    public var totalCount: Int { entries.reduce(0) { $0 + $1.count } }

    /// The neighbouring relation the ledger's events are analysed under: replace-one if it holds
    /// sampling without replacement, add/remove-one otherwise.
    /// - Throws: if it mixes both (their guarantees do not compose into one statement).
    public func neighboringRelation() throws -> NeighboringRelation {
        var relations = Set<NeighboringRelation>()
        func visit(_ e: DpEvent) {
            switch e {
            case .sampledWithoutReplacement: relations.insert(.replaceOne)
            case .poissonSampled: relations.insert(.addOrRemoveOne)
            case .selfComposed(let inner, _): visit(inner)
            case .composed(let list): list.forEach(visit)
            default: break
            }
        }
        entries.forEach { visit($0.event) }
        if relations.count > 1 {
            throw AccountingError.unsupportedEvent(
                "the ledger mixes Poisson sampling (add/remove-one) and fixed-size sampling (replace-one); no single epsilon covers both relations"
            )
        }
        return relations.first ?? .addOrRemoveOne
    }
}
