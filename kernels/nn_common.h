// nn_common.h — module building blocks shared by CLIP, UNet and VAE, and the weight registry.
//
// Modules mirror the PyTorch module tree: each registers its parameters under the checkpoint's own
// state-dict keys (prefix + "." + name) with the expected shape. The loader then feeds tensors by
// name; linear and conv weights are packed once, on arrival, through ops().pack.
#ifndef TDXL_NN_COMMON_H
#define TDXL_NN_COMMON_H

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core.h"

namespace tdxl {

// Debug taps (tests only): named NCHW / flat copies of intermediates.
struct Taps {
  struct T {
    std::vector<int64_t> shape;
    std::vector<float> data;
  };
  std::map<std::string, T> m;
};

class Registry {
 public:
  // A raw parameter copied as fp32 into dst (resized).
  void raw(const std::string& name, std::vector<int64_t> shape, std::vector<float>* dst);
  // name.weight [N][cin][kh][kw] (kh=kw=0 means a linear weight [N][cin]) packed into dst,
  // name.bias [N] if bias.
  void packed(const std::string& name, int64_t N, int cin, int kh, int kw, bool bias, Packed* dst);
  // Feed one tensor converted to fp32. Returns false if the name is unknown (caller decides).
  // Throws on a shape mismatch or a duplicate.
  bool set(const std::string& name, const std::vector<int64_t>& shape, const float* data);
  // A GEGLU projection: like packed(name, N2, K, 0, 0, true, dst), packed through ops().pack_geglu
  // (with its bias) when the pool's table has one.
  void geglu(const std::string& name, int64_t N2, int K, Packed* dst);
  // Feed a packed weight straight from checkpoint bytes (dtype TDXL_F32/F16/BF16) when the pool's
  // table packs raw bytes; false = not handled (caller converts to fp32 and calls set).
  // Throws on a shape mismatch or a duplicate.
  bool set_raw(const std::string& name, const std::vector<int64_t>& shape, int dtype,
               const void* data, size_t nbytes);
  bool has(const std::string& name) const { return slots_.count(name) != 0; }
  // Throws naming the first parameter that never arrived.
  void finish() const;
  size_t size() const { return slots_.size(); }
  // "name d0,d1,...\n" for every parameter, sorted by name.
  std::string list() const;

 private:
  struct Slot {
    std::vector<int64_t> shape;
    std::vector<float>* raw = nullptr;
    Packed* packed = nullptr;
    int cin = 0, kh = 1, kw = 1;
    bool filled = false;
    // GEGLU pairing: the weight slot names its bias slot and vice versa; a weight that arrives
    // before its bias waits in pending (bytes, pending_dtype).
    bool geglu = false;
    std::string partner;
    std::vector<unsigned char> pending;
    int pending_dtype = -1;
  };
  void check_new(const std::string& name, Slot& s, const std::vector<int64_t>& shape);
  void pack_slot(Slot& s, const void* data, int dtype);
  void pack_geglu_pending(Slot& w);
  std::map<std::string, Slot> slots_;
  Pool* pool_ = nullptr;

 public:
  void set_pool(Pool* p) { pool_ = p; }
};

struct Linear {
  Packed w;
  int64_t N = 0, K = 0;
  void init(Registry& r, const std::string& name, int64_t in, int64_t out, bool bias);
  // y[M][N] = x[M][K]·Wᵀ + b (+ residual)
  void operator()(const RunCtx& c, const float* x, float* y, int64_t M,
                  const float* residual = nullptr) const;
};

struct Conv {
  Packed w;
  int cin = 0, cout = 0, k = 3, stride = 1, pad = 1;
  void init(Registry& r, const std::string& name, int in, int out, int kernel, int stride_,
            int pad_);
  // x [B][H][W][cin] -> y [B][OH][OW][cout]; returns OH, OW through the pointers.
  void operator()(const RunCtx& c, const float* x, int B, int H, int W, float* y, int* OH,
                  int* OW, const float* residual = nullptr) const;
  void out_size(int H, int W, int* OH, int* OW) const;
};

struct Norm {
  std::vector<float> w, b;
  int C = 0;
  void init(Registry& r, const std::string& name, int channels);
};

// diffusers ResnetBlock2D (time_embedding_norm "default", output_scale_factor 1).
struct Resnet {
  Norm norm1, norm2;
  Conv conv1, conv2;
  Linear time_emb_proj;  // only if temb_channels > 0
  Conv shortcut;         // only if in != out
  bool has_temb = false, has_shortcut = false;
  int cin = 0, cout = 0, groups = 32;
  float eps = 1e-5f;
  void init(Registry& r, const std::string& name, int in, int out, int temb_channels, int groups_,
            float eps_);
  // x [B][H][W][cin] -> returns [B][H][W][cout]; temb_act = silu(temb) [B][temb_channels] or null.
  // own (may be null) is x's buffer when the caller gives it up: the block may then normalise in it
  // or write its result over it, which keeps one tensor fewer alive (the VAE's peak at 1024²).
  Buf operator()(const RunCtx& c, const float* x, int B, int H, int W, const float* temb_act,
                 Buf* own = nullptr) const;
};

// diffusers Attention (AttnProcessor): to_q/to_k/to_v (+bias), to_out.0 (bias).
struct Attention {
  Linear q, k, v, out;
  int heads = 1, dim_head = 1, inner = 0;
  void init(Registry& r, const std::string& name, int query_dim, int context_dim, int heads_,
            int dim_head_, bool qkv_bias);
  // x [B][T][query_dim], ctx [B][Tc][context_dim] (null = self) -> y [B][T][query_dim] (+residual)
  void operator()(const RunCtx& c, const float* x, int B, int64_t T, const float* ctx,
                  int64_t Tc, float* y, const float* residual) const;
  // Cross-attention K/V of the text context c.ctx_gen (computed at the first step of an image and
  // reused at every later step; the pipeline serialises calls).
  mutable std::vector<float> kcache_, vcache_;
  mutable uint64_t kgen_ = 0;
};

std::vector<float> silu_copy(const RunCtx& c, const float* x, int64_t n);

}  // namespace tdxl

#endif  // TDXL_NN_COMMON_H
