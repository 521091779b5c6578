// op_dispatch.cpp — the one dispatch point: a table of op function pointers filled once.
// Today it holds the fp32 reference ops only; the fast variants of kernels/internal/isa replace
// entries here (chosen once from CPUID), and the reference table stays reachable through ref_ops()
// as their oracle.
#include "core.h"

namespace tdxl {

void ref_pack_weights(Pool* pool, Packed* p, const float* w, int64_t N, int cin, int kh, int kw,
                      const float* bias);
void ref_linear(Pool& pool, const Packed& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                int64_t M, const float* residual, int64_t ldr);
void ref_conv2d(Pool& pool, const Packed& w, const float* x, const ConvShape& s, float* y,
                const float* residual);
void ref_attention(Pool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
                   const float* v, int64_t ldv, float* o, int64_t ldo, int B, int64_t Tq,
                   int64_t Tk, int H, int D, float scale, bool causal);
void ref_group_norm(Pool& pool, const float* x, float* y, int B, int64_t HW, int C, int groups,
                    float eps, const float* gamma, const float* beta, bool silu);
void ref_layer_norm(Pool& pool, const float* x, float* y, int64_t M, int C, float eps,
                    const float* gamma, const float* beta);

const Ops& ref_ops() {
  static const Ops table = {
      "ref-fp32",     ref_pack_weights, ref_linear,     ref_conv2d,
      ref_attention,  ref_group_norm,   ref_layer_norm, nullptr, nullptr, false,
  };
  return table;
}

const Ops& ops() { return ref_ops(); }

// A pipeline picks its table once at creation (tdxl_pipe_new): the fast isa table at the level
// chosen from CPUID (capped by TDXL_MAX_ISA / Options), or the reference table for "ref".
const Ops& Pool::ops() const { return table ? *table : ref_ops(); }

}  // namespace tdxl
