import DPData
import DPTensor
import DPTraining
import Testing

@testable import DPFederated

// Simulated clients train on model replicas, one per thread; a client's update depends only on
// the round's global model, its data and its own random stream, so the rounds have the same bits
// at any thread count.

@Test(
    "federated rounds give the same model bit for bit on 1 and 2 threads (plain, and DP with secure aggregation)",
    arguments: [false, true])
func federatedRoundsAreIndependentOfTheThreadCount(secure: Bool) throws {
    func train(threads: Int) throws -> (parameters: [Float], replicas: Int, loss: Double) {
        try BLASRuntime.withThreadCount(threads) {
            let trainer = try smallTrainer(
                FederatedConfiguration(
                    rounds: 3, sampling: .fixedSize, clientsPerRound: 6,
                    local: LocalTraining(epochs: 2, batchSize: 5, learningRate: 0.3, momentum: 0.5),
                    privacy: secure ? UserLevelPrivacy(noiseMultiplier: 1, clippingNorm: 0.5) : nil,
                    secureAggregation: secure ? SecureAggregationSettings() : nil, seed: 3))
            var loss = 0.0
            for _ in 0..<3 { loss += try trainer.runRound().meanLocalLoss }
            return (trainer.flatParameters(), trainer.clientReplicas.count, loss)
        }
    }
    let one = try train(threads: 1), two = try train(threads: 2)
    #expect(one.replicas == 0 && two.replicas == 1)
    #expect(one.loss.bitPattern == two.loss.bitPattern, "mean local losses \(one.loss) and \(two.loss)")
    let differing = zip(one.parameters, two.parameters).filter { $0.bitPattern != $1.bitPattern }.count
    #expect(one.parameters.count == two.parameters.count && differing == 0, "\(differing) parameters differ")
}
