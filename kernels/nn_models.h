// nn_models.h — the three networks of SDXL: CLIP text encoders, UNet2DConditionModel, VAE decoder.
// Every architecture number comes from the config structs of tdxl_capi.h (i.e. from config.json).
#ifndef TDXL_NN_MODELS_H
#define TDXL_NN_MODELS_H

#include "nn_common.h"
#include "tdxl_capi.h"

namespace tdxl {

// transformers CLIPTextModel / CLIPTextModelWithProjection (pre-LN, causal self-attention).
class ClipText {
 public:
  void init(Registry& r, const tdxl_clip_config& cfg);
  // ids [B][T]; outputs may be null (see tdxl_clip_forward).
  void forward(const RunCtx& c, const int64_t* ids, int B, int T, float* hidden_states,
               float* last, float* pooled, float* text_embeds) const;
  int64_t hidden() const { return cfg_.hidden_size; }
  int64_t layers() const { return cfg_.num_layers; }
  int64_t projection_dim() const { return cfg_.projection_dim; }

 private:
  struct Layer {
    Norm ln1, ln2;
    Linear q, k, v, o, fc1, fc2;
  };
  tdxl_clip_config cfg_{};
  std::vector<float> tok_emb_, pos_emb_;
  std::deque<Layer> layers_;
  Norm final_ln_;
  Linear proj_;
};

// Transformer2DModel with linear projection and BasicTransformerBlocks.
struct Transformer2D {
  struct Block {
    Norm n1, n2, n3;
    Attention a1, a2;
    Linear ff1, ff2;  // GEGLU proj (C -> 2*4C) and output (4C -> C)
  };
  Norm norm;
  Linear proj_in, proj_out;
  std::deque<Block> blocks;
  int C = 0, groups = 32;
  void init(Registry& r, const std::string& name, int channels, int heads, int depth,
            int cross_dim, int groups_);
  Buf operator()(const RunCtx& c, const float* x, int B, int H, int W, const float* ehs,
                 int T) const;
};

class UNet {
 public:
  void init(Registry& r, const tdxl_unet_config& cfg);
  // sample NCHW -> out NCHW
  void forward(const RunCtx& c, const float* sample, int B, int h, int w, float timestep,
               const float* ehs, int T, const float* text_embeds, const float* time_ids,
               float* out) const;
  const tdxl_unet_config& config() const { return cfg_; }
  // Forget the text context of the cached cross-attention K/V (after a planning run, whose K/V
  // hold nothing): the next call computes them again.
  void forget_context() const { ehs_copy_.clear(); }

 private:
  struct Level {  // one down or up block
    std::deque<Resnet> resnets;
    std::deque<Transformer2D> attns;  // empty for plain blocks
    bool has_sampler = false;
    Conv sampler;  // down: stride-2 conv; up: conv after nearest upsample
  };
  tdxl_unet_config cfg_{};
  int temb_dim_ = 0;
  Linear t1_, t2_, a1_, a2_;
  Conv conv_in_, conv_out_;
  Norm norm_out_;
  std::deque<Level> down_, up_;
  Resnet mid_r0_, mid_r1_;
  Transformer2D mid_attn_;
  mutable std::vector<float> ehs_copy_;  // text context of the cached cross-attention K/V
  mutable uint64_t ctx_gen_ = 0;
};

class VaeDecoder {
 public:
  void init(Registry& r, const tdxl_vae_config& cfg);
  // z NCHW [B][latent][h][w] (already divided by scaling_factor) -> decoded NCHW [B][3][8h][8w]
  void forward(const RunCtx& c, const float* z, int B, int h, int w, float* out) const;
  const tdxl_vae_config& config() const { return cfg_; }
  int upscale() const { return 1 << (cfg_.n_blocks - 1); }

 private:
  struct Up {
    std::deque<Resnet> resnets;
    bool has_up = false;
    Conv up;
  };
  tdxl_vae_config cfg_{};
  Conv post_quant_, conv_in_, conv_out_;
  Resnet mid_r0_, mid_r1_;
  Norm mid_gn_;
  Attention mid_attn_;
  std::deque<Up> ups_;
  Norm norm_out_;
};

}  // namespace tdxl

#endif  // TDXL_NN_MODELS_H
