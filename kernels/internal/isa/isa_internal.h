/* isa_internal.h — declarations shared by the translation units of kernels/internal/isa.
 *
 * Only plain declarations live here (structs of data and function pointers, extern "C" prototypes):
 * no inline functions or templates, because every ISA translation unit is compiled with its own
 * `#pragma GCC target` and an inline definition emitted by an AVX-512 unit could be chosen by the
 * linker for a baseline caller (SIGILL on an AVX2 host). Each ISA unit exports one table getter.
 */
#ifndef TDXL_ISA_INTERNAL_H
#define TDXL_ISA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Layouts of packed B (weight) panels. Panels are NR columns wide; N is padded with zero columns to a
 * multiple of NR and K with zero rows to a multiple of k_align.
 *   F32_PANEL : [Np/NR][Kp][NR] float
 *   BF16_PANEL: [Np/NR][Kp][NR] bf16
 *   BF16_VNNI : [Np/NR][Kp/2][NR][2] bf16 (pairs of consecutive k per column: vdpbf16ps / AMX)
 *   BF16_PAIR16/PAIR8: [Np/NR][Kp][NR] bf16 where, inside each group of 2P columns (P = 16 or 8), element
 *               2j holds column j and element 2j+1 column P+j: one 32-bit lane = (col j, col P+j), so a
 *               shift gives columns 0..P-1 and a mask columns P..2P-1 as fp32 (AVX-512 / AVX2 expansion)
 * The panel of column block j starting at row k0 is at element offset j*Kp*NR + k0*NR in all three. */
#define TDXL_BFMT_F32_PANEL 1
#define TDXL_BFMT_BF16_PANEL 2
#define TDXL_BFMT_BF16_VNNI 3
#define TDXL_BFMT_BF16_PAIR16 4
#define TDXL_BFMT_BF16_PAIR8 5

/* One GEMM micro-kernel and what it wants. C tile: mr x nr floats at c with row stride ldc.
 * A is either fp32 rows (arows[0..mr-1], each already offset to k0) or, when a_bf16, bf16 rows packed by
 * pack_a at abf with row stride lda (elements), kc padded to a multiple of k_align with zeros.
 * accumulate = 0: C = A.B ; 1: C += A.B. The kernel always computes a full mr x nr tile (A rows beyond
 * the valid ones repeat a valid row; B columns beyond N are zero); the driver stores only valid parts. */
typedef void (*tdxl_ukr_fn)(int64_t kc, const float *const *arows, const uint16_t *abf, int64_t lda,
                            const void *b, float *c, int64_t ldc, int accumulate);
typedef void (*tdxl_pack_a_fn)(const float *const *rows, int64_t nrows, int64_t kc, int64_t kcp,
                               uint16_t *dst, int64_t ldd);
typedef void (*tdxl_epilogue_fn)(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy,
                                 const float *bias, const float *res, int64_t ldr, int act);

typedef struct tdxl_gemm_kernel {
    int level;      /* TDXL_ISA_* this kernel belongs to */
    const char *name;
    int b_format;   /* TDXL_BFMT_* */
    int a_bf16;     /* 1: A converted to bf16 rows by pack_a */
    int mr, nr;     /* register tile */
    int kc;         /* k chunk (multiple of k_align) */
    int k_align;    /* K padding of panels and of packed A */
    tdxl_ukr_fn ukr;
    tdxl_pack_a_fn pack_a; /* NULL unless a_bf16 */
    tdxl_epilogue_fn epilogue;
    /* GEGLU epilogue: the tile's n columns are panels of 2p (p "hidden" columns, then their p gates);
     * y[i][j*p + t] = (c[i][j*2p+t] + b) * gelu(c[i][j*2p+p+t] + b'), for output columns < nout;
     * bias (GEMM-column order) may be NULL. */
    void (*epilogue_geglu)(int64_t m, int64_t n, const float *c, int64_t ldc, float *y, int64_t ldy,
                           const float *bias, int64_t nout, int p);
    void (*finish)(void); /* NULL, or called by each thread after its last micro-kernel of a task (AMX:
                             release the tiles, so an idle thread does not carry 8 KiB of tile state) */
} tdxl_gemm_kernel;

/* Attention work item: one (batch, head, block of query rows). */
typedef struct tdxl_attn_args {
    int64_t b, tq, tk, heads, d;
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv, ldo;
    float *o;
    float scale;
    int causal;
    const float *kt; /* K transposed per (batch, head) and key block: [b][heads][tk_pad/bk][d][bk], or NULL */
    int64_t tk_pad;
    int64_t bq;      /* query rows per task */
} tdxl_attn_args;
/* scratch: at least tdxl_attn_scratch_floats(bq, d, bk) floats, 64-byte aligned. */
typedef void (*tdxl_attn_task_fn)(const tdxl_attn_args *a, int64_t bh, int64_t q0, float *scratch);

/* Per-level operations. NULL entries mean "this level declines; use the next lower". */
typedef struct tdxl_isa_ops {
    int level;
    const tdxl_gemm_kernel *gemm_bf16; /* for bf16-resident weights */
    const tdxl_gemm_kernel *gemm_f32;  /* for fp32-resident weights */
    tdxl_attn_task_fn attn_task;       /* needs kt (K transposed) when attn_wants_kt */
    int attn_wants_kt;
    int attn_bq, attn_bk;              /* query rows per task, keys per block */
    /* GroupNorm: per-channel sums over rows (accumulated into sum/sumsq, double) and the apply pass
     * y = x*scale[c] + shift[c] (+ SiLU). */
    void (*gn_stats)(const float *x, int64_t rows, int64_t c, double *sum, double *sumsq);
    void (*gn_apply)(const float *x, float *y, int64_t rows, int64_t c, const float *scale,
                     const float *shift, int silu);
    /* LayerNorm of rows [rows][c] (row stride c): y = (x - mean) / sqrt(var + eps) * gamma + beta. */
    void (*ln_rows)(const float *x, float *y, int64_t rows, int64_t c, float eps, const float *gamma,
                    const float *beta);
    double (*fma_loop)(int64_t iters); /* returns FLOPs executed */
} tdxl_isa_ops;

const tdxl_isa_ops *tdxl_isa_ops_ref(void);
const tdxl_isa_ops *tdxl_isa_ops_avx2(void);
const tdxl_isa_ops *tdxl_isa_ops_avx512(void);
const tdxl_isa_ops *tdxl_isa_ops_avx512bf16(void);
const tdxl_isa_ops *tdxl_isa_ops_amx(void);
const tdxl_isa_ops *tdxl_isa_ops_amx_emu(void);

/* The dispatch table: ops for a level (never NULL for a supported level, NULL for an unsupported one:
 * a level's getter must never run on a CPU without that level); filled once. */
const tdxl_isa_ops *tdxl_isa_ops_for(int level);

/* The ops of the first level, walking down from `level`, for which has(ops) is true: a path that does
 * not implement an operation falls back to the next lower one (the emulated AMX level straight to ref).
 * NULL when none has it. */
const tdxl_isa_ops *tdxl_isa_ops_with(int level, int (*has)(const tdxl_isa_ops *ops));

/* Thread pool (pool.cpp). fn(arg, task, tid) for task in [0, ntasks); tid in [0, threads). */
typedef struct tdxl_pool tdxl_pool;
typedef void (*tdxl_task_fn)(void *arg, int64_t task, int tid);
int tdxl_pool_new(int threads, tdxl_pool **out);
void tdxl_pool_free(tdxl_pool *p);
int tdxl_pool_threads(const tdxl_pool *p);
void tdxl_pool_run(tdxl_pool *p, int64_t ntasks, tdxl_task_fn fn, void *arg);

/* Context internals (ctx.cpp). */
int tdxl_ctx_reserve(tdxl_isa_ctx *ctx, size_t bytes_per_thread); /* per-thread scratch, 64-aligned */
void *tdxl_ctx_scratch(tdxl_isa_ctx *ctx, int tid);
int tdxl_ctx_reserve_shared(tdxl_isa_ctx *ctx, size_t bytes);     /* one shared buffer */
void *tdxl_ctx_shared(tdxl_isa_ctx *ctx);
tdxl_pool *tdxl_ctx_pool(tdxl_isa_ctx *ctx);
const tdxl_isa_ops *tdxl_ctx_ops(const tdxl_isa_ctx *ctx);

/* Scalar helpers (convert.cpp, baseline). */
float tdxl_f16_to_f32(uint16_t h);
float tdxl_bf16_to_f32(uint16_t h);
uint16_t tdxl_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */

#ifdef __cplusplus
}
#endif

#endif /* TDXL_ISA_INTERNAL_H */
