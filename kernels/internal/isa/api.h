/* api.h — isa.h's functions as one table of function pointers, for package kernels.
 *
 * Package kernels' C++ calls the fast kernels through this table instead of linking the tdxl_isa_*
 * symbols by name: each cgo package is linked on its own first (cgo's _cgo_.o check), so a symbol of
 * another package would be undefined there. The isa Go package hands the table's address to package
 * kernels at init (isa.API()).
 */
#ifndef TDXL_ISA_API_H
#define TDXL_ISA_API_H

#include "isa.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tdxl_isa_api {
  const char *(*status_string)(int status);
  int (*best)(void);
  int (*supported)(int level);
  const char *(*level_name)(int level);
  int (*ctx_new)(int threads, int level, tdxl_isa_ctx **out);
  void (*ctx_free)(tdxl_isa_ctx *ctx);
  int (*ctx_level)(const tdxl_isa_ctx *ctx);
  int (*pack_linear)(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t n, int64_t k, int resident,
                     tdxl_isa_weight **out);
  int (*pack_conv)(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t cout, int64_t cin, int kh, int kw,
                   int resident, tdxl_isa_weight **out);
  int (*pack_geglu)(tdxl_isa_ctx *ctx, const void *w, int dtype, int64_t f2, int64_t k, const float *bias,
                    int resident, tdxl_isa_weight **out);
  void (*weight_free)(tdxl_isa_weight *w);
  int (*weight_level)(const tdxl_isa_weight *w);
  size_t (*weight_bytes)(const tdxl_isa_weight *w);
  int (*linear)(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t m, const float *x, int64_t ldx, float *y,
                int64_t ldy, const float *bias, const float *residual, int64_t ldr, int act);
  int (*conv2d)(tdxl_isa_ctx *ctx, const tdxl_isa_weight *w, int64_t b, int64_t h, int64_t wd, const float *x,
                int stride, int pad, float *y, const float *bias, const float *residual, int act);
  int (*attention)(tdxl_isa_ctx *ctx, int64_t b, int64_t tq, int64_t tk, int64_t heads, int64_t d,
                   const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                   float *o, int64_t ldo, float scale, int causal);
  int (*group_norm)(tdxl_isa_ctx *ctx, int64_t b, int64_t hw, int64_t c, int64_t groups, float eps,
                    const float *x, const float *gamma, const float *beta, float *y, int silu);
  int (*layer_norm)(tdxl_isa_ctx *ctx, int64_t m, int64_t c, float eps, const float *x, const float *gamma,
                    const float *beta, float *y);
  int (*peak)(tdxl_isa_ctx *ctx, int kind, double seconds, double *gflops, double *gflops_per_cpu_s);
  int (*ctx_run)(tdxl_isa_ctx *ctx, int64_t ntasks, void (*fn)(void *arg, int64_t task, int tid), void *arg);
} tdxl_isa_api;

const tdxl_isa_api *tdxl_isa_get_api(void);

#ifdef __cplusplus
}
#endif

#endif /* TDXL_ISA_API_H */
