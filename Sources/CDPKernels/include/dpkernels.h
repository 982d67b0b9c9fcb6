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

// MARK: - Convolution, pooling and tanh kernels for the layers (Float)
//
// Each works on a range of examples or planes, so that callers can split a batch across
// threads; every output depends only on its own inputs, computed in a fixed order, so the
// result does not depend on how the batch is split.

/// im2col for `batch` NCHW examples `x` (`channels x h x w` each, zero padding `ph, pw`,
/// window `kh x kw`, strides `sh, sw`): row `r = (c kh + i) kw + j` of example `b` starts at
/// `cols + b example_stride + r row_stride` and holds the `oh ow` window entries in row-major
/// output order (0 where the window covers padding). `example_stride = K L, row_stride = L` is
/// the `[B, K, L]` layout; `example_stride = L, row_stride = B L` the `[K, B L]` one. Returns 0,
/// or -1 if its small workspace (a padded plane and an offset table) could not be allocated.
int dpk_im2col_f32(const float *x, float *cols, int64_t batch, int64_t channels, int64_t h, int64_t w,
                    int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    int64_t example_stride, int64_t row_stride);

/// The adjoint of `dpk_im2col_f32` with the same arguments: overwrites `x` (`batch` examples)
/// with the sum of the column entries that came from each input position (in the order of the
/// rows, as DPTensor's generic `col2im`). Returns 0, or -1 if its workspace could not be allocated.
int dpk_col2im_f32(const float *cols, float *x, int64_t batch, int64_t channels, int64_t h, int64_t w,
                    int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                    int64_t example_stride, int64_t row_stride);

/// Max pooling without padding of `planes` planes `h x w` into `(h - k) / s + 1` by
/// `(w - k) / s + 1` planes: each output is its window's first largest element (strict `>` in
/// row-major window order, so a NaN first element wins), `argmax` its index in the input plane.
void dpk_maxpool2d_f32(const float *x, float *y, int32_t *argmax, int64_t planes, int64_t h, int64_t w,
                       int64_t k, int64_t s);

/// The adjoint of `dpk_maxpool2d_f32`: overwrites `dx` (`planes` planes of `plane_in` scalars)
/// with zeros plus each `dy` value (`plane_out` per plane) at its arg-max, in output order.
void dpk_maxpool2d_backward_f32(const float *dy, const int32_t *argmax, float *dx, int64_t planes,
                                int64_t plane_in, int64_t plane_out);

/// `y[i] = tanh(x[i])` by the operations of DPTensor's `Float.vectorizableTanh(_:)` in the same
/// order (no contraction), so the same bits on every CPU; `y` may equal `x`.
void dpk_tanh_f32(const float *x, float *y, int64_t count);

/// `dx[i] = dy[i] (1 - y[i]^2)`, the tanh backward pass from the forward output `y`.
void dpk_tanh_backward_f32(const float *dy, const float *y, float *dx, int64_t count);

/// For `src` of shape `[p, q, l]` and `dst` of shape `[q, p, l]`, rows `j` in
/// `[first_j, end_j)`: `dst[j, i, :] = src[i, j, :] + add[i]` (a plain copy if `add` is NULL).
void dpk_swap_leading_axes_f32(const float *src, float *dst, int64_t p, int64_t q, int64_t l, const float *add,
                               int64_t first_j, int64_t end_j);

/// For `[p, q, l]` arrays, rows `i` in `[first_i, end_i)`: `dst[i, j, :] = scale[j] src[i, j, :]`.
void dpk_scale_middle_axis_f32(const float *src, float *dst, int64_t p, int64_t q, int64_t l, const float *scale,
                               int64_t first_i, int64_t end_i);

#ifdef __cplusplus
}
#endif

#endif
