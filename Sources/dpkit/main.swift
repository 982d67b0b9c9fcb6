import ArgumentParser
import DPTensor

// Choose the fast BLAS kernel before any work (re-executes once if needed).
switch BLASRuntime.ensureFastKernel() {
case .slow(_, let advice):
    FileHandleStderr.write("warning: \(advice)\n")
default: break
}
DPKitCommand.main()
