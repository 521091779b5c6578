// nn_clip.cpp — CLIP text encoder (transformers CLIPTextModel / CLIPTextModelWithProjection).
//   h0 = token_embedding[ids] + position_embedding[pos]                      // [B][T][D]
//   per layer: h = h + out_proj(attn_causal(q_proj(ln1(h))*scale, k, v)); h = h + fc2(act(fc1(ln2(h))))
//   last = final_layer_norm(h); pooled = last[b, argmax(ids[b])]; text_embeds = text_projection(pooled)
#include <cmath>
#include <cstring>

#include "nn_models.h"

namespace tdxl {

void ClipText::init(Registry& r, const tdxl_clip_config& cfg) {
  cfg_ = cfg;
  const int64_t D = cfg.hidden_size, F = cfg.intermediate_size;
  if (D <= 0 || cfg.num_heads <= 0 || D % cfg.num_heads != 0)
    throw Error("text encoder: hidden_size not divisible by num_attention_heads");
  r.raw("text_model.embeddings.token_embedding.weight", {cfg.vocab_size, D}, &tok_emb_);
  r.raw("text_model.embeddings.position_embedding.weight", {cfg.max_positions, D}, &pos_emb_);
  for (int64_t l = 0; l < cfg.num_layers; l++) {
    layers_.emplace_back();
    Layer& L = layers_.back();
    const std::string p = "text_model.encoder.layers." + std::to_string(l);
    L.ln1.init(r, p + ".layer_norm1", static_cast<int>(D));
    L.ln2.init(r, p + ".layer_norm2", static_cast<int>(D));
    L.q.init(r, p + ".self_attn.q_proj", D, D, true);
    L.k.init(r, p + ".self_attn.k_proj", D, D, true);
    L.v.init(r, p + ".self_attn.v_proj", D, D, true);
    L.o.init(r, p + ".self_attn.out_proj", D, D, true);
    L.fc1.init(r, p + ".mlp.fc1", D, F, true);
    L.fc2.init(r, p + ".mlp.fc2", F, D, true);
  }
  final_ln_.init(r, "text_model.final_layer_norm", static_cast<int>(D));
  if (cfg.with_projection) proj_.init(r, "text_projection", D, cfg.projection_dim, false);
}

void ClipText::forward(const RunCtx& c, const int64_t* ids, int B, int T, float* hidden_states,
                       float* last, float* pooled, float* text_embeds) const {
  const int64_t D = cfg_.hidden_size, F = cfg_.intermediate_size;
  const int H = static_cast<int>(cfg_.num_heads);
  const int hd = static_cast<int>(D / H);
  if (T > cfg_.max_positions) throw Error("text encoder: sequence longer than max_position_embeddings");
  const int64_t M = static_cast<int64_t>(B) * T;
  std::vector<float> h(M * D);
  for (int64_t i = 0; i < M; i++) {
    const int64_t id = ids[i];
    if (id < 0 || id >= cfg_.vocab_size) throw Error("text encoder: token id out of range");
    const float* te = tok_emb_.data() + id * D;
    const float* pe = pos_emb_.data() + (i % T) * D;
    for (int64_t d = 0; d < D; d++) h[i * D + d] = te[d] + pe[d];
  }
  const int64_t hs_stride = M * D;
  if (hidden_states) std::memcpy(hidden_states, h.data(), sizeof(float) * M * D);
  const float scale = static_cast<float>(std::pow(static_cast<double>(hd), -0.5));
  std::vector<float> n(M * D), q(M * D), k(M * D), v(M * D), a(M * D), h2(M * D), f(M * F);
  int64_t li = 0;
  for (const Layer& L : layers_) {
    c.check();
    c.pool->ops().layer_norm(*c.pool, h.data(), n.data(), M, static_cast<int>(D), cfg_.eps, L.ln1.w.data(),
                     L.ln1.b.data());
    L.q(c, n.data(), q.data(), M);
    for (float& x : q) x *= scale;
    L.k(c, n.data(), k.data(), M);
    L.v(c, n.data(), v.data(), M);
    c.pool->ops().attention(*c.pool, q.data(), D, k.data(), D, v.data(), D, a.data(), D, B, T, T, H, hd,
                    1.0f, true);
    L.o(c, a.data(), h2.data(), M, h.data());  // h2 = h + out_proj(a)
    c.pool->ops().layer_norm(*c.pool, h2.data(), n.data(), M, static_cast<int>(D), cfg_.eps,
                     L.ln2.w.data(), L.ln2.b.data());
    L.fc1(c, n.data(), f.data(), M);
    if (cfg_.act == TDXL_ACT_QUICK_GELU)
      quick_gelu_inplace(*c.pool, f.data(), M * F);
    else
      gelu_erf_inplace(*c.pool, f.data(), M * F);
    L.fc2(c, f.data(), h.data(), M, h2.data());  // h = h2 + fc2(f)
    li++;
    if (hidden_states) std::memcpy(hidden_states + li * hs_stride, h.data(), sizeof(float) * M * D);
  }
  std::vector<float> fin(M * D);
  c.pool->ops().layer_norm(*c.pool, h.data(), fin.data(), M, static_cast<int>(D), cfg_.eps,
                   final_ln_.w.data(), final_ln_.b.data());
  if (last) std::memcpy(last, fin.data(), sizeof(float) * M * D);
  if (pooled || text_embeds) {
    std::vector<float> pool_rows(static_cast<size_t>(B) * D);
    for (int b = 0; b < B; b++) {
      int best = 0;  // first maximal id (torch.argmax)
      for (int t = 1; t < T; t++)
        if (ids[static_cast<int64_t>(b) * T + t] > ids[static_cast<int64_t>(b) * T + best]) best = t;
      std::memcpy(pool_rows.data() + b * D, fin.data() + (static_cast<int64_t>(b) * T + best) * D,
                  sizeof(float) * D);
    }
    if (pooled) std::memcpy(pooled, pool_rows.data(), sizeof(float) * B * D);
    if (text_embeds) {
      if (!cfg_.with_projection) throw Error("text encoder has no projection");
      proj_(c, pool_rows.data(), text_embeds, B);
    }
  }
}

}  // namespace tdxl
