#pragma once
// Debian's OpenBLAS is built with NO_LAPACKE=1: LAPACKE comes from liblapacke-dev and calls
// OpenBLAS's LAPACK. `lapack_int` is a macro (int): Swift sees it as Int32.
#include <lapacke.h>
