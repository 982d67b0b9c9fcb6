import ArgumentParser
import DPTensor

#if canImport(Glibc)
import Glibc
#endif

// Progress lines appear as they happen, also when standard output is a file or a pipe.
setlinebuf(stdout)

// Choose the fast BLAS kernel before any work (re-executes once if needed).
switch BLASRuntime.ensureFastKernel() {
case .slow(_, let advice):
    FileHandleStderr.write("warning: \(advice)\n")
default: break
}
// OpenBLAS's idle threads sleep soon after a call instead of polling for 0.1 s, so that the
// batch-parallel work between BLAS calls finds the other cores free (see BENCHMARKS.md).
BLASRuntime.setIdleThreadTimeout(log2Cycles: BLASRuntime.dpkitIdleThreadTimeout)
// The tool has said what it has to say about the kernel: trainers need not repeat it.
BLASRuntime.slowKernelWarningEnabled = false
DPKitCommand.main()
