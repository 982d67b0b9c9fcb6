import Foundation
import Testing

// `dpkit` restarts OpenBLAS's worker threads at start (BLASRuntime.setIdleThreadTimeout): a
// 2-thread private step whose GEMMs OpenBLAS threads (the MLP's 784 x 1000 layer) must still run
// and report its thread count.

@Test("dpkit bench runs a 2-thread private MLP step after restarting OpenBLAS's threads")
func benchRunsOnRestartedBLASThreads() throws {
    let p = Process()
    p.executableURL = try #require(
        dpkitExecutable(), "the dpkit executable is not beside the tests: run `swift build --build-tests` first")
    p.arguments = [
        "bench", "--workload", "mlp", "--mode", "private", "--batch-size", "64", "--steps", "2", "--warmup", "1",
        "--threads", "2", "--json",
    ]
    var env = ProcessInfo.processInfo.environment
    env["DPKIT_NO_BLAS_REEXEC"] = "1"
    env["OPENBLAS_THREAD_TIMEOUT"] = nil
    p.environment = env
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    #expect(p.terminationStatus == 0)
    let line = try #require(String(decoding: data, as: UTF8.self).split(separator: "\n").last)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    #expect(json["threads"] as? Int == 2)
    #expect((json["samples_per_second"] as? Double ?? 0) > 0)
}
