import Foundation
import Testing

@testable import DPExperiments

#if canImport(Glibc)
import Glibc
#endif

// Issue 10, item 3: every filesystem and encoding failure names the path and the reason in
// words, and maps to a documented exit status.

// MARK: - The mapping function

struct ErrorCase: CustomStringConvertible, Sendable {
    var name: String
    var error: @Sendable () -> Error
    var reason: FileError.Reason
    var description: String { name }
}

let foundationErrors: [ErrorCase] = [
    ErrorCase(
        name: "Cocoa 513 write no permission", error: { NSError(domain: NSCocoaErrorDomain, code: 513) },
        reason: .permissionDenied),
    ErrorCase(
        name: "Cocoa 257 read no permission", error: { NSError(domain: NSCocoaErrorDomain, code: 257) },
        reason: .permissionDenied),
    ErrorCase(
        name: "Cocoa 642 read-only volume", error: { NSError(domain: NSCocoaErrorDomain, code: 642) },
        reason: .readOnlyFileSystem),
    ErrorCase(
        name: "Cocoa 640 out of space", error: { NSError(domain: NSCocoaErrorDomain, code: 640) }, reason: .diskFull),
    ErrorCase(
        name: "Cocoa 260 no such file", error: { NSError(domain: NSCocoaErrorDomain, code: 260) }, reason: .notFound),
    ErrorCase(name: "Cocoa 4 no such file", error: { NSError(domain: NSCocoaErrorDomain, code: 4) }, reason: .notFound),
    ErrorCase(
        name: "Cocoa 261 encoding", error: { NSError(domain: NSCocoaErrorDomain, code: 261) },
        reason: .notUTF8("not UTF-8 text")),
    ErrorCase(
        name: "Cocoa 512 over POSIX ENOSPC",
        error: {
            NSError(
                domain: NSCocoaErrorDomain, code: 512,
                userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))])
        },
        reason: .diskFull),
    ErrorCase(
        name: "POSIX domain EROFS", error: { NSError(domain: NSPOSIXErrorDomain, code: Int(EROFS)) },
        reason: .readOnlyFileSystem),
    ErrorCase(name: "POSIXError EACCES", error: { POSIXError(.EACCES) }, reason: .permissionDenied),
    ErrorCase(name: "POSIXError EPERM", error: { POSIXError(.EPERM) }, reason: .permissionDenied),
    ErrorCase(name: "POSIXError ENOTDIR", error: { POSIXError(.ENOTDIR) }, reason: .notADirectory),
    ErrorCase(name: "POSIXError EISDIR", error: { POSIXError(.EISDIR) }, reason: .isADirectory),
    ErrorCase(name: "POSIXError EDQUOT", error: { POSIXError(.EDQUOT) }, reason: .diskFull),
    ErrorCase(name: "POSIXError ENOENT", error: { POSIXError(.ENOENT) }, reason: .notFound),
]

@Test("Foundation and POSIX errors map to a reason in words", arguments: foundationErrors)
func foundationErrorsMapToReasonsInWords(_ c: ErrorCase) {
    #expect(FileError.Reason(c.error()) == c.reason)
}

@Test func reasonTextsAreWords() {
    #expect(FileError.Reason(errno: EACCES).text == "permission denied")
    #expect(FileError.Reason(errno: EROFS).text == "read-only file system")
    #expect(FileError.Reason(errno: ENOSPC).text.hasPrefix("disk full"))
    #expect(FileError.Reason(errno: ENOTDIR).text.hasPrefix("not a directory"))
    #expect(FileError.Reason(errno: EIO).text == "input/output error")
    let error = FileError(.write, path: "/r/runs.csv", errno: ENOSPC)
    #expect(error.description == "cannot write /r/runs.csv: disk full (no space left on the device)")
}

@Test("a raw Foundation error is shown as its path and reason, never as NSCocoaErrorDomain Code=513")
func plainDescriptionHidesFoundationCodes() {
    let raw = NSError(domain: NSCocoaErrorDomain, code: 513, userInfo: [NSFilePathErrorKey: "/data/out/figure.svg"])
    let text = plainDescription(of: raw)
    #expect(text == "/data/out/figure.svg: permission denied")
    #expect(!text.contains("NSCocoaErrorDomain") && !text.contains("513"))
    #expect(ExitStatus(for: raw) == .ioError)
}

@Test func exitStatusesFollowTheKindOfError() {
    #expect(ExitStatus(for: ConfigError(file: "a.yaml", path: "", message: "x")) == .usage)
    #expect(ExitStatus(for: FileError(.readConfig, path: "a.yaml", reason: .isADirectory)) == .usage)
    #expect(ExitStatus(for: FileError(.createOutput, path: "/o", reason: .readOnlyFileSystem)) == .cannotCreateOutput)
    #expect(ExitStatus(for: FileError(.createFile, path: "/o/f.svg", reason: .permissionDenied)) == .cannotCreateOutput)
    #expect(ExitStatus(for: FileError(.write, path: "/o/runs.csv", reason: .diskFull)) == .ioError)
    #expect(ExitStatus(for: FileError(.read, path: "/o/runs.csv", reason: .notUTF8("x"))) == .ioError)
    #expect(ExitStatus(for: OutputError("x", kind: .locked)) == .locked)
    #expect(ExitStatus(for: OutputError("x", kind: .nothingToShow)) == .failure)
    #expect(ExitStatus(for: OutputError("x", kind: .cannotCreateOutput)) == .cannotCreateOutput)
    #expect(ExitStatus(for: OutputError("x", kind: .usage)) == .usage)
    // Every status is documented in `dpkit --help`.
    for status in ExitStatus.allCases {
        #expect(ExitStatus.documentation.contains("  \(status.rawValue) "), "status \(status.rawValue) undocumented")
    }
}

// MARK: - Real files

@Test("an output path that is a file: cannot create the output folder, it is a file (exit 73)")
func outputPathThatIsAFile() throws {
    let dir = try temporaryDirectory()
    let file = dir.appendingPathComponent("results")
    try "not a folder\n".write(to: file, atomically: true, encoding: .utf8)
    for target in [file, file.appendingPathComponent("inner")] {
        do {
            _ = try runExperiment(target, executor: FakeExecutor())
            Issue.record("ran into \(target.path)")
        } catch let error as FileError {
            #expect(error.action == .createOutput && error.reason == .notADirectory)
            #expect(error.description.contains(file.path) && error.description.contains("is a file"))
            #expect(ExitStatus(for: error) == .cannotCreateOutput)
        }
    }
    #expect(try String(contentsOf: file, encoding: .utf8) == "not a folder\n")
}

@Test("a config path that is a folder, a missing config and a Latin-1 config: the path and the reason in words")
func unreadableConfigs() throws {
    let dir = try temporaryDirectory()
    func message(_ path: String) -> String {
        do {
            _ = try ExperimentConfig.load(file: path)
            return "loaded"
        } catch let error as ConfigError {
            #expect(ExitStatus(for: error) == .usage)
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }
    #expect(message(dir.path) == "\(dir.path): cannot be read: is a folder, not a file")
    #expect(
        message(dir.appendingPathComponent("missing.yaml").path).hasSuffix(
            "missing.yaml: cannot be read: no such file or folder"))

    // "café" in Latin-1: é is the single byte 0xE9.
    let latin1 = dir.appendingPathComponent("latin1.yaml")
    var bytes = Array(baseYAML.utf8)
    let nameLine = Array("name: test".utf8)
    let at = try #require(bytes.firstRange(of: nameLine))
    bytes.replaceSubrange(at, with: Array("name: caf".utf8) + [0xE9])
    try Data(bytes).write(to: latin1)
    let text = message(latin1.path)
    #expect(text.hasPrefix("\(latin1.path): cannot be read: not UTF-8 text: byte 0xE9 at line 1, column 10"), "\(text)")
    #expect(text.contains("iconv"))
    #expect(!text.contains("NSCocoaErrorDomain"))
}

@Test(
    "a full disk: cannot write, disk full (exit 74)", .enabled(if: FileManager.default.fileExists(atPath: "/dev/full")))
func diskFullIsNamed() throws {
    do {
        try DurableFile.append("a,b\n", to: URL(fileURLWithPath: "/dev/full"))
        Issue.record("wrote to /dev/full")
    } catch let error as FileError {
        #expect(error.reason == .diskFull && error.path == "/dev/full" && ExitStatus(for: error) == .ioError)
    }
}

/// Root ignores permission bits (CI runs as root), so only this case is skipped there.
@Test(
    "a read-only folder: permission denied (skipped as root, where chmod does not deny access)",
    .enabled(if: getuid() != 0, "running as root: permission bits do not deny root"))
func readOnlyFolderIsNamed() throws {
    let dir = try temporaryDirectory()
    try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: dir.path)
    defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path) }
    do {
        _ = try runExperiment(dir.appendingPathComponent("out"), executor: FakeExecutor())
        Issue.record("wrote into a read-only folder")
    } catch let error as FileError {
        #expect(error.reason == .permissionDenied && error.description.contains(dir.path))
        #expect(ExitStatus(for: error) == .cannotCreateOutput)
    }
}

@Test("an I/O error mid-experiment names the file and loses no result written before it; --resume finishes the rest")
func ioErrorMidExperimentKeepsResults() throws {
    let dir = try temporaryDirectory()
    let epochs = dir.appendingPathComponent("epochs.csv")
    let aside = dir.appendingPathComponent("epochs.aside")
    let executor = FakeExecutor()
    executor.onExecute = { run in
        // Before the third run, epochs.csv becomes a folder: its next append fails.
        guard run.index == 2 else { return }
        try FileManager.default.moveItem(at: epochs, to: aside)
        try FileManager.default.createDirectory(at: epochs, withIntermediateDirectories: false)
    }
    do {
        _ = try runExperiment(dir, executor: executor)
        Issue.record("the experiment went on without its epochs.csv")
    } catch let error as FileError {
        #expect(error.description == "cannot write \(epochs.path): is a folder, not a file")
        #expect(ExitStatus(for: error) == .ioError)
    }
    // The two finished runs are kept, with a valid manifest.
    let runs = try readTable(dir.appendingPathComponent("runs.csv"))
    #expect(runs.rows.count == 2 && runs.rows.allSatisfy { $0["status"] == "finished" })
    let manifest = try readManifest(dir)
    #expect(manifest["runs"]?.listValue?.filter { $0["status"] == .string("finished") }.count == 2)

    try FileManager.default.removeItem(at: epochs)
    try FileManager.default.moveItem(at: aside, to: epochs)
    let (report, _) = try runExperiment(dir, executor: FakeExecutor(), resume: true)
    #expect(report.skipped.count == 2 && report.finished.count == 4)
}
