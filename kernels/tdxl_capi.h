/* tdxl_capi.h — the narrow C ABI of the tdxl C++ core (owned by this project).
 *
 * Opaque handle, integer status codes, and an error message written into a caller buffer; every
 * C++ exception is caught at this boundary. Tensors crossing it are fp32 and contiguous; latents and
 * decoded images are NCHW (as the reference pipeline stores them), everything else is row-major.
 * The functions below the "stages" line are what the Go pipeline composes (and what the golden test
 * calls directly). Cancellation: tdxl_pipe_cancel(p, 1) makes the running call return
 * TDXL_CANCELLED at the next layer boundary; tdxl_pipe_cancel(p, 0) re-arms it. */
#ifndef TDXL_CAPI_H
#define TDXL_CAPI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  TDXL_OK = 0,
  TDXL_ERR = 1,        /* see the message buffer */
  TDXL_CANCELLED = 2,  /* the cancel flag was set */
  TDXL_UNUSED = 3      /* tdxl_pipe_set_tensor: no parameter of that name (caller decides) */
};

enum { TDXL_F32 = 0, TDXL_F16 = 1, TDXL_BF16 = 2, TDXL_F64 = 3 };
enum { TDXL_TEXT_ENCODER = 0, TDXL_TEXT_ENCODER_2 = 1, TDXL_UNET = 2, TDXL_VAE = 3 };
enum { TDXL_ACT_QUICK_GELU = 0, TDXL_ACT_GELU = 1 };
enum { TDXL_MAX_BLOCKS = 8 };

typedef struct {
  int64_t vocab_size, hidden_size, intermediate_size, num_layers, num_heads, max_positions;
  int64_t projection_dim; /* with_projection only */
  int act;                /* TDXL_ACT_* */
  float eps;
  int with_projection;
} tdxl_clip_config;

typedef struct {
  int in_channels, out_channels;
  int n_blocks;
  int block_out[TDXL_MAX_BLOCKS];
  int down_cross[TDXL_MAX_BLOCKS]; /* 1 = CrossAttnDownBlock2D, 0 = DownBlock2D */
  int up_cross[TDXL_MAX_BLOCKS];   /* 1 = CrossAttnUpBlock2D, 0 = UpBlock2D */
  int transformer_layers[TDXL_MAX_BLOCKS]; /* per down block (up blocks use the reversed list) */
  int heads[TDXL_MAX_BLOCKS];              /* number of heads per down block (attention_head_dim) */
  int mid_cross;                           /* 1 = UNetMidBlock2DCrossAttn */
  int layers_per_block;
  int cross_attention_dim;
  int norm_groups;
  float norm_eps;
  int flip_sin_to_cos;
  float freq_shift;
  int addition_time_embed_dim;
  int projection_class_embeddings_input_dim;
  int conv_in_kernel, conv_out_kernel;
} tdxl_unet_config;

typedef struct {
  int latent_channels, out_channels;
  int n_blocks;
  int block_out[TDXL_MAX_BLOCKS];
  int layers_per_block;
  int norm_groups;
  float scaling_factor;
} tdxl_vae_config;

typedef struct {
  tdxl_clip_config te1, te2;
  tdxl_unet_config unet;
  tdxl_vae_config vae;
  int threads; /* <= 0: all online CPUs */
  /* Kernel path: isa_level -1 = the fast kernels' best level (CPUID, capped by TDXL_MAX_ISA),
   * 0 = the fp32 reference ops (the oracle), else a TDXL_ISA_* level of kernels/internal/isa/isa.h;
   * resident = TDXL_ISA_RESIDENT_BF16 (0) or _F32 (1): how the fast path keeps packed weights. */
  int isa_level;
  int resident;
} tdxl_pipe_config;

/* Scheduler: EulerAncestralDiscreteScheduler. */
enum { TDXL_BETAS_LINEAR = 0, TDXL_BETAS_SCALED_LINEAR = 1 };
enum { TDXL_SPACING_LEADING = 0, TDXL_SPACING_TRAILING = 1, TDXL_SPACING_LINSPACE = 2 };
enum { TDXL_PRED_EPSILON = 0, TDXL_PRED_V = 1 };
typedef struct {
  int num_train_timesteps;
  double beta_start, beta_end;
  int beta_schedule, spacing, steps_offset, prediction;
} tdxl_sched_config;

typedef struct tdxl_pipe tdxl_pipe;

int tdxl_pipe_new(const tdxl_pipe_config* cfg, tdxl_pipe** out, char* err, size_t errlen);
/* Feed one checkpoint tensor (converted to fp32 and packed now; data need not outlive the call). */
int tdxl_pipe_set_tensor(tdxl_pipe* p, int component, const char* name, int dtype,
                         const int64_t* shape, int ndim, const void* data, size_t nbytes,
                         char* err, size_t errlen);
/* The parameters a component expects, one "name d0,d1,...\n" line each (sorted). Copies at most
 * buflen-1 bytes plus a NUL; returns the full length (call again with a larger buffer if needed). */
int64_t tdxl_pipe_params(const tdxl_pipe* p, int component, char* buf, size_t buflen);
/* Checks that every parameter arrived. */
int tdxl_pipe_finish(tdxl_pipe* p, char* err, size_t errlen);
void tdxl_pipe_free(tdxl_pipe* p);
void tdxl_pipe_cancel(tdxl_pipe* p, int on);
int tdxl_pipe_threads(const tdxl_pipe* p);
const char* tdxl_pipe_kernel_path(const tdxl_pipe* p); /* e.g. "avx512bf16/bf16", "ref-fp32" */
/* Sizes the activation arena at load for images of latent size h x w in batches of up to B (text
 * length T): walks one UNet step (batch B) and one VAE decode with ops that compute nothing, then
 * touches the footprint's pages, so the first real image at that size (or smaller) needs no fresh
 * memory. Call once per size asked for; the arena keeps the largest footprint. */
int tdxl_pipe_reserve(tdxl_pipe* p, int B, int h, int w, int T, char* err, size_t errlen);
/* Activation memory of the pipeline since it was made: blocks requested, requests that needed memory
 * never used before (the rest reused pages the arena already had), and its footprint (the high-water
 * mark of its region plus its small blocks). Any pointer may be NULL. */
void tdxl_pipe_arena_stats(const tdxl_pipe* p, uint64_t* requests, uint64_t* new_blocks,
                           uint64_t* peak_bytes);
/* Registers kernels/internal/isa's function table (api.h); called once by the Go package's init. */
void tdxl_core_set_isa_api(const void* api);

/* ---- stages ---- */

/* Scheduler tables: timesteps[steps], sigmas[steps+1], init_noise_sigma; optionally (may be NULL)
 * alphas_cumprod[num_train] and train_sigmas[num_train+1]. */
int tdxl_sched_tables(const tdxl_sched_config* cfg, int steps, float* timesteps, float* sigmas,
                      float* init_noise_sigma, float* alphas_cumprod, float* train_sigmas,
                      char* err, size_t errlen);

/* One CLIP text encoder on ids [B][T]. Outputs (each may be NULL): hidden_states
 * [num_layers+1][B][T][D], last_hidden_state [B][T][D] (after final LayerNorm), pooled [B][D]
 * (last_hidden_state at argmax(ids)), text_embeds [B][projection_dim] (with_projection only). */
int tdxl_clip_forward(tdxl_pipe* p, int which, const int64_t* ids, int B, int T,
                      float* hidden_states, float* last_hidden_state, float* pooled,
                      float* text_embeds, char* err, size_t errlen);

/* SDXL prompt encoding: prompt_embeds [B][T][D1+D2] = concat of both encoders' penultimate hidden
 * states; pooled [B][P] = text_encoder_2's projected EOS output. */
int tdxl_encode_prompt(tdxl_pipe* p, const int64_t* ids1, const int64_t* ids2, int B, int T,
                       float* prompt_embeds, float* pooled, char* err, size_t errlen);

/* UNet: sample [B][C][h][w] NCHW, encoder_hidden_states [B][T][cross_dim], text_embeds [B][P],
 * time_ids [B][6] -> out [B][C][h][w]. */
int tdxl_unet_forward(tdxl_pipe* p, const float* sample, int B, int h, int w, float timestep,
                      const float* ehs, int T, const float* text_embeds, const float* time_ids,
                      float* out, char* err, size_t errlen);

/* One Euler-ancestral step on latents (in/out, NCHW [B][4][h][w]): unet_input = latents /
 * sqrt(sigma^2+1); noise_pred = UNet(unet_input, timestep); then the ancestral update with
 * sigma_next and noise [B][4][h][w] (N(0,1); may be NULL only when sigma_next == 0).
 * unet_input / noise_pred may be NULL (tests read them). */
int tdxl_denoise_step(tdxl_pipe* p, float* latents, int B, int h, int w, float timestep,
                      float sigma, float sigma_next, const float* noise, const float* ehs, int T,
                      const float* text_embeds, const float* time_ids, int prediction,
                      float* unet_input, float* noise_pred, char* err, size_t errlen);

/* VAE: latents [B][4][h][w] (pipeline space) -> vae_input = latents / scaling_factor (may be NULL)
 * and decoded [B][3][8h][8w]. */
int tdxl_vae_decode(tdxl_pipe* p, const float* latents, int B, int h, int w, float* vae_input,
                    float* decoded, char* err, size_t errlen);

/* Postprocess decoded [B][3][H][W]: image_float NHWC [B][H][W][3] = clamp(x/2+0.5, 0, 1) (may be
 * NULL) and rgba [B][H][W][4] = round_half_even(image_float*255) in float32, alpha 255. */
void tdxl_postprocess(const float* decoded, int B, int H, int W, float* image_float,
                      uint8_t* rgba);

/* Debug taps (tests): when on, stages record named intermediates (NCHW); get copies one out. */
void tdxl_debug_enable(tdxl_pipe* p, int on);
/* Returns the element count (0 if absent); copies min(count, cap) floats; shape[<=8], *ndim. */
int64_t tdxl_debug_get(tdxl_pipe* p, const char* name, float* out, int64_t cap, int64_t* shape,
                       int* ndim);

/* ---- test hooks: one reference op on caller buffers (weights packed per call) ---- */
int tdxl_op_linear(int threads, const float* w, const float* bias, int64_t N, int64_t K,
                   const float* x, int64_t M, const float* residual, float* y);
int tdxl_op_conv2d(int threads, const float* w, const float* bias, int cout, int cin, int k,
                   int stride, int pad, const float* x, int B, int H, int W, float* y);
int tdxl_op_attention(int threads, const float* q, const float* k, const float* v, float* o, int B,
                      int64_t Tq, int64_t Tk, int H, int D, float scale, int causal);
int tdxl_op_group_norm(int threads, const float* x, float* y, int B, int64_t HW, int C, int groups,
                       float eps, const float* gamma, const float* beta, int silu);

#ifdef __cplusplus
}
#endif

#endif /* TDXL_CAPI_H */
