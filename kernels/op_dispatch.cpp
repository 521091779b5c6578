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

namespace {
// The ops of a planning run (Pool::dry): they compute nothing, so a forward pass only walks the
// model's allocations (tdxl_pipe_reserve sizes the activation arena that way).
void dry_linear(Pool&, const Packed&, const float*, int64_t, float*, int64_t, int64_t, const float*,
                int64_t) {}
void dry_conv2d(Pool&, const Packed&, const float*, const ConvShape&, float*, const float*) {}
void dry_attention(Pool&, const float*, int64_t, const float*, int64_t, const float*, int64_t,
                   float*, int64_t, int, int64_t, int64_t, int, int, float, bool) {}
void dry_group_norm(Pool&, const float*, float*, int, int64_t, int, int, float, const float*,
                    const float*, bool) {}
void dry_layer_norm(Pool&, const float*, float*, int64_t, int, float, const float*, const float*) {}
}  // namespace

const Ops& dry_ops() {
  static const Ops table = {
      "dry",          ref_pack_weights, dry_linear,     dry_conv2d,
      dry_attention,  dry_group_norm,   dry_layer_norm, nullptr, nullptr, true,
  };
  return table;
}

const Ops& ops() { return ref_ops(); }

// A pipeline picks its table once at creation (tdxl_pipe_new): the fast isa table at the level
// chosen from CPUID (capped by TDXL_MAX_ISA / Options), or the reference table for "ref".
const Ops& Pool::ops() const {
  if (dry) return dry_ops();
  return table ? *table : ref_ops();
}

}  // namespace tdxl
