// swift-format-ignore-file
// (the snippet regions are shown word for word in the docs: Tests/DocumentationTests)
import DPData
import DPFederated
import DPLayers

/// docs/federated.md, "Rounds".
func federatedRounds() throws {
    // snippet: federated-rounds
    let train = SyntheticData.gaussianMixture(classes: 3, dimensions: 8, examplesPerClass: 60, separation: 4, seed: 1)
    let partition = try ClientPartition.make(labels: train.labels, classCount: 3, clients: 20, scheme: .dirichlet(alpha: 0.5), seed: 1)
    let model = try ModelBuilder.build(specs: [.linear(outputs: 16, bias: true), .tanh, .linear(outputs: 3, bias: true)], inputShape: [8], seed: 2)
    let trainer = try FederatedTrainer(
        model: model, data: train, partition: partition,
        configuration: FederatedConfiguration(
            rounds: 50, sampling: .poisson, clientsPerRound: 5,
            local: LocalTraining(epochs: 2, batchSize: 10, learningRate: 0.1),
            server: .fedAvg(learningRate: 1),
            privacy: UserLevelPrivacy(noiseMultiplier: 1.0, clippingNorm: 0.5)))
    for _ in 0..<50 { try trainer.runRound() }
    print(try trainer.epsilon(delta: 1e-3))     // user-level, add/remove-one user
    // end snippet
}
