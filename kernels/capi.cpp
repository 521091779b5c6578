// capi.cpp — the C ABI of tdxl_capi.h: handles, status codes, messages; no exception escapes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <thread>

#include "api.h"
#include "nn_models.h"
#include "tdxl_capi.h"

namespace tdxl {
void sched_tables(const tdxl_sched_config& cfg, int steps, std::vector<float>* timesteps,
                  std::vector<float>* sigmas, float* init_noise_sigma,
                  std::vector<float>* alphas_cumprod, std::vector<float>* train_sigmas);
void euler_ancestral_step(float* x, const float* eps, const float* noise, int64_t n, float sigma,
                          float sigma_next, int prediction);
const tdxl_isa_api* isa_api();
}  // namespace tdxl

using namespace tdxl;

namespace {
// Owns a pipeline's tdxl_isa_ctx; declared before the modules so that it outlives their weights.
struct IsaCtx {
  tdxl_isa_ctx* ctx = nullptr;
  ~IsaCtx() {
    if (ctx) isa_api()->ctx_free(ctx);
  }
};
}  // namespace

struct tdxl_pipe {
  tdxl_pipe_config cfg{};
  std::unique_ptr<Pool> pool;
  IsaCtx isa;
  std::string path;  // kernel path name
  std::atomic<int> cancel{0};
  Registry reg[4];
  ClipText te1, te2;
  UNet unet;
  VaeDecoder vae;
  Taps taps;
  bool taps_on = false;
  bool finished = false;

  RunCtx ctx() {
    RunCtx c;
    c.pool = pool.get();
    c.cancel = &cancel;
    c.taps = taps_on ? &taps : nullptr;
    return c;
  }
};

namespace {

void set_err(char* err, size_t len, const char* msg) {
  if (!err || len == 0) return;
  std::strncpy(err, msg, len - 1);
  err[len - 1] = 0;
}

template <class F>
int guard(char* err, size_t errlen, F f) {
  try {
    f();
    return TDXL_OK;
  } catch (const Cancelled&) {
    set_err(err, errlen, "cancelled");
    return TDXL_CANCELLED;
  } catch (const std::bad_alloc&) {
    set_err(err, errlen, "out of memory");
    return TDXL_ERR;
  } catch (const std::exception& e) {
    set_err(err, errlen, e.what());
    return TDXL_ERR;
  } catch (...) {
    set_err(err, errlen, "unknown C++ exception");
    return TDXL_ERR;
  }
}

void need_ready(const tdxl_pipe* p) {
  if (!p) throw Error("nil pipeline");
  if (!p->finished) throw Error("pipeline not completely loaded");
}

// IEEE binary16 -> binary32, exact (no libm): normals re-bias the exponent, subnormals are
// em * 2^-24 (exact in float), inf/NaN keep their payload.
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t em = h & 0x7fff;
  uint32_t u;
  if (em >= 0x7c00) {
    u = sign | 0x7f800000u | ((em & 0x3ff) << 13);
  } else if (em >= 0x0400) {
    u = sign | ((em << 13) + 0x38000000u);
  } else {
    const float f = static_cast<float>(em) * 5.9604644775390625e-8f;  // 2^-24
    std::memcpy(&u, &f, 4);
    u |= sign;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float bf16_to_float(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

const char* component_name(int c) {
  switch (c) {
    case TDXL_TEXT_ENCODER: return "text_encoder";
    case TDXL_TEXT_ENCODER_2: return "text_encoder_2";
    case TDXL_UNET: return "unet";
    case TDXL_VAE: return "vae";
  }
  return "?";
}

}  // namespace

extern "C" {

int tdxl_pipe_new(const tdxl_pipe_config* cfg, tdxl_pipe** out, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    if (!cfg || !out) throw Error("nil argument");
    *out = nullptr;
    std::unique_ptr<tdxl_pipe> p(new tdxl_pipe);
    p->cfg = *cfg;
    int threads = cfg->threads;
    if (threads <= 0) threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0) threads = 1;
    p->pool.reset(new Pool(threads));
    p->path = ref_ops().name;
    const tdxl_isa_api* api = isa_api();
    int level = cfg->isa_level;
    if (level < 0) level = api ? api->best() : TDXL_ISA_REF;
    if (level != TDXL_ISA_REF) {
      if (!api || !isa_ops()) throw Error("fast kernels not registered");
      if (!api->supported(level))
        throw Error(std::string("ISA level ") + api->level_name(level) + " not supported here");
      const int resident = cfg->resident == TDXL_ISA_RESIDENT_F32 ? TDXL_ISA_RESIDENT_F32
                                                                   : TDXL_ISA_RESIDENT_BF16;
      // The bf16 kernels decline fp32-resident weights: run the best fp32 level instead.
      if (resident == TDXL_ISA_RESIDENT_F32 && level >= TDXL_ISA_AVX512BF16)
        level = api->supported(TDXL_ISA_AVX512) ? TDXL_ISA_AVX512 : TDXL_ISA_AVX2;
      int rc = api->ctx_new(threads, level, &p->isa.ctx);
      if (rc != TDXL_ISA_OK) throw Error(std::string("isa context: ") + api->status_string(rc));
      p->pool->table = isa_ops();
      p->pool->isa = p->isa.ctx;
      p->pool->resident = resident;
      // One pool: the core's elementwise passes run on the isa context's threads.
      p->pool->set_delegate(
          [](void* ctx, int64_t n, void (*task)(void*, int64_t, int), void* arg) {
            return isa_api()->ctx_run(static_cast<tdxl_isa_ctx*>(ctx), n, task, arg);
          },
          p->isa.ctx);
      p->path = std::string(api->level_name(api->ctx_level(p->isa.ctx))) +
                (resident == TDXL_ISA_RESIDENT_F32 ? "/fp32" : "/bf16");
    }
    for (auto& r : p->reg) r.set_pool(p->pool.get());
    try {
      p->te1.init(p->reg[TDXL_TEXT_ENCODER], cfg->te1);
    } catch (const Error& e) {
      throw Error(std::string("text_encoder: ") + e.what());
    }
    try {
      p->te2.init(p->reg[TDXL_TEXT_ENCODER_2], cfg->te2);
    } catch (const Error& e) {
      throw Error(std::string("text_encoder_2: ") + e.what());
    }
    try {
      p->unet.init(p->reg[TDXL_UNET], cfg->unet);
    } catch (const Error& e) {
      throw Error(std::string("unet: ") + e.what());
    }
    try {
      p->vae.init(p->reg[TDXL_VAE], cfg->vae);
    } catch (const Error& e) {
      throw Error(std::string("vae: ") + e.what());
    }
    *out = p.release();
  });
}

int tdxl_pipe_set_tensor(tdxl_pipe* p, int component, const char* name, int dtype,
                         const int64_t* shape, int ndim, const void* data, size_t nbytes,
                         char* err, size_t errlen) {
  bool used = true;
  int rc = guard(err, errlen, [&] {
    if (!p || !name || (ndim > 0 && !shape)) throw Error("nil argument");
    if (component < 0 || component > 3) throw Error("bad component");
    if (ndim < 0 || ndim > 8) throw Error(std::string("tensor ") + name + ": bad rank");
    if (!p->reg[component].has(name)) {
      used = false;
      return;
    }
    std::vector<int64_t> sh(shape, shape + ndim);
    int64_t n = 1;
    for (int64_t d : sh) {
      if (d < 0) throw Error(std::string("tensor ") + name + ": negative dimension");
      n *= d;
    }
    size_t esz = dtype == TDXL_F32 ? 4 : dtype == TDXL_F64 ? 8 : 2;
    if (dtype < 0 || dtype > 3) throw Error(std::string("tensor ") + name + ": unsupported dtype");
    if (nbytes != static_cast<size_t>(n) * esz)
      throw Error(std::string("tensor ") + name + ": byte size does not match shape and dtype");
    try {
      if (p->reg[component].set_raw(name, sh, dtype, data, nbytes)) return;
    } catch (const Error& e) {
      throw Error(std::string(component_name(component)) + ": " + e.what());
    }
    std::vector<float> f(static_cast<size_t>(n));
    const unsigned char* b = static_cast<const unsigned char*>(data);
    const int64_t chunk = 1 << 16;
    p->pool->run((n + chunk - 1) / chunk, [&](int64_t c) {
      const int64_t i1 = std::min<int64_t>(n, c * chunk + chunk);
      for (int64_t i = c * chunk; i < i1; i++) {
        if (dtype == TDXL_F32) {
          std::memcpy(&f[i], b + i * 4, 4);
        } else if (dtype == TDXL_F64) {
          double d;
          std::memcpy(&d, b + i * 8, 8);
          f[i] = static_cast<float>(d);
        } else {
          uint16_t u;
          std::memcpy(&u, b + i * 2, 2);
          f[i] = dtype == TDXL_F16 ? half_to_float(u) : bf16_to_float(u);
        }
      }
    });
    try {
      used = p->reg[component].set(name, sh, f.data());
    } catch (const Error& e) {
      throw Error(std::string(component_name(component)) + ": " + e.what());
    }
  });
  if (rc == TDXL_OK && !used) return TDXL_UNUSED;
  return rc;
}

int64_t tdxl_pipe_params(const tdxl_pipe* p, int component, char* buf, size_t buflen) {
  try {
    if (!p || component < 0 || component > 3) return -1;
    const std::string s = p->reg[component].list();
    if (buf && buflen > 0) {
      const size_t n = std::min(buflen - 1, s.size());
      std::memcpy(buf, s.data(), n);
      buf[n] = 0;
    }
    return static_cast<int64_t>(s.size());
  } catch (...) {
    return -1;
  }
}

int tdxl_pipe_finish(tdxl_pipe* p, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    if (!p) throw Error("nil pipeline");
    for (int c = 0; c < 4; c++) {
      try {
        p->reg[c].finish();
      } catch (const Error& e) {
        throw Error(std::string(component_name(c)) + ": " + e.what());
      }
    }
    p->finished = true;
  });
}

void tdxl_pipe_free(tdxl_pipe* p) {
  try {
    delete p;
  } catch (...) {
  }
}

void tdxl_pipe_cancel(tdxl_pipe* p, int on) {
  if (p) p->cancel.store(on ? 1 : 0);
}

int tdxl_pipe_threads(const tdxl_pipe* p) { return p ? p->pool->threads() : 0; }

const char* tdxl_pipe_kernel_path(const tdxl_pipe* p) { return p ? p->path.c_str() : ""; }

int tdxl_pipe_reserve(tdxl_pipe* p, int B, int h, int w, int T, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (B <= 0 || h <= 0 || w <= 0 || T <= 0) throw Error("bad reserve size");
    const tdxl_unet_config& u = p->unet.config();
    const int pdim = u.projection_class_embeddings_input_dim - 6 * u.addition_time_embed_dim;
    if (pdim <= 0) throw Error("unet: projection_class_embeddings_input_dim too small");
    std::vector<float> sample(static_cast<size_t>(B) * u.in_channels * h * w);
    std::vector<float> ehs(static_cast<size_t>(B) * T * u.cross_attention_dim);
    std::vector<float> text(static_cast<size_t>(B) * pdim), ids(static_cast<size_t>(B) * 6);
    std::vector<float> out(static_cast<size_t>(B) * u.out_channels * h * w);
    const int up = p->vae.upscale();
    std::vector<float> z(static_cast<size_t>(p->vae.config().latent_channels) * h * w);
    std::vector<float> dec(static_cast<size_t>(p->vae.config().out_channels) * h * up * w * up);
    struct Dry {
      tdxl_pipe* p;
      ~Dry() {
        p->pool->dry = false;
        p->unet.forget_context();
      }
    } dry{p};
    p->pool->dry = true;
    RunCtx c = p->ctx();
    c.taps = nullptr;
    p->unet.forward(c, sample.data(), B, h, w, 1.0f, ehs.data(), T, text.data(), ids.data(), out.data());
    p->vae.forward(c, z.data(), 1, h, w, dec.data());  // the VAE decodes one image at a time
    p->pool->arena.prefault();
  });
}

void tdxl_pipe_arena_stats(const tdxl_pipe* p, uint64_t* requests, uint64_t* new_blocks,
                           uint64_t* peak_bytes) {
  Arena::Stats st;
  if (p) st = p->pool->arena.stats();
  if (requests) *requests = st.gets;
  if (new_blocks) *new_blocks = st.misses;
  if (peak_bytes) *peak_bytes = st.footprint_bytes;
}

int tdxl_sched_tables(const tdxl_sched_config* cfg, int steps, float* timesteps, float* sigmas,
                      float* init_noise_sigma, float* alphas_cumprod, float* train_sigmas,
                      char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    if (!cfg || !timesteps || !sigmas || !init_noise_sigma) throw Error("nil argument");
    std::vector<float> ts, sg, ac, tsg;
    sched_tables(*cfg, steps, &ts, &sg, init_noise_sigma, &ac, &tsg);
    std::memcpy(timesteps, ts.data(), sizeof(float) * ts.size());
    std::memcpy(sigmas, sg.data(), sizeof(float) * sg.size());
    if (alphas_cumprod) std::memcpy(alphas_cumprod, ac.data(), sizeof(float) * ac.size());
    if (train_sigmas) std::memcpy(train_sigmas, tsg.data(), sizeof(float) * tsg.size());
  });
}

int tdxl_clip_forward(tdxl_pipe* p, int which, const int64_t* ids, int B, int T,
                      float* hidden_states, float* last_hidden_state, float* pooled,
                      float* text_embeds, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (!ids || B <= 0 || T <= 0) throw Error("bad text encoder input");
    const ClipText& m = which == 0 ? p->te1 : p->te2;
    m.forward(p->ctx(), ids, B, T, hidden_states, last_hidden_state, pooled, text_embeds);
  });
}

int tdxl_encode_prompt(tdxl_pipe* p, const int64_t* ids1, const int64_t* ids2, int B, int T,
                       float* prompt_embeds, float* pooled, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (!ids1 || !ids2 || !prompt_embeds || !pooled || B <= 0 || T <= 0)
      throw Error("bad prompt encoder input");
    const int64_t D1 = p->te1.hidden(), D2 = p->te2.hidden();
    const int64_t L1 = p->te1.layers(), L2 = p->te2.layers();
    if (L1 < 2 || L2 < 2) throw Error("text encoders need at least 2 layers (penultimate state)");
    const int64_t M = static_cast<int64_t>(B) * T;
    std::vector<float> hs1((L1 + 1) * M * D1), hs2((L2 + 1) * M * D2);
    RunCtx c = p->ctx();
    p->te1.forward(c, ids1, B, T, hs1.data(), nullptr, nullptr, nullptr);
    p->te2.forward(c, ids2, B, T, hs2.data(), nullptr, nullptr, pooled);
    const float* pen1 = hs1.data() + (L1 - 1) * M * D1;
    const float* pen2 = hs2.data() + (L2 - 1) * M * D2;
    for (int64_t i = 0; i < M; i++) {
      std::memcpy(prompt_embeds + i * (D1 + D2), pen1 + i * D1, sizeof(float) * D1);
      std::memcpy(prompt_embeds + i * (D1 + D2) + D1, pen2 + i * D2, sizeof(float) * D2);
    }
  });
}

int tdxl_unet_forward(tdxl_pipe* p, const float* sample, int B, int h, int w, float timestep,
                      const float* ehs, int T, const float* text_embeds, const float* time_ids,
                      float* out, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (!sample || !ehs || !text_embeds || !time_ids || !out || B <= 0 || h <= 0 || w <= 0)
      throw Error("bad unet input");
    p->unet.forward(p->ctx(), sample, B, h, w, timestep, ehs, T, text_embeds, time_ids, out);
  });
}

int tdxl_denoise_step(tdxl_pipe* p, float* latents, int B, int h, int w, float timestep,
                      float sigma, float sigma_next, const float* noise, const float* ehs, int T,
                      const float* text_embeds, const float* time_ids, int prediction,
                      float* unet_input, float* noise_pred, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (!latents || B <= 0 || h <= 0 || w <= 0) throw Error("bad denoise input");
    if (!noise && sigma_next != 0.f) throw Error("noise required when sigma_next > 0");
    if (!(sigma > 0)) throw Error("sigma must be positive");
    const int64_t n = static_cast<int64_t>(B) * p->unet.config().in_channels * h * w;
    std::vector<float> in(n), eps(n);
    const float den = std::sqrt(sigma * sigma + 1.0f);
    for (int64_t i = 0; i < n; i++) in[i] = latents[i] / den;
    p->unet.forward(p->ctx(), in.data(), B, h, w, timestep, ehs, T, text_embeds, time_ids, eps.data());
    if (unet_input) std::memcpy(unet_input, in.data(), sizeof(float) * n);
    if (noise_pred) std::memcpy(noise_pred, eps.data(), sizeof(float) * n);
    euler_ancestral_step(latents, eps.data(), noise, n, sigma, sigma_next, prediction);
  });
}

int tdxl_vae_decode(tdxl_pipe* p, const float* latents, int B, int h, int w, float* vae_input,
                    float* decoded, char* err, size_t errlen) {
  return guard(err, errlen, [&] {
    need_ready(p);
    if (!latents || !decoded || B <= 0 || h <= 0 || w <= 0) throw Error("bad vae input");
    const int64_t n = static_cast<int64_t>(B) * p->vae.config().latent_channels * h * w;
    std::vector<float> z(n);
    const float sf = p->vae.config().scaling_factor;
    for (int64_t i = 0; i < n; i++) z[i] = latents[i] / sf;
    if (vae_input) std::memcpy(vae_input, z.data(), sizeof(float) * n);
    // One image at a time: the decoder mixes nothing across the batch, its GEMMs have 64K+ rows
    // per image already, and slicing keeps its memory that of one image (a batch-4 decode would
    // need 4x the activations for no gain).
    const int up = p->vae.upscale();
    const int64_t zin = static_cast<int64_t>(p->vae.config().latent_channels) * h * w;
    const int64_t dout = static_cast<int64_t>(p->vae.config().out_channels) * h * up * w * up;
    // (Debug taps keep batch element 0's intermediates, as the golden set does.)
    for (int b = 0; b < B; b++) {
      RunCtx c = p->ctx();
      if (b > 0) c.taps = nullptr;
      p->vae.forward(c, z.data() + b * zin, 1, h, w, decoded + b * dout);
    }
  });
}

void tdxl_postprocess(const float* decoded, int B, int H, int W, float* image_float,
                      uint8_t* rgba) {
  const int64_t hw = static_cast<int64_t>(H) * W;
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < hw; i++) {
      for (int ch = 0; ch < 3; ch++) {
        float v = decoded[(b * 3 + ch) * hw + i] / 2.0f + 0.5f;
        v = std::min(1.0f, std::max(0.0f, v));
        if (image_float) image_float[(b * hw + i) * 3 + ch] = v;
        if (rgba) rgba[(b * hw + i) * 4 + ch] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
      }
      if (rgba) rgba[(b * hw + i) * 4 + 3] = 255;
    }
}

void tdxl_debug_enable(tdxl_pipe* p, int on) {
  if (!p) return;
  p->taps_on = on != 0;
  p->taps.m.clear();
}

int64_t tdxl_debug_get(tdxl_pipe* p, const char* name, float* out, int64_t cap, int64_t* shape,
                       int* ndim) {
  if (!p || !name) return 0;
  auto it = p->taps.m.find(name);
  if (it == p->taps.m.end()) return 0;
  const Taps::T& t = it->second;
  const int64_t n = static_cast<int64_t>(t.data.size());
  if (out) std::memcpy(out, t.data.data(), sizeof(float) * static_cast<size_t>(std::min(n, cap)));
  if (ndim) *ndim = static_cast<int>(std::min<size_t>(t.shape.size(), 8));
  if (shape)
    for (size_t i = 0; i < t.shape.size() && i < 8; i++) shape[i] = t.shape[i];
  return n;
}

}  // extern "C"
