// CDPKernels: small C kernels that DPTensor calls where Swift, compiled for baseline x86-64,
// cannot use the vector units. Each kernel is multiversioned (AVX-512, AVX2, baseline) and
// picked at load time, so the binary still runs on any x86-64.
#ifndef DPKERNELS_H
#define DPKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Writes `mean + stddev * z` (or, if `accumulate` is non-zero, adds `stddev * z`) to
/// `out[0..<count]`, where `z` are the standard normals of DPTensor's Float path
/// (`PhiloxRandom.nextNormals8x8`): Philox4x32-10 under `key` on the counters
/// (stream, first_block + j), 24 blocks per 64 outputs, Box-Muller with a 64-bit radius word
/// (|z| <= 9.49) and Cephes polynomials.
/// Consumes `24 * ceil(count / 64)` blocks; the caller advances its block counter by that.
///
/// Floating-point contraction is off, so every clone computes the same operations in the same
/// order as the Swift reference and the outputs are the same on every x86-64 CPU.
void dpk_philox_normal_f32(uint64_t key, uint64_t stream, uint64_t first_block,
                           float *out, int64_t count, float mean, float stddev, int accumulate);

/// One Box-Muller pair of the kernel above from chosen words, for tests: `*zc = r cos theta`,
/// `*zs = r sin theta` with `u1 = (radius_hi 2^32 + radius_lo + 1/2) / 2^64` and the angle word
/// `angle`. `radius_hi = radius_lo = 0` gives the largest radius, sqrt(130 ln 2) = 9.49.
void dpk_box_muller_f32(uint32_t radius_hi, uint32_t radius_lo, uint32_t angle, float *zc, float *zs);

#ifdef __cplusplus
}
#endif

#endif
