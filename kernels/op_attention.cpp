// op_attention.cpp — reference multi-head attention, blockwise over queries.
// For a block of QB queries of one (batch, head) the scores against all keys are kept in a
// per-task buffer of QB×Tk floats (never a Tq×Tk matrix); softmax is max-subtracted and
// normalised before the weighted sum of V, as PyTorch's softmax + bmm does. scale multiplies the
// q·k product (diffusers' baddbmm alpha); CLIP pre-scales q itself and passes scale 1.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core.h"

namespace tdxl {

namespace {
constexpr int QB = 4;

typedef float v4 __attribute__((vector_size(16)));

inline v4 ldu(const float* p) {
  v4 r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
inline void stu(float* p, v4 v) { std::memcpy(p, &v, sizeof v); }
inline float hsum(v4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// s[r] = q[r]·k for r < nq (4-wide partial sums, then a fixed-order tail).
inline void dots(const float* const* q, int nq, const float* k, int D, float* s) {
  v4 a[QB] = {};
  int d = 0;
  for (; d + 4 <= D; d += 4) {
    const v4 kv = ldu(k + d);
    for (int r = 0; r < QB; r++)
      if (r < nq) a[r] += ldu(q[r] + d) * kv;
  }
  for (int r = 0; r < nq; r++) {
    float t = hsum(a[r]);
    for (int e = d; e < D; e++) t += q[r][e] * k[e];
    s[r] = t;
  }
}

// o[r] += p[r] * v for r < nq
inline void axpys(float* const* o, int nq, const float* p, const float* v, int D) {
  int d = 0;
  for (; d + 4 <= D; d += 4) {
    const v4 vv = ldu(v + d);
    for (int r = 0; r < QB; r++)
      if (r < nq) stu(o[r] + d, ldu(o[r] + d) + vv * p[r]);
  }
  for (; d < D; d++)
    for (int r = 0; r < nq; r++) o[r][d] += p[r] * v[d];
}
}  // namespace

void ref_attention(Pool& pool, const float* q, int64_t ldq, const float* k, int64_t ldk,
                   const float* v, int64_t ldv, float* o, int64_t ldo, int B, int64_t Tq,
                   int64_t Tk, int H, int D, float scale, bool causal) {
  const int64_t qblocks = (Tq + QB - 1) / QB;
  pool.run(static_cast<int64_t>(B) * H * qblocks, [&](int64_t task) {
    const int64_t qb = task % qblocks;
    const int h = static_cast<int>((task / qblocks) % H);
    const int64_t b = task / (qblocks * H);
    const int64_t i0 = qb * QB;
    const int nq = static_cast<int>(std::min<int64_t>(QB, Tq - i0));
    std::vector<float> s(static_cast<size_t>(QB) * Tk);
    std::vector<float> acc(static_cast<size_t>(QB) * D, 0.f);
    const float* kb = k + b * Tk * ldk + static_cast<int64_t>(h) * D;
    const float* vb = v + b * Tk * ldv + static_cast<int64_t>(h) * D;
    const float* qr[QB];
    float* orow[QB];
    for (int r = 0; r < QB; r++) {
      qr[r] = q + (b * Tq + i0 + std::min(r, nq - 1)) * ldq + static_cast<int64_t>(h) * D;
      orow[r] = acc.data() + static_cast<int64_t>(r) * D;
    }
    // visible keys: all, or j <= i for causal (the block's last query sees the most)
    const int64_t nk_max = causal ? std::min<int64_t>(Tk, i0 + nq) : Tk;
    float sj[QB];
    for (int64_t j = 0; j < nk_max; j++) {
      dots(qr, nq, kb + j * ldk, D, sj);
      for (int r = 0; r < nq; r++) s[r * Tk + j] = sj[r] * scale;
    }
    float pj[QB];
    for (int r = 0; r < nq; r++) {
      const int64_t nk = causal ? std::min<int64_t>(Tk, i0 + r + 1) : Tk;
      float* sr = s.data() + r * Tk;
      float mx = -INFINITY;
      for (int64_t j = 0; j < nk; j++) mx = std::max(mx, sr[j]);
      float sum = 0;
      for (int64_t j = 0; j < nk; j++) {
        sr[j] = std::exp(sr[j] - mx);
        sum += sr[j];
      }
      const float inv = 1.f / sum;
      for (int64_t j = 0; j < nk; j++) sr[j] *= inv;
      for (int64_t j = nk; j < nk_max; j++) sr[j] = 0.f;  // masked keys contribute nothing
    }
    for (int64_t j = 0; j < nk_max; j++) {
      for (int r = 0; r < nq; r++) pj[r] = s[r * Tk + j];
      axpys(orow, nq, pj, vb + j * ldv, D);
    }
    for (int r = 0; r < nq; r++)
      std::memcpy(o + (b * Tq + i0 + r) * ldo + static_cast<int64_t>(h) * D, orow[r],
                  sizeof(float) * D);
  });
}

}  // namespace tdxl
