/* isa.h — fast CPU kernels of tdxl (package kernels/internal/isa).
 *
 * C ABI (extern "C", no exceptions cross it). Conventions are those of the lead's contracts §2:
 *   - activations fp32, channels-last, row strides ("ld", in elements) given for every 2-D operand;
 *   - Linear: Y[M][N] = X[M][K] * W^T (+ bias[N]) (+ residual[M][N]), then an optional activation,
 *     W given once as [N][K] (PyTorch layout) and packed once into an opaque tdxl_isa_weight;
 *   - Conv2d: NHWC in/out, W [Cout][Cin][kh][kw] packed once with K order (ky, kx, ci); implicit GEMM;
 *   - attention: q [B][Tq][H*D], k,v [B][Tk][H*D] (row strides given), o [B][Tq][H*D];
 *   - GroupNorm over NHWC with optional fused SiLU; LayerNorm over rows.
 * Every function returns TDXL_ISA_OK (0) or a negative status; tdxl_isa_status_string names it.
 *
 * ISA levels form an ordered list; the best one the CPU and OS support, capped by the environment
 * variable TDXL_MAX_ISA=amx|avx512bf16|avx512|avx2|ref, is chosen once (tdxl_isa_best). A context may be
 * created at any supported level <= that, so every lower path can be tested on a better machine. The
 * level TDXL_ISA_AMX_EMU runs the AMX kernel's packing and tiling code with a plain C++ emulation of the
 * tile instructions (tests only; never auto-selected). A path may decline an operation (e.g. the bf16
 * paths decline fp32-resident weights); the next lower path that accepts it runs instead.
 */
#ifndef TDXL_ISA_H
#define TDXL_ISA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes. */
#define TDXL_ISA_OK 0
#define TDXL_ISA_EINVAL (-1)      /* bad argument (null pointer, non-positive size, stride too small) */
#define TDXL_ISA_ENOMEM (-2)      /* allocation failed */
#define TDXL_ISA_EUNSUPPORTED (-3) /* level not supported by this CPU/OS */
#define TDXL_ISA_EMISMATCH (-4)   /* packed weight used with the wrong shape or operation */

/* ISA levels, lowest first. */
#define TDXL_ISA_REF 0
#define TDXL_ISA_AVX2 1
#define TDXL_ISA_AVX512 2
#define TDXL_ISA_AVX512BF16 3
#define TDXL_ISA_AMX 4
#define TDXL_ISA_AMX_EMU 5 /* emulated AMX tiles, for tests; as slow as it sounds */
#define TDXL_ISA_AUTO (-1)

/* Weight source dtypes. */
#define TDXL_ISA_F32 0
#define TDXL_ISA_F16 1
#define TDXL_ISA_BF16 2

/* Weight residency: bf16 (default, what the fast paths want) or fp32 (kept for the fp32 paths). */
#define TDXL_ISA_RESIDENT_BF16 0
#define TDXL_ISA_RESIDENT_F32 1

/* Fused activations. */
#define TDXL_ISA_ACT_NONE 0
#define TDXL_ISA_ACT_GELU 1 /* exact (erf) GELU */
#define TDXL_ISA_ACT_SILU 2

/* CPU features as detected (CPUID + XCR0 + arch_prctl for AMX tile data). Bit set. */
#define TDXL_ISA_FEAT_AVX2 (1u << 0)       /* AVX2 + FMA + F16C, OS saves ymm */
#define TDXL_ISA_FEAT_AVX512 (1u << 1)     /* AVX-512 F/BW/VL/DQ, OS saves zmm + opmask */
#define TDXL_ISA_FEAT_AVX512BF16 (1u << 2) /* AVX512_BF16 */
#define TDXL_ISA_FEAT_AMX (1u << 3)        /* AMX-TILE + AMX-BF16, XCR0 tile state, permission granted */

const char *tdxl_isa_status_string(int status);
uint32_t tdxl_isa_features(void);
int tdxl_isa_best(void);                      /* chosen once: min(best supported, TDXL_MAX_ISA) */
int tdxl_isa_supported(int level);           /* 1 when level can run here (AMX_EMU: always) */
const char *tdxl_isa_level_name(int level);  /* "ref", "avx2", "avx512", "avx512bf16", "amx", "amx-emu" */

/* Execution context: a persistent thread pool of `threads` threads (0 = all online CPUs; the caller's
 * thread is one of them) plus per-thread scratch, at one ISA level (TDXL_ISA_AUTO = tdxl_isa_best()).
 * One context runs one operation at a time (calls on the same context must not overlap). */
typedef struct tdxl_isa_ctx tdxl_isa_ctx;
int tdxl_isa_ctx_new(int threads, int level, tdxl_isa_ctx **out);
void tdxl_isa_ctx_free(tdxl_isa_ctx *ctx); /* NULL is fine */
int tdxl_isa_ctx_level(const tdxl_isa_ctx *ctx);
int tdxl_isa_ctx_threads(const tdxl_isa_ctx *ctx);
/* Runs fn(arg, task, tid) for task in [0, ntasks) on the context's pool (the caller is thread 0) and
 * returns when all are done: other code of the process (the inference core's elementwise passes)
 * shares the one pool instead of starting threads of its own. fn must not throw. */
int tdxl_isa_ctx_run(tdxl_isa_ctx *ctx, int64_t ntasks, void (*fn)(void *arg, int64_t task, int tid),
                     void *arg);

/* Packed weights of a linear layer (W [n][k], any dtype) or a conv (W [cout][cin][kh][kw]).
 * The path that packs is the first at or below ctx's level that accepts `resident`; tdxl_isa_weight_level
 * says which. Packing allocates. The ops themselves allocate only when a call needs more per-thread or
 * shared scratch than the context has had so far (it then grows once and is kept): run each op once at the
 * largest shape at load time and later calls allocate nothing. */
typedef struct tdxl_isa_weight tdxl_isa_weight;
int tdxl_isa_weight_pack_linear(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t n, int64_t k,
                                int resident, tdxl_isa_weight **out);
int tdxl_isa_weight_pack_conv(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t cout, int64_t cin,
                              int kh, int kw, int resident, tdxl_isa_weight **out);
/* GEGLU projection (diffusers GEGLU: proj then hidden, gate = chunk(2); hidden * gelu(gate)): w [f2][k]
 * with rows [0, f2/2) the hidden part and [f2/2, f2) the gates, bias [f2] or NULL (copied). tdxl_isa_linear
 * with this weight writes y [m][f2/2] = (x.Wh^T + bh) * gelu(x.Wg^T + bg) in the GEMM epilogue (no [m][f2]
 * intermediate); its bias/residual arguments must be NULL and act NONE (else TDXL_ISA_EMISMATCH). */
int tdxl_isa_weight_pack_geglu(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t f2, int64_t k,
                               const float *bias, int resident, tdxl_isa_weight **out);
void tdxl_isa_weight_free(tdxl_isa_weight *w);
int tdxl_isa_weight_level(const tdxl_isa_weight *w);
size_t tdxl_isa_weight_bytes(const tdxl_isa_weight *w); /* resident bytes of the packed panels */

/* Y[m][n] = act(X[m][:] . W[n][:] + bias[n] + residual[m][n]). bias, residual may be NULL.
 * residual may alias y (same pointer and ldr == ldy); x must not overlap y. */
int tdxl_isa_linear(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t m, const float *x, int64_t ldx,
                    float *y, int64_t ldy, const float *bias, const float *residual, int64_t ldr, int act);

/* NHWC conv: x [b][h][w][cin] contiguous, y [b][ho][wo][cout] contiguous, ho = (h + 2*pad - kh)/stride + 1.
 * residual (may be NULL or alias y) has y's shape. */
int tdxl_isa_conv2d(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t b, int64_t h, int64_t wd,
                    const float *x, int stride, int pad, float *y, const float *bias, const float *residual,
                    int act);

/* Fused blockwise attention with online softmax (no Tq x Tk matrix). Rows of q/k/v/o are strided by
 * ldq/ldk/ldv/ldo elements (>= heads*d); head h uses columns [h*d, (h+1)*d). causal: key j is visible to
 * query i when j <= i + (tk - tq). Batches are b*ldq*tq apart for q (idem for k, v, o). */
int tdxl_isa_attention(tdxl_isa_ctx *ctx, int64_t b, int64_t tq, int64_t tk, int64_t heads, int64_t d,
                       const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                       float *o, int64_t ldo, float scale, int causal);

/* GroupNorm over NHWC x [b][hw][c] (contiguous), groups dividing c; y may alias x. silu: fuse SiLU. */
int tdxl_isa_group_norm(tdxl_isa_ctx *ctx, int64_t b, int64_t hw, int64_t c, int64_t groups, float eps,
                        const float *x, const float *gamma, const float *beta, float *y, int silu);

/* LayerNorm over the last dimension: x, y [m][c] contiguous (y may alias x); gamma, beta [c]. */
int tdxl_isa_layer_norm(tdxl_isa_ctx *ctx, int64_t m, int64_t c, float eps, const float *x, const float *gamma,
                        const float *beta, float *y);

/* Benchmark helpers. tdxl_isa_peak: FLOP/s of a register-resident loop on all of ctx's threads for about
 * `seconds`: kind TDXL_ISA_PEAK_FMA = fp32 FMA (zmm for avx512 and up, ymm for avx2, scalar for ref);
 * TDXL_ISA_PEAK_DOT = the instruction the ctx level's bf16 GEMM is built on (vdpbf16ps on avx512bf16; fp32
 * FMA below; TDXL_ISA_EUNSUPPORTED on the AMX levels). gflops: summed over threads by wall time;
 * gflops_per_cpu_s (may be NULL): per thread by its own CPU time, averaged — what one core does per second
 * it actually runs, robust on a shared, oversubscribed host. */
#define TDXL_ISA_PEAK_FMA 0
#define TDXL_ISA_PEAK_DOT 1
int tdxl_isa_peak(tdxl_isa_ctx *ctx, int kind, double seconds, double *gflops, double *gflops_per_cpu_s);
int tdxl_isa_fma_peak(tdxl_isa_ctx *ctx, double seconds, double *gflops); /* = tdxl_isa_peak(FMA) */

#ifdef __cplusplus
}
#endif

#endif /* TDXL_ISA_H */
