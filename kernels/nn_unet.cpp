// nn_unet.cpp — diffusers UNet2DConditionModel as SDXL configures it (text_time additional
// embedding, linear-projection Transformer2D, GEGLU feed-forward), all sizes from the config.
// Activations are NHWC; sample and output are converted at the boundary.
#include <cmath>
#include <cstring>

#include "nn_models.h"

namespace tdxl {

void Transformer2D::init(Registry& r, const std::string& name, int channels, int heads, int depth,
                         int cross_dim, int groups_) {
  C = channels;
  groups = groups_;
  if (heads <= 0 || channels % heads != 0)
    throw Error(name + ": channels not divisible by the number of heads");
  const int dh = channels / heads;
  norm.init(r, name + ".norm", channels);
  proj_in.init(r, name + ".proj_in", channels, channels, true);
  for (int d = 0; d < depth; d++) {
    blocks.emplace_back();
    Block& b = blocks.back();
    const std::string p = name + ".transformer_blocks." + std::to_string(d);
    b.n1.init(r, p + ".norm1", channels);
    b.a1.init(r, p + ".attn1", channels, channels, heads, dh, false);
    b.n2.init(r, p + ".norm2", channels);
    b.a2.init(r, p + ".attn2", channels, cross_dim, heads, dh, false);
    b.n3.init(r, p + ".norm3", channels);
    b.ff1.N = static_cast<int64_t>(channels) * 8;
    b.ff1.K = channels;
    r.geglu(p + ".ff.net.0.proj", b.ff1.N, channels, &b.ff1.w);
    b.ff2.init(r, p + ".ff.net.2", static_cast<int64_t>(channels) * 4, channels, true);
  }
  proj_out.init(r, name + ".proj_out", channels, channels, true);
}

Buf Transformer2D::operator()(const RunCtx& c, const float* x, int B, int H, int W, const float* ehs,
                              int T) const {
  c.check();
  const int64_t HW = static_cast<int64_t>(H) * W, M = B * HW;
  Buf n = c.buf(M * C), h = c.buf(M * C), h2 = c.buf(M * C);
  // transformer GroupNorm eps is 1e-6 in diffusers' Transformer2DModel
  c.pool->ops().group_norm(*c.pool, x, n.data(), B, HW, C, groups, 1e-6f, norm.w.data(), norm.b.data(),
                   false);
  proj_in(c, n.data(), h.data(), M);
  Buf ff, g = c.buf(M * C * 4);
  if (!blocks.empty() && !blocks.front().ff1.w.geglu) ff = c.buf(M * C * 8);
  for (const Block& b : blocks) {
    c.check();
    c.pool->ops().layer_norm(*c.pool, h.data(), n.data(), M, C, 1e-5f, b.n1.w.data(), b.n1.b.data());
    b.a1(c, n.data(), B, HW, nullptr, 0, h2.data(), h.data());  // h2 = attn1 + h
    c.pool->ops().layer_norm(*c.pool, h2.data(), n.data(), M, C, 1e-5f, b.n2.w.data(), b.n2.b.data());
    b.a2(c, n.data(), B, HW, ehs, T, h.data(), h2.data());  // h = attn2 + h2
    c.pool->ops().layer_norm(*c.pool, h.data(), n.data(), M, C, 1e-5f, b.n3.w.data(), b.n3.b.data());
    if (b.ff1.w.geglu) {  // fused: g = hidden * gelu(gate) in the GEMM epilogue
      c.pool->ops().linear(*c.pool, b.ff1.w, n.data(), C, g.data(), static_cast<int64_t>(C) * 4, M,
                           nullptr, 0);
    } else {
      b.ff1(c, n.data(), ff.data(), M);
      geglu(*c.pool, ff.data(), g.data(), M, static_cast<int64_t>(C) * 4);
    }
    b.ff2(c, g.data(), h2.data(), M, h.data());  // h2 = ff + h
    std::swap(h, h2);
  }
  n.reset();
  h2.reset();
  g.reset();
  ff.reset();
  Buf out = c.buf(M * C);
  proj_out(c, h.data(), out.data(), M, x);  // + residual
  return out;
}

void UNet::init(Registry& r, const tdxl_unet_config& cfg) {
  cfg_ = cfg;
  const int n = cfg.n_blocks;
  if (n <= 0 || n > TDXL_MAX_BLOCKS) throw Error("unet: bad number of blocks");
  const int c0 = cfg.block_out[0];
  temb_dim_ = c0 * 4;
  const int groups = cfg.norm_groups;
  const float eps = cfg.norm_eps;
  t1_.init(r, "time_embedding.linear_1", c0, temb_dim_, true);
  t2_.init(r, "time_embedding.linear_2", temb_dim_, temb_dim_, true);
  a1_.init(r, "add_embedding.linear_1", cfg.projection_class_embeddings_input_dim, temb_dim_, true);
  a2_.init(r, "add_embedding.linear_2", temb_dim_, temb_dim_, true);
  conv_in_.init(r, "conv_in", cfg.in_channels, c0, cfg.conv_in_kernel, 1, (cfg.conv_in_kernel - 1) / 2);
  int out_ch = c0;
  for (int i = 0; i < n; i++) {
    down_.emplace_back();
    Level& L = down_.back();
    const int in_ch = out_ch;
    out_ch = cfg.block_out[i];
    const std::string p = "down_blocks." + std::to_string(i);
    for (int j = 0; j < cfg.layers_per_block; j++) {
      L.resnets.emplace_back();
      L.resnets.back().init(r, p + ".resnets." + std::to_string(j), j == 0 ? in_ch : out_ch, out_ch,
                            temb_dim_, groups, eps);
      if (cfg.down_cross[i]) {
        L.attns.emplace_back();
        L.attns.back().init(r, p + ".attentions." + std::to_string(j), out_ch, cfg.heads[i],
                            cfg.transformer_layers[i], cfg.cross_attention_dim, groups);
      }
    }
    if (i < n - 1) {
      L.has_sampler = true;
      L.sampler.init(r, p + ".downsamplers.0.conv", out_ch, out_ch, 3, 2, 1);
    }
  }
  const int cl = cfg.block_out[n - 1];
  mid_r0_.init(r, "mid_block.resnets.0", cl, cl, temb_dim_, groups, eps);
  if (cfg.mid_cross)
    mid_attn_.init(r, "mid_block.attentions.0", cl, cfg.heads[n - 1], cfg.transformer_layers[n - 1],
                   cfg.cross_attention_dim, groups);
  mid_r1_.init(r, "mid_block.resnets.1", cl, cl, temb_dim_, groups, eps);
  int prev = cl;
  for (int i = 0; i < n; i++) {
    up_.emplace_back();
    Level& L = up_.back();
    const int ri = n - 1 - i;  // reversed index
    const int oc = cfg.block_out[ri];
    const int ic = cfg.block_out[ri > 0 ? ri - 1 : 0];
    const std::string p = "up_blocks." + std::to_string(i);
    const int nl = cfg.layers_per_block + 1;
    for (int j = 0; j < nl; j++) {
      const int skip = (j == nl - 1) ? ic : oc;
      const int rin = (j == 0) ? prev : oc;
      L.resnets.emplace_back();
      L.resnets.back().init(r, p + ".resnets." + std::to_string(j), rin + skip, oc, temb_dim_,
                            groups, eps);
      if (cfg.up_cross[i]) {
        L.attns.emplace_back();
        L.attns.back().init(r, p + ".attentions." + std::to_string(j), oc, cfg.heads[ri],
                            cfg.transformer_layers[ri], cfg.cross_attention_dim, groups);
      }
    }
    if (i < n - 1) {
      L.has_sampler = true;
      L.sampler.init(r, p + ".upsamplers.0.conv", oc, oc, 3, 1, 1);
    }
    prev = oc;
  }
  norm_out_.init(r, "conv_norm_out", c0);
  conv_out_.init(r, "conv_out", c0, cfg.out_channels, cfg.conv_out_kernel, 1,
                 (cfg.conv_out_kernel - 1) / 2);
}

namespace {
struct Act {  // an NHWC activation with its geometry
  Buf d;
  int H = 0, W = 0, C = 0;
};
}  // namespace

void UNet::forward(const RunCtx& c_, const float* sample, int B, int h, int w, float timestep,
                   const float* ehs, int T, const float* text_embeds, const float* time_ids,
                   float* out_) const {
  // The text context: cross-attention K/V are reused while it stays the same (every step of an
  // image); a different context (next image, other prompt) starts a new generation.
  const size_t ehs_n = static_cast<size_t>(B) * T * cfg_.cross_attention_dim;
  if (ehs_copy_.size() != ehs_n || std::memcmp(ehs_copy_.data(), ehs, sizeof(float) * ehs_n) != 0) {
    ehs_copy_.assign(ehs, ehs + ehs_n);
    ctx_gen_++;
  }
  RunCtx c = c_;
  c.ctx_gen = ctx_gen_;
  float* out = out_;
  const int c0 = cfg_.block_out[0];
  // time embedding
  std::vector<float> tvec(B, timestep), tproj(static_cast<size_t>(B) * c0);
  timestep_embedding(tvec.data(), B, c0, cfg_.flip_sin_to_cos != 0, cfg_.freq_shift, tproj.data());
  c.tap_flat("time_proj", tproj.data(), {B, c0});
  std::vector<float> e1(static_cast<size_t>(B) * temb_dim_), emb(static_cast<size_t>(B) * temb_dim_);
  t1_(c, tproj.data(), e1.data(), B);
  silu_inplace(*c.pool, e1.data(), e1.size());
  t2_(c, e1.data(), emb.data(), B);
  c.tap_flat("time_embedding", emb.data(), {B, temb_dim_});
  // text_time additional embedding: [text_embeds, sinusoids(time_ids)]
  const int ad = cfg_.addition_time_embed_dim;
  const int tin = cfg_.projection_class_embeddings_input_dim;
  const int pdim = tin - 6 * ad;
  if (pdim <= 0) throw Error("unet: projection_class_embeddings_input_dim too small");
  std::vector<float> tp(static_cast<size_t>(B) * 6 * ad);
  timestep_embedding(time_ids, static_cast<int64_t>(B) * 6, ad, cfg_.flip_sin_to_cos != 0,
                     cfg_.freq_shift, tp.data());
  c.tap_flat("add_time_proj", tp.data(), {static_cast<int64_t>(B) * 6, ad});
  std::vector<float> add_in(static_cast<size_t>(B) * tin);
  for (int b = 0; b < B; b++) {
    std::memcpy(add_in.data() + static_cast<int64_t>(b) * tin, text_embeds + static_cast<int64_t>(b) * pdim,
                sizeof(float) * pdim);
    std::memcpy(add_in.data() + static_cast<int64_t>(b) * tin + pdim, tp.data() + static_cast<int64_t>(b) * 6 * ad,
                sizeof(float) * 6 * ad);
  }
  std::vector<float> a1(static_cast<size_t>(B) * temb_dim_), aug(static_cast<size_t>(B) * temb_dim_);
  a1_(c, add_in.data(), a1.data(), B);
  silu_inplace(*c.pool, a1.data(), a1.size());
  a2_(c, a1.data(), aug.data(), B);
  c.tap_flat("add_embedding", aug.data(), {B, temb_dim_});
  for (size_t i = 0; i < emb.size(); i++) emb[i] += aug[i];
  std::vector<float> temb = silu_copy(c, emb.data(), emb.size());

  // conv_in. The down path's outputs stay on the skip stack (moved, never copied); the tensor the
  // next layer reads is the stack's top (or cur on the up path).
  std::vector<Act> stack;
  stack.reserve(64);
  {
    Buf x = c.buf(static_cast<size_t>(B) * h * w * cfg_.in_channels);
    nchw_to_nhwc(sample, x.data(), B, cfg_.in_channels, h, w);
    Act a;
    a.d = c.buf(static_cast<size_t>(B) * h * w * c0);
    conv_in_(c, x.data(), B, h, w, a.d.data(), &a.H, &a.W);
    a.C = c0;
    c.tap_nhwc("conv_in", a.d.data(), B, a.H, a.W, a.C);
    stack.push_back(std::move(a));
  }
  int bi = 0;
  for (const Level& L : down_) {
    for (size_t j = 0; j < L.resnets.size(); j++) {
      const Resnet& R = L.resnets[j];
      const Act& in = stack.back();
      Act a;
      a.H = in.H;
      a.W = in.W;
      a.C = R.cout;
      a.d = R(c, in.d.data(), B, in.H, in.W, temb.data());
      if (!L.attns.empty()) a.d = L.attns[j](c, a.d.data(), B, a.H, a.W, ehs, T);
      stack.push_back(std::move(a));
    }
    if (L.has_sampler) {
      c.check();
      const Act& in = stack.back();
      Act a;
      int oh, ow;
      L.sampler.out_size(in.H, in.W, &oh, &ow);
      a.d = c.buf(static_cast<size_t>(B) * oh * ow * in.C);
      L.sampler(c, in.d.data(), B, in.H, in.W, a.d.data(), &a.H, &a.W);
      a.C = in.C;
      stack.push_back(std::move(a));
    }
    const Act& top = stack.back();
    c.tap_nhwc("down_blocks." + std::to_string(bi++), top.d.data(), B, top.H, top.W, top.C);
  }
  Act cur;
  {
    const Act& in = stack.back();
    cur.H = in.H;
    cur.W = in.W;
    cur.C = in.C;
    cur.d = mid_r0_(c, in.d.data(), B, cur.H, cur.W, temb.data());
  }
  if (cfg_.mid_cross) cur.d = mid_attn_(c, cur.d.data(), B, cur.H, cur.W, ehs, T);
  cur.d = mid_r1_(c, cur.d.data(), B, cur.H, cur.W, temb.data(), &cur.d);
  c.tap_nhwc("mid_block", cur.d.data(), B, cur.H, cur.W, cur.C);
  bi = 0;
  for (const Level& L : up_) {
    for (size_t j = 0; j < L.resnets.size(); j++) {
      const Resnet& R = L.resnets[j];
      Act skip = std::move(stack.back());
      stack.pop_back();
      if (skip.H != cur.H || skip.W != cur.W) throw Error("unet: skip connection size mismatch");
      Buf cat = c.buf(static_cast<size_t>(B) * cur.H * cur.W * (cur.C + skip.C));
      concat_channels(*c.pool, cur.d.data(), cur.C, skip.d.data(), skip.C, cat.data(),
                      static_cast<int64_t>(B) * cur.H * cur.W);
      skip.d.reset();
      cur.d.reset();
      cur.d = R(c, cat.data(), B, cur.H, cur.W, temb.data(), &cat);
      cur.C = R.cout;
      if (!L.attns.empty()) cur.d = L.attns[j](c, cur.d.data(), B, cur.H, cur.W, ehs, T);
    }
    if (L.has_sampler) {
      c.check();
      // upsample (nearest) to the size of the next skip tensor (2x unless sizes are odd)
      const int oh = stack.empty() ? cur.H * 2 : stack.back().H;
      const int ow = stack.empty() ? cur.W * 2 : stack.back().W;
      Buf upd = c.buf(static_cast<size_t>(B) * oh * ow * cur.C);
      upsample_nearest(*c.pool, cur.d.data(), upd.data(), B, cur.H, cur.W, cur.C, oh, ow);
      cur.d = c.buf(upd.size());
      L.sampler(c, upd.data(), B, oh, ow, cur.d.data(), &cur.H, &cur.W);
    }
    c.tap_nhwc("up_blocks." + std::to_string(bi++), cur.d.data(), B, cur.H, cur.W, cur.C);
  }
  c.check();
  Buf n = c.buf(cur.d.size());
  c.pool->ops().group_norm(*c.pool, cur.d.data(), n.data(), B, static_cast<int64_t>(cur.H) * cur.W, cur.C,
                   cfg_.norm_groups, cfg_.norm_eps, norm_out_.w.data(), norm_out_.b.data(), false);
  c.tap_nhwc("conv_norm_out", n.data(), B, cur.H, cur.W, cur.C);
  silu_inplace(*c.pool, n.data(), n.size());
  cur.d.reset();
  Buf o = c.buf(static_cast<size_t>(B) * cur.H * cur.W * cfg_.out_channels);
  int oh, ow;
  conv_out_(c, n.data(), B, cur.H, cur.W, o.data(), &oh, &ow);
  c.tap_nhwc("conv_out", o.data(), B, oh, ow, cfg_.out_channels);
  nhwc_to_nchw(o.data(), out, B, cfg_.out_channels, oh, ow);
}

}  // namespace tdxl
