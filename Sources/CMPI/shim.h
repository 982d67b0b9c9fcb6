// MPI for DPMPI, built only by `make mpi` (DPKIT_MPI=mpich or ompi): MPICH or Open MPI from
// Debian (libmpich-dev / libopenmpi-dev), found by pkg-config. MPI's handles (MPI_COMM_WORLD,
// MPI_BYTE) are macros that Swift cannot import, so the calls DPKit makes are wrapped here.
#include <stddef.h>
#include <mpi.h>

static inline int dpkit_mpi_init(void) {
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
}
static inline int dpkit_mpi_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}
static inline int dpkit_mpi_finalize(void) { return MPI_Finalize(); }
static inline int dpkit_mpi_rank(void) {
    int r = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}
static inline int dpkit_mpi_size(void) {
    int s = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}
static inline int dpkit_mpi_allgather(const void *send, int bytes, void *receive) {
    return MPI_Allgather(send, bytes, MPI_BYTE, receive, bytes, MPI_BYTE, MPI_COMM_WORLD);
}
static inline int dpkit_mpi_alltoall(const void *send, int bytes, void *receive) {
    return MPI_Alltoall(send, bytes, MPI_BYTE, receive, bytes, MPI_BYTE, MPI_COMM_WORLD);
}
static inline int dpkit_mpi_bcast(void *buffer, int bytes, int root) {
    return MPI_Bcast(buffer, bytes, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int dpkit_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline int dpkit_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }
static inline void dpkit_mpi_error_string(int code, char *text, int capacity) {
    int length = 0;
    if (capacity < MPI_MAX_ERROR_STRING) { text[0] = 0; return; }
    MPI_Error_string(code, text, &length);
    text[length] = 0;
}
static inline int dpkit_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline const char *dpkit_mpi_library_version(void) {
    static char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int length = 0;
    MPI_Get_library_version(version, &length);
    return version;
}
