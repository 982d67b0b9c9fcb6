// The accountant interface shared by RDP and PLD.

/// An accountant composes privacy events and converts the result to (epsilon, delta)-DP.
///
/// Every accountant is a value: composing into a copy leaves the original untouched, so an
/// empty accountant doubles as a prototype carrying its settings (order grid, discretisation).
/// A conforming type must throw ``AccountingError/unsupportedEvent(_:)`` for any event it cannot
/// account for, rather than return a number that is not a guarantee.
public protocol PrivacyAccountant: Sendable {
    /// A short name for reports (`"rdp"`, `"pld"`).
    var name: String { get }
    /// The neighbouring relation the guarantee is stated for.
    var neighboringRelation: NeighboringRelation { get }
    /// Composes `count` independent runs of `event` into the accountant's state.
    ///
    /// - Throws: ``AccountingError`` if a parameter is invalid or the event is unsupported; the
    ///   state is unchanged when it throws.
    mutating func compose(_ event: DpEvent, count: Int) throws
    /// The smallest epsilon this accountant certifies for `delta` in (0, 1).
    func epsilon(delta: Double) throws -> EpsilonReport
    /// The smallest delta this accountant certifies for `epsilon >= 0`.
    func delta(epsilon: Double) throws -> Double
}

extension PrivacyAccountant {
    /// Composes one run of `event`.
    public mutating func compose(_ event: DpEvent) throws { try compose(event, count: 1) }
}

/// The result of an epsilon query.
public struct EpsilonReport: Codable, Hashable, Sendable, CustomStringConvertible {
    /// The certified epsilon (for PLD, the pessimistic upper bound ``epsilonUpper``).
    public var epsilon: Double
    /// The target delta the epsilon is stated for.
    public var delta: Double
    /// Which accountant produced it (`"rdp"` or `"pld"`).
    public var accountant: String
    /// The Renyi order at which the RDP bound is attained (RDP only).
    public var order: Double?
    /// A lower bound on the true epsilon of the composed mechanism (PLD only).
    public var epsilonLower: Double?
    /// An upper bound on the true epsilon of the composed mechanism (PLD only).
    public var epsilonUpper: Double?
    /// Conditions the caller should know about (optimal order at the edge of the grid, ...).
    public var warnings: [String]

    public init(
        epsilon: Double, delta: Double, accountant: String, order: Double? = nil,
        epsilonLower: Double? = nil, epsilonUpper: Double? = nil, warnings: [String] = []
    ) {
        self.epsilon = epsilon
        self.delta = delta
        self.accountant = accountant
        self.order = order
        self.epsilonLower = epsilonLower
        self.epsilonUpper = epsilonUpper
        self.warnings = warnings
    }

    public var description: String {
        var s = "epsilon = \(epsilon) at delta = \(delta) (\(accountant)"
        if let order { s += ", optimal order \(order)" }
        if let l = epsilonLower, let u = epsilonUpper { s += ", epsilon is between \(l) and \(u)" }
        s += ")"
        for w in warnings { s += "\nwarning: \(w)" }
        return s
    }
}
