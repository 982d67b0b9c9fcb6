import Foundation
import Testing
@testable import DPAccounting

@Suite("PLDAccountant")
struct PLDAccountantTests {
    @Test("upper bound within 1% of dp_accounting 0.6, lower bound below it", arguments: Golden.all)
    func goldens(_ g: Golden) throws {
        var acct = PLDAccountant()
        try acct.compose(g.event)
        let r = try acct.epsilon(delta: 1e-5)
        #expect(abs(r.epsilonUpper! - g.pld) <= 0.01 * g.pld)
        #expect(r.epsilonUpper! >= g.pld * (1 - 2e-3), "an upper bound should not undercut the reference")
        #expect(r.epsilonLower! < g.pld)
        #expect(r.epsilon == r.epsilonUpper)
    }
}
