import Testing

@testable import DPAuditing

@Test func auditErrorCarriesItsMessage() {
    #expect(AuditError("confidence 1.5 is outside (0, 1)").description == "confidence 1.5 is outside (0, 1)")
}
