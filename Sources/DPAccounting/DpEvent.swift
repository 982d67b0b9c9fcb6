// Privacy events as immutable values, and the errors an accountant raises.

/// A differentially private mechanism, described as a value.
///
/// The meaning of an event never changes once published: an accountant either accounts for it
/// exactly as described or refuses it with an ``AccountingError``. The trainer emits the event
/// that matches the sampler it actually used (the same design as `dp_accounting.DpEvent`).
///
/// - ``gaussian(noiseMultiplier:)``: the Gaussian mechanism adding `N(0, (sigma * Delta)^2)` to a
///   query of sensitivity `Delta` under the accountant's ``NeighboringRelation``.
/// - ``poissonSampled(probability:event:)``: `event` run on a Poisson sample that includes each
///   record independently with probability `q` (add/remove-one relation).
/// - ``sampledWithoutReplacement(sampleSize:datasetSize:event:)``: `event` run on a uniformly
///   random subset of exactly `sampleSize` of the `datasetSize` records (replace-one relation).
/// - ``selfComposed(event:count:)``: `count` independent runs of `event`.
/// - ``composed(_:)``: the events run one after another (adaptive composition).
/// - ``noOp``: a step that touches no private data.
public indirect enum DpEvent: Codable, Hashable, Sendable {
    case gaussian(noiseMultiplier: Double)
    case poissonSampled(probability: Double, event: DpEvent)
    case sampledWithoutReplacement(sampleSize: Int, datasetSize: Int, event: DpEvent)
    case selfComposed(event: DpEvent, count: Int)
    case composed([DpEvent])
    case noOp

    /// A short human-readable description, used in error messages and reports.
    public var summary: String {
        switch self {
        case .gaussian(let s): return "gaussian(noiseMultiplier: \(s))"
        case .poissonSampled(let q, let e): return "poissonSampled(probability: \(q), \(e.summary))"
        case .sampledWithoutReplacement(let m, let n, let e):
            return "sampledWithoutReplacement(sampleSize: \(m), datasetSize: \(n), \(e.summary))"
        case .selfComposed(let e, let c): return "selfComposed(\(e.summary), count: \(c))"
        case .composed(let es): return "composed([\(es.map(\.summary).joined(separator: ", "))])"
        case .noOp: return "noOp"
        }
    }

    /// Checks every parameter of the event tree.
    ///
    /// - Throws: ``AccountingError/invalidParameter(_:)`` naming the value and its valid range:
    ///   `noiseMultiplier` in (0, inf), `probability` in (0, 1], `count >= 0`,
    ///   `1 <= datasetSize`, `0 <= sampleSize <= datasetSize`.
    public func validate() throws {
        switch self {
        case .gaussian(let s):
            guard s > 0, s.isFinite else {
                throw AccountingError.invalidParameter(
                    "noiseMultiplier = \(s) in \(summary) is invalid: it must be finite and > 0")
            }
        case .poissonSampled(let q, let e):
            guard q > 0, q <= 1 else {
                throw AccountingError.invalidParameter(
                    "probability = \(q) in \(summary) is invalid: the sampling probability must be in (0, 1]")
            }
            try e.validate()
        case .sampledWithoutReplacement(let m, let n, let e):
            guard n >= 1 else {
                throw AccountingError.invalidParameter(
                    "datasetSize = \(n) in \(summary) is invalid: it must be >= 1")
            }
            guard m >= 0, m <= n else {
                throw AccountingError.invalidParameter(
                    "sampleSize = \(m) in \(summary) is invalid: it must be in 0...datasetSize (0...\(n))")
            }
            try e.validate()
        case .selfComposed(let e, let c):
            guard c >= 0 else {
                throw AccountingError.invalidParameter(
                    "count = \(c) in \(summary) is invalid: it must be >= 0")
            }
            try e.validate()
        case .composed(let es):
            for e in es { try e.validate() }
        case .noOp:
            break
        }
    }
}

/// Which pairs of datasets count as neighbours.
///
/// - ``addOrRemoveOne``: `D'` is `D` with one record added or removed. Poisson sampling is
///   analysed under this relation (Abadi et al. 2016; Mironov, Talwar, Zhang 2019).
/// - ``replaceOne``: `D'` is `D` with one record replaced. Fixed-size sampling without
///   replacement is analysed under this relation (Wang, Balle, Kasiviswanathan 2019). The
///   sensitivity of a sum of records clipped to norm `C` is `C` under add/remove but `2C` under
///   replace-one; a noise multiplier is always relative to the sensitivity of its own relation.
public enum NeighboringRelation: String, Codable, Sendable, CaseIterable {
    case addOrRemoveOne
    case replaceOne

    /// The name in results files and tables: `add-remove` or `replace-one`.
    public var name: String { self == .addOrRemoveOne ? "add-remove" : "replace-one" }
}

/// Why an accountant could not produce a guarantee. Privacy-relevant failures are never silent.
public enum AccountingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A parameter is outside its valid range; the message names the value and the range.
    case invalidParameter(String)
    /// The accountant cannot account for this event; the message names the event and why.
    case unsupportedEvent(String)
    /// A numerical search failed (for example no noise multiplier reaches the target).
    case calibrationFailed(String)

    public var description: String {
        switch self {
        case .invalidParameter(let m): return "invalid parameter: \(m)"
        case .unsupportedEvent(let m): return "unsupported event: \(m)"
        case .calibrationFailed(let m): return "calibration failed: \(m)"
        }
    }
}

// MARK: - Shared validation

enum Validate {
    static func delta(_ delta: Double) throws {
        guard delta > 0, delta < 1 else {
            throw AccountingError.invalidParameter("delta = \(delta) is invalid: it must be in (0, 1)")
        }
    }

    static func epsilon(_ epsilon: Double) throws {
        guard epsilon >= 0, !epsilon.isNaN else {
            throw AccountingError.invalidParameter("epsilon = \(epsilon) is invalid: it must be >= 0")
        }
    }

    static func count(_ count: Int) throws {
        guard count >= 0 else {
            throw AccountingError.invalidParameter("count = \(count) is invalid: it must be >= 0")
        }
    }

    /// `a * b`, throwing instead of trapping on overflow.
    static func multiply(_ a: Int, _ b: Int) throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        guard !o else {
            throw AccountingError.invalidParameter("count \(a) x \(b) overflows Int")
        }
        return r
    }
}
