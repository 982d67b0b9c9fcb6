import DPAccounting
import DPData

// MARK: - A whole training run in one call

/// What one epoch of ``DPSGDTrainer/fit(epochs:evaluateOn:onStep:onEpoch:)`` did.
///
/// The training loss, accuracy and clipped fraction are computed from the private batches
/// without noise: they are diagnostics, not differentially private releases.
public struct EpochReport: Sendable {
    /// 1-based.
    public var epoch: Int
    /// Steps taken by the trainer so far (all epochs).
    public var steps: Int
    public var trainLoss: Double
    public var trainAccuracy: Double
    /// The fraction of examples whose gradient was scaled down; nil when not private.
    public var clippedFraction: Double?
    /// On the dataset given as `evaluateOn`, after the epoch; nil without one.
    public var testLoss: Double?
    public var testAccuracy: Double?
    /// Epsilon of the whole ledger at the trainer's delta, by its budget accountant; nil when
    /// the trainer is not private.
    public var epsilon: Double?
}

/// What ``DPSGDTrainer/fit(epochs:evaluateOn:onStep:onEpoch:)`` did in all.
public struct TrainingSummary: Sendable {
    /// The epochs run (the last one may be cut short by the budget).
    public var epochs: Int
    public var steps: Int
    /// True if the privacy budget (`targetEpsilon`) refused a step and training stopped there.
    public var stoppedByBudget: Bool
    /// The last epoch's report (nil if no epoch ran).
    public var lastEpoch: EpochReport?
    /// Epsilon of the whole ledger at ``delta``; nil when not private.
    public var epsilon: Double?
    public var delta: Double?
    /// Every event the run composed.
    public var ledger: PrivacyLedger
}

extension DPSGDTrainer {
    /// The steps of one epoch: n / expected batch size, rounded (an epoch is one pass over the
    /// data in expectation).
    public var stepsPerEpoch: Int {
        SamplingScheme.stepsPerEpoch(datasetSize: data.count, batchSize: configuration.expectedBatchSize)
    }

    /// Trains for `epochs` epochs of ``stepsPerEpoch`` steps, or until the privacy budget
    /// refuses the next step (which is not an error here: the summary says so).
    ///
    /// ```swift
    /// let summary = try trainer.fit(epochs: 5, evaluateOn: test,
    ///                               onEpoch: { print($0.epoch, $0.testAccuracy ?? .nan, $0.epsilon ?? 0) })
    /// ```
    ///
    /// - Parameters:
    ///   - epochs: at least 1.
    ///   - test: evaluated after every epoch (evaluation mode, no dropout) when given.
    ///   - onStep: called after every step with its ``StepReport``; throw to stop.
    ///   - onEpoch: called after every epoch with its ``EpochReport``; throw to stop.
    /// - Throws: ``TrainingError`` from a step (a non-finite loss or gradient norm), an
    ///   accounting error, or what a callback throws.
    @discardableResult
    public func fit(
        epochs: Int, evaluateOn test: Dataset? = nil,
        onStep: ((StepReport) throws -> Void)? = nil,
        onEpoch: ((EpochReport) throws -> Void)? = nil
    ) throws -> TrainingSummary {
        guard epochs >= 1 else { throw TrainingError.invalidSetting("epochs \(epochs) must be >= 1") }
        let delta = isPrivate ? configuration.privacy?.delta : nil
        var summary = TrainingSummary(
            epochs: 0, steps: step, stoppedByBudget: false, lastEpoch: nil,
            epsilon: nil, delta: delta, ledger: ledger)
        for epoch in 1...epochs {
            var lossSum = 0.0, correct = 0, seen = 0, clipped = 0
            for _ in 0..<stepsPerEpoch {
                if let remaining = stepsRemaining, remaining <= 0 {
                    summary.stoppedByBudget = true
                    break
                }
                let r = try trainStep()
                lossSum += r.lossSum
                correct += r.correct
                seen += r.batchSize
                clipped += r.clippedCount
                try onStep?(r)
            }
            if summary.stoppedByBudget && seen == 0 { break }
            var report = EpochReport(
                epoch: epoch, steps: step,
                trainLoss: seen > 0 ? lossSum / Double(seen) : .nan,
                trainAccuracy: seen > 0 ? Double(correct) / Double(seen) : .nan)
            if configuration.privacy != nil, seen > 0 { report.clippedFraction = Double(clipped) / Double(seen) }
            if let test {
                let e = evaluate(test)
                report.testLoss = e.loss
                report.testAccuracy = e.accuracy
            }
            if let delta {
                report.epsilon = try PrivacyBudget.epsilon(ledger: ledger, delta: delta, accountant: budgetAccountant)
            }
            summary.epochs = epoch
            summary.steps = step
            summary.lastEpoch = report
            summary.epsilon = report.epsilon
            summary.ledger = ledger
            try onEpoch?(report)
            if summary.stoppedByBudget { break }
        }
        return summary
    }
}
