import DPTraining
import Foundation

/// `accounting:` section of a `kind: accounting` config: epsilon of the subsampled Gaussian
/// mechanism over a grid of (q, sigma, steps), at one delta, from RDP and/or PLD accountants.
///
/// Every list is a grid axis; scalars are one-element lists.
public struct AccountingConfig: Hashable, Sendable {
    /// q: Poisson sampling probability per step, in (0, 1].
    public var samplingProbabilities: [Double]
    /// sigma, > 0.
    public var noiseMultipliers: [Double]
    /// Numbers of composed steps, >= 1.
    public var steps: [Int]
    /// delta in (0, 1).
    public var targetDelta: Double
    /// The accountants asked for (`accountant: both` is RDP and PLD).
    public var accountants: [AccountantKind]

    /// The grid in output order: q outermost, then sigma, then steps.
    public var points: [AccountingPoint] {
        samplingProbabilities.flatMap { q in
            noiseMultipliers.flatMap { sigma in
                steps.map {
                    AccountingPoint(samplingProbability: q, noiseMultiplier: sigma, steps: $0, targetDelta: targetDelta)
                }
            }
        }
    }

    static func parse(_ r: MapReader) throws -> AccountingConfig {
        func doubles(_ value: ConfigValue?) -> [Double] {
            if case .list(let l)? = value { return l.compactMap(\.doubleValue) }
            return []
        }
        let qs = doubles(
            try r.read(ParameterSpec("sampling_probability", .doubleList, range: .unitExcludingZero, required: true)))
        let sigmas = doubles(
            try r.read(ParameterSpec("noise_multiplier", .doubleList, range: .positive, required: true)))
        let steps = doubles(try r.read(ParameterSpec("steps", .intList, range: .atLeast(1), required: true))).map {
            Int($0)
        }
        let delta = try r.requiredDouble("delta", range: .openUnit)
        let accountant = try r.pluginName("accountant", r.context.registries.accountants, default: "both")
        try r.finish()
        // The schema is AccountantKind's own, so every name it accepts converts.
        let accountants = AccountantKind.selection(named: accountant.name) ?? [.rdp, .pld]
        return AccountingConfig(
            samplingProbabilities: qs, noiseMultipliers: sigmas, steps: steps, targetDelta: delta,
            accountants: accountants)
    }
}

/// One point of an accounting grid.
public struct AccountingPoint: Hashable, Sendable {
    public var samplingProbability: Double
    public var noiseMultiplier: Double
    public var steps: Int
    public var targetDelta: Double
}

/// The epsilons of one accounting point; nil for an accountant not asked for.
public struct AccountingResult: Hashable, Sendable {
    public var epsilonRDP: Double?
    public var epsilonPLDLower: Double?
    public var epsilonPLDUpper: Double?

    public init(epsilonRDP: Double? = nil, epsilonPLDLower: Double? = nil, epsilonPLDUpper: Double? = nil) {
        self.epsilonRDP = epsilonRDP
        self.epsilonPLDLower = epsilonPLDLower
        self.epsilonPLDUpper = epsilonPLDUpper
    }
}

/// Computes epsilons for an accounting config; implemented over DPAccounting by the lead.
public protocol AccountingExecutor {
    /// epsilon(delta) of `point.steps` compositions of the Poisson-subsampled Gaussian mechanism.
    /// - Parameter accountants: the accountants asked for.
    func epsilons(_ point: AccountingPoint, accountants: [AccountantKind]) throws -> AccountingResult
}

/// The columns of `accounting.csv`.
public let accountingColumns = [
    "q", "noise_multiplier", "steps", "delta", "epsilon_rdp", "epsilon_pld_lower", "epsilon_pld_upper",
]

/// Writes `accounting.csv` for every point of `config` (the file is rewritten atomically at the end).
@discardableResult
public func runAccounting(
    _ config: AccountingConfig, outputDirectory: URL, executor: AccountingExecutor,
    log: (String) -> Void = { print($0) }
) throws -> [AccountingPoint: AccountingResult] {
    try FileIO.createDirectory(outputDirectory)
    var rows: [[String]] = []
    var results: [AccountingPoint: AccountingResult] = [:]
    let points = config.points
    for (i, point) in points.enumerated() {
        let result = try executor.epsilons(point, accountants: config.accountants)
        results[point] = result
        rows.append([
            csvNumber(point.samplingProbability), csvNumber(point.noiseMultiplier), String(point.steps),
            csvNumber(point.targetDelta), csvNumber(result.epsilonRDP), csvNumber(result.epsilonPLDLower),
            csvNumber(result.epsilonPLDUpper),
        ])
        log(
            "point \(i + 1)/\(points.count): q=\(csvNumber(point.samplingProbability)) sigma=\(csvNumber(point.noiseMultiplier)) steps=\(point.steps) eps_rdp=\(csvNumber(result.epsilonRDP)) eps_pld=[\(csvNumber(result.epsilonPLDLower)), \(csvNumber(result.epsilonPLDUpper))]"
        )
    }
    let text = CSV.line(accountingColumns) + rows.map(CSV.line).joined()
    try DurableFile.writeAtomically(text, to: outputDirectory.appendingPathComponent("accounting.csv"))
    return results
}
