import DPTraining
import Foundation

#if DPKIT_MPI
import CMPI
#endif

/// MPI for data-parallel training (`mpirun -np K dpkit run CONFIG`).
///
/// MPI is optional: the ordinary build (`swift build`, `make`) has no MPI and needs none
/// installed; `make mpi` builds with `DPKIT_MPI=mpich` (or `ompi`), which adds the system
/// library CMPI (pkg-config `mpich` / `ompi`) and compiles this module's MPI code
/// (`#if DPKIT_MPI`). A build without MPI started by `mpirun` with more than one rank refuses
/// to run rather than have every rank train the whole experiment into the same folder.
public enum MPIRuntime {
    /// True in a `make mpi` build.
    public static var isAvailable: Bool {
        #if DPKIT_MPI
        return true
        #else
        return false
        #endif
    }

    /// The world size an MPI launcher announced in the environment (MPICH's Hydra: `PMI_SIZE`;
    /// Open MPI: `OMPI_COMM_WORLD_SIZE`; PMIx launchers, srun: `PMIX_SIZE`... ), nil when
    /// this process was not started by one.
    public static func launcherSize(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Int? {
        for key in ["PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"] {
            if let v = env[key].flatMap(Int.init) { return v }
        }
        return nil
    }

    /// The ranks of this job: an MPI communicator when `mpirun` started this process with MPI
    /// built in, nil when it runs alone (no MPI initialised).
    /// - Throws: ``CommunicatorError`` when started by `mpirun` with several ranks in a build
    ///   without MPI (naming the fix), or when `MPI_Init` fails.
    public static func start() throws -> (any Communicator)? {
        guard let size = launcherSize() else { return nil }
        #if DPKIT_MPI
        let code = dpkit_mpi_init()
        guard code == 0 else { throw CommunicatorError("MPI_Init failed: \(MPICommunicator.describe(code))") }
        return MPICommunicator()
        #else
        guard size > 1 else { return nil }
        throw CommunicatorError(
            "this dpkit was built without MPI, but mpirun started \(size) ranks: each would train the whole experiment. Build the MPI one with `make mpi` (MPICH from Debian: apt-get install libmpich-dev mpich) and run `mpirun -np \(size) .build-mpi/release/dpkit run ...`"
        )
        #endif
    }

    /// `MPI_Finalize`, when MPI was initialised.
    public static func finish() {
        #if DPKIT_MPI
        if dpkit_mpi_initialized() != 0 { _ = dpkit_mpi_finalize() }
        #endif
    }

    /// The MPI library's version line (`MPICH Version: 4.0.2`...), nil without MPI.
    public static var libraryVersion: String? {
        #if DPKIT_MPI
        return String(cString: dpkit_mpi_library_version()).split(separator: "\n").first.map(String.init)
        #else
        return nil
        #endif
    }
}

#if DPKIT_MPI
/// `MPI_COMM_WORLD`: every collective goes to MPI as bytes (`MPI_BYTE`), so floats arrive bit
/// for bit. MPI's default error handler (`MPI_ERRORS_ARE_FATAL`) ends the job when a rank dies;
/// a code returned anyway becomes a ``CommunicatorError``.
public final class MPICommunicator: Communicator {
    public let rank: Int
    public let size: Int

    init() {
        rank = Int(dpkit_mpi_rank())
        size = Int(dpkit_mpi_size())
    }

    static func describe(_ code: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(dpkit_mpi_max_error_string()) + 1)
        dpkit_mpi_error_string(code, &text, Int32(text.count))
        return "MPI error \(code): " + String(cString: text)
    }

    private func check(_ code: Int32, _ what: String) throws {
        guard code == 0 else { throw CommunicatorError("\(what) failed on rank \(rank): \(Self.describe(code))") }
    }

    private func count(_ bytes: Int, _ what: String) throws -> Int32 {
        guard bytes <= Int(Int32.max) else {
            throw CommunicatorError(
                "\(what) of \(bytes) bytes is more than MPI takes in one call (2 GiB); lower training.max_physical_batch_size or use fewer chunks per rank"
            )
        }
        return Int32(bytes)
    }

    public func allGather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        precondition(
            receive.count == send.count * size, "allGather: \(receive.count) bytes for \(size) x \(send.count)")
        let n = try count(send.count, "MPI_Allgather")
        try check(dpkit_mpi_allgather(send.baseAddress, n, receive.baseAddress), "MPI_Allgather")
    }

    public func allToAll(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer) throws {
        precondition(
            receive.count == send.count && send.count % size == 0, "allToAll: \(send.count) bytes for \(size) ranks")
        let n = try count(send.count / size, "MPI_Alltoall")
        try check(dpkit_mpi_alltoall(send.baseAddress, n, receive.baseAddress), "MPI_Alltoall")
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        let n = try count(buffer.count, "MPI_Bcast")
        try check(dpkit_mpi_bcast(buffer.baseAddress, n, Int32(root)), "MPI_Bcast")
    }

    public func barrier() throws { try check(dpkit_mpi_barrier(), "MPI_Barrier") }

    public func abort(code: Int32) -> Never {
        _ = dpkit_mpi_abort(code)
        exit(code)
    }
}
#endif
