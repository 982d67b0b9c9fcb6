// Vectorised kernels for DPTensor. Plain C loops over arrays of lanes that clang
// auto-vectorises; `DPK_CLONES` builds each entry point for AVX-512, AVX2 and baseline x86-64
// and lets the loader pick one (GNU ifunc), so no -march flag is needed.
#include "dpkernels.h"

#include <string.h>

#if defined(__x86_64__) && defined(__linux__)
#define DPK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DPK_CLONES
#endif

// The Swift reference does not fuse multiply-adds; neither do we, so that all clones and the
// Swift path give the same bits.
#pragma clang fp contract(off)

#define DPK_LANES 16 // Philox blocks per iteration: two groups of eight (64 outputs)

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

// (r cos theta, r sin theta) from the words (wr, wt).
static inline __attribute__((always_inline)) void dpk_box_muller(uint32_t wr, uint32_t wt, float *zc, float *zs) {
    float hi = dpk_u2f((wr >> 16) | 0x4B000000u) - 8388608.0f;
    float lo = dpk_u2f((wr & 0xFFFFu) | 0x4B000000u) - 8388608.0f;
    float w = hi * 65536.0f + (lo + 0.5f);
    float minus_two_log_u = (32.0f * 1.3862943611f) - 2.0f * dpk_log_positive(w);
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

// MARK: - Philox4x32-10 on DPK_LANES blocks, then Box-Muller

// z[k][g * 8 + l] for block first_block + 8 g + l: k = 0 r_A cos, 1 r_A sin, 2 r_B cos, 3 r_B sin.
static inline __attribute__((always_inline)) void dpk_normals(uint64_t key, uint64_t stream, uint64_t first_block,
                                                              float z[4][DPK_LANES]) {
    uint32_t c0[DPK_LANES], c1[DPK_LANES], c2[DPK_LANES], c3[DPK_LANES];
    for (int l = 0; l < DPK_LANES; l++) {
        uint64_t b = first_block + (uint64_t)l;
        c0[l] = (uint32_t)b;
        c1[l] = (uint32_t)(b >> 32);
        c2[l] = (uint32_t)stream;
        c3[l] = (uint32_t)(stream >> 32);
    }
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        for (int l = 0; l < DPK_LANES; l++) {
            uint64_t p0 = (uint64_t)c0[l] * 0xD2511F53u;
            uint64_t p1 = (uint64_t)c2[l] * 0xCD9E8D57u;
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int l = 0; l < DPK_LANES; l++) {
        dpk_box_muller(c0[l], c1[l], &z[0][l], &z[1][l]);
        dpk_box_muller(c2[l], c3[l], &z[2][l], &z[3][l]);
    }
}

// MARK: - Entry points

DPK_CLONES
void dpk_philox_normal_f32(uint64_t key, uint64_t stream, uint64_t first_block,
                           float *out, int64_t count, float mean, float stddev, int accumulate) {
    float z[4][DPK_LANES] __attribute__((aligned(64)));
    const int64_t per = 4 * DPK_LANES; // outputs per iteration
    uint64_t block = first_block;
    int64_t i = 0;
    for (; i + per <= count; i += per, block += DPK_LANES) {
        dpk_normals(key, stream, block, z);
        float *o = out + i;
        if (accumulate) {
            // Through a buffer in output order: storing straight into `o` here, clang emits gathers.
            float t[4 * DPK_LANES] __attribute__((aligned(64)));
            for (int g = 0; g < DPK_LANES / 8; g++)
                for (int k = 0; k < 4; k++)
                    for (int l = 0; l < 8; l++) t[g * 32 + k * 8 + l] = stddev * z[k][g * 8 + l];
            for (int j = 0; j < 4 * DPK_LANES; j++) o[j] = o[j] + t[j];
        } else {
            for (int g = 0; g < DPK_LANES / 8; g++)
                for (int k = 0; k < 4; k++)
                    for (int l = 0; l < 8; l++) o[g * 32 + k * 8 + l] = mean + stddev * z[k][g * 8 + l];
        }
    }
    if (i < count) {
        // The rest (fewer than 64): the same values in the same places, through a buffer in
        // output order; blocks past the last needed group are computed and dropped, not consumed.
        float t[4 * DPK_LANES] __attribute__((aligned(64)));
        dpk_normals(key, stream, block, z);
        for (int g = 0; g < DPK_LANES / 8; g++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 8; l++) t[g * 32 + k * 8 + l] = stddev * z[k][g * 8 + l];
        int64_t rest = count - i;
        for (int64_t j = 0; j < rest; j++) out[i + j] = accumulate ? out[i + j] + t[j] : mean + t[j];
    }
}
