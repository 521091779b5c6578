// core_arena.cpp — the activation memory of one pipeline.
//
// Every intermediate tensor of the UNet and VAE comes from here (Buf), uninitialized (every op writes
// its whole output, so nothing is zero-filled). Blocks of 64 KiB and more are carved first-fit out of
// one reserved region of address space (2 MiB-aligned, advised as huge pages) whose free ranges are
// coalesced on release; the region is never unmapped while the pipeline lives, so its pages, once
// touched, stay resident and are reused: after the first image at the largest size asked for, no
// image maps or faults in anything, and the resident size is the largest footprint of one stage
// (the stages run one after the other and each releases all its blocks before the next starts).
// First fit from the low end keeps that footprint close to the stage's peak of live tensors.
// Smaller blocks come from malloc and are cached by size. A request the region cannot hold (the
// reservation is bounded by physical memory) gets a mapping of its own, unmapped on release.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <new>

#include "core.h"

namespace tdxl {

namespace {
constexpr size_t kSmall = size_t(64) << 10;  // below: malloc + exact-size cache
constexpr size_t kHuge = size_t(2) << 20;
constexpr size_t kMaxReserve = size_t(64) << 30;

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

size_t round_bytes(size_t n_floats) {
  size_t b = n_floats * sizeof(float);
  if (b == 0) b = sizeof(float);
  if (b >= kHuge) return round_up(b, kHuge);
  if (b >= kSmall) return round_up(b, kSmall);
  return round_up(b, 4096);
}

// Maps bytes (a multiple of 2 MiB) at a 2 MiB-aligned address; nullptr on failure.
void* map_aligned(size_t bytes, bool noreserve) {
  const size_t len = bytes + kHuge;
  int flags = MAP_PRIVATE | MAP_ANONYMOUS;
  if (noreserve) flags |= MAP_NORESERVE;
  void* raw = mmap(nullptr, len, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t a = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t al = round_up(a, kHuge);
  if (al > a) munmap(raw, al - a);
  const uintptr_t end = a + len, used_end = al + bytes;
  if (end > used_end) munmap(reinterpret_cast<void*>(used_end), end - used_end);
  void* p = reinterpret_cast<void*>(al);
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  return p;
}

size_t reserve_size() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  size_t phys = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : 0;
  if (phys == 0 || phys > kMaxReserve) phys = kMaxReserve;
  return phys / 2 / kHuge * kHuge;  // half the machine is far above any stage's footprint
}
}  // namespace

Arena::~Arena() {
  for (auto& kv : small_) std::free(kv.second);
  for (auto& kv : own_) munmap(kv.first, kv.second);
  if (base_) munmap(base_, cap_);
}

bool Arena::reserve() {
  if (base_ || reserve_failed_) return base_ != nullptr;
  for (size_t cap = reserve_size(); cap >= (size_t(1) << 30); cap /= 2) {
    if (void* p = map_aligned(cap, true)) {
      base_ = static_cast<char*>(p);
      cap_ = cap;
      free_.emplace(0, cap);
      return true;
    }
  }
  reserve_failed_ = true;
  return false;
}

// First fit: the lowest free range that holds `bytes` at an offset aligned to `align`.
bool Arena::take(size_t bytes, size_t align, size_t* off) {
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const size_t o = it->first, s = it->second;
    const size_t a = round_up(o, align);
    if (a + bytes > o + s) continue;
    free_.erase(it);
    if (a > o) free_.emplace(o, a - o);
    if (a + bytes < o + s) free_.emplace(a + bytes, o + s - (a + bytes));
    *off = a;
    return true;
  }
  return false;
}

void Arena::give(size_t off, size_t bytes) {
  auto next = free_.lower_bound(off);
  if (next != free_.end() && next->first == off + bytes) {  // merge with the range after
    bytes += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {  // merge with the range before
    auto prev = std::prev(next);
    if (prev->first + prev->second == off) {
      prev->second += bytes;
      return;
    }
  }
  free_.emplace(off, bytes);
}

float* Arena::get(size_t n) {
  const size_t bytes = round_bytes(n);
  std::lock_guard<std::mutex> g(mu_);
  gets_++;
  void* p = nullptr;
  if (bytes < kSmall) {
    auto it = small_.find(bytes);
    if (it != small_.end()) {
      p = it->second;
      small_.erase(it);
    } else {
      if (posix_memalign(&p, 64, bytes) != 0) p = nullptr;
      if (p) small_bytes_ += bytes;  // kept (live or cached) until the arena goes
      misses_++;
    }
  } else {
    size_t off = 0;
    if (reserve() && take(bytes, bytes >= kHuge ? kHuge : kSmall, &off)) {
      p = base_ + off;
      if (off + bytes > high_) {  // reaches pages this arena never touched
        high_ = off + bytes;
        misses_++;
      }
    } else if ((p = map_aligned(round_up(bytes, kHuge), false)) != nullptr) {
      own_.emplace(p, round_up(bytes, kHuge));
      misses_++;
    }
  }
  if (!p) throw Error("out of memory: activation block of " + std::to_string(bytes) + " bytes");
  return static_cast<float*>(p);
}

void Arena::put(float* p, size_t n) {
  if (!p) return;
  const size_t bytes = round_bytes(n);
  std::lock_guard<std::mutex> g(mu_);
  char* c = reinterpret_cast<char*>(p);
  if (bytes < kSmall) {
    small_.emplace(bytes, p);
  } else if (base_ && c >= base_ && c < base_ + cap_) {
    give(static_cast<size_t>(c - base_), bytes);
  } else {
    auto it = own_.find(p);
    if (it != own_.end()) {
      munmap(it->first, it->second);
      own_.erase(it);
    }
  }
}

void Arena::prefault() {
  std::lock_guard<std::mutex> g(mu_);
  if (!base_) return;
  // One write per page of the never-touched part of [0, high_): free pages only, since the live
  // blocks (none, between images) are in use. Writing zeros into free memory is harmless.
  for (auto& kv : free_) {
    const size_t e = std::min(kv.first + kv.second, high_);
    for (size_t o = round_up(kv.first, 4096); o < e; o += 4096) base_[o] = 0;
  }
}

Arena::Stats Arena::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  Stats st;
  st.gets = gets_;
  st.misses = misses_;
  st.footprint_bytes = high_ + small_bytes_;
  for (const auto& kv : own_) st.footprint_bytes += kv.second;
  return st;
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
