// A custom model, built layer by layer, trained with DP-SGD on generated data; prints the
// test accuracy and the epsilon spent after every epoch.
//
//     cd Examples && swift run TrainCustomModel
import DPData
import DPLayers
import DPTensor
import DPTraining

// MARK: - The BLAS kernel: check() changes nothing; it says which kernel runs and how to get a
// faster one (the first trainer also prints that advice once, to standard error).

switch BLASRuntime.check() {
case .fast(let core), .userChosen(let core, _): print("OpenBLAS kernel \(core)")
case .slow(let core, _):
    print("OpenBLAS kernel \(core): slow and generic (the first trainer prints the fix to standard error)")
}

// MARK: - Data: four Gaussian classes in 16 dimensions, a training set and a test set

let train = SyntheticData.gaussianMixture(
    classes: 4, dimensions: 16, examplesPerClass: 1500,
    separation: 3, seed: 1, part: .train)
let test = SyntheticData.gaussianMixture(
    classes: 4, dimensions: 16, examplesPerClass: 250,
    separation: 3, seed: 1, part: .test)

// MARK: - Model: a hand-built Sequential (each Linear draws its initial weights from `rng`)

var rng = PhiloxRandom(seed: 7)
let model = Sequential([
    Linear(inputs: 16, outputs: 32, rng: &rng),
    Tanh(),
    Linear(inputs: 32, outputs: 4, rng: &rng),
])

// MARK: - DP-SGD: Poisson batches of 200 in expectation, sigma 1.1, C 1, stop at epsilon 3

let privacy = PrivacySettings(noiseMultiplier: 1.1, clippingNorm: 1, delta: 1e-5, targetEpsilon: 3)
let trainer = try DPSGDTrainer(
    model: model, optimizer: SGD(learningRate: 0.5, momentum: 0.5),
    schedule: .cosine(totalSteps: 300, minimumFactor: 0.1), data: train,
    configuration: TrainerConfiguration(expectedBatchSize: 200, privacy: privacy, seed: 42))

print(
    "\(model.parameters.reduce(0) { $0 + $1.scalarCount }) parameters, \(trainer.stepsPerEpoch) steps per epoch, "
        + "sampling probability \(trainer.sampler.samplingProbability), noise multiplier \(privacy.noiseMultiplier)")
let summary = try trainer.fit(
    epochs: 10, evaluateOn: test,
    onEpoch: { epoch in
        print(
            "epoch \(epoch.epoch): train loss \(epoch.trainLoss), test accuracy \(epoch.testAccuracy!), "
                + "clipped \(epoch.clippedFraction!), epsilon \(epoch.epsilon!)")
    })
let accuracy = summary.lastEpoch?.testAccuracy ?? .nan
print(
    "test accuracy \(accuracy) at epsilon \(summary.epsilon!) (delta \(summary.delta!)) after \(summary.steps) steps"
        + (summary.stoppedByBudget ? "; stopped by the budget" : ""))
// The example is a check too: `make examples` fails if DP training stops learning.
guard accuracy > 0.8, summary.epsilon! <= 3 else {
    fatalError("TrainCustomModel: accuracy \(accuracy) or epsilon \(summary.epsilon!) out of the expected range")
}
