// avx512.cpp — the AVX-512 (F/BW/VL/DQ) level: fp32 FMA GEMM micro-kernels with bf16 weights expanded on
// the fly (or fp32 weights), vectorised epilogue, blockwise online-softmax attention, GroupNorm.
// Standard headers first, then the target pragma: everything below is AVX-512 code, kept in an anonymous
// namespace so no inline copy can leak to baseline callers.
#include <cmath>
#include <cstring>

#include <immintrin.h>

#include "isa_internal.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2,f16c")

namespace {

const int kMR = 6, kNR = 64;

// ---- math ----
__m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-88.3762626647949f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

__m512 silu512(__m512 v) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), v));
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// erf by Abramowitz-Stegun 7.1.26 (|error| <= 1.5e-7), then GELU(v) = v/2 (1 + erf(v/sqrt 2)).
__m512 gelu512(__m512 v) {
    const __m512 x = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    const __m512 ax = _mm512_abs_ps(x);
    const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(ax, _mm512_set1_ps(0.3275911f),
                                                                         _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(ax, ax)));
    __m512 erf_abs = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0f));
    // copy the sign of x
    const __m512 sign = _mm512_and_ps(x, _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(0x80000000u))));
    const __m512 erfv = _mm512_or_ps(erf_abs, sign);
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)), _mm512_add_ps(_mm512_set1_ps(1.0f), erfv));
}

__mmask16 tail_mask(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1); }

// ---- GEMM micro-kernels: 6 rows x 64 columns (24 zmm accumulators) ----

#define TDXL_DECL_ACC(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0
#define TDXL_FMA_ROW(i, ap)                                 \
    do {                                                    \
        const __m512 av = _mm512_set1_ps((ap)[k]);          \
        c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);         \
        c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);         \
        c##i##2 = _mm512_fmadd_ps(av, b2, c##i##2);         \
        c##i##3 = _mm512_fmadd_ps(av, b3, c##i##3);         \
    } while (0)
#define TDXL_STORE_ROW(i)                                                                   \
    do {                                                                                    \
        float *cr = c + (i) * ldc;                                                          \
        if (accumulate) {                                                                   \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(cr));                          \
            c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(cr + 16));                     \
            c##i##2 = _mm512_add_ps(c##i##2, _mm512_loadu_ps(cr + 32));                     \
            c##i##3 = _mm512_add_ps(c##i##3, _mm512_loadu_ps(cr + 48));                     \
        }                                                                                   \
        _mm512_storeu_ps(cr, c##i##0);                                                      \
        _mm512_storeu_ps(cr + 16, c##i##1);                                                 \
        _mm512_storeu_ps(cr + 32, c##i##2);                                                 \
        _mm512_storeu_ps(cr + 48, c##i##3);                                                 \
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
    const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
    for (int64_t k = 0; k < kc; k++) {
        // PAIR16 layout: lane j of each 64-byte half holds (col j, col 16+j).
        const __m512i r0 = _mm512_loadu_si512(b + k * kNR);
        const __m512i r1 = _mm512_loadu_si512(b + k * kNR + 32);
        const __m512 b0 = _mm512_castsi512_ps(_mm512_slli_epi32(r0, 16));
        const __m512 b1 = _mm512_castsi512_ps(_mm512_and_si512(r0, hi_mask));
        const __m512 b2 = _mm512_castsi512_ps(_mm512_slli_epi32(r1, 16));
        const __m512 b3 = _mm512_castsi512_ps(_mm512_and_si512(r1, hi_mask));
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
        const float *bk = b + k * kNR;
        const __m512 b0 = _mm512_loadu_ps(bk), b1 = _mm512_loadu_ps(bk + 16);
        const __m512 b2 = _mm512_loadu_ps(bk + 32), b3 = _mm512_loadu_ps(bk + 48);
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

void epilogue(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy, const float *bias,
              const float *res, int64_t ldr, int act) {
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j += 16) {
            const __mmask16 mk = tail_mask(n - j);
            __m512 v = _mm512_maskz_loadu_ps(mk, c + i * ldc + j);
            if (bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + j));
            if (res != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, res + i * ldr + j));
            if (act == TDXL_ISA_ACT_GELU) v = gelu512(v);
            else if (act == TDXL_ISA_ACT_SILU) v = silu512(v);
            _mm512_mask_storeu_ps(y + i * ldy + j, mk, v);
        }
    }
}

void epilogue_geglu(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy, const float *bias,
                    int64_t nout, int p) {
    for (int64_t i = 0; i < m; i++) {
        const float *ci = c + i * ldc;
        for (int64_t j = 0; j * 2 * p < n; j++) {
            for (int t = 0; t < p; t += 16) {
                const int64_t o = j * p + t;
                if (o >= nout) break;
                const __mmask16 mk = tail_mask(nout - o);
                const int64_t ca = j * 2 * p + t, cg = ca + p;
                __m512 a = _mm512_loadu_ps(ci + ca), g = _mm512_loadu_ps(ci + cg);
                if (bias != nullptr) {
                    a = _mm512_add_ps(a, _mm512_loadu_ps(bias + ca));
                    g = _mm512_add_ps(g, _mm512_loadu_ps(bias + cg));
                }
                _mm512_mask_storeu_ps(y + i * ldy + o, mk, _mm512_mul_ps(a, gelu512(g)));
            }
        }
    }
}

// ---- attention: one (batch*head, block of bq query rows), keys in blocks of kBK ----
const int kBQ = 48, kBK = 64, kAMR = 6;

// S[r][0..64) = q_r . K^T[:, j0..j0+64) for kAMR rows (row pointers q[r], stride 1 over d); kt is the
// block's K^T [d][ldk].
void attn_scores(const float *const *q, const float *kt, int64_t ldk, int64_t d, float *s) {
    __m512 acc[kAMR][4];
    #pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++)
        #pragma GCC unroll 16
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
    for (int64_t dd = 0; dd < d; dd++) {
        const float *kr = kt + dd * ldk;
        const __m512 k0 = _mm512_loadu_ps(kr), k1 = _mm512_loadu_ps(kr + 16);
        const __m512 k2 = _mm512_loadu_ps(kr + 32), k3 = _mm512_loadu_ps(kr + 48);
        #pragma GCC unroll 16
        for (int r = 0; r < kAMR; r++) {
            const __m512 qv = _mm512_set1_ps(q[r][dd]);
            acc[r][0] = _mm512_fmadd_ps(qv, k0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(qv, k1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(qv, k2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(qv, k3, acc[r][3]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++)
        #pragma GCC unroll 16
        for (int v = 0; v < 4; v++) _mm512_storeu_ps(s + r * kBK + v * 16, acc[r][v]);
}

// O[r][dc..dc+64) += sum_j P[r][j] V[j][dc..]  for kAMR rows, jn keys.
void attn_pv(const float *p, const float *vb, int64_t ldv, int64_t jn, int64_t dc, int64_t d, float *o,
             int64_t ldo_s) {
    __mmask16 mk[4];
    #pragma GCC unroll 16
    for (int v = 0; v < 4; v++) {
        const int64_t left = d - dc - v * 16;
        mk[v] = left <= 0 ? static_cast<__mmask16>(0) : tail_mask(left);
    }
    __m512 acc[kAMR][4];
    #pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++)
        #pragma GCC unroll 16
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_maskz_loadu_ps(mk[v], o + r * ldo_s + dc + v * 16);
    for (int64_t j = 0; j < jn; j++) {
        const float *vr = vb + j * ldv + dc;
        const __m512 v0 = _mm512_maskz_loadu_ps(mk[0], vr), v1 = _mm512_maskz_loadu_ps(mk[1], vr + 16);
        const __m512 v2 = _mm512_maskz_loadu_ps(mk[2], vr + 32), v3 = _mm512_maskz_loadu_ps(mk[3], vr + 48);
        #pragma GCC unroll 16
        for (int r = 0; r < kAMR; r++) {
            const __m512 pv = _mm512_set1_ps(p[r * kBK + j]);
            acc[r][0] = _mm512_fmadd_ps(pv, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(pv, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(pv, v2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(pv, v3, acc[r][3]);
        }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < kAMR; r++)
        #pragma GCC unroll 16
        for (int v = 0; v < 4; v++) _mm512_mask_storeu_ps(o + r * ldo_s + dc + v * 16, mk[v], acc[r][v]);
}

float hmax(__m512 v) { return _mm512_reduce_max_ps(v); }

void attn_task(const tdxl_attn_args *a, int64_t bh, int64_t q0, float *scratch) {
    const int64_t bi = bh / a->heads, h = bh % a->heads, d = a->d;
    const int64_t q1 = q0 + kBQ < a->tq ? q0 + kBQ : a->tq;
    const int64_t nrows = q1 - q0, nrows_pad = (nrows + kAMR - 1) / kAMR * kAMR;
    const float *qb = a->q + bi * a->tq * a->ldq + h * d;
    const float *vb = a->v + bi * a->tk * a->ldv + h * d;
    const float *kt = a->kt + bh * d * a->tk_pad;
    float *ob = a->o + bi * a->tq * a->ldo + h * d;
    const int64_t ldo_s = (d + 15) / 16 * 16;
    float *oacc = scratch;                       // [kBQ][ldo_s]
    float *sblk = oacc + kBQ * ldo_s;            // [kBQ][kBK]
    float *mrow = sblk + kBQ * kBK;              // [kBQ]
    float *lvec = mrow + kBQ;                    // [kBQ][16] partial sums of the softmax denominators
    memset(oacc, 0, sizeof(float) * static_cast<size_t>(nrows_pad * ldo_s));
    memset(lvec, 0, sizeof(float) * static_cast<size_t>(nrows_pad * 16));
    for (int64_t r = 0; r < nrows_pad; r++) mrow[r] = -INFINITY;
    const int64_t shift = a->tk - a->tq;  // causal: key j visible to query i when j <= i + shift
    int64_t kend = a->tk;
    if (a->causal) {
        kend = (q1 - 1) + shift + 1;
        if (kend > a->tk) kend = a->tk;
    }
    const float *qrows[kAMR];
    for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
        const int64_t jn = kend - j0 < kBK ? kend - j0 : kBK;
        for (int64_t r0 = 0; r0 < nrows_pad; r0 += kAMR) {
            #pragma GCC unroll 16
            for (int r = 0; r < kAMR; r++) {
                int64_t qi = q0 + r0 + r;
                if (qi >= q1) qi = q1 - 1;
                qrows[r] = qb + qi * a->ldq;
            }
            attn_scores(qrows, kt + j0 * d, kBK, d, sblk + r0 * kBK);
        }
        // online softmax per row
        for (int64_t r = 0; r < nrows_pad; r++) {
            int64_t qi = q0 + r;
            if (qi >= q1) qi = q1 - 1;
            int64_t vis = jn;  // visible keys in this block for this row
            if (a->causal) {
                const int64_t lim = qi + shift + 1 - j0;
                vis = lim < vis ? lim : vis;
            }
            float *s = sblk + r * kBK;
            if (vis <= 0) {
                memset(s, 0, sizeof(float) * kBK);
                continue;
            }
            __m512 mx = _mm512_set1_ps(-INFINITY);
            const __m512 sc = _mm512_set1_ps(a->scale);
            #pragma GCC unroll 16
            for (int v = 0; v < 4; v++) {
                const __mmask16 mk = v * 16 >= vis ? 0 : tail_mask(vis - v * 16);
                const __m512 x = _mm512_mask_mul_ps(_mm512_set1_ps(-INFINITY), mk, _mm512_loadu_ps(s + v * 16), sc);
                _mm512_storeu_ps(s + v * 16, x);
                mx = _mm512_max_ps(mx, x);
            }
            const float bmax = hmax(mx);
            const float mnew = mrow[r] > bmax ? mrow[r] : bmax;
            const float corr = mrow[r] == -INFINITY ? 0.0f : std::exp(mrow[r] - mnew);
            const __m512 mv = _mm512_set1_ps(mnew);
            __m512 sum = _mm512_setzero_ps();
            #pragma GCC unroll 16
            for (int v = 0; v < 4; v++) {
                const __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + v * 16), mv));
                const __mmask16 mk = v * 16 >= vis ? 0 : tail_mask(vis - v * 16);
                const __m512 pm = _mm512_maskz_mov_ps(mk, p);
                _mm512_storeu_ps(s + v * 16, pm);
                sum = _mm512_add_ps(sum, pm);
            }
            // l kept as 16 partial sums per row (one horizontal add at the end, not one per block)
            float *lv = lvec + r * 16;
            _mm512_storeu_ps(lv, _mm512_fmadd_ps(_mm512_loadu_ps(lv), _mm512_set1_ps(corr), sum));
            mrow[r] = mnew;
            if (corr != 1.0f) {
                float *orow = oacc + r * ldo_s;
                const __m512 cv = _mm512_set1_ps(corr);
                for (int64_t c = 0; c < ldo_s; c += 16) _mm512_storeu_ps(orow + c, _mm512_mul_ps(cv, _mm512_loadu_ps(orow + c)));
            }
        }
        for (int64_t r0 = 0; r0 < nrows_pad; r0 += kAMR)
            for (int64_t dc = 0; dc < d; dc += 64)
                attn_pv(sblk + r0 * kBK, vb + j0 * a->ldv, a->ldv, jn, dc, d, oacc + r0 * ldo_s, ldo_s);
    }
    for (int64_t r = 0; r < nrows; r++) {
        const float l = _mm512_reduce_add_ps(_mm512_loadu_ps(lvec + r * 16));
        const __m512 iv = _mm512_set1_ps(l > 0.0f ? 1.0f / l : 0.0f);
        float *dst = ob + (q0 + r) * a->ldo;
        for (int64_t c = 0; c < d; c += 16) {
            const __mmask16 mk = tail_mask(d - c);
            _mm512_mask_storeu_ps(dst + c, mk, _mm512_mul_ps(iv, _mm512_maskz_loadu_ps(mk, oacc + r * ldo_s + c)));
        }
    }
}

// ---- GroupNorm ----
void gn_stats(const float *x, int64_t rows, int64_t c, double *sum, double *sumsq) {
    // Accumulate in fp32 over blocks of 64 rows, then fold into double.
    for (int64_t j = 0; j < c; j += 16) {
        const __mmask16 mk = tail_mask(c - j);
        double s_d[16] = {0}, q_d[16] = {0};
        for (int64_t r0 = 0; r0 < rows; r0 += 64) {
            const int64_t r1 = r0 + 64 < rows ? r0 + 64 : rows;
            __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
            for (int64_t r = r0; r < r1; r++) {
                const __m512 v = _mm512_maskz_loadu_ps(mk, x + r * c + j);
                s = _mm512_add_ps(s, v);
                q = _mm512_fmadd_ps(v, v, q);
            }
            float sf[16], qf[16];
            _mm512_storeu_ps(sf, s);
            _mm512_storeu_ps(qf, q);
            for (int t = 0; t < 16; t++) {
                s_d[t] += sf[t];
                q_d[t] += qf[t];
            }
        }
        for (int t = 0; t < 16 && j + t < c; t++) {
            sum[j + t] += s_d[t];
            sumsq[j + t] += q_d[t];
        }
    }
}

void gn_apply(const float *x, float *y, int64_t rows, int64_t c, const float *scale, const float *shift,
              int silu) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < c; j += 16) {
            const __mmask16 mk = tail_mask(c - j);
            __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + r * c + j), _mm512_maskz_loadu_ps(mk, scale + j),
                                       _mm512_maskz_loadu_ps(mk, shift + j));
            if (silu) v = silu512(v);
            _mm512_mask_storeu_ps(y + r * c + j, mk, v);
        }
    }
}

// ---- LayerNorm: two passes over each row (mean, then centred sum of squares) ----
void ln_rows(const float *x, float *y, int64_t rows, int64_t c, float eps, const float *gamma,
             const float *beta) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * c;
        __m512 s = _mm512_setzero_ps();
        for (int64_t j = 0; j < c; j += 16) s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tail_mask(c - j), xr + j));
        const float mean = _mm512_reduce_add_ps(s) / static_cast<float>(c);
        const __m512 mv = _mm512_set1_ps(mean);
        __m512 q = _mm512_setzero_ps();
        for (int64_t j = 0; j < c; j += 16) {
            const __mmask16 mk = tail_mask(c - j);
            const __m512 d = _mm512_maskz_sub_ps(mk, _mm512_maskz_loadu_ps(mk, xr + j), mv);
            q = _mm512_fmadd_ps(d, d, q);
        }
        const float rstd = 1.0f / std::sqrt(_mm512_reduce_add_ps(q) / static_cast<float>(c) + eps);
        const __m512 rv = _mm512_set1_ps(rstd);
        float *yr = y + r * c;
        for (int64_t j = 0; j < c; j += 16) {
            const __mmask16 mk = tail_mask(c - j);
            const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, xr + j), mv), rv);
            _mm512_mask_storeu_ps(yr + j, mk,
                                  _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(mk, gamma + j), _mm512_maskz_loadu_ps(mk, beta + j)));
        }
    }
}

double fma_loop(int64_t iters) {
    __m512 acc[12];
    #pragma GCC unroll 16
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(static_cast<float>(i));
    const __m512 m = _mm512_set1_ps(0.999999f), s = _mm512_set1_ps(1e-7f);
    for (int64_t it = 0; it < iters; it++) {
        #pragma GCC unroll 16
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, s);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]),
                         "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]), "+v"(acc[10]), "+v"(acc[11]));
    }
    __m512 t = acc[0];
    #pragma GCC unroll 16
    for (int i = 1; i < 12; i++) t = _mm512_add_ps(t, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(t);
    (void)sink;
    return 12.0 * 32.0 * static_cast<double>(iters);
}

const tdxl_gemm_kernel kGemmBF16 = {TDXL_ISA_AVX512, "avx512-bf16w", TDXL_BFMT_BF16_PAIR16, 0, kMR, kNR, 256, 1,
                                    ukr_bf16w, nullptr, epilogue, epilogue_geglu, nullptr};
const tdxl_gemm_kernel kGemmF32 = {TDXL_ISA_AVX512, "avx512-f32", TDXL_BFMT_F32_PANEL, 0, kMR, kNR, 128, 1,
                                   ukr_f32, nullptr, epilogue, epilogue_geglu, nullptr};
const tdxl_isa_ops kOps = {TDXL_ISA_AVX512, &kGemmBF16, &kGemmF32, attn_task, 1, kBQ, kBK,
                           gn_stats, gn_apply, ln_rows, fma_loop};

}  // namespace

extern "C" const tdxl_isa_ops *tdxl_isa_ops_avx512(void) { return &kOps; }
