#pragma once
// Debian's OpenBLAS (libopenblas-dev); the include path comes from pkg-config "openblas".
#include <cblas.h>

// OpenBLAS 0.3 thread-server entry points (exported by libopenblas, not declared in cblas.h), used
// by BLASRuntime.setIdleThreadTimeout: re-read the OPENBLAS_* environment, stop the worker
// threads, and start them again (they read the idle timeout when they start).
void openblas_read_env(void);
int blas_thread_shutdown_(void);
int blas_thread_init(void);
