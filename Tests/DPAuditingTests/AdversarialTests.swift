import DPData
import DPLayers
import DPTensor
import DPTraining
import Foundation
import Testing

@testable import DPAuditing

// MARK: - Closed form on a linear model

/// A two-class linear model `z = W x + b` on `d` inputs with given weights.
private func linearModel(_ w: [[Float]], bias: [Float] = [0, 0]) throws -> Sequential {
    let d = w[0].count
    let m = try ModelBuilder.build(specs: [.linear(outputs: 2)], inputShape: [d], seed: 1)
    m.parameters[0].value = Tensor(w.flatMap { $0 }, shape: [2, d])
    m.parameters[1].value = Tensor(bias, shape: [2])
    return m
}

/// For a two-class linear model the loss of label y grows with the margin `(w_o - w_y) . x`,
/// and the gradient w.r.t. x is `(1 - p_y)(w_o - w_y)`: the optimal L-inf perturbation is
/// `eps sign(w_o - w_y)`, the optimal L2 one `eps (w_o - w_y) / ||w_o - w_y||`. (PGD steps of
/// size eps here: the fixed point is the same, and each L2 projection halves the part of the
/// random start that is off the optimal direction.)
@Test(arguments: [PerturbationNorm.linf, .l2], [AdversarialMethod.fgsm, .pgd])
func linearModelClosedForm(norm: PerturbationNorm, method: AdversarialMethod) throws {
    let w: [[Float]] = [[0.5, -1, 2, 0.25, -0.75, 1.5], [-0.5, 0.5, -1, 1, 0.25, 0.5]]
    let m = try linearModel(w)
    let d = 6, eps: Float = 0.1
    var rng = PhiloxRandom(seed: 5)
    var x0 = Tensor<Float>(zeros: [4, d])
    x0.fillUniform(in: 0.3, 0.7, using: &rng)
    let labels = [0, 1, 0, 1]
    let attack = try AdversarialAttack(
        method: method, norm: norm, epsilon: Double(eps), steps: 100, stepSize: Double(eps), restarts: 2,
        randomStart: true)
    let input = AdversarialInput(.none, exampleShape: [d])
    let x = attack.perturb(model: m, inputs: x0, labels: labels, input: input, random: &rng)
    for e in 0..<4 {
        let y = labels[e], o = 1 - y
        let direction = (0..<d).map { w[o][$0] - w[y][$0] }
        let length = direction.map { $0 * $0 }.reduce(0, +).squareRoot()
        for j in 0..<d {
            let expected = norm == .linf ? eps * (direction[j] > 0 ? 1 : -1) : eps * direction[j] / length
            let got = x[e, j] - x0[e, j]
            #expect(abs(got - expected) < 1e-4, "example \(e) coordinate \(j): \(got) vs \(expected)")
        }
    }
}

/// A small CNN on `[channels, 6, 6]` and 16 images in [0, 1], half their pixels at the ends of
/// the range, where the clip to the valid range binds.
private func smallCNNAndImages(channels: Int, random: inout PhiloxRandom) throws -> (Sequential, Tensor<Float>) {
    let m = try ModelBuilder.build(
        specs: [.conv2d(outChannels: 4, kernel: 3), .tanh, .flatten, .linear(outputs: 3)],
        inputShape: [channels, 6, 6], seed: 2)
    var x0 = Tensor<Float>(zeros: [16, channels, 6, 6])
    x0.fillUniform(in: 0, 1, using: &random)
    x0.withUnsafeMutableBufferPointer { p in for j in stride(from: 0, to: p.count, by: 2) { p[j] = p[j] > 0.5 ? 1 : 0 }
    }
    return (m, x0)
}

@Test(arguments: [PerturbationNorm.linf, .l2])
func pgdStaysInTheBudgetAndTheValidRange(norm: PerturbationNorm) throws {
    var rng = PhiloxRandom(seed: 9)
    let (m, x0) = try smallCNNAndImages(channels: 1, random: &rng)
    let labels = (0..<16).map { $0 % 3 }
    let eps = norm == .linf ? 0.2 : 1.5
    let attack = try AdversarialAttack(method: .pgd, norm: norm, epsilon: eps, steps: 10, stepSize: eps, restarts: 3)
    let input = AdversarialInput(
        .standardization(Standardization(mean: [0.3], standardDeviation: [0.4])), exampleShape: [1, 6, 6])
    let outcome = attack.run(model: m, inputs: x0, labels: labels, input: input, random: &rng)
    for n in outcome.perturbationNorms { #expect(n <= eps * (1 + 1e-5)) }
    #expect(outcome.perturbationNorms.max()! > eps * 0.5)
    for v in outcome.adversarial.scalars { #expect(v >= 0 && v <= 1) }
}

// MARK: - The square attack (gradient-free)

/// On a two-class linear model whose examples the budget cannot flip, the square attack's
/// greedy search over the box's vertices ends at the optimal L-inf vertex `x0 + eps
/// sign(w_o - w_y)` (from query 11 of 1000 its windows are single coordinates, and every flip
/// towards that vertex lowers the margin).
@Test func squareAttackFindsTheOptimalVertexOfALinearModel() throws {
    let w: [[Float]] = [[0.5, -1, 2, 0.25, -0.75, 1.5], [-0.5, 0.5, -1, 1, 0.25, 0.5]]
    let m = try linearModel(w, bias: [2, 0]) // margin >= 1.225 > 0.825, the most eps = 0.1 can take off
    let d = 6, eps: Float = 0.1
    var rng = PhiloxRandom(seed: 5)
    var x0 = Tensor<Float>(zeros: [4, d])
    x0.fillUniform(in: 0.3, 0.7, using: &rng)
    let attack = try AdversarialAttack(method: .square, norm: .linf, epsilon: 0.1, steps: 1000)
    #expect(attack.label == "square1000-linf-0.1")
    let x = attack.perturb(
        model: m, inputs: x0, labels: [0, 0, 0, 0], input: AdversarialInput(.none, exampleShape: [d]), random: &rng)
    for e in 0..<4 {
        for j in 0..<d {
            let expected = eps * (w[1][j] - w[0][j] > 0 ? 1 : -1)
            #expect(abs((x[e, j] - x0[e, j]) - expected) < 1e-6, "example \(e) coordinate \(j)")
        }
    }
}

@Test func squareAttackStaysInTheBudgetAndTheValidRange() throws {
    var rng = PhiloxRandom(seed: 9)
    let (m, x0) = try smallCNNAndImages(channels: 2, random: &rng)
    let attack = try AdversarialAttack(method: .square, norm: .linf, epsilon: 0.2, steps: 200, restarts: 2)
    let input = AdversarialInput(
        .standardization(Standardization(mean: [0.3, 0.5], standardDeviation: [0.4, 0.2])), exampleShape: [2, 6, 6])
    let outcome = attack.run(
        model: m, inputs: x0, labels: (0..<16).map { $0 % 3 }, input: input, random: &rng)
    for n in outcome.perturbationNorms { #expect(n <= 0.2 * (1 + 1e-6)) }
    #expect(outcome.perturbationNorms.max()! > 0.19)
    for v in outcome.adversarial.scalars { #expect(v >= 0 && v <= 1) }
    #expect(outcome.robustAccuracy <= outcome.cleanAccuracy)
}

/// A model with masked gradients: each input passes a step `tanh(1000 (x_j - 0.45))`, flat
/// (exactly +-1 in Float, zero derivative) away from its threshold, and class 1 wins only when
/// all six steps are down. From x0 = 0.5 with eps = 0.1, every example can be flipped (all
/// x_j = 0.4), but PGD sees zero gradients: it succeeds only if its random start (or a start
/// within 0.009 of a threshold, where the gradient is not zero) puts all six coordinates below,
/// probability about 0.3^6 = 7e-4 per restart, so the chance that 7 or more of 64 examples fall
/// is below 1e-15. The square attack reads only the logits: each accepted proposal turns at
/// least one more step down (margin -2), so 300 queries leave an example unflipped with a
/// probability far below 1e-9 (false-failure rate of the whole test under 1e-8).
@Test func squareAttackSeesThroughMaskedGradientsWherePGDDoesNot() throws {
    let d = 6
    let m = try ModelBuilder.build(
        specs: [.linear(outputs: d), .tanh, .linear(outputs: 2)], inputShape: [d], seed: 1)
    m.parameters[0].value = Tensor((0..<(d * d)).map { $0 / d == $0 % d ? 1000 : 0 }, shape: [d, d])
    m.parameters[1].value = Tensor(repeating: -450, shape: [d])
    m.parameters[2].value = Tensor([Float](repeating: 0, count: d) + [Float](repeating: -1, count: d), shape: [2, d])
    m.parameters[3].value = Tensor([0, -5], shape: [2])
    let x0 = Tensor<Float>(repeating: 0.5, shape: [64, d])
    let labels = [Int](repeating: 0, count: 64)
    let input = AdversarialInput(.none, exampleShape: [d])
    var rng = PhiloxRandom(seed: 3)
    let pgd = try AdversarialAttack(method: .pgd, norm: .linf, epsilon: 0.1, steps: 40, restarts: 1)
        .run(model: m, inputs: x0, labels: labels, input: input, random: &rng)
    let square = try AdversarialAttack(method: .square, norm: .linf, epsilon: 0.1, steps: 300)
        .run(model: m, inputs: x0, labels: labels, input: input, random: &rng)
    #expect(pgd.cleanAccuracy == 1)
    #expect(pgd.robustAccuracy > 0.89, "PGD robust accuracy \(pgd.robustAccuracy)")
    #expect(square.robustAccuracy == 0, "square robust accuracy \(square.robustAccuracy)")
}

@Test func squareAttackRefusesWhatItDoesNotDo() throws {
    #expect(throws: AuditError.self) { try AdversarialAttack(method: .square, norm: .l2, epsilon: 1) }
    #expect(throws: AuditError.self) {
        try AdversarialAttack(method: .square, norm: .linf, epsilon: 0.1, stepSize: 0.01)
    }
    #expect(try AdversarialAttack(method: .square, norm: .linf, epsilon: 0.1).steps == 1000)
}

/// The gradient through each input scaling against central finite differences.
@Test(arguments: [
    InputTransform.none, .perExample,
    .standardization(Standardization(mean: [0.2, 0.4], standardDeviation: [0.5, 2])),
])
func inputScalingGradientMatchesFiniteDifferences(transform: InputTransform) throws {
    let input = AdversarialInput(transform, exampleShape: [2, 2, 2])
    var rng = PhiloxRandom(seed: 3)
    var x = Tensor<Float>(zeros: [2, 2, 2, 2])
    x.fillUniform(in: 0, 1, using: &rng)
    var c = Tensor<Float>(zeros: x.shape)
    c.fillNormal(using: &rng)
    // f(x) = sum c * forward(x); df/dx = backward(c).
    func f(_ x: Tensor<Float>) -> Double {
        zip(input.forward(x).scalars, c.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
    }
    let g = input.backward(input: x, outputGradient: c).scalars
    for j in 0..<x.scalarCount {
        var plus = x, minus = x
        plus.withUnsafeMutableBufferPointer { $0[j] += 1e-2 }
        minus.withUnsafeMutableBufferPointer { $0[j] -= 1e-2 }
        let numeric = (f(plus) - f(minus)) / 2e-2
        #expect(abs(numeric - Double(g[j])) < 2e-2 * max(1, abs(numeric)), "coordinate \(j): \(numeric) vs \(g[j])")
    }
}

// MARK: - A toy task with a robust and many non-robust features

/// Tsipras et al. (2019)'s construction: `x_0 = 2y + N(0, 1)` (robust), `x_1..x_40 = 0.3y + N(0, 1)`
/// (each weak, together strong but moved by a small L-inf budget), y = ±1 (class 0, 1).
private func robustnessTask(count: Int, seed: UInt64) -> Dataset {
    var rng = PhiloxRandom(seed: seed, stream: 0x70)
    let d = 41
    var x = [Float](repeating: 0, count: count * d)
    var labels = [Int](repeating: 0, count: count)
    for i in 0..<count {
        let y: Float = i % 2 == 0 ? 1 : -1
        labels[i] = i % 2
        for j in 0..<d { x[i * d + j] = (j == 0 ? 2 : 0.3) * y + Float(rng.nextNormalDouble()) }
    }
    return Dataset(name: "robustness", features: Tensor(x, shape: [count, d]), labels: labels, classCount: 2)
}

private func train(
    _ data: Dataset, adversarial: AdversarialAttack?, privacy: PrivacySettings? = nil
) throws -> (
    Sequential, DPSGDTrainer
) {
    let m = try ModelBuilder.build(specs: [.linear(outputs: 2)], inputShape: [41], seed: 4)
    let trainer = try DPSGDTrainer(
        model: m, optimizer: SGD(learningRate: 0.2), data: data,
        configuration: TrainerConfiguration(expectedBatchSize: 100, privacy: privacy, seed: 8))
    if let adversarial {
        trainer.inputPerturbation = try AdversarialTraining(
            attack: adversarial, transform: .none, exampleShape: [41], seed: 8)
    }
    for _ in 0..<200 { try trainer.trainStep() }
    return (m, trainer)
}

private func robustAccuracy(_ m: Sequential, _ test: Dataset, epsilon: Double) throws -> Double {
    let attack = try AdversarialAttack(method: .pgd, norm: .linf, epsilon: epsilon, steps: 20, validRange: nil)
    var rng = PhiloxRandom(seed: 1)
    return attack.run(
        model: m, inputs: test.features, labels: test.labels, input: AdversarialInput(.none, exampleShape: [41]),
        random: &rng
    ).robustAccuracy
}

@Test func undefendedModelLosesMostAccuracyUnderALargeBudget() throws {
    let (m, _) = try train(robustnessTask(count: 1000, seed: 1), adversarial: nil)
    let test = robustnessTask(count: 500, seed: 2)
    let clean = m.accuracy(test.features, labels: test.labels)
    let robust = try robustAccuracy(m, test, epsilon: 1)
    #expect(clean > 0.95)
    #expect(robust < 0.2, "clean \(clean), robust \(robust)")
}

@Test func adversarialTrainingRaisesRobustAccuracy() throws {
    let data = robustnessTask(count: 1000, seed: 1), test = robustnessTask(count: 500, seed: 2)
    let pgd = try AdversarialAttack(method: .pgd, norm: .linf, epsilon: 0.6, steps: 5, validRange: nil)
    let (plain, _) = try train(data, adversarial: nil)
    let (robust, _) = try train(data, adversarial: pgd)
    let before = try robustAccuracy(plain, test, epsilon: 0.6), after = try robustAccuracy(robust, test, epsilon: 0.6)
    #expect(after > before + 0.2, "robust accuracy \(before) -> \(after)")
    #expect(after > 0.8)
}

/// Private adversarial training composes exactly the events of ordinary DP-SGD.
@Test func privateAdversarialTrainingKeepsTheAccounting() throws {
    let data = robustnessTask(count: 1000, seed: 1)
    let privacy = PrivacySettings(noiseMultiplier: 1, clippingNorm: 1, delta: 1e-5)
    let pgd = try AdversarialAttack(method: .pgd, norm: .linf, epsilon: 0.6, steps: 3, validRange: nil)
    let (_, plain) = try train(data, adversarial: nil, privacy: privacy)
    let (_, adversarial) = try train(data, adversarial: pgd, privacy: privacy)
    #expect(plain.ledger == adversarial.ledger)
}

// MARK: - Poisoning

@Test func backdoorSucceedsWithoutDP() throws {
    let train = SyntheticData.shapes(count: 1000, size: 12, seed: 1)
    let test = SyntheticData.shapes(count: 300, size: 12, seed: 1, part: .test)
    let backdoor = Backdoor(trigger: BackdoorTrigger(size: 3), target: 0, count: 100)
    let poisoned = try backdoor.poison(train, seed: 3)
    #expect(poisoned.count == 1100)
    let m = try ModelBuilder.build(
        specs: [.flatten, .linear(outputs: 64), .tanh, .linear(outputs: 10)], inputShape: [1, 12, 12], seed: 2)
    let trainer = try DPSGDTrainer(
        model: m, optimizer: SGD(learningRate: 0.1, momentum: 0.9), data: poisoned,
        configuration: TrainerConfiguration(expectedBatchSize: 100, privacy: nil, seed: 5))
    for _ in 0..<300 { try trainer.trainStep() }
    let asr = backdoor.attackSuccessRate(model: m, triggered: backdoor.triggered(test))
    let clean = m.accuracy(test.features, labels: test.labels)
    #expect(asr > 0.8, "attack success \(asr), clean accuracy \(clean)")
    #expect(clean > 0.3) // ten classes: chance is 0.1
}

@Test func groupPrivacyBound() {
    let g = GroupPrivacy(epsilon: 1, delta: 1e-5, groupSize: 3)
    #expect(g.groupEpsilon == 3)
    #expect(abs(g.groupDelta - 3 * exp(2.0) * 1e-5) < 1e-15)
    #expect(abs(g.outcomeBound(probability: 0.01) - (exp(3.0) * 0.01 + 3 * exp(2.0) * 1e-5)) < 1e-12)
    #expect(GroupPrivacy(epsilon: 8, delta: 1e-5, groupSize: 10).outcomeBound(probability: 0.01) == 1)
    #expect(GroupPrivacy(epsilon: 1, delta: 1e-5, groupSize: 0).outcomeBound(probability: 0.01) == 0.01)
}

// MARK: - Bad inputs

@Test func badInputsNameTheFix() throws {
    #expect(throws: AuditError.self) { try AdversarialAttack(method: .fgsm, norm: .linf, epsilon: -0.1) }
    do {
        _ = try AdversarialAttack(method: .fgsm, norm: .linf, epsilon: -0.1)
    } catch let e as AuditError {
        #expect(e.description.contains(">= 0"))
    }
    do {
        try BackdoorTrigger(size: 30).check(exampleShape: [1, 28, 28])
        Issue.record("a 30x30 trigger fits in 28x28 images?")
    } catch let e as AuditError {
        #expect(e.description.contains("patch_size <= 27"))
    }
    #expect(throws: AuditError.self) { try BackdoorTrigger(size: 3).check(exampleShape: [10]) }
    #expect(throws: AuditError.self) {
        try AdversarialTraining(
            attack: AdversarialAttack(method: .pgd, norm: .l2, epsilon: 1), transform: .perExample,
            exampleShape: [1, 4, 4], seed: 0)
    }
}

@Test func labelFlippingFlipsTheFractionOfTheSourceClass() throws {
    let train = SyntheticData.shapes(count: 1000, size: 8, seed: 1)
    let (flipped, k) = try LabelFlipping(fraction: 0.25, source: 3, target: 5).poison(train, seed: 2)
    #expect(k == 25) // 100 examples of class 3
    #expect(flipped.labels.filter { $0 == 3 }.count == 75)
    #expect(flipped.labels.filter { $0 == 5 }.count == 125)
    #expect(throws: AuditError.self) { try LabelFlipping(fraction: 0.1, source: 5, target: 5).poison(train, seed: 2) }
}
