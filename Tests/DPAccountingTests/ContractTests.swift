import Foundation
import Testing

@testable import DPAccounting

/// The contract every ``PrivacyAccountant`` must satisfy, run against each accountant.
@Suite("PrivacyAccountant contract")
struct ContractTests {
    @Test("an empty accountant and noOp events cost nothing", arguments: AccountantKind.allCases)
    func emptyIsFree(_ kind: AccountantKind) throws {
        var a = kind.make()
        #expect(try a.epsilon(delta: 1e-5).epsilon == 0)
        try a.compose(.noOp, count: 1000)
        try a.compose(.selfComposed(event: .noOp, count: 5), count: 3)
        try a.compose(step(0.01, 1.0), count: 0)
        #expect(try a.epsilon(delta: 1e-5).epsilon == 0)
        #expect(try a.delta(epsilon: 0.5) == 0)
    }

    @Test("count, selfComposed and repeated composition agree", arguments: AccountantKind.allCases)
    func compositionForms(_ kind: AccountantKind) throws {
        let e = step(0.02, 1.2)
        var a = kind.make(), b = kind.make(), c = kind.make()
        try a.compose(e, count: 30)
        try b.compose(.selfComposed(event: e, count: 30))
        for _ in 0..<3 {
            try c.compose(.composed([.selfComposed(event: e, count: 5), e, .selfComposed(event: e, count: 4)]))
        }
        let ea = try a.epsilon(delta: 1e-5).epsilon
        #expect(ea > 0)
        #expect(isClose(ea, try b.epsilon(delta: 1e-5).epsilon, rel: 1e-9))
        #expect(isClose(ea, try c.epsilon(delta: 1e-5).epsilon, rel: 1e-9))
    }

    @Test("heterogeneous composition is order-independent", arguments: AccountantKind.allCases)
    func heterogeneous(_ kind: AccountantKind) throws {
        var a = kind.make(), b = kind.make()
        try a.compose(step(0.01, 1.0), count: 200)
        try a.compose(step(0.05, 2.0), count: 50)
        try b.compose(
            .composed([
                .selfComposed(event: step(0.05, 2.0), count: 50),
                .selfComposed(event: step(0.01, 1.0), count: 200),
            ]))
        #expect(isClose(try a.epsilon(delta: 1e-6).epsilon, try b.epsilon(delta: 1e-6).epsilon, rel: 1e-6))
    }

    @Test("delta(epsilon) inverts epsilon(delta)", arguments: AccountantKind.allCases, [1e-5, 1e-6])
    func roundTrip(_ kind: AccountantKind, delta: Double) throws {
        var a = kind.make()
        try a.compose(step(0.01, 1.1), count: 1000)
        let eps = try a.epsilon(delta: delta).epsilon
        let back = try a.delta(epsilon: eps)
        // Each query is a certified bound for its own direction, so the round trip is
        // consistent up to the grid (RDP: the optimum over orders) and never above delta.
        #expect(back <= delta * (1 + 1e-6))
        #expect(back >= delta * 0.5)
        #expect(try a.delta(epsilon: eps * 1.05) < back)
    }

    @Test("epsilon grows with steps and q, shrinks with sigma", arguments: AccountantKind.allCases)
    func monotone(_ kind: AccountantKind) throws {
        func eps(_ q: Double, _ s: Double, _ t: Int) throws -> Double {
            var a = kind.make()
            try a.compose(step(q, s), count: t)
            return try a.epsilon(delta: 1e-5).epsilon
        }
        let base = try eps(0.01, 1.0, 1000)
        #expect(try eps(0.01, 1.0, 2000) > base)
        #expect(try eps(0.02, 1.0, 1000) > base)
        #expect(try eps(0.01, 1.5, 1000) < base)
    }

    @Test("invalid parameters throw errors naming the value and range", arguments: AccountantKind.allCases)
    func invalid(_ kind: AccountantKind) throws {
        var a = kind.make()
        let bad: [(DpEvent, String)] = [
            (step(0, 1), "(0, 1]"), (step(1.5, 1), "(0, 1]"), (step(-0.1, 1), "probability = -0.1"),
            (step(0.1, 0), "noiseMultiplier = 0.0"), (step(0.1, -2), "> 0"),
            (.gaussian(noiseMultiplier: .infinity), "finite"),
            (.selfComposed(event: step(0.1, 1), count: -3), "count = -3"),
        ]
        for (e, fragment) in bad {
            do {
                try a.compose(e)
                Issue.record("\(e.summary) was accepted")
            } catch let AccountingError.invalidParameter(message) {
                #expect(message.contains(fragment), "\(message)")
            }
        }
        #expect(throws: AccountingError.self) { try a.compose(step(0.1, 1), count: -1) }
        for d in [0.0, 1.0, 1.5, -1e-5, .nan] {
            #expect(throws: AccountingError.self) { try a.epsilon(delta: d) }
        }
        #expect(throws: AccountingError.self) { try a.delta(epsilon: -1) }
        #expect(try a.epsilon(delta: 1e-5).epsilon == 0, "failed composes must not change state")
    }

    @Test(
        "sampling without replacement under add/remove is refused, naming the event",
        arguments: AccountantKind.allCases)
    func refusesWithoutReplacement(_ kind: AccountantKind) throws {
        var a = kind.make()
        try a.compose(step(0.01, 1), count: 10)
        let before = try a.epsilon(delta: 1e-5).epsilon
        let wor = DpEvent.sampledWithoutReplacement(
            sampleSize: 10, datasetSize: 1000,
            event: .gaussian(noiseMultiplier: 1))
        do {
            try a.compose(.composed([step(0.01, 1), wor]), count: 5)
            Issue.record("accepted \(wor.summary)")
        } catch let AccountingError.unsupportedEvent(message) {
            #expect(message.contains("sampledWithoutReplacement"))
            #expect(message.contains("replace"))
        }
        #expect(try a.epsilon(delta: 1e-5).epsilon == before)
    }

    @Test("Poisson sampling of a non-Gaussian event is refused", arguments: AccountantKind.allCases)
    func refusesNested(_ kind: AccountantKind) throws {
        var a = kind.make()
        let nested = DpEvent.poissonSampled(probability: 0.1, event: step(0.5, 1))
        #expect(throws: AccountingError.self) { try a.compose(nested) }
    }
}
