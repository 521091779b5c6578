// avx512bf16.cpp — the AVX512-BF16 level: vdpbf16ps GEMM micro-kernel (6 x 64, 24 zmm accumulators) on
// VNNI-packed bf16 weights [K/2][64][2], activations rounded to bf16 pairs per k chunk (pack_a). fp32-resident
// weights decline (the avx512 level takes them); attention, GroupNorm and the epilogue are the avx512 level's.
#include <cstring>

#include <immintrin.h>

#include "isa_internal.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,f16c")

namespace {

const int kMR = 6, kNR = 64;

__mmask16 tail_mask(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1); }

// rows[r][0..kc) fp32 -> dst[r][0..kcp) bf16 (round to nearest even), zero padded.
void pack_a(const float *const *rows, int64_t nrows, int64_t kc, int64_t kcp, uint16_t *dst, int64_t ldd) {
    for (int64_t r = 0; r < nrows; r++) {
        const float *src = rows[r];
        uint16_t *d = dst + r * ldd;
        for (int64_t k = 0; k < kcp; k += 16) {
            const int64_t left = kc - k;
            const __mmask16 mk = left <= 0 ? static_cast<__mmask16>(0) : tail_mask(left);
            const __m512 v = _mm512_maskz_loadu_ps(mk, src + k);
            const __m256bh h = _mm512_cvtneps_pbh(v);
            const __mmask16 sk = tail_mask(kcp - k);
            _mm256_mask_storeu_epi16(d + k, sk, reinterpret_cast<const __m256i &>(h));
        }
    }
}

#define TDXL_DECL_ACC(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0
#define TDXL_DP_ROW(i)                                                                                \
    do {                                                                                              \
        int32_t pair;                                                                                 \
        memcpy(&pair, abf + (i) * lda + k, 4);                                                        \
        const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));                      \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0);                                                  \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, av, b1);                                                  \
        c##i##2 = _mm512_dpbf16_ps(c##i##2, av, b2);                                                  \
        c##i##3 = _mm512_dpbf16_ps(c##i##3, av, b3);                                                  \
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

// kc is even (k_align 2); b is the VNNI panel at k0: pair p of column n at b[(p*64 + n)*2].
void ukr(int64_t kc, const float *const *, const uint16_t *abf, int64_t lda, const void *bv, float *c, int64_t ldc,
         int accumulate) {
    const uint16_t *b = static_cast<const uint16_t *>(bv);
    TDXL_DECL_ACC(0);
    TDXL_DECL_ACC(1);
    TDXL_DECL_ACC(2);
    TDXL_DECL_ACC(3);
    TDXL_DECL_ACC(4);
    TDXL_DECL_ACC(5);
    for (int64_t k = 0; k < kc; k += 2) {
        const uint16_t *bk = b + k * kNR;  // (k/2) pairs * 64 columns * 2
        const __m512bh b0 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bk));
        const __m512bh b1 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bk + 32));
        const __m512bh b2 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bk + 64));
        const __m512bh b3 = reinterpret_cast<__m512bh>(_mm512_loadu_si512(bk + 96));
        TDXL_DP_ROW(0);
        TDXL_DP_ROW(1);
        TDXL_DP_ROW(2);
        TDXL_DP_ROW(3);
        TDXL_DP_ROW(4);
        TDXL_DP_ROW(5);
    }
    TDXL_STORE_ROW(0);
    TDXL_STORE_ROW(1);
    TDXL_STORE_ROW(2);
    TDXL_STORE_ROW(3);
    TDXL_STORE_ROW(4);
    TDXL_STORE_ROW(5);
}

#undef TDXL_DECL_ACC
#undef TDXL_DP_ROW
#undef TDXL_STORE_ROW

double fma_loop(int64_t iters) {
    __m512 acc[12];
    #pragma GCC unroll 16
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(0.0f);
    const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x3f803f80));  // (1.0, 1.0)
    const __m512bh y = reinterpret_cast<__m512bh>(_mm512_set1_epi32(0x33d633d6));  // tiny
    for (int64_t it = 0; it < iters; it++) {
        #pragma GCC unroll 16
        for (int i = 0; i < 12; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
        __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[1]), "+v"(acc[2]), "+v"(acc[3]), "+v"(acc[4]), "+v"(acc[5]),
                         "+v"(acc[6]), "+v"(acc[7]), "+v"(acc[8]), "+v"(acc[9]), "+v"(acc[10]), "+v"(acc[11]));
    }
    __m512 t = acc[0];
    #pragma GCC unroll 16
    for (int i = 1; i < 12; i++) t = _mm512_add_ps(t, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(t);
    (void)sink;
    return 12.0 * 64.0 * static_cast<double>(iters);  // 32 bf16 products + adds per instruction
}

}  // namespace

extern "C" const tdxl_isa_ops *tdxl_isa_ops_avx512bf16(void) {
    static tdxl_gemm_kernel kern;
    static tdxl_isa_ops ops;
    static const bool init = [] {
        const tdxl_isa_ops *base = tdxl_isa_ops_avx512();
        kern = {TDXL_ISA_AVX512BF16, "avx512bf16-vnni", TDXL_BFMT_BF16_VNNI, 1, kMR, kNR, 256, 2,
                ukr, pack_a, base->gemm_bf16->epilogue, base->gemm_bf16->epilogue_geglu, nullptr};
        ops = *base;
        ops.level = TDXL_ISA_AVX512BF16;
        ops.gemm_bf16 = &kern;
        ops.gemm_f32 = nullptr;
        ops.fma_loop = fma_loop;
        return true;
    }();
    (void)init;
    return &ops;
}
