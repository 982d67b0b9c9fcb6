import Foundation
import Testing
@testable import DPAccounting

@Suite("RDPAccountant")
struct RDPAccountantTests {
    @Test("matches dp_accounting 0.6 to 1e-3 relative or is lower", arguments: Golden.all)
    func goldens(_ g: Golden) throws {
        var acct = RDPAccountant()
        try acct.compose(g.event)
        let report = try acct.epsilon(delta: 1e-5)
        #expect(report.epsilon <= g.rdp * (1 + 1e-3))
        #expect(report.epsilon >= g.rdp * (1 - 5e-3), "finer grid should only help a little")
        #expect(report.accountant == "rdp")
        #expect(report.order != nil)
        #expect(report.warnings.isEmpty)
    }
}
