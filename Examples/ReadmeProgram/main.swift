// swift-format-ignore-file
// (the snippet regions are shown word for word in the docs: Tests/DocumentationTests)
// The program of README.md's section "Using DPKit as a library", between the markers below.
// DocumentationSnippetTests (at the root) fails when the two differ; `make examples` runs it.

// snippet: readme
import DPData
import DPLayers
import DPTraining

// Generated data: three Gaussian classes in 10 dimensions.
let train = SyntheticData.gaussianMixture(classes: 3, dimensions: 10, examplesPerClass: 2000,
                                          separation: 3, seed: 1)
let test = SyntheticData.gaussianMixture(classes: 3, dimensions: 10, examplesPerClass: 300,
                                         separation: 3, seed: 1, part: .test)

// A model from layer specs: 10 -> 32 -> tanh -> 3.
let model = try ModelBuilder.build(specs: [.linear(outputs: 32), .tanh, .linear(outputs: 3)],
                                   inputShape: [10], seed: 7)

// DP-SGD: Poisson batches of 256 in expectation, noise multiplier 1.5, clipping norm 1, and a
// budget: no step is taken that would bring epsilon above 3 at delta 1e-5.
let privacy = PrivacySettings(noiseMultiplier: 1.5, clippingNorm: 1, delta: 1e-5, targetEpsilon: 3)
let trainer = try DPSGDTrainer(
    model: model, optimizer: SGD(learningRate: 0.5), data: train,
    configuration: TrainerConfiguration(expectedBatchSize: 256, privacy: privacy, seed: 42))

let summary = try trainer.fit(
    epochs: 5, evaluateOn: test,
    onStep: { s in if s.step % 20 == 0 { print("step \(s.step): loss sum \(s.lossSum)") } },
    onEpoch: { e in print("epoch \(e.epoch): accuracy \(e.testAccuracy!), epsilon \(e.epsilon!)") })
print("test accuracy \(summary.lastEpoch!.testAccuracy!) at epsilon \(summary.epsilon!)")
// end snippet
