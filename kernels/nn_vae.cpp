// nn_vae.cpp — AutoencoderKL decoder (post_quant_conv + diffusers Decoder), GroupNorm eps 1e-6.
//   z -> post_quant_conv (1x1) -> conv_in -> mid (resnet, single-head attention with GroupNorm and
//   residual, resnet) -> up blocks (layers+1 resnets, nearest 2x + conv except the last) ->
//   GroupNorm+SiLU -> conv_out
#include <cmath>

#include "nn_models.h"

namespace tdxl {

namespace {
constexpr float kVaeEps = 1e-6f;
}

void VaeDecoder::init(Registry& r, const tdxl_vae_config& cfg) {
  cfg_ = cfg;
  const int n = cfg.n_blocks;
  if (n <= 0 || n > TDXL_MAX_BLOCKS) throw Error("vae: bad number of blocks");
  const int lc = cfg.latent_channels, g = cfg.norm_groups;
  const int top = cfg.block_out[n - 1];
  post_quant_.init(r, "post_quant_conv", lc, lc, 1, 1, 0);
  conv_in_.init(r, "decoder.conv_in", lc, top, 3, 1, 1);
  mid_r0_.init(r, "decoder.mid_block.resnets.0", top, top, 0, g, kVaeEps);
  mid_gn_.init(r, "decoder.mid_block.attentions.0.group_norm", top);
  mid_attn_.init(r, "decoder.mid_block.attentions.0", top, top, 1, top, true);
  mid_r1_.init(r, "decoder.mid_block.resnets.1", top, top, 0, g, kVaeEps);
  int prev = top;
  for (int i = 0; i < n; i++) {
    ups_.emplace_back();
    Up& U = ups_.back();
    const int oc = cfg.block_out[n - 1 - i];
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    for (int j = 0; j < cfg.layers_per_block + 1; j++) {
      U.resnets.emplace_back();
      U.resnets.back().init(r, p + ".resnets." + std::to_string(j), j == 0 ? prev : oc, oc, 0, g,
                            kVaeEps);
    }
    if (i < n - 1) {
      U.has_up = true;
      U.up.init(r, p + ".upsamplers.0.conv", oc, oc, 3, 1, 1);
    }
    prev = oc;
  }
  norm_out_.init(r, "decoder.conv_norm_out", cfg.block_out[0]);
  conv_out_.init(r, "decoder.conv_out", cfg.block_out[0], cfg.out_channels, 3, 1, 1);
}

void VaeDecoder::forward(const RunCtx& c, const float* zin, int B, int h, int w, float* out) const {
  const int lc = cfg_.latent_channels, n = cfg_.n_blocks;
  const int top = cfg_.block_out[n - 1];
  Buf x;
  {
    Buf z = c.buf(static_cast<size_t>(B) * h * w * lc), z2 = c.buf(z.size());
    nchw_to_nhwc(zin, z.data(), B, lc, h, w);
    post_quant_(c, z.data(), B, h, w, z2.data(), nullptr, nullptr);
    c.tap_nhwc("post_quant_conv", z2.data(), B, h, w, lc);
    x = c.buf(static_cast<size_t>(B) * h * w * top);
    conv_in_(c, z2.data(), B, h, w, x.data(), nullptr, nullptr);
  }
  int H = h, W = w, C = top;
  c.tap_nhwc("decoder.conv_in", x.data(), B, H, W, C);
  x = mid_r0_(c, x.data(), B, H, W, nullptr, &x);
  {
    const int64_t HW = static_cast<int64_t>(H) * W;
    Buf nrm = c.buf(x.size());
    c.pool->ops().group_norm(*c.pool, x.data(), nrm.data(), B, HW, C, cfg_.norm_groups, kVaeEps,
                     mid_gn_.w.data(), mid_gn_.b.data(), false);
    Buf y = c.buf(x.size());
    mid_attn_(c, nrm.data(), B, HW, nullptr, 0, y.data(), x.data());  // + residual
    x = std::move(y);
  }
  x = mid_r1_(c, x.data(), B, H, W, nullptr, &x);
  c.tap_nhwc("decoder.mid_block", x.data(), B, H, W, C);
  int ui = 0;
  for (const Up& U : ups_) {
    for (const Resnet& R : U.resnets) {
      x = R(c, x.data(), B, H, W, nullptr, &x);
      C = R.cout;
    }
    if (U.has_up) {
      c.check();
      Buf u = c.buf(static_cast<size_t>(B) * H * 2 * W * 2 * C);
      upsample_nearest(*c.pool, x.data(), u.data(), B, H, W, C, H * 2, W * 2);
      H *= 2;
      W *= 2;
      x.reset();
      x = c.buf(u.size());
      U.up(c, u.data(), B, H, W, x.data(), nullptr, nullptr);
      u.reset();
    }
    c.tap_nhwc("decoder.up_blocks." + std::to_string(ui++), x.data(), B, H, W, C);
  }
  c.check();
  Buf nrm = c.buf(x.size());
  c.pool->ops().group_norm(*c.pool, x.data(), nrm.data(), B, static_cast<int64_t>(H) * W, C,
                   cfg_.norm_groups, kVaeEps, norm_out_.w.data(), norm_out_.b.data(), false);
  x.reset();
  c.tap_nhwc("decoder.conv_norm_out", nrm.data(), B, H, W, C);
  silu_inplace(*c.pool, nrm.data(), nrm.size());
  Buf o = c.buf(static_cast<size_t>(B) * H * W * cfg_.out_channels);
  conv_out_(c, nrm.data(), B, H, W, o.data(), nullptr, nullptr);
  c.tap_nhwc("decoder.conv_out", o.data(), B, H, W, cfg_.out_channels);
  nhwc_to_nchw(o.data(), out, B, cfg_.out_channels, H, W);
}

}  // namespace tdxl
