// An append-only record of the privacy events a training run spent.

/// An append-only, JSON-serialisable record of composed privacy events.
///
/// The ledger stores events, not epsilons: it can be re-accounted later with any accountant
/// (and any delta), so a tighter accountant improves old runs. Consecutive identical events
/// are merged into one entry with a summed count. There is no way to remove or reset entries.
public struct PrivacyLedger: Codable, Hashable, Sendable {
    /// One event and how many consecutive times it ran.
    public struct Entry: Codable, Hashable, Sendable {
        public let event: DpEvent
        public fileprivate(set) var count: Int
    }

    /// The entries, oldest first.
    public private(set) var entries: [Entry] = []

    public init() {}

    /// Appends `count` runs of `event`, merging with the last entry if it is the same event.
    ///
    /// - Throws: ``AccountingError/invalidParameter(_:)`` if the event or count is invalid.
    public mutating func record(_ event: DpEvent, count: Int = 1) throws {
        try Validate.count(count)
        try event.validate()
        if count == 0 { return }
        if let last = entries.last, last.event == event {
            let (s, o) = last.count.addingReportingOverflow(count)
            guard !o else { throw AccountingError.invalidParameter("ledger count overflows Int") }
            entries[entries.count - 1].count = s
        } else {
            entries.append(Entry(event: event, count: count))
        }
    }

    /// The whole history as one event.
    public var event: DpEvent {
        .composed(entries.map { .selfComposed(event: $0.event, count: $0.count) })
    }

    /// Epsilon of everything recorded so far, accounted with a fresh copy of `accountant`.
    public func epsilon<A: PrivacyAccountant>(delta: Double, accountant: A) throws -> EpsilonReport {
        var a = accountant
        for e in entries { try a.compose(e.event, count: e.count) }
        return try a.epsilon(delta: delta)
    }

    /// Delta of everything recorded so far at `epsilon`.
    public func delta<A: PrivacyAccountant>(epsilon: Double, accountant: A) throws -> Double {
        var a = accountant
        for e in entries { try a.compose(e.event, count: e.count) }
        return try a.delta(epsilon: epsilon)
    }
}
