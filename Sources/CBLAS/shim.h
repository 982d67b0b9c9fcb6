#pragma once
// Debian's OpenBLAS (libopenblas-dev); the include path comes from pkg-config "openblas".
#include <cblas.h>
