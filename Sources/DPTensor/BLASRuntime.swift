import CBLAS
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What the loaded OpenBLAS runs, and the choice of its CPU kernel.
///
/// Debian's OpenBLAS 0.3.21 (built with `DYNAMIC_ARCH`) picks its kernel when the library loads,
/// before `main`, and does not recognise newer CPUs (AMD Zen 4, for one): it then runs the
/// generic 'Prescott' kernels, about 6x slower at sgemm. `OPENBLAS_CORETYPE` overrides the
/// choice, but only if set before the library loads. ``ensureFastKernel(arguments:)`` therefore
/// re-executes the program once with the best kernel whose instructions the CPU reports; it
/// never overrides a value the user set, and does nothing under CI or when told not to.
public enum BLASRuntime {
    /// The OpenBLAS kernel in use (`openblas_get_corename`), for example "SkylakeX".
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// DPKit's thread count: how many threads ``ParallelBatch`` splits work across (chunks of
    /// a batch, examples of a layer, blocks of a large GEMM). It starts at the count OpenBLAS
    /// chose when it loaded (`OPENBLAS_NUM_THREADS`, else the cores), and ``setThreadCount(_:)``
    /// changes it.
    ///
    /// OpenBLAS itself always runs on one thread (``pinToOneThread``): its threaded GEMM rounds
    /// some shapes differently from its one-thread GEMM (measured: 26 of 720 outputs of a
    /// `45 x 784 x 16` product differ), so results would depend on the thread count, and its
    /// count is process-wide, so changing it for one computation would change another's.
    /// DPKit splits large GEMMs itself into blocks that depend on the shapes only.
    public static var threadCount: Int {
        let set = chosenThreadCount.load(ordering: .relaxed)
        return set > 0 ? set : initialThreadCount
    }

    /// Sets DPKit's thread count for the rest of the process (OpenBLAS stays on one thread).
    public static func setThreadCount(_ n: Int) {
        precondition(n >= 1, "BLASRuntime.setThreadCount: \(n) threads; use 1 or more")
        _ = pinToOneThread
        chosenThreadCount.store(n, ordering: .relaxed)
    }

    /// OpenBLAS's own count when it loaded, read once before it is set to 1.
    static var initialThreadCount: Int {
        _ = pinToOneThread
        return initialThreadCountBeforePin
    }

    /// 0 until ``setThreadCount(_:)``.
    static let chosenThreadCount = Atomic<Int>(0)

    /// Sets OpenBLAS to one thread, once; every BLAS forwarder touches it first.
    @usableFromInline static let pinToOneThread: Bool = {
        _ = initialThreadCountBeforePin
        openblas_set_num_threads(1)
        return true
    }()

    /// Read before the pin (``initialThreadCount`` may be first read after it).
    static let initialThreadCountBeforePin: Int = max(1, Int(openblas_get_num_threads()))

    /// Serialises ``withThreadCount(_:_:)`` across threads (recursive: a body may call it again).
    static let threadCountLock = NSRecursiveLock()

    /// Runs `body` with DPKit on `n` threads, then restores the count. The count is
    /// process-wide: calls from several threads wait for each other, so that a body sees the
    /// count it asked for throughout (tests that compare thread counts).
    public static func withThreadCount<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
        threadCountLock.lock()
        defer { threadCountLock.unlock() }
        let before = chosenThreadCount.load(ordering: .relaxed)
        setThreadCount(n)
        defer { chosenThreadCount.store(before, ordering: .relaxed) }
        return try body()
    }

    /// The environment variable OpenBLAS reads for how long its idle threads poll for work.
    public static let threadTimeoutVariable = "OPENBLAS_THREAD_TIMEOUT"

    /// The idle timeout the `dpkit` tool sets (``setIdleThreadTimeout(log2Cycles:)``): 2^16
    /// cycles, some tens of microseconds, enough to bridge back-to-back BLAS calls. Measured on
    /// the tanh CNN at 2 threads (BENCHMARKS.md): 2^4, 2^12 and 2^16 gave about the same
    /// throughput, 1.2-1.3x OpenBLAS's default 2^28; 2^20 was erratic.
    public static let dpkitIdleThreadTimeout = 16

    /// Makes OpenBLAS's idle worker threads sleep after about `2^log2Cycles` CPU cycles without
    /// work (OpenBLAS clamps the exponent to 4...30), unless the user set
    /// `OPENBLAS_THREAD_TIMEOUT` or `GOTO_THREAD_TIMEOUT`; returns whether it changed anything.
    ///
    /// OpenBLAS's default is 2^28 cycles (about 0.1 s): after every threaded BLAS call its workers
    /// keep polling (`sched_yield`) on the other cores, and the ``ParallelBatch`` slices that run
    /// between BLAS calls (im2col, pooling, activations, norms, noise) then find no free core, so
    /// the calling thread runs them all. The timeout is read only when the worker threads start,
    /// so this sets the variable, has OpenBLAS re-read its environment (`openblas_read_env`), and
    /// restarts the workers (`blas_thread_shutdown_`, `blas_thread_init`): entry points of
    /// OpenBLAS 0.3's thread server that `cblas.h` does not declare, looked up at run time, so
    /// that a single-threaded OpenBLAS without them is left alone (the call returns `false`).
    /// Call it first thing in `main`, before any other thread uses BLAS.
    @discardableResult
    public static func setIdleThreadTimeout(log2Cycles: Int) -> Bool {
        _ = pinToOneThread // reads OpenBLAS's own count before the restart
        defer { openblas_set_num_threads(1) }
        let env = ProcessInfo.processInfo.environment
        if env[threadTimeoutVariable] != nil || env["GOTO_THREAD_TIMEOUT"] != nil { return false }
        typealias Entry = @convention(c) () -> Int32
        typealias VoidEntry = @convention(c) () -> Void
        guard let process = dlopen(nil, RTLD_NOW) else { return false }
        defer { dlclose(process) }
        guard let readEnv = dlsym(process, "openblas_read_env"),
            let shutdown = dlsym(process, "blas_thread_shutdown_"),
            let start = dlsym(process, "blas_thread_init")
        else { return false }
        setenv(threadTimeoutVariable, String(log2Cycles), 1)
        unsafeBitCast(readEnv, to: VoidEntry.self)()
        _ = unsafeBitCast(shutdown, to: Entry.self)()
        _ = unsafeBitCast(start, to: Entry.self)()
        return true
    }

    /// The OpenBLAS build configuration string.
    public static var configuration: String { String(cString: openblas_get_config()) }

    /// The environment variable a user sets to keep DPKit from re-executing.
    public static let noReexecVariable = "DPKIT_NO_BLAS_REEXEC"
    /// Set by DPKit on the re-executed process, to record and to stop a loop.
    public static let reexecMarkerVariable = "DPKIT_BLAS_REEXEC"

    /// The CPU feature flags from `/proc/cpuinfo` (empty if unreadable).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
        for line in text.split(separator: "\n") where line.hasPrefix("flags") {
            if let colon = line.firstIndex(of: ":") {
                return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
            }
        }
        return []
    }

    /// The fastest OpenBLAS 0.3.21 x86-64 kernel whose instructions all appear in `flags`, or nil.
    public static func bestCoreType(forCPUFlags flags: Set<String>) -> String? {
        let avx512 = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
        if avx512 && flags.contains("avx512_bf16") { return "Cooperlake" }
        if avx512 { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        if flags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// Kernels that are generic fall-backs (what OpenBLAS runs when it does not know the CPU).
    public static let genericCores: Set<String> = [
        "Prescott", "Core2", "Katmai", "Coppermine", "Northwood", "Banias", "Atom", "Nano",
    ]

    /// The outcome of ``ensureFastKernel(arguments:)``.
    public enum KernelStatus: Equatable, Sendable {
        /// The kernel in use is already a fast one for this CPU.
        case fast(core: String)
        /// The user set `OPENBLAS_CORETYPE`; DPKit left it alone.
        case userChosen(core: String, requested: String)
        /// A slow generic kernel runs and DPKit did not switch it; `advice` says how to fix it.
        case slow(core: String, advice: String)
    }

    /// What to do about the loaded kernel: the pure decision behind ``ensureFastKernel(arguments:)``.
    public enum KernelDecision: Equatable, Sendable {
        /// Nothing to do; the status to report.
        case keep(KernelStatus)
        /// Re-execute with `OPENBLAS_CORETYPE` set to this kernel.
        case reexecute(coreType: String, advice: String)
    }

    /// Decides from the loaded kernel, the environment and the CPU's flags. Never overrides an
    /// `OPENBLAS_CORETYPE` the user set; never re-executes under CI, when told not to, or twice.
    public static func decide(core: String, environment env: [String: String], cpuFlags: Set<String>) -> KernelDecision
    {
        if let requested = env["OPENBLAS_CORETYPE"], !requested.isEmpty {
            return .keep(.userChosen(core: core, requested: requested))
        }
        guard genericCores.contains(core), let better = bestCoreType(forCPUFlags: cpuFlags) else {
            return .keep(.fast(core: core))
        }
        let advice =
            "OpenBLAS runs its slow generic '\(core)' kernel on this CPU; this CPU supports '\(better)'. "
            + "Fix: export OPENBLAS_CORETYPE=\(better) before running (about 6x faster sgemm)."
        if env["CI"] != nil || env[noReexecVariable] != nil || env[reexecMarkerVariable] != nil {
            return .keep(.slow(core: core, advice: advice))
        }
        return .reexecute(coreType: better, advice: advice)
    }

    /// Makes sure the process runs a fast BLAS kernel. If OpenBLAS fell back to a generic kernel,
    /// `OPENBLAS_CORETYPE` is unset, and the CPU reports the instructions of a better kernel,
    /// the process re-executes itself with that kernel (this call then does not return). Under
    /// CI (`CI` set), with ``noReexecVariable`` set, or if re-execution fails, it returns
    /// `.slow` with the exact fix, which the caller prints as a warning.
    public static func ensureFastKernel(arguments: [String] = CommandLine.arguments) -> KernelStatus {
        switch decide(core: coreName, environment: ProcessInfo.processInfo.environment, cpuFlags: cpuFlags()) {
        case .keep(let status):
            return status
        case .reexecute(let better, let advice):
            setenv("OPENBLAS_CORETYPE", better, 1)
            setenv(reexecMarkerVariable, better, 1)
            var cArgs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
            cArgs.append(nil)
            execv("/proc/self/exe", &cArgs)
            // execv returned: it failed. Undo and warn.
            unsetenv("OPENBLAS_CORETYPE")
            unsetenv(reexecMarkerVariable)
            return .slow(core: coreName, advice: advice + " (DPKit could not re-execute itself: errno \(errno).)")
        }
    }

    // MARK: - For library users

    /// The loaded kernel, judged without changing anything (no re-execution, nothing set):
    /// `.fast`, `.userChosen` (the user set `OPENBLAS_CORETYPE`), or `.slow` with advice naming
    /// the exact `export OPENBLAS_CORETYPE=...` line. A program that links DPKit as a library
    /// gets the kernel OpenBLAS chose when it loaded; to get the fast one, either export the
    /// variable before the program starts, or call ``ensureFastKernel(arguments:)`` first thing
    /// in `main` (it re-executes the process once, as the `dpkit` tool does).
    public static func check() -> KernelStatus {
        let env = ProcessInfo.processInfo.environment
        switch decide(core: coreName, environment: env, cpuFlags: cpuFlags()) {
        case .keep(let status): return status
        case .reexecute(_, let advice): return .slow(core: coreName, advice: advice)
        }
    }

    /// The environment variable that silences ``warnOnceIfSlowKernel()``.
    public static let quietVariable = "DPKIT_NO_BLAS_WARNING"

    /// The one-time warning for `status`, or nil when there is nothing to say.
    public static func slowKernelWarning(for status: KernelStatus) -> String? {
        guard case .slow(_, let advice) = status else { return nil }
        return "DPKit warning: \(advice) Or call BLASRuntime.ensureFastKernel() first thing in main "
            + "(it re-executes the program once). Set \(quietVariable)=1 or BLASRuntime.slowKernelWarningEnabled = false to silence this."
    }

    private static let warningState = WarningState()

    /// Whether ``warnOnceIfSlowKernel()`` prints (true unless ``quietVariable`` is set).
    public static var slowKernelWarningEnabled: Bool {
        get { warningState.withLock { $0.enabled } }
        set { warningState.withLock { $0.enabled = newValue } }
    }

    /// Prints ``slowKernelWarning(for:)`` of ``check()`` to standard error, once per process,
    /// unless silenced. `DPSGDTrainer.init` calls it, so a library user on a slow kernel hears
    /// about it at the first trainer. Returns true if it printed.
    @discardableResult
    public static func warnOnceIfSlowKernel() -> Bool {
        let proceed = warningState.withLock { s -> Bool in
            guard s.enabled, !s.warned else { return false }
            s.warned = true
            return true
        }
        guard proceed, ProcessInfo.processInfo.environment[quietVariable] == nil,
            let text = slowKernelWarning(for: check())
        else { return false }
        FileHandle.standardError.write(Data((text + "\n").utf8))
        return true
    }

    /// True if this process was re-executed by DPKit to choose the kernel.
    public static var kernelChosenByDPKit: String? {
        ProcessInfo.processInfo.environment[reexecMarkerVariable]
    }

    /// A one-line description for manifests and benchmark output.
    public static var summary: String {
        "OpenBLAS core \(coreName), \(threadCount) thread(s)"
            + (kernelChosenByDPKit.map { " (OPENBLAS_CORETYPE=\($0) chosen by DPKit)" } ?? "")
    }
}

/// The once-per-process flags of the slow-kernel warning, behind a lock.
private final class WarningState: @unchecked Sendable {
    struct Flags { var enabled = true, warned = false }
    private let lock = NSLock()
    private var flags = Flags()
    func withLock<T>(_ body: (inout Flags) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&flags)
    }
}
