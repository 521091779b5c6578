// op_isa.cpp — the fast op table: every op of core.h's Ops forwarded to the kernels of
// kernels/internal/isa (AVX2 / AVX-512 / AVX512-BF16 / AMX, chosen once from CPUID) through the
// function table that package hands over at init (api.h; tdxl_core_set_isa_api). The pool of the
// calling pipeline carries its tdxl_isa_ctx (pool.isa) and the weight residency (pool.resident).
#include <string>

#include "api.h"
#include "core.h"
#include "tdxl_capi.h"

namespace tdxl {

namespace {

const tdxl_isa_api* g_isa = nullptr;

tdxl_isa_ctx* ictx(const Pool& p) {
  if (!p.isa) throw Error("internal: fast op without an isa context");
  return static_cast<tdxl_isa_ctx*>(p.isa);
}

void chk(int rc, const char* op) {
  if (rc != TDXL_ISA_OK) throw Error(std::string("isa ") + op + ": " + g_isa->status_string(rc));
}

void free_weight(void* w) { g_isa->weight_free(static_cast<tdxl_isa_weight*>(w)); }

int isa_dtype(int dtype) {
  switch (dtype) {
    case TDXL_F32: return TDXL_ISA_F32;
    case TDXL_F16: return TDXL_ISA_F16;
    case TDXL_BF16: return TDXL_ISA_BF16;
  }
  throw Error("isa pack: unsupported weight dtype");
}

void set_ext(Packed* p, tdxl_isa_weight* w) {
  if (p->ext && p->ext_free) p->ext_free(p->ext);
  p->ext = w;
  p->ext_free = free_weight;
}

// 1×1 convs are packed as linear weights: the model runs them as GEMMs (Conv::operator()).
void isa_pack_raw(Pool* pool, Packed* p, const void* w, int dtype, int64_t N, int cin, int kh,
                  int kw) {
  p->N = N;
  p->K = static_cast<int64_t>(cin) * kh * kw;
  p->kh = kh;
  p->kw = kw;
  p->cin = cin;
  tdxl_isa_weight* out = nullptr;
  if (kh == 1 && kw == 1)
    chk(g_isa->pack_linear(ictx(*pool), w, isa_dtype(dtype), N, cin, pool->resident, &out),
        "pack linear");
  else
    chk(g_isa->pack_conv(ictx(*pool), w, isa_dtype(dtype), N, cin, kh, kw, pool->resident, &out),
        "pack conv");
  set_ext(p, out);
}

void isa_pack(Pool* pool, Packed* p, const float* w, int64_t N, int cin, int kh, int kw,
              const float* bias) {
  isa_pack_raw(pool, p, w, TDXL_F32, N, cin, kh, kw);
  if (bias) p->bias.assign(bias, bias + N);
}

void isa_pack_geglu(Pool* pool, Packed* p, const void* w, int dtype, int64_t N2, int64_t K,
                    const float* bias) {
  p->N = N2;
  p->K = K;
  p->kh = p->kw = 1;
  p->cin = static_cast<int>(K);
  tdxl_isa_weight* out = nullptr;
  chk(g_isa->pack_geglu(ictx(*pool), w, isa_dtype(dtype), N2, K, bias, pool->resident, &out),
      "pack geglu");
  set_ext(p, out);
  p->geglu = true;
}

const float* bias_of(const Packed& w) {
  return w.geglu || w.bias.empty() ? nullptr : w.bias.data();
}

void isa_linear(Pool& pool, const Packed& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                int64_t M, const float* residual, int64_t ldr) {
  if (w.kh != 1 || w.kw != 1) throw Error("linear called with a conv weight");
  if (M == 0) return;
  chk(g_isa->linear(ictx(pool), static_cast<const tdxl_isa_weight*>(w.ext), M, x, ldx, y, ldy,
                    bias_of(w), residual, residual ? ldr : ldy, TDXL_ISA_ACT_NONE),
      "linear");
}

void isa_conv2d(Pool& pool, const Packed& w, const float* x, const ConvShape& s, float* y,
                const float* residual) {
  chk(g_isa->conv2d(ictx(pool), static_cast<const tdxl_isa_weight*>(w.ext), s.B, s.H, s.W, x,
                    s.stride, s.pad, y, bias_of(w), residual, TDXL_ISA_ACT_NONE),
      "conv2d");
}

void isa_attention(Pool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
                   const float* v, int64_t ldv, float* o, int64_t ldo, int B, int64_t Tq,
                   int64_t Tk, int H, int D, float scale, bool causal) {
  chk(g_isa->attention(ictx(pool), B, Tq, Tk, H, D, q, ldq, k, ldk, v, ldv, o, ldo, scale,
                       causal ? 1 : 0),
      "attention");
}

void isa_group_norm(Pool& pool, const float* x, float* y, int B, int64_t HW, int C, int groups,
                    float eps, const float* gamma, const float* beta, bool silu) {
  chk(g_isa->group_norm(ictx(pool), B, HW, C, groups, eps, x, gamma, beta, y, silu ? 1 : 0),
      "group_norm");
}

void isa_layer_norm(Pool& pool, const float* x, float* y, int64_t M, int C, float eps,
                    const float* gamma, const float* beta) {
  chk(g_isa->layer_norm(ictx(pool), M, C, eps, x, gamma, beta, y), "layer_norm");
}

}  // namespace

const Ops* isa_ops() {
  static const Ops table = {
      "isa",          isa_pack,       isa_linear,     isa_conv2d,     isa_attention,
      isa_group_norm, isa_layer_norm, isa_pack_raw,   isa_pack_geglu, true,
  };
  return g_isa ? &table : nullptr;
}

const tdxl_isa_api* isa_api() { return g_isa; }

}  // namespace tdxl

extern "C" void tdxl_core_set_isa_api(const void* api) {
  tdxl::g_isa = static_cast<const tdxl_isa_api*>(api);
}
