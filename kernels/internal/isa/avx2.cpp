// avx2.cpp — the AVX2+FMA level: fp32 FMA GEMM micro-kernels (6 x 16, 12 ymm accumulators) with bf16
// weights expanded on the fly (or fp32 weights), a vectorised epilogue, blockwise online-softmax attention,
// GroupNorm and LayerNorm.
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

void epilogue_geglu(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy, const float *bias,
                    int64_t nout, int p) {
    for (int64_t i = 0; i < m; i++) {
        const float *ci = c + i * ldc;
        for (int64_t j = 0; j * 2 * p < n; j++) {
            for (int t = 0; t < p; t += 8) {
                const int64_t o = j * p + t;
                if (o >= nout) break;
                const int64_t ca = j * 2 * p + t, cg = ca + p;
                __m256 a = _mm256_loadu_ps(ci + ca), g = _mm256_loadu_ps(ci + cg);
                if (bias != nullptr) {
                    a = _mm256_add_ps(a, _mm256_loadu_ps(bias + ca));
                    g = _mm256_add_ps(g, _mm256_loadu_ps(bias + cg));
                }
                store_n(y + i * ldy + o, _mm256_mul_ps(a, gelu256(g)), nout - o);
            }
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

// ---- attention: one (batch*head, block of kBQ query rows), keys in blocks of kBK (K^T per block) ----
const int kBQ = 48, kBK = 64, kAMR = 6;

__m256i lane_mask(int64_t n) {  // first n lanes set (n clamped to [0, 8])
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t c = n < 0 ? 0 : (n > 8 ? 8 : n);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(c)), idx);
}

// S[r][j0..j0+16) for kAMR rows over d; kt is the block's K^T [d][kBK] offset to the 16-key chunk.
void attn_scores16(const float *const *q, const float *kt, int64_t d, float *s) {
    __m256 acc[kAMR][2];
#pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++) {
        acc[r][0] = _mm256_setzero_ps();
        acc[r][1] = _mm256_setzero_ps();
    }
    for (int64_t dd = 0; dd < d; dd++) {
        const __m256 k0 = _mm256_loadu_ps(kt + dd * kBK), k1 = _mm256_loadu_ps(kt + dd * kBK + 8);
#pragma GCC unroll 16
        for (int r = 0; r < kAMR; r++) {
            const __m256 qv = _mm256_set1_ps(q[r][dd]);
            acc[r][0] = _mm256_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qv, k1, acc[r][1]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++) {
        _mm256_storeu_ps(s + r * kBK, acc[r][0]);
        _mm256_storeu_ps(s + r * kBK + 8, acc[r][1]);
    }
}

// O[r][dc..dc+16) += sum_j P[r][j] V[j][dc..] for kAMR rows, jn keys.
void attn_pv16(const float *p, const float *vb, int64_t ldv, int64_t jn, int64_t dc, int64_t d, float *o,
               int64_t ldo_s) {
    const __m256i m0 = lane_mask(d - dc), m1 = lane_mask(d - dc - 8);
    __m256 acc[kAMR][2];
#pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++) {
        acc[r][0] = _mm256_loadu_ps(o + r * ldo_s + dc);
        acc[r][1] = _mm256_loadu_ps(o + r * ldo_s + dc + 8);
    }
    for (int64_t j = 0; j < jn; j++) {
        const float *vr = vb + j * ldv + dc;
        const __m256 v0 = _mm256_maskload_ps(vr, m0), v1 = _mm256_maskload_ps(vr + 8, m1);
#pragma GCC unroll 16
        for (int r = 0; r < kAMR; r++) {
            const __m256 pv = _mm256_set1_ps(p[r * kBK + j]);
            acc[r][0] = _mm256_fmadd_ps(pv, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(pv, v1, acc[r][1]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++) {
        _mm256_storeu_ps(o + r * ldo_s + dc, acc[r][0]);
        _mm256_storeu_ps(o + r * ldo_s + dc + 8, acc[r][1]);
    }
}

float hmax(__m256 v) {
    float t[8];
    _mm256_storeu_ps(t, v);
    float m = t[0];
    for (int i = 1; i < 8; i++) m = t[i] > m ? t[i] : m;
    return m;
}

void attn_task(const tdxl_attn_args *a, int64_t bh, int64_t q0, float *scratch) {
    const int64_t bi = bh / a->heads, h = bh % a->heads, d = a->d;
    const int64_t q1 = q0 + kBQ < a->tq ? q0 + kBQ : a->tq;
    const int64_t nrows = q1 - q0, nrows_pad = (nrows + kAMR - 1) / kAMR * kAMR;
    const float *qb = a->q + bi * a->tq * a->ldq + h * d;
    const float *vb = a->v + bi * a->tk * a->ldv + h * d;
    const float *kt = a->kt + bh * d * a->tk_pad;
    float *ob = a->o + bi * a->tq * a->ldo + h * d;
    const int64_t ldo_s = (d + 15) / 16 * 16;  // O rows padded to whole 16-float chunks (zeros beyond d)
    float *oacc = scratch;                      // [kBQ][ldo_s]
    float *sblk = oacc + kBQ * ldo_s;           // [kBQ][kBK]
    float *mrow = sblk + kBQ * kBK;             // [kBQ]
    float *lrow = mrow + kBQ;                   // [kBQ]
    memset(oacc, 0, sizeof(float) * static_cast<size_t>(nrows_pad * ldo_s));
    for (int64_t r = 0; r < nrows_pad; r++) {
        mrow[r] = -INFINITY;
        lrow[r] = 0.0f;
    }
    const int64_t shift = a->tk - a->tq;
    int64_t kend = a->tk;
    if (a->causal) {
        kend = (q1 - 1) + shift + 1;
        if (kend > a->tk) kend = a->tk;
    }
    const float *qrows[kAMR];
    for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
        const int64_t jn = kend - j0 < kBK ? kend - j0 : kBK;
        for (int64_t r0 = 0; r0 < nrows_pad; r0 += kAMR) {
            for (int r = 0; r < kAMR; r++) {
                int64_t qi = q0 + r0 + r;
                if (qi >= q1) qi = q1 - 1;
                qrows[r] = qb + qi * a->ldq;
            }
            for (int64_t c0 = 0; c0 < jn; c0 += 16) attn_scores16(qrows, kt + j0 * d + c0, d, sblk + r0 * kBK + c0);
        }
        for (int64_t r = 0; r < nrows_pad; r++) {
            int64_t qi = q0 + r;
            if (qi >= q1) qi = q1 - 1;
            int64_t vis = jn;
            if (a->causal) {
                const int64_t lim = qi + shift + 1 - j0;
                vis = lim < vis ? lim : vis;
            }
            float *s = sblk + r * kBK;
            if (vis <= 0) {
                memset(s, 0, sizeof(float) * kBK);
                continue;
            }
            const __m256 sc = _mm256_set1_ps(a->scale), ninf = _mm256_set1_ps(-INFINITY);
            __m256 mx = ninf;
            for (int64_t c = 0; c < kBK; c += 8) {
                const __m256 valid = _mm256_castsi256_ps(lane_mask(vis - c));
                const __m256 x = _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_loadu_ps(s + c), sc), valid);
                _mm256_storeu_ps(s + c, x);
                mx = _mm256_max_ps(mx, x);
            }
            const float bmax = hmax(mx);
            const float mnew = mrow[r] > bmax ? mrow[r] : bmax;
            const float corr = mrow[r] == -INFINITY ? 0.0f : std::exp(mrow[r] - mnew);
            const __m256 mv = _mm256_set1_ps(mnew);
            __m256 sum = _mm256_setzero_ps();
            for (int64_t c = 0; c < kBK; c += 8) {
                const __m256 valid = _mm256_castsi256_ps(lane_mask(vis - c));
                const __m256 p = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_loadu_ps(s + c), mv)), valid);
                _mm256_storeu_ps(s + c, p);
                sum = _mm256_add_ps(sum, p);
            }
            lrow[r] = lrow[r] * corr + hsum(sum);
            mrow[r] = mnew;
            if (corr != 1.0f) {
                float *orow = oacc + r * ldo_s;
                const __m256 cv = _mm256_set1_ps(corr);
                for (int64_t c = 0; c < ldo_s; c += 8) _mm256_storeu_ps(orow + c, _mm256_mul_ps(cv, _mm256_loadu_ps(orow + c)));
            }
        }
        for (int64_t r0 = 0; r0 < nrows_pad; r0 += kAMR)
            for (int64_t dc = 0; dc < d; dc += 16)
                attn_pv16(sblk + r0 * kBK, vb + j0 * a->ldv, a->ldv, jn, dc, d, oacc + r0 * ldo_s, ldo_s);
    }
    for (int64_t r = 0; r < nrows; r++) {
        const float inv = lrow[r] > 0.0f ? 1.0f / lrow[r] : 0.0f;
        float *dst = ob + (q0 + r) * a->ldo;
        for (int64_t c = 0; c < d; c++) dst[c] = oacc[r * ldo_s + c] * inv;
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
                                    ukr_bf16w, nullptr, epilogue, epilogue_geglu, nullptr};
const tdxl_gemm_kernel kGemmF32 = {TDXL_ISA_AVX2, "avx2-f32", TDXL_BFMT_F32_PANEL, 0, kMR, kNR, 256, 1,
                                   ukr_f32, nullptr, epilogue, epilogue_geglu, nullptr};
const tdxl_isa_ops kOps = {TDXL_ISA_AVX2, &kGemmBF16, &kGemmF32, attn_task, 1, kBQ, kBK,
                           gn_stats, gn_apply, ln_rows, fma_loop};

}  // namespace

extern "C" const tdxl_isa_ops *tdxl_isa_ops_avx2(void) { return &kOps; }
