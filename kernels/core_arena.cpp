// core_arena.cpp — the activation memory of one pipeline: a cache of blocks keyed by size.
//
// Every intermediate tensor of the UNet and VAE comes from here (Buf). A block that is released goes
// back to the cache, and the next request of the same (page-rounded) size takes it again: the UNet
// asks for the same sizes at every step, and the VAE's resnets at one level ask for the same sizes one
// after the other, so after the first use of a size the hot path neither calls the allocator nor
// faults in fresh pages, and no block is zero-filled (Buf memory is uninitialized: every op writes its
// whole output). Large blocks are mapped directly, 2 MiB aligned and advised as huge pages, which cuts
// page faults by up to 512x where transparent huge pages are on "madvise".
//
// trim() hands every cached block back to the OS. The pipeline trims at stage boundaries (before and
// after the VAE, and between the VAE's levels, whose sizes grow 4x each), so the cache never holds
// one stage's blocks while another runs: peak memory stays near that of the running stage's live
// tensors.
#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "core.h"

namespace tdxl {

namespace {
constexpr size_t kPage = 4096;
constexpr size_t kHuge = size_t(2) << 20;
// Blocks of at least this size are mmap'ed (huge-page aligned); smaller ones come from malloc.
constexpr size_t kMapMin = size_t(1) << 20;

size_t round_bytes(size_t n_floats) {
  size_t b = n_floats * sizeof(float);
  if (b == 0) b = sizeof(float);
  if (b >= kMapMin) return (b + kHuge - 1) / kHuge * kHuge;
  return (b + kPage - 1) / kPage * kPage;
}

void* os_alloc(size_t bytes) {
  if (bytes < kMapMin) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes) != 0) return nullptr;
    return p;
  }
  // Over-map by one huge page and cut the ends so the block is 2 MiB aligned.
  const size_t len = bytes + kHuge;
  void* raw = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t al = (a + kHuge - 1) / kHuge * kHuge;
  if (al > a) munmap(raw, al - a);
  const uintptr_t end = a + len, used_end = al + bytes;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(al);
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  return p;
}

void os_free(void* p, size_t bytes) {
  if (bytes < kMapMin)
    std::free(p);
  else
    munmap(p, bytes);
}
}  // namespace

Arena::~Arena() { trim(); }

float* Arena::get(size_t n) {
  const size_t bytes = round_bytes(n);
  std::lock_guard<std::mutex> g(mu_);
  st_.gets++;
  // Exact size first; a large request may also take the front of a larger mapped block (best
  // fit), the rest of which stays cached: a 1 GiB block of one layer serves two 512 MiB tensors of
  // the next instead of lying idle next to two new ones.
  auto it = free_.find(bytes);
  if (it == free_.end() && bytes >= kMapMin) it = free_.lower_bound(bytes);
  void* p;
  if (it != free_.end()) {
    const size_t have = it->first;
    p = it->second;
    free_.erase(it);
    st_.cached_bytes -= have;
    if (have > bytes) {  // both parts are multiples of 2 MiB, so each can be unmapped alone
      free_.emplace(have - bytes, static_cast<char*>(p) + bytes);
      st_.cached_bytes += have - bytes;
    }
  } else {
    p = os_alloc(bytes);
    if (!p) throw Error("out of memory: activation block of " + std::to_string(bytes) + " bytes");
    st_.misses++;
  }
  st_.live_bytes += bytes;
  if (st_.live_bytes + st_.cached_bytes > st_.peak_bytes)
    st_.peak_bytes = st_.live_bytes + st_.cached_bytes;
  return static_cast<float*>(p);
}

void Arena::put(float* p, size_t n) {
  if (!p) return;
  const size_t bytes = round_bytes(n);
  std::lock_guard<std::mutex> g(mu_);
  st_.live_bytes -= bytes;
  st_.cached_bytes += bytes;
  free_.emplace(bytes, p);
}

void Arena::trim() {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& kv : free_) os_free(kv.second, kv.first);
  free_.clear();
  st_.cached_bytes = 0;
}

Arena::Stats Arena::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  return st_;
}

Buf::Buf(Arena& a, size_t n) : a_(&a), p_(a.get(n)), n_(n) {}

Buf::Buf(Buf&& o) noexcept : a_(o.a_), p_(o.p_), n_(o.n_) {
  o.a_ = nullptr;
  o.p_ = nullptr;
  o.n_ = 0;
}

Buf& Buf::operator=(Buf&& o) noexcept {
  if (this != &o) {
    reset();
    a_ = o.a_;
    p_ = o.p_;
    n_ = o.n_;
    o.a_ = nullptr;
    o.p_ = nullptr;
    o.n_ = 0;
  }
  return *this;
}

void Buf::reset() {
  if (a_ && p_) a_->put(p_, n_);
  a_ = nullptr;
  p_ = nullptr;
  n_ = 0;
}

}  // namespace tdxl
