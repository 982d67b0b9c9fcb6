import Testing

@testable import DPTensor

// The kernel choice is decided by a pure function; these tests never change the process's
// OPENBLAS_CORETYPE (the tests run on whatever kernel the machine loads).

private let zen4: Set<String> = [
    "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
]
private let skylakeX: Set<String> = ["avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

@Test(
    arguments: [
        (zen4, "Cooperlake"), (skylakeX, "SkylakeX"), (Set(["avx", "avx2", "fma"]), "Haswell"),
        (Set(["avx"]), "Sandybridge"), (Set(["sse2", "avx512f"]), nil),
    ] as [(Set<String>, String?)])
func bestKernelNeedsEveryInstruction(flags: Set<String>, expected: String?) {
    #expect(BLASRuntime.bestCoreType(forCPUFlags: flags) == expected)
}

@Test func genericKernelOnCapableCPUReexecutes() {
    let d = BLASRuntime.decide(core: "Prescott", environment: [:], cpuFlags: zen4)
    guard case .reexecute(let core, let advice) = d else {
        Issue.record("expected a re-execution, got \(d)")
        return
    }
    #expect(core == "Cooperlake")
    #expect(advice.contains("export OPENBLAS_CORETYPE=Cooperlake"))
}

@Test(arguments: [["OPENBLAS_CORETYPE": "Haswell"], ["OPENBLAS_CORETYPE": "Prescott"]])
func userChoiceIsNeverOverridden(env: [String: String]) {
    #expect(
        BLASRuntime.decide(core: "Prescott", environment: env, cpuFlags: zen4)
            == .keep(.userChosen(core: "Prescott", requested: env["OPENBLAS_CORETYPE"]!)))
}

@Test(arguments: ["CI", BLASRuntime.noReexecVariable, BLASRuntime.reexecMarkerVariable])
func ciOptOutAndLoopGuardWarnWithTheFix(variable: String) {
    let d = BLASRuntime.decide(core: "Prescott", environment: [variable: "1"], cpuFlags: skylakeX)
    guard case .keep(.slow(_, let advice)) = d else {
        Issue.record("expected a warning, got \(d)")
        return
    }
    #expect(advice.contains("export OPENBLAS_CORETYPE=SkylakeX"))
}

@Test func fastKernelOrNoBetterKernelIsKept() {
    #expect(
        BLASRuntime.decide(core: "Cooperlake", environment: [:], cpuFlags: zen4) == .keep(.fast(core: "Cooperlake")))
    #expect(
        BLASRuntime.decide(core: "Prescott", environment: [:], cpuFlags: ["sse2"]) == .keep(.fast(core: "Prescott")))
}

@Test func loadedKernelIsReported() {
    #expect(!BLASRuntime.coreName.isEmpty)
    #expect(BLASRuntime.threadCount >= 1)
    #expect(BLASRuntime.summary.contains(BLASRuntime.coreName))
}

// MARK: - The library user's check and warning

@Test func checkNeverReexecutesAndAgreesWithTheLoadedKernel() {
    let status = BLASRuntime.check()
    switch status {
    case .fast(let core), .slow(let core, _): #expect(core == BLASRuntime.coreName)
    case .userChosen(let core, _): #expect(core == BLASRuntime.coreName)
    }
}

@Test func slowKernelWarningNamesTheFixAndHowToSilenceIt() {
    let advice =
        "OpenBLAS runs its slow generic 'Prescott' kernel; Fix: export OPENBLAS_CORETYPE=SkylakeX before running."
    let text = BLASRuntime.slowKernelWarning(for: .slow(core: "Prescott", advice: advice))
    #expect(text?.contains("export OPENBLAS_CORETYPE=SkylakeX") == true)
    #expect(text?.contains("BLASRuntime.ensureFastKernel()") == true)
    #expect(text?.contains(BLASRuntime.quietVariable) == true)
    #expect(BLASRuntime.slowKernelWarning(for: .fast(core: "SkylakeX")) == nil)
    #expect(BLASRuntime.slowKernelWarning(for: .userChosen(core: "Prescott", requested: "Prescott")) == nil)
}
