// core.h — internal C++ declarations of the tdxl reference core (not part of the C ABI).
//
// Conventions (contracts §2): activations are fp32, channels-last and contiguous: images NHWC
// [B][H][W][C], token sequences [B][T][C]. Linear weights arrive as [N][K] (PyTorch layout) and are
// packed once at load into an opaque handle; conv weights arrive as [Cout][Cin][kh][kw] and are packed
// with K ordered (ky, kx, ci) for implicit GEMM. Every op goes through the one dispatch table `ops()`.
#ifndef TDXL_CORE_H
#define TDXL_CORE_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace tdxl {

// Error thrown inside the core; converted to a status code + message at the C ABI boundary.
struct Error : std::runtime_error {
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};
// Thrown when the cancel flag is seen between layers.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

struct Ops;

// ---- activation memory (core_arena.cpp) ----
// The pipeline's activation memory: blocks of 64 KiB and more are carved first-fit from one reserved
// region whose pages stay resident once touched (reused by every later image), smaller ones come
// from malloc and are cached by size. get() is uninitialized. Everything is returned to the OS when
// the arena (the pipeline) goes. Thread-safe, though the model code allocates only from the calling
// thread.
class Arena {
 public:
  struct Stats {
    uint64_t gets = 0;    // blocks asked for
    uint64_t misses = 0;  // requests that needed memory never used before (fresh pages or a malloc)
    size_t footprint_bytes = 0;  // resident at most: the region's high-water mark + small blocks
  };
  Arena() = default;
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  float* get(size_t n);  // n floats, 64-byte aligned (2 MiB for blocks of 2 MiB and more)
  void put(float* p, size_t n);
  // Touch every page of the region up to its high-water mark, so that later images fault in
  // nothing (after a planning run has raised the mark to the footprint of the largest size).
  void prefault();
  Stats stats() const;

 private:
  bool reserve();
  bool take(size_t bytes, size_t align, size_t* off);
  void give(size_t off, size_t bytes);
  mutable std::mutex mu_;
  char* base_ = nullptr;  // the region
  size_t cap_ = 0;        // its reserved size
  size_t high_ = 0;       // end of the highest byte ever handed out
  bool reserve_failed_ = false;
  std::map<size_t, size_t> free_;            // region offset -> free length (coalesced)
  std::multimap<size_t, void*> small_;       // released malloc'ed small blocks by rounded size
  size_t small_bytes_ = 0;                   // every small block ever malloc'ed (none is freed)
  std::map<void*, size_t> own_;              // blocks mapped alone (region full)
  uint64_t gets_ = 0, misses_ = 0;
};

// An activation tensor's memory from an Arena: move-only, uninitialized, returned to the arena's
// cache when destroyed or reset.
class Buf {
 public:
  Buf() = default;
  Buf(Arena& a, size_t n);
  Buf(Buf&& o) noexcept;
  Buf& operator=(Buf&& o) noexcept;
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() { reset(); }
  float* data() { return p_; }
  const float* data() const { return p_; }
  size_t size() const { return n_; }
  void reset();  // give the memory back now

 private:
  Arena* a_ = nullptr;
  float* p_ = nullptr;
  size_t n_ = 0;
};

// ---- thread pool (core_pool.cpp) ----
// One persistent pool. run(n, fn) calls fn(i) for i in [0, n) on the pool's threads (the caller
// participates) and returns when all are done. Tasks write disjoint outputs, so results never depend
// on which thread ran which task.
class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  int threads() const { return nthreads_; }
  void run(int64_t n, const std::function<void(int64_t)>& fn);
  // Forward every run() to another persistent pool (the isa context's; returns 0 on success) instead
  // of starting threads here. Set before the first run().
  typedef int (*DelegateRun)(void* ctx, int64_t n, void (*task)(void*, int64_t, int), void* arg);
  void set_delegate(DelegateRun run, void* ctx);

  // The op table of the pipeline that owns this pool (null = the reference table), and the fast
  // path's state when that table is the isa one (op_isa.cpp): its tdxl_isa_ctx and the weight
  // residency (TDXL_ISA_RESIDENT_*).
  const Ops* table = nullptr;
  void* isa = nullptr;
  int resident = 0;
  const Ops& ops() const;
  // The pipeline's activation memory.
  mutable Arena arena;
  // A planning run: ops() computes nothing and run() runs no task (see tdxl_pipe_reserve).
  bool dry = false;
  Buf buf(size_t n) const { return Buf(arena, n); }

 private:
  struct Impl;
  Impl* impl_;
  int nthreads_;
  DelegateRun delegate_ = nullptr;
  void* delegate_ctx_ = nullptr;
};

// ---- packed weights ----
// A linear layer Y[M][N] = X[M][K]·Wᵀ (+bias) or a conv layer; `data` holds the variant's layout.
// Reference layout: panels of 8 output columns, [ceil(N/8)][K][8], zero padded; K order (ky,kx,ci).
struct Packed {
  int64_t N = 0, K = 0;           // output features, reduction length (= kh*kw*cin for conv)
  int kh = 1, kw = 1, cin = 0;    // conv geometry (kh=kw=1 for linear; cin = K for linear)
  std::vector<float> bias;        // empty = no bias
  float* data = nullptr;          // owned, 64-byte aligned (reference layout)
  size_t data_len = 0;            // floats
  // A fast variant's own packed form (e.g. a tdxl_isa_weight*), freed with ext_free.
  void* ext = nullptr;
  void (*ext_free)(void*) = nullptr;
  // ext is a GEGLU projection (Ops::pack_geglu): linear writes [M][N/2] = hidden * gelu(gate).
  bool geglu = false;
  Packed() = default;
  ~Packed();
  Packed(const Packed&) = delete;
  Packed& operator=(const Packed&) = delete;
};

// Conv geometry of one call.
struct ConvShape {
  int B, H, W;        // input
  int OH, OW;         // output
  int stride, pad;
};

// ---- the op dispatch table (op_dispatch.cpp) ----
// Filled once (currently with the reference ops); a fast variant replaces entries, the reference
// stays the oracle. All pointers are to contiguous fp32 unless a leading dimension is given.
struct Ops {
  const char* name;
  // w: [N][K] row-major (K = cin*kh*kw in PyTorch order [N][cin][kh][kw] for conv); bias may be null.
  // (pool may be null: pack on the calling thread)
  void (*pack)(Pool* pool, Packed* p, const float* w, int64_t N, int cin, int kh, int kw,
               const float* bias);
  // Y[M][N] (row stride ldy) = X[M][K] (row stride ldx)·Wᵀ + bias (+ residual[M][N], stride ldr;
  // residual must not alias Y).
  void (*linear)(Pool& pool, const Packed& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                 int64_t M, const float* residual, int64_t ldr);
  // NHWC conv; y[B][OH][OW][N] (+ residual of the same shape, not aliasing y).
  void (*conv2d)(Pool& pool, const Packed& w, const float* x, const ConvShape& s, float* y,
                 const float* residual);
  // q[B][Tq][ldq], k,v[B][Tk][ldk/ldv], heads interleaved (head h at columns h*D..h*D+D-1);
  // o[B][Tq][ldo]. causal: key j > query i masked.
  void (*attention)(Pool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
                    const float* v, int64_t ldv, float* o, int64_t ldo, int B, int64_t Tq,
                    int64_t Tk, int H, int D, float scale, bool causal);
  // x,y [B][HW][C] (y may alias x); per-channel gamma, beta; optional fused SiLU.
  void (*group_norm)(Pool& pool, const float* x, float* y, int B, int64_t HW, int C, int groups,
                     float eps, const float* gamma, const float* beta, bool silu);
  // x,y [M][C] (y may alias x).
  void (*layer_norm)(Pool& pool, const float* x, float* y, int64_t M, int C, float eps,
                     const float* gamma, const float* beta);
  // Optional (null in the reference table): pack straight from the checkpoint's bytes (dtype
  // TDXL_F32/F16/BF16 of tdxl_capi.h), without an fp32 copy of the tensor.
  void (*pack_raw)(Pool* pool, Packed* p, const void* w, int dtype, int64_t N, int cin, int kh,
                   int kw);
  // Optional: pack a GEGLU projection w [N2][K] (rows [0,N2/2) hidden, [N2/2,N2) gate) with its
  // bias [N2] (may be null); linear() with it writes y[M][N2/2] and ignores p->bias.
  void (*pack_geglu)(Pool* pool, Packed* p, const void* w, int dtype, int64_t N2, int64_t K,
                     const float* bias);
  // linear/conv2d accept residual == y (same pointer, ldr == ldy): the output accumulates onto its
  // own residual, so a block's result can take the place of its input (saves one tensor).
  bool residual_may_alias_y;
};
const Ops& ops();      // the reference table (kept for code without a pool)
const Ops& dry_ops();  // the no-op table of planning runs (Pool::dry)
const Ops& ref_ops();
// The fast table over kernels/internal/isa (op_isa.cpp); null when the isa API was not registered.
const Ops* isa_ops();

// ---- elementwise helpers (op_elementwise.cpp) ----
void silu_inplace(Pool& pool, float* x, int64_t n);
void gelu_erf_inplace(Pool& pool, float* x, int64_t n);
void quick_gelu_inplace(Pool& pool, float* x, int64_t n);
// h[M][2F] -> out[M][F] = h[:, :F] * gelu(h[:, F:])
void geglu(Pool& pool, const float* h, float* out, int64_t M, int64_t F);
void add_inplace(Pool& pool, float* y, const float* x, int64_t n);
// nearest upsample NHWC [B][H][W][C] -> [B][OH][OW][C] (PyTorch 'nearest' index rule)
void upsample_nearest(Pool& pool, const float* x, float* y, int B, int H, int W, int C, int OH,
                      int OW);
// channel concat NHWC: a [P][Ca], b [P][Cb] -> y [P][Ca+Cb]
void concat_channels(Pool& pool, const float* a, int Ca, const float* b, int Cb, float* y,
                     int64_t P);
// diffusers get_timestep_embedding, float32 like PyTorch: out[n][dim]
void timestep_embedding(const float* t, int64_t n, int dim, bool flip_sin_to_cos,
                        float downscale_freq_shift, float* out);
// layout conversion
void nchw_to_nhwc(const float* x, float* y, int B, int C, int H, int W);
void nhwc_to_nchw(const float* x, float* y, int B, int C, int H, int W);

// ---- run context: cancel flag + optional debug taps ----
struct Taps;  // test-only capture of named intermediates
struct RunCtx {
  Pool* pool = nullptr;
  const std::atomic<int>* cancel = nullptr;
  Taps* taps = nullptr;
  // Identifies the text context (encoder hidden states) of the running UNet call: cross-attention
  // layers reuse their K/V projections while it stays the same (0 = no caching).
  uint64_t ctx_gen = 0;
  // Uninitialized activation memory from the pipeline's arena.
  Buf buf(size_t n) const { return pool->buf(n); }
  void check() const {
    if (cancel != nullptr && cancel->load(std::memory_order_relaxed) != 0) throw Cancelled();
  }
  // record an NHWC tensor as NCHW under name (no-op unless taps enabled)
  void tap_nhwc(const std::string& name, const float* x, int B, int H, int W, int C) const;
  void tap_flat(const std::string& name, const float* x, const std::vector<int64_t>& shape) const;
};

}  // namespace tdxl

#endif  // TDXL_CORE_H
