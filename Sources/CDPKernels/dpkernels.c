// Vectorised kernels for DPTensor. Plain C loops over arrays of lanes that clang
// auto-vectorises; `DPK_CLONES` builds each entry point for AVX-512, AVX2 and baseline x86-64
// and lets the loader pick one (GNU ifunc), so no -march flag is needed.
#include "dpkernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#define DPK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPK_CLONES
#endif

// The Swift reference does not fuse multiply-adds; neither do we, so that all clones and the
// Swift path give the same bits.
#pragma clang fp contract(off)

// Per iteration: two groups of 24 Philox blocks (48 blocks), 64 Box-Muller pairs, 128 outputs.
#define DPK_LANES 48
#define DPK_PAIRS 64
#define DPK_OUT 128

static inline uint32_t dpk_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float dpk_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// MARK: - Box-Muller, lane by lane (see PhiloxRandom+Normal.swift for the math)

static inline __attribute__((always_inline)) float dpk_log_positive(float x) {
    uint32_t ix = dpk_f2u(x) + (0x3F800000u - 0x3F3504F3u);
    float e = dpk_u2f((ix >> 23) | 0x4B000000u) - (8388608.0f + 127.0f);
    float m = dpk_u2f((ix & 0x007FFFFFu) + 0x3F3504F3u);
    float t = m - 1.0f;
    float z = t * t;
    float p = t * 7.0376836292e-2f;
    p = t * (p + -1.1514610310e-1f);
    p = t * (p + 1.1676998740e-1f);
    p = t * (p + -1.2420140846e-1f);
    p = t * (p + 1.4249322787e-1f);
    p = t * (p + -1.6668057665e-1f);
    p = t * (p + 2.0000714765e-1f);
    p = t * (p + -2.4999993993e-1f);
    p = p + 3.3333331174e-1f;
    float y = (t * z) * p;
    y = y + e * -2.12194440e-4f;
    y = y - 0.5f * z;
    float tl = t + y;
    return tl + e * 0.693359375f;
}

static inline __attribute__((always_inline)) float dpk_sqrt(float x) {
    float y = dpk_u2f(0x5F3759DFu - (dpk_f2u(x) >> 1));
    float half_x = 0.5f * x;
    y = y * (1.5f - half_x * y * y);
    y = y * (1.5f - half_x * y * y);
    y = y * (1.5f - half_x * y * y);
    return x * y;
}

// u1 = (hi 2^32 + lo + 1/2) / 2^64, correctly rounded, in [2^-65, 1] (see `openUnitFloatSIMD`):
// n = v >> k with k = 8 * (the number of significant bytes of hi), then n + 1/2 by halves and
// one rounding, scaled exactly by 2^(k - 64).
static inline __attribute__((always_inline)) float dpk_open_unit_64(uint32_t hi, uint32_t lo) {
    uint32_t b1 = hi != 0, b2 = (hi >> 8) != 0, b3 = (hi >> 16) != 0, b4 = (hi >> 24) != 0;
    uint32_t n = lo;
    n = b1 ? (hi << 24) | (lo >> 8) : n;
    n = b2 ? (hi << 16) | (lo >> 16) : n;
    n = b3 ? (hi << 8) | (lo >> 24) : n;
    n = b4 ? hi : n;
    float scale = dpk_u2f((63u + 8u * (b1 + b2 + b3 + b4)) << 23);
    float n_hi = dpk_u2f((n >> 16) | 0x4B000000u) - 8388608.0f;
    float n_lo = dpk_u2f((n & 0xFFFFu) | 0x4B000000u) - 8388608.0f;
    float w = n_hi * 65536.0f + (n_lo + 0.5f);
    return w * scale;
}

// (r cos theta, r sin theta) from the radius words (wr_hi, wr_lo) and the angle word wt.
static inline __attribute__((always_inline)) void dpk_box_muller(uint32_t wr_hi, uint32_t wr_lo, uint32_t wt,
                                                                 float *zc, float *zs) {
    float u1 = dpk_open_unit_64(wr_hi, wr_lo);
    float minus_two_log_u = 0.0f - 2.0f * dpk_log_positive(u1);
    float r = dpk_sqrt(minus_two_log_u);
    uint32_t q = wt & 3u;
    float f = dpk_u2f((wt >> 9) | 0x3F800000u) - 1.5f;
    float x = f * 0x1.921fb4p+0f; // Swift's Float.pi / 2 (Float.pi is rounded down)
    float z = x * x;
    float ps = z * -1.9515295891e-4f;
    ps = z * (ps + 8.3321608736e-3f);
    ps = ps + -1.6666654611e-1f;
    float s = x + (x * z) * ps;
    float pc = z * 2.443315711809948e-5f;
    pc = z * (pc + -1.388731625493765e-3f);
    pc = pc + 4.166664568298827e-2f;
    float c = (1.0f - 0.5f * z) + (z * z) * pc;
    uint32_t sb = dpk_f2u(s), cb = dpk_f2u(c);
    uint32_t swap = 0u - (q & 1u);
    uint32_t a = (cb & ~swap) | (sb & swap);
    uint32_t b = (sb & ~swap) | (cb & swap);
    uint32_t cos_sign = ((q + 1u) & 2u) << 30, sin_sign = (q & 2u) << 30;
    *zc = r * dpk_u2f(a ^ cos_sign);
    *zs = r * dpk_u2f(b ^ sin_sign);
}

// MARK: - Philox4x32-10 on two groups of 24 blocks, then Box-Muller

// Lane j = 16 g + 8 s + l (g = 0, 1, 2; s = 0, 1; l = 0...7) holds block
// first_block + 24 s + 8 g + l: word vector g of group s, lane l, in the Swift reference's terms
// (g = 0, 1, 2 are the vectors A, B, C). With this order each of the reference's word vectors
// A0...C3, for both groups, is one run of 16 lanes.
static inline __attribute__((always_inline)) uint64_t dpk_lane_block(int j) {
    return (uint64_t)(8 * (j / 16) + 24 * ((j / 8) % 2) + j % 8);
}

// The four words of block first_block + dpk_lane_block(j) in c0[j]...c3[j], j = 0...47
// (Philox4x32-10). Each 32-bit word is kept in a 64-bit lane (only its low half counts), so that
// each 32 x 32 -> 64-bit multiply is one `vpmuludq` and the halves of the product come back by a
// shift: auto-vectorised from 32-bit lanes, clang spends most of a round widening, narrowing and
// shuffling. All 48 lanes go through each round together, which hides the multiplier latency.
static inline __attribute__((always_inline)) void dpk_philox48(uint64_t key, uint64_t stream, uint64_t first_block,
                                                               uint32_t c0[48], uint32_t c1[48], uint32_t c2[48],
                                                               uint32_t c3[48]) {
    const uint64_t lo32 = 0xFFFFFFFFull;
    uint64_t x0[48], x1[48], x2[48], x3[48];
    for (int j = 0; j < 48; j++) {
        uint64_t b = first_block + dpk_lane_block(j);
        x0[j] = b & lo32;
        x1[j] = b >> 32;
        x2[j] = stream & lo32;
        x3[j] = stream >> 32;
    }
    uint64_t k0 = key & lo32, k1 = key >> 32;
    for (int round = 0; round < 10; round++) {
        for (int j = 0; j < 48; j++) {
            uint64_t p0 = (x0[j] & lo32) * 0xD2511F53u;
            uint64_t p1 = (x2[j] & lo32) * 0xCD9E8D57u;
            uint64_t n0 = (p1 >> 32) ^ x1[j] ^ k0; // high halves of x1, x3: don't care
            uint64_t n2 = (p0 >> 32) ^ x3[j] ^ k1;
            x1[j] = p1;
            x3[j] = p0;
            x0[j] = n0;
            x2[j] = n2;
        }
        k0 = (k0 + 0x9E3779B9u) & lo32;
        k1 = (k1 + 0xBB67AE85u) & lo32;
    }
    for (int j = 0; j < 48; j++) {
        c0[j] = (uint32_t)x0[j];
        c1[j] = (uint32_t)x1[j];
        c2[j] = (uint32_t)x2[j];
        c3[j] = (uint32_t)x3[j];
    }
}

// Box-Muller on 16 lanes of (radius high, radius low, angle) words.
static inline __attribute__((always_inline)) void dpk_pairs16(const uint32_t *hi, const uint32_t *lo, const uint32_t *angle,
                                                              float *zc, float *zs) {
    for (int l = 0; l < 16; l++) dpk_box_muller(hi[l], lo[l], angle[l], &zc[l], &zs[l]);
}

// The 64 Box-Muller pairs of the two groups of 24 blocks from first_block: pair group p of group
// s, lane l, in zc[16 p + 8 s + l] (r cos theta) and zs[16 p + 8 s + l] (r sin theta). Pair groups
// take the word vectors (A0, A1, A2), (A3, B0, B1), (B2, B3, C0), (C1, C2, C3) as (radius high,
// radius low, angle); in the lane order above, Ak of both groups is ck[0...15], Bk ck[16...31],
// Ck ck[32...47]. Box-Muller then runs on whole 16-lane runs (one AVX-512 register).
static inline __attribute__((always_inline)) void dpk_normals(uint64_t key, uint64_t stream, uint64_t first_block,
                                                              float zc[64], float zs[64]) {
    uint32_t c0[48], c1[48], c2[48], c3[48];
    dpk_philox48(key, stream, first_block, c0, c1, c2, c3);
    dpk_pairs16(c0, c1, c2, zc, zs);                     // A0 A1 A2
    dpk_pairs16(c3, c0 + 16, c1 + 16, zc + 16, zs + 16); // A3 B0 B1
    dpk_pairs16(c2 + 16, c3 + 16, c0 + 32, zc + 32, zs + 32); // B2 B3 C0
    dpk_pairs16(c1 + 32, c2 + 32, c3 + 32, zc + 48, zs + 48); // C1 C2 C3
}

// stddev * z in output order: group s, then pair group p, eight cosines then eight sines.
static inline __attribute__((always_inline)) void dpk_scaled(const float zc[64], const float zs[64], float stddev,
                                                             float t[128]) {
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 8; l++) {
                t[64 * s + 16 * p + l] = stddev * zc[16 * p + 8 * s + l];
                t[64 * s + 16 * p + 8 + l] = stddev * zs[16 * p + 8 * s + l];
            }
}

// MARK: - Entry points

DPK_CLONES
void dpk_philox_normal_f32(uint64_t key, uint64_t stream, uint64_t first_block,
                           float *out, int64_t count, float mean, float stddev, int accumulate) {
    float zc[DPK_PAIRS] __attribute__((aligned(64))), zs[DPK_PAIRS] __attribute__((aligned(64)));
    float t[DPK_OUT] __attribute__((aligned(64)));
    uint64_t block = first_block;
    int64_t i = 0;
    for (; i + DPK_OUT <= count; i += DPK_OUT, block += DPK_LANES) {
        dpk_normals(key, stream, block, zc, zs);
        // Through a buffer in output order: storing straight into `out` here, clang emits gathers.
        dpk_scaled(zc, zs, stddev, t);
        float *o = out + i;
        if (accumulate) {
            for (int j = 0; j < DPK_OUT; j++) o[j] = o[j] + t[j];
        } else {
            for (int j = 0; j < DPK_OUT; j++) o[j] = mean + t[j];
        }
    }
    if (i < count) {
        // The rest (fewer than DPK_OUT): the same values in the same places. The blocks past the
        // last needed group of 24 are computed and dropped; the caller consumes whole groups
        // (24 ceil(count / 64) blocks), as the Swift reference does.
        dpk_normals(key, stream, block, zc, zs);
        dpk_scaled(zc, zs, stddev, t);
        int64_t rest = count - i;
        for (int64_t j = 0; j < rest; j++) out[i + j] = accumulate ? out[i + j] + t[j] : mean + t[j];
    }
}

// Not multiversioned: the same inline code, contraction off, so every clone gives these values.
void dpk_box_muller_f32(uint32_t radius_hi, uint32_t radius_lo, uint32_t angle, float *zc, float *zs) {
    dpk_box_muller(radius_hi, radius_lo, angle, zc, zs);
}

// MARK: - im2col / col2im

// Both kernels work on a zero-padded copy of each example (when there is padding), where window
// offset (i, j) of output position l = (oh, ow) reads `base(i, j) + table[l]`, with
// `table[l] = oh sh wp + ow sw` shared by every channel and offset: one gather loop of L entries
// per column row, with no bounds tests.

// The gather offsets of the L output positions in a plane `wp` wide; NULL if out of memory.
static int32_t *dpk_window_table(int64_t out_h, int64_t out_w, int64_t sh, int64_t sw, int64_t wp) {
    int32_t *table = malloc((size_t)(out_h * out_w > 0 ? out_h * out_w : 1) * sizeof(int32_t));
    if (!table) return NULL;
    for (int64_t oh = 0; oh < out_h; oh++)
        for (int64_t ow = 0; ow < out_w; ow++) table[oh * out_w + ow] = (int32_t)(oh * sh * wp + ow * sw);
    return table;
}

// row[t] = base[table[t]]; the rows never overlap the input (restrict lets the loop vectorise
// with gathers).
static inline __attribute__((always_inline)) void dpk_gather_row(float *restrict row, const float *restrict base,
                                                                 const int32_t *restrict table, int64_t l) {
    for (int64_t t = 0; t < l; t++) row[t] = base[table[t]];
}

// base[table[t]] += row[t]. Within one row the offsets are distinct (different output positions
// of one kernel offset read different inputs), so the loop may run as gather, add and scatter:
// each input still receives one add per row, rows in the same order.
static inline __attribute__((always_inline)) void dpk_scatter_add_row(float *restrict base, const float *restrict row,
                                                                      const int32_t *restrict table, int64_t l) {
#pragma clang loop vectorize(assume_safety)
    for (int64_t t = 0; t < l; t++) base[table[t]] += row[t];
}

DPK_CLONES
int dpk_im2col_f32(const float *x, float *cols, int64_t batch, int64_t channels, int64_t h, int64_t w,
                   int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t example_stride, int64_t row_stride) {
    const int64_t out_h = (h + 2 * ph - kh) / sh + 1, out_w = (w + 2 * pw - kw) / sw + 1, l = out_h * out_w;
    const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
    const int padded = ph > 0 || pw > 0;
    int32_t *table = dpk_window_table(out_h, out_w, sh, sw, wp);
    float *pad = padded ? calloc((size_t)(channels * hp * wp), sizeof(float)) : NULL;
    if (!table || (padded && !pad)) {
        free(table);
        free(pad);
        return -1;
    }
    for (int64_t b = 0; b < batch; b++) {
        const float *xb = x + b * channels * h * w, *src = xb;
        if (padded) {
            // The border stays zero from calloc; only the interior is rewritten.
            for (int64_t c = 0; c < channels; c++)
                for (int64_t r = 0; r < h; r++)
                    memcpy(pad + (c * hp + r + ph) * wp + pw, xb + (c * h + r) * w, (size_t)w * sizeof(float));
            src = pad;
        }
        for (int64_t c = 0; c < channels; c++) {
            for (int64_t i = 0; i < kh; i++) {
                for (int64_t j = 0; j < kw; j++) {
                    const float *base = src + (c * hp + i) * wp + j;
                    float *row = cols + b * example_stride + ((c * kh + i) * kw + j) * row_stride;
                    dpk_gather_row(row, base, table, l);
                }
            }
        }
    }
    free(table);
    free(pad);
    return 0;
}

DPK_CLONES
int dpk_col2im_f32(const float *cols, float *x, int64_t batch, int64_t channels, int64_t h, int64_t w,
                   int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                   int64_t example_stride, int64_t row_stride) {
    const int64_t out_h = (h + 2 * ph - kh) / sh + 1, out_w = (w + 2 * pw - kw) / sw + 1, l = out_h * out_w;
    const int64_t hp = h + 2 * ph, wp = w + 2 * pw;
    const int padded = ph > 0 || pw > 0;
    int32_t *table = dpk_window_table(out_h, out_w, sh, sw, wp);
    float *pad = padded ? malloc((size_t)(channels * hp * wp > 0 ? channels * hp * wp : 1) * sizeof(float)) : NULL;
    if (!table || (padded && !pad)) {
        free(table);
        free(pad);
        return -1;
    }
    for (int64_t b = 0; b < batch; b++) {
        float *xb = x + b * channels * h * w;
        float *dst = padded ? pad : xb;
        for (int64_t t = 0; t < channels * hp * wp; t++) dst[t] = 0.0f;
        for (int64_t c = 0; c < channels; c++) {
            for (int64_t i = 0; i < kh; i++) {
                for (int64_t j = 0; j < kw; j++) {
                    float *base = dst + (c * hp + i) * wp + j;
                    const float *row = cols + b * example_stride + ((c * kh + i) * kw + j) * row_stride;
                    // One offset gets at most one entry per (c, i, j): the sums keep the order
                    // of the generic col2im.
                    dpk_scatter_add_row(base, row, table, l);
                }
            }
        }
        if (padded) {
            for (int64_t c = 0; c < channels; c++)
                for (int64_t r = 0; r < h; r++)
                    memcpy(xb + (c * h + r) * w, pad + (c * hp + r + ph) * wp + pw, (size_t)w * sizeof(float));
        }
    }
    free(table);
    free(pad);
    return 0;
}

// MARK: - Max pooling

// One output row of a 2x2 window with stride S: rows r0, r1 of the input plane, `base0` the
// plane index of r0[0] (r1 follows at base0 + w).
#define DPK_POOL2_ROW(S)                                                                        \
    for (int64_t ox = 0; ox < wo; ox++) {                                                       \
        const int64_t c0 = ox * (S);                                                            \
        float best = r0[c0];                                                                    \
        int32_t idx = (int32_t)(base0 + c0);                                                    \
        const float v1 = r0[c0 + 1], v2 = r1[c0], v3 = r1[c0 + 1];                              \
        idx = v1 > best ? (int32_t)(base0 + c0 + 1) : idx;                                      \
        best = v1 > best ? v1 : best;                                                           \
        idx = v2 > best ? (int32_t)(base0 + w + c0) : idx;                                      \
        best = v2 > best ? v2 : best;                                                           \
        idx = v3 > best ? (int32_t)(base0 + w + c0 + 1) : idx;                                  \
        best = v3 > best ? v3 : best;                                                           \
        yr[ox] = best;                                                                          \
        ar[ox] = idx;                                                                           \
    }

/// The largest plane (h w) that the flattened 2x2 stride-1 kernel below holds on the stack.
#define DPK_POOL_FLAT_MAX 4096

DPK_CLONES
void dpk_maxpool2d_f32(const float *x, float *y, int32_t *argmax, int64_t planes, int64_t h, int64_t w,
                       int64_t k, int64_t s) {
    const int64_t ho = h >= k ? (h - k) / s + 1 : 0, wo = w >= k ? (w - k) / s + 1 : 0;
    if (k == 2 && s == 1 && ho > 0 && wo > 0 && h * w <= DPK_POOL_FLAT_MAX) {
        // Window (oy, ox) starts at t = oy w + ox: over the flattened plane every t in
        // [0, (ho - 1) w + wo) is one vector loop (the t with ox >= wo are computed and dropped),
        // instead of rows of wo outputs too short to vectorise. The same comparisons in the same
        // order as DPK_POOL2_ROW, so the same values and argmax (ties: the first in window order).
        float values[DPK_POOL_FLAT_MAX];
        int32_t indices[DPK_POOL_FLAT_MAX];
        const int64_t span = (ho - 1) * w + wo;
        for (int64_t p = 0; p < planes; p++) {
            const float *xp = x + p * h * w;
            for (int64_t t = 0; t < span; t++) {
                float best = xp[t];
                int32_t idx = (int32_t)t;
                const float v1 = xp[t + 1], v2 = xp[t + w], v3 = xp[t + w + 1];
                idx = v1 > best ? (int32_t)(t + 1) : idx;
                best = v1 > best ? v1 : best;
                idx = v2 > best ? (int32_t)(t + w) : idx;
                best = v2 > best ? v2 : best;
                idx = v3 > best ? (int32_t)(t + w + 1) : idx;
                best = v3 > best ? v3 : best;
                values[t] = best;
                indices[t] = idx;
            }
            for (int64_t oy = 0; oy < ho; oy++) {
                memcpy(y + (p * ho + oy) * wo, values + oy * w, (size_t)wo * sizeof(float));
                memcpy(argmax + (p * ho + oy) * wo, indices + oy * w, (size_t)wo * sizeof(int32_t));
            }
        }
        return;
    }
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * h * w;
        for (int64_t oy = 0; oy < ho; oy++) {
            float *yr = y + (p * ho + oy) * wo;
            int32_t *ar = argmax + (p * ho + oy) * wo;
            if (k == 2) {
                const int64_t base0 = oy * s * w;
                const float *r0 = xp + base0, *r1 = r0 + w;
                if (s == 1) {
                    DPK_POOL2_ROW(1)
                } else if (s == 2) {
                    DPK_POOL2_ROW(2)
                } else {
                    DPK_POOL2_ROW(s)
                }
                continue;
            }
            for (int64_t ox = 0; ox < wo; ox++) {
                int64_t best = oy * s * w + ox * s;
                float best_value = xp[best];
                for (int64_t ky = 0; ky < k; ky++) {
                    const int64_t row = (oy * s + ky) * w + ox * s;
                    for (int64_t kx = 0; kx < k; kx++) {
                        const float v = xp[row + kx];
                        const int better = v > best_value;
                        best_value = better ? v : best_value;
                        best = better ? row + kx : best;
                    }
                }
                yr[ox] = best_value;
                ar[ox] = (int32_t)best;
            }
        }
    }
}

DPK_CLONES
void dpk_maxpool2d_backward_f32(const float *dy, const int32_t *argmax, float *dx, int64_t planes,
                                int64_t plane_in, int64_t plane_out) {
    for (int64_t p = 0; p < planes; p++) {
        float *dxp = dx + p * plane_in;
        const float *dyp = dy + p * plane_out;
        const int32_t *ap = argmax + p * plane_out;
        for (int64_t t = 0; t < plane_in; t++) dxp[t] = 0.0f;
        for (int64_t t = 0; t < plane_out; t++) dxp[ap[t]] += dyp[t];
    }
}

// MARK: - tanh

DPK_CLONES
void dpk_tanh_f32(const float *x, float *y, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const float xi = x[i];
        const float ax = dpk_u2f(dpk_f2u(xi) & 0x7FFFFFFFu);
        const float a = 9.5f < ax ? 9.5f : ax; // Swift.min(|x|, 9.5): NaN stays NaN
        const float s = a * a;
        float q = 0.0021429609041661024f;
        q = q * s + -0.008177397772669792f;
        q = q * s + 0.021700702607631683f;
        q = q * s + -0.05394676327705383f;
        q = q * s + 0.1333320587873459f;
        q = q * s + -0.3333333134651184f;
        const float small = a + (a * s) * q;
        const float yy = a + a;
        const float shifted = yy * 1.442695040888963f + 12582912.0f;
        const float n = shifted - 12582912.0f;
        const float r = (yy - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
        float p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        const float scale = dpk_u2f((dpk_f2u(shifted) + 127u) << 23);
        const float large = 1.0f - 2.0f / (p * scale + 1.0f);
        const float t = a < 0.625f ? small : large;
        y[i] = dpk_u2f(dpk_f2u(t) | (dpk_f2u(xi) & 0x80000000u));
    }
}

DPK_CLONES
void dpk_tanh_backward_f32(const float *dy, const float *y, float *dx, int64_t count) {
    for (int64_t i = 0; i < count; i++) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// MARK: - Layout changes of [P, Q, L] blocks

DPK_CLONES
void dpk_swap_leading_axes_f32(const float *src, float *dst, int64_t p, int64_t q, int64_t l, const float *add,
                               int64_t first_j, int64_t end_j) {
    for (int64_t j = first_j; j < end_j; j++) {
        for (int64_t i = 0; i < p; i++) {
            const float *s = src + (i * q + j) * l;
            float *d = dst + (j * p + i) * l;
            if (add) {
                const float a = add[i];
                for (int64_t t = 0; t < l; t++) d[t] = s[t] + a;
            } else {
                for (int64_t t = 0; t < l; t++) d[t] = s[t];
            }
        }
    }
}

DPK_CLONES
void dpk_scale_middle_axis_f32(const float *src, float *dst, int64_t p, int64_t q, int64_t l, const float *scale,
                               int64_t first_i, int64_t end_i) {
    for (int64_t i = first_i; i < end_i; i++) {
        for (int64_t j = 0; j < q; j++) {
            const float *s = src + (i * q + j) * l;
            float *d = dst + (i * q + j) * l;
            const float a = scale[j];
            for (int64_t t = 0; t < l; t++) d[t] = a * s[t];
        }
    }
}
