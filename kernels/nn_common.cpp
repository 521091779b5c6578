// nn_common.cpp — weight registry and the shared modules (Linear, Conv, Norm, Resnet, Attention).
#include "nn_common.h"

#include <cmath>
#include <cstring>
#include <sstream>

namespace tdxl {

namespace {
std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); i++) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}
}  // namespace

void RunCtx::tap_nhwc(const std::string& name, const float* x, int B, int H, int W, int C) const {
  if (!taps) return;
  Taps::T& t = taps->m[name];
  t.shape = {B, C, H, W};
  t.data.resize(static_cast<size_t>(B) * C * H * W);
  nhwc_to_nchw(x, t.data.data(), B, C, H, W);
}

void RunCtx::tap_flat(const std::string& name, const float* x,
                      const std::vector<int64_t>& shape) const {
  if (!taps) return;
  Taps::T& t = taps->m[name];
  t.shape = shape;
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  t.data.assign(x, x + n);
}

void Registry::raw(const std::string& name, std::vector<int64_t> shape, std::vector<float>* dst) {
  Slot s;
  s.shape = std::move(shape);
  s.raw = dst;
  if (!slots_.emplace(name, s).second) throw Error("internal: parameter registered twice: " + name);
}

void Registry::packed(const std::string& name, int64_t N, int cin, int kh, int kw, bool bias,
                      Packed* dst) {
  Slot s;
  if (kh == 0) {
    s.shape = {N, cin};
    kh = kw = 1;
  } else {
    s.shape = {N, cin, kh, kw};
  }
  s.packed = dst;
  s.cin = cin;
  s.kh = kh;
  s.kw = kw;
  if (!slots_.emplace(name + ".weight", s).second)
    throw Error("internal: parameter registered twice: " + name);
  if (bias) raw(name + ".bias", {N}, &dst->bias);
}

void Registry::check_new(const std::string& name, Slot& s, const std::vector<int64_t>& shape) {
  if (s.filled) throw Error("tensor " + name + " given twice");
  if (shape != s.shape)
    throw Error("tensor " + name + " has shape " + shape_str(shape) + ", expected " +
                shape_str(s.shape));
}

// Packs a weight slot from data of dtype (TDXL_F32 = 0 for converted fp32).
void Registry::pack_slot(Slot& s, const void* data, int dtype) {
  const Ops& o = pool_->ops();
  if (s.geglu && o.pack_geglu) {
    Slot& b = slots_.at(s.partner);
    if (!b.filled) {  // wait for the bias
      size_t esz = dtype == 0 ? 4 : 2;
      const unsigned char* p = static_cast<const unsigned char*>(data);
      s.pending.assign(p, p + esz * s.shape[0] * s.shape[1]);
      s.pending_dtype = dtype;
      return;
    }
    o.pack_geglu(pool_, s.packed, data, dtype, s.shape[0], s.shape[1], b.raw->data());
    return;
  }
  if (dtype == 0)
    o.pack(pool_, s.packed, static_cast<const float*>(data), s.shape[0], s.cin, s.kh, s.kw,
           nullptr);
  else
    o.pack_raw(pool_, s.packed, data, dtype, s.shape[0], s.cin, s.kh, s.kw);
}

void Registry::pack_geglu_pending(Slot& w) {
  if (w.pending_dtype < 0) return;
  std::vector<unsigned char> bytes;
  bytes.swap(w.pending);
  pack_slot(w, bytes.data(), w.pending_dtype);
  w.pending_dtype = -1;
}

bool Registry::set(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return false;
  Slot& s = it->second;
  check_new(name, s, shape);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (s.raw) {
    s.raw->assign(data, data + n);
    s.filled = true;
    if (s.geglu) pack_geglu_pending(slots_.at(s.partner));
    return true;
  }
  pack_slot(s, data, 0);
  s.filled = true;
  return true;
}

bool Registry::set_raw(const std::string& name, const std::vector<int64_t>& shape, int dtype,
                       const void* data, size_t) {
  auto it = slots_.find(name);
  if (it == slots_.end() || it->second.raw) return false;
  if (!pool_->ops().pack_raw || (dtype != 0 && dtype != 1 && dtype != 2)) return false;
  Slot& s = it->second;
  check_new(name, s, shape);
  pack_slot(s, data, dtype);
  s.filled = true;
  return true;
}

void Registry::geglu(const std::string& name, int64_t N2, int K, Packed* dst) {
  packed(name, N2, K, 0, 0, true, dst);
  Slot& w = slots_.at(name + ".weight");
  Slot& b = slots_.at(name + ".bias");
  w.geglu = b.geglu = true;
  w.partner = name + ".bias";
  b.partner = name + ".weight";
}

void Registry::finish() const {
  for (const auto& kv : slots_)
    if (!kv.second.filled) throw Error("tensor " + kv.first + " missing");
}

std::string Registry::list() const {
  std::string out;
  for (const auto& kv : slots_) {
    out += kv.first;
    out += ' ';
    for (size_t i = 0; i < kv.second.shape.size(); i++) {
      if (i) out += ',';
      out += std::to_string(kv.second.shape[i]);
    }
    out += '\n';
  }
  return out;
}

void Linear::init(Registry& r, const std::string& name, int64_t in, int64_t out, bool bias) {
  N = out;
  K = in;
  r.packed(name, out, static_cast<int>(in), 0, 0, bias, &w);
}

void Linear::operator()(const RunCtx& c, const float* x, float* y, int64_t M,
                        const float* residual) const {
  c.pool->ops().linear(*c.pool, w, x, K, y, N, M, residual, N);
}

void Conv::init(Registry& r, const std::string& name, int in, int out, int kernel, int stride_,
                int pad_) {
  cin = in;
  cout = out;
  k = kernel;
  stride = stride_;
  pad = pad_;
  r.packed(name, out, in, kernel, kernel, true, &w);
}

void Conv::out_size(int H, int W, int* OH, int* OW) const {
  *OH = (H + 2 * pad - k) / stride + 1;
  *OW = (W + 2 * pad - k) / stride + 1;
}

void Conv::operator()(const RunCtx& c, const float* x, int B, int H, int W, float* y, int* OH,
                      int* OW, const float* residual) const {
  int oh, ow;
  out_size(H, W, &oh, &ow);
  ConvShape s{B, H, W, oh, ow, stride, pad};
  if (k == 1 && stride == 1 && pad == 0)
    c.pool->ops().linear(*c.pool, w, x, cin, y, cout, static_cast<int64_t>(B) * H * W, residual, cout);
  else
    c.pool->ops().conv2d(*c.pool, w, x, s, y, residual);
  if (OH) *OH = oh;
  if (OW) *OW = ow;
}

void Norm::init(Registry& r, const std::string& name, int channels) {
  C = channels;
  r.raw(name + ".weight", {channels}, &w);
  r.raw(name + ".bias", {channels}, &b);
}

void Resnet::init(Registry& r, const std::string& name, int in, int out, int temb_channels,
                  int groups_, float eps_) {
  cin = in;
  cout = out;
  groups = groups_;
  eps = eps_;
  norm1.init(r, name + ".norm1", in);
  conv1.init(r, name + ".conv1", in, out, 3, 1, 1);
  if (temb_channels > 0) {
    has_temb = true;
    time_emb_proj.init(r, name + ".time_emb_proj", temb_channels, out, true);
  }
  norm2.init(r, name + ".norm2", out);
  conv2.init(r, name + ".conv2", out, out, 3, 1, 1);
  if (in != out) {
    has_shortcut = true;
    shortcut.init(r, name + ".conv_shortcut", in, out, 1, 1, 0);
  }
}

Buf Resnet::operator()(const RunCtx& c, const float* x, int B, int H, int W,
                       const float* temb_act, Buf* own) const {
  c.check();
  const int64_t P = static_cast<int64_t>(B) * H * W, HW = static_cast<int64_t>(H) * W;
  const Ops& o = c.pool->ops();
  if (own && own->data() != x) own = nullptr;
  const bool alias = o.residual_may_alias_y;
  // The result buffer. With a shortcut it starts as shortcut(x), and conv2 accumulates onto it;
  // without one, conv2 may accumulate onto x itself when x is ours.
  Buf out;
  if (has_shortcut && alias) {
    out = c.buf(P * cout);
    shortcut(c, x, B, H, W, out.data(), nullptr, nullptr);
  }
  // h = silu(norm1(x)): in place when x is ours and no longer needed as the residual.
  Buf h;
  if (own && has_shortcut && alias) {
    h = std::move(*own);
  } else {
    h = c.buf(P * cin);
  }
  o.group_norm(*c.pool, x, h.data(), B, HW, cin, groups, eps, norm1.w.data(), norm1.b.data(), true);
  Buf h1 = c.buf(P * cout);
  conv1(c, h.data(), B, H, W, h1.data(), nullptr, nullptr);
  h.reset();  // release now: the peak of a 1024² VAE block is a few of these
  if (has_temb && temb_act) {
    std::vector<float> t(static_cast<size_t>(B) * cout);
    time_emb_proj(c, temb_act, t.data(), B);
    float* h1p = h1.data();
    c.pool->run(B, [&](int64_t b) {
      const float* tb = t.data() + b * cout;
      for (int64_t p = 0; p < HW; p++) {
        float* row = h1p + (b * HW + p) * cout;
        for (int ch = 0; ch < cout; ch++) row[ch] += tb[ch];
      }
    });
  }
  o.group_norm(*c.pool, h1.data(), h1.data(), B, HW, cout, groups, eps, norm2.w.data(),
               norm2.b.data(), true);
  if (has_shortcut && alias) {
    conv2(c, h1.data(), B, H, W, out.data(), nullptr, nullptr, out.data());
    return out;
  }
  if (!has_shortcut && alias && own) {
    out = std::move(*own);
    conv2(c, h1.data(), B, H, W, out.data(), nullptr, nullptr, out.data());
    return out;
  }
  Buf sc;
  const float* res = x;
  if (has_shortcut) {
    sc = c.buf(P * cout);
    shortcut(c, x, B, H, W, sc.data(), nullptr, nullptr);
    res = sc.data();
  }
  out = c.buf(P * cout);
  conv2(c, h1.data(), B, H, W, out.data(), nullptr, nullptr, res);
  return out;
}

void Attention::init(Registry& r, const std::string& name, int query_dim, int context_dim,
                     int heads_, int dim_head_, bool qkv_bias) {
  heads = heads_;
  dim_head = dim_head_;
  inner = heads * dim_head;
  q.init(r, name + ".to_q", query_dim, inner, qkv_bias);
  k.init(r, name + ".to_k", context_dim, inner, qkv_bias);
  v.init(r, name + ".to_v", context_dim, inner, qkv_bias);
  out.init(r, name + ".to_out.0", inner, query_dim, true);
}

void Attention::operator()(const RunCtx& c, const float* x, int B, int64_t T, const float* ctx,
                           int64_t Tc, float* y, const float* residual) const {
  c.check();
  if (!ctx) {
    ctx = x;
    Tc = T;
  }
  Buf qb = c.buf(static_cast<size_t>(B) * T * inner), ob = c.buf(static_cast<size_t>(B) * T * inner);
  q(c, x, qb.data(), B * T);
  const size_t kvn = static_cast<size_t>(B) * Tc * inner;
  const bool cache = x != ctx && c.ctx_gen != 0;
  Buf kb, vb;
  const float *kp, *vp;
  if (cache) {  // cross-attention: K/V of the text context, once per image
    if (kgen_ != c.ctx_gen || kcache_.size() != kvn) {
      kcache_.resize(kvn);
      vcache_.resize(kvn);
      k(c, ctx, kcache_.data(), B * Tc);
      v(c, ctx, vcache_.data(), B * Tc);
      kgen_ = c.ctx_gen;
    }
    kp = kcache_.data();
    vp = vcache_.data();
  } else {
    kb = c.buf(kvn);
    vb = c.buf(kvn);
    k(c, ctx, kb.data(), B * Tc);
    v(c, ctx, vb.data(), B * Tc);
    kp = kb.data();
    vp = vb.data();
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim_head)));
  c.pool->ops().attention(*c.pool, qb.data(), inner, kp, inner, vp, inner, ob.data(), inner,
                  B, T, Tc, heads, dim_head, scale, false);
  out(c, ob.data(), y, B * T, residual);
}

std::vector<float> silu_copy(const RunCtx& c, const float* x, int64_t n) {
  std::vector<float> y(x, x + n);
  silu_inplace(*c.pool, y.data(), n);
  return y;
}

}  // namespace tdxl
