// avx2.cpp — the AVX2+FMA level: fp32 FMA GEMM micro-kernels (6 x 16, 12 ymm accumulators) with bf16
// weights expanded on the fly (or fp32 weights), a vectorised epilogue, GroupNorm and LayerNorm. Attention
// declines at this level (the reference level runs it).
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include "isa_internal.h"

#pragma GCC target("avx2,fma,f16c")

namespace {

const int kMR = 6, kNR = 16;

#define TDXL_DECL_ACC(i) __m256 c##i##0 = _mm256_setzero_ps(), c##i##1 = c##i##0
#define TDXL_FMA_ROW(i, ap)                         \
    do {                                            \
        const __m256 av = _mm256_set1_ps((ap)[k]);  \
        c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0); \
        c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1); \
    } while (0)
#define TDXL_STORE_ROW(i)                                               \
    do {                                                                \
        float *cr = c + (i) * ldc;                                      \
        if (accumulate) {                                               \
            c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(cr));      \
            c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(cr + 8));  \
        }                                                               \
        _mm256_storeu_ps(cr, c##i##0);                                  \
        _mm256_storeu_ps(cr + 8, c##i##1);                              \
    } while (0)

void ukr_bf16w(int64_t kc, const float *const *a, const uint16_t *, int64_t, const void *bv, float *c,
               int64_t ldc, int accumulate) {
    const uint16_t *b = static_cast<const uint16_t *>(bv);
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    TDXL_DECL_ACC(0);
    TDXL_DECL_ACC(1);
    TDXL_DECL_ACC(2);
    TDXL_DECL_ACC(3);
    TDXL_DECL_ACC(4);
    TDXL_DECL_ACC(5);
    const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t k = 0; k < kc; k++) {
        // PAIR8 layout: lane j holds (col j, col 8+j).
        const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + k * kNR));
        const __m256 b0 = _mm256_castsi256_ps(_mm256_slli_epi32(r, 16));
        const __m256 b1 = _mm256_castsi256_ps(_mm256_and_si256(r, hi_mask));
        TDXL_FMA_ROW(0, a0);
        TDXL_FMA_ROW(1, a1);
        TDXL_FMA_ROW(2, a2);
        TDXL_FMA_ROW(3, a3);
        TDXL_FMA_ROW(4, a4);
        TDXL_FMA_ROW(5, a5);
    }
    TDXL_STORE_ROW(0);
    TDXL_STORE_ROW(1);
    TDXL_STORE_ROW(2);
    TDXL_STORE_ROW(3);
    TDXL_STORE_ROW(4);
    TDXL_STORE_ROW(5);
}

void ukr_f32(int64_t kc, const float *const *a, const uint16_t *, int64_t, const void *bv, float *c,
             int64_t ldc, int accumulate) {
    const float *b = static_cast<const float *>(bv);
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    TDXL_DECL_ACC(0);
    TDXL_DECL_ACC(1);
    TDXL_DECL_ACC(2);
    TDXL_DECL_ACC(3);
    TDXL_DECL_ACC(4);
    TDXL_DECL_ACC(5);
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_loadu_ps(b + k * kNR), b1 = _mm256_loadu_ps(b + k * kNR + 8);
        TDXL_FMA_ROW(0, a0);
        TDXL_FMA_ROW(1, a1);
        TDXL_FMA_ROW(2, a2);
        TDXL_FMA_ROW(3, a3);
        TDXL_FMA_ROW(4, a4);
        TDXL_FMA_ROW(5, a5);
    }
    TDXL_STORE_ROW(0);
    TDXL_STORE_ROW(1);
    TDXL_STORE_ROW(2);
    TDXL_STORE_ROW(3);
    TDXL_STORE_ROW(4);
    TDXL_STORE_ROW(5);
}

#undef TDXL_DECL_ACC
#undef TDXL_FMA_ROW
#undef TDXL_STORE_ROW

// ---- math ----
__m256 exp256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n for n in [-126, 128): build the exponent field directly
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

__m256 silu256(__m256 v) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), v));
    return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

// erf by Abramowitz-Stegun 7.1.26 (|error| <= 1.5e-7); GELU(v) = v/2 (1 + erf(v/sqrt 2)).
__m256 gelu256(__m256 v) {
    const __m256 x = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    const __m256 sign = _mm256_and_ps(x, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u))));
    const __m256 ax = _mm256_xor_ps(x, sign);
    const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f),
                                   _mm256_fmadd_ps(ax, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(ax, ax)));
    const __m256 erfv = _mm256_or_ps(_mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f)), sign);
    return _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(0.5f)), _mm256_add_ps(_mm256_set1_ps(1.0f), erfv));
}

__m256 act256(__m256 v, int act) {
    if (act == TDXL_ISA_ACT_GELU) return gelu256(v);
    if (act == TDXL_ISA_ACT_SILU) return silu256(v);
    return v;
}

// Partial vectors (n < 8 lanes) go through a small stack buffer.
__m256 load_part(const float *p, int64_t n) {
    float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) t[i] = p[i];
    return _mm256_loadu_ps(t);
}
void store_part(float *p, __m256 v, int64_t n) {
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int64_t i = 0; i < n; i++) p[i] = t[i];
}
__m256 load_n(const float *p, int64_t n) { return n >= 8 ? _mm256_loadu_ps(p) : load_part(p, n); }
void store_n(float *p, __m256 v, int64_t n) {
    if (n >= 8) _mm256_storeu_ps(p, v);
    else store_part(p, v, n);
}

void epilogue(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy, const float *bias,
              const float *res, int64_t ldr, int act) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j += 8) {
            const int64_t w = n - j;
            __m256 v = load_n(c + i * ldc + j, w);
            if (bias != nullptr) v = _mm256_add_ps(v, load_n(bias + j, w));
            if (res != nullptr) v = _mm256_add_ps(v, load_n(res + i * ldr + j, w));
            store_n(y + i * ldy + j, act256(v, act), w);
        }
    }
}

// ---- GroupNorm and LayerNorm ----
void gn_stats(const float *x, int64_t rows, int64_t c, double *sum, double *sumsq) {
    for (int64_t j = 0; j < c; j += 8) {
        const int64_t w = c - j;
        double s_d[8] = {0}, q_d[8] = {0};
        for (int64_t r0 = 0; r0 < rows; r0 += 64) {
            const int64_t r1 = r0 + 64 < rows ? r0 + 64 : rows;
            __m256 s = _mm256_setzero_ps(), q = _mm256_setzero_ps();
            for (int64_t r = r0; r < r1; r++) {
                const __m256 v = load_n(x + r * c + j, w);
                s = _mm256_add_ps(s, v);
                q = _mm256_fmadd_ps(v, v, q);
            }
            float sf[8], qf[8];
            _mm256_storeu_ps(sf, s);
            _mm256_storeu_ps(qf, q);
            for (int t = 0; t < 8; t++) {
                s_d[t] += sf[t];
                q_d[t] += qf[t];
            }
        }
        for (int t = 0; t < 8 && j + t < c; t++) {
            sum[j + t] += s_d[t];
            sumsq[j + t] += q_d[t];
        }
    }
}

void gn_apply(const float *x, float *y, int64_t rows, int64_t c, const float *scale, const float *shift,
              int silu) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < c; j += 8) {
            const int64_t w = c - j;
            __m256 v = _mm256_fmadd_ps(load_n(x + r * c + j, w), load_n(scale + j, w), load_n(shift + j, w));
            if (silu) v = silu256(v);
            store_n(y + r * c + j, v, w);
        }
    }
}

float hsum(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

void ln_rows(const float *x, float *y, int64_t rows, int64_t c, float eps, const float *gamma,
             const float *beta) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        __m256 s = _mm256_setzero_ps();
        for (int64_t j = 0; j < c; j += 8) s = _mm256_add_ps(s, load_n(xr + j, c - j));
        const float mean = hsum(s) / static_cast<float>(c);
        const __m256 mv = _mm256_set1_ps(mean);
        __m256 q = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) {
            const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + j), mv);
            q = _mm256_fmadd_ps(d, d, q);
        }
        float qs = hsum(q);
        for (; j < c; j++) qs += (xr[j] - mean) * (xr[j] - mean);
        const __m256 rv = _mm256_set1_ps(1.0f / std::sqrt(qs / static_cast<float>(c) + eps));
        float *yr = y + r * c;
        for (int64_t j = 0; j < c; j += 8) {
            const int64_t w = c - j;
            const __m256 d = _mm256_mul_ps(_mm256_sub_ps(load_n(xr + j, w), mv), rv);
            store_n(yr + j, _mm256_fmadd_ps(d, load_n(gamma + j, w), load_n(beta + j, w)), w);
        }
    }
}

double fma_loop(int64_t iters) {
    __m256 acc[12];
    #pragma GCC unroll 16
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps(static_cast<float>(i));
    const __m256 m = _mm256_set1_ps(0.999999f), s = _mm256_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++) {
        #pragma GCC unroll 16
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, s);
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]), "+x"(acc[4]), "+x"(acc[5]),
                         "+x"(acc[6]), "+x"(acc[7]), "+x"(acc[8]), "+x"(acc[9]), "+x"(acc[10]), "+x"(acc[11]));
    }
    __m256 t = acc[0];
    #pragma GCC unroll 16
    for (int i = 1; i < 12; i++) t = _mm256_add_ps(t, acc[i]);
    float f[8];
    _mm256_storeu_ps(f, t);
    volatile float sink = f[0] + f[7];
    (void)sink;
    return 12.0 * 16.0 * static_cast<double>(iters);
}

const tdxl_gemm_kernel kGemmBF16 = {TDXL_ISA_AVX2, "avx2-bf16w", TDXL_BFMT_BF16_PAIR8, 0, kMR, kNR, 512, 1,
                                    ukr_bf16w, nullptr, epilogue};
const tdxl_gemm_kernel kGemmF32 = {TDXL_ISA_AVX2, "avx2-f32", TDXL_BFMT_F32_PANEL, 0, kMR, kNR, 256, 1,
                                   ukr_f32, nullptr, epilogue};
const tdxl_isa_ops kOps = {TDXL_ISA_AVX2, &kGemmBF16, &kGemmF32, nullptr, 0, 0, 0,
                           gn_stats, gn_apply, ln_rows, fma_loop};

}  // namespace

extern "C" const tdxl_isa_ops *tdxl_isa_ops_avx2(void) { return &kOps; }
