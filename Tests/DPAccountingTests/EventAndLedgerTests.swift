import Foundation
import Testing

@testable import DPAccounting

@Suite("DpEvent and PrivacyLedger")
struct EventAndLedgerTests {
    static let events: [DpEvent] = [
        .noOp, .gaussian(noiseMultiplier: 1.5), step(0.01, 1.1),
        .sampledWithoutReplacement(sampleSize: 256, datasetSize: 60000, event: .gaussian(noiseMultiplier: 1)),
        .selfComposed(event: step(0.5, 2), count: 7),
        .composed([.noOp, step(1, 3), .selfComposed(event: .gaussian(noiseMultiplier: 2), count: 2)]),
    ]

    @Test("events round-trip through JSON", arguments: events)
    func codable(_ e: DpEvent) throws {
        let data = try JSONEncoder().encode(e)
        #expect(try JSONDecoder().decode(DpEvent.self, from: data) == e)
    }

    @Test("invalid sampling sizes are named")
    func invalidSizes() throws {
        let cases: [(DpEvent, String)] = [
            (.sampledWithoutReplacement(sampleSize: 10, datasetSize: 0, event: .noOp), "datasetSize = 0"),
            (.sampledWithoutReplacement(sampleSize: 11, datasetSize: 10, event: .noOp), "sampleSize = 11"),
            (.sampledWithoutReplacement(sampleSize: -1, datasetSize: 10, event: .noOp), "0...datasetSize"),
        ]
        for (e, fragment) in cases {
            #expect(throws: AccountingError.self) { try e.validate() }
            do { try e.validate() } catch let AccountingError.invalidParameter(m) {
                #expect(m.contains(fragment), "\(m)")
            }
        }
    }

    @Test("the ledger merges consecutive identical events and never merges others")
    func merging() throws {
        var ledger = PrivacyLedger()
        try ledger.record(step(0.01, 1.1))
        try ledger.record(step(0.01, 1.1), count: 9)
        try ledger.record(.noOp, count: 0)
        try ledger.record(step(0.01, 1.2), count: 5)
        try ledger.record(step(0.01, 1.1), count: 2)
        #expect(ledger.entries.map(\.count) == [10, 5, 2])
        #expect(ledger.entries[1].event == step(0.01, 1.2))
        #expect(throws: AccountingError.self) { try ledger.record(step(0.01, 1.1), count: -1) }
        #expect(throws: AccountingError.self) { try ledger.record(step(2, 1.1)) }
        #expect(ledger.entries.map(\.count) == [10, 5, 2], "failed records must not change the ledger")
    }

    @Test(
        "the ledger round-trips through JSON and re-accounts with any accountant",
        arguments: AccountantKind.allCases)
    func reaccount(_ kind: AccountantKind) throws {
        var ledger = PrivacyLedger()
        for _ in 0..<20 { try ledger.record(step(0.01, 1.0), count: 50) }
        try ledger.record(step(0.02, 1.5), count: 100)
        #expect(ledger.entries.count == 2)
        let decoded = try JSONDecoder().decode(PrivacyLedger.self, from: JSONEncoder().encode(ledger))
        #expect(decoded == ledger)
        var direct = kind.make()
        try direct.compose(step(0.01, 1.0), count: 1000)
        try direct.compose(step(0.02, 1.5), count: 100)
        let expected = try direct.epsilon(delta: 1e-5).epsilon
        #expect(isClose(try decoded.epsilon(delta: 1e-5, accountant: kind.make()).epsilon, expected, rel: 1e-9))
        #expect(
            isClose(
                try decoded.delta(epsilon: expected, accountant: kind.make()),
                try direct.delta(epsilon: expected), rel: 1e-9))
        var viaEvent = kind.make()
        try viaEvent.compose(ledger.event)
        #expect(isClose(try viaEvent.epsilon(delta: 1e-5).epsilon, expected, rel: 1e-9))
    }
}
