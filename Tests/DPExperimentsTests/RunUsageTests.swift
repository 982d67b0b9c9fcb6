import Foundation
import Testing

// A `--shard` or `--seed` that the config (read after parsing) does not allow is a usage error of
// `dpkit run`: its own usage line (not the root command's), exit status 64, nothing written.

@Test(
    "dpkit run: a shard index out of range and an unknown seed are usage errors of dpkit run",
    arguments: [["--shard", "2/2"], ["--seed", "7"]])
func runUsageErrorsFoundAfterReadingTheConfig(_ flag: [String]) throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dpkit-usage-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: folder) }
    let p = Process()
    p.executableURL = try #require(
        dpkitExecutable(), "the dpkit executable is not beside the tests: run `swift build --build-tests` first")
    p.arguments =
        ["run", repositoryRoot.appendingPathComponent("experiments/quickstart.yaml").path, "--output", folder.path]
        + flag
    var env = ProcessInfo.processInfo.environment
    env["DPKIT_NO_BLAS_REEXEC"] = "1"
    p.environment = env
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    #expect(p.terminationStatus == 64)
    #expect(text.contains("Usage: dpkit run <config>"), "\(text)")
    #expect(text.contains("See 'dpkit run --help'"), "\(text)")
    #expect(text.contains(flag[0]), "\(text)")
    #expect(!FileManager.default.fileExists(atPath: folder.path))
}
