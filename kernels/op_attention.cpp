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

inline float dot(const float* a, const float* b, int n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; i++) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
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
    const float* kb = k + b * Tk * ldk + static_cast<int64_t>(h) * D;
    const float* vb = v + b * Tk * ldv + static_cast<int64_t>(h) * D;
    for (int64_t j = 0; j < Tk; j++) {
      const float* kj = kb + j * ldk;
      for (int r = 0; r < nq; r++) {
        const float* qi = q + (b * Tq + i0 + r) * ldq + static_cast<int64_t>(h) * D;
        s[r * Tk + j] = dot(qi, kj, D) * scale;
      }
    }
    for (int r = 0; r < nq; r++) {
      const int64_t i = i0 + r;
      const int64_t nk = causal ? std::min<int64_t>(Tk, i + 1) : Tk;
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
      float* oi = o + (b * Tq + i) * ldo + static_cast<int64_t>(h) * D;
      std::vector<float> of(static_cast<size_t>(D), 0.f);
      for (int64_t j = 0; j < nk; j++) {
        const float p = sr[j];
        const float* vj = vb + j * ldv;
        for (int d = 0; d < D; d++) of[d] += p * vj[d];
      }
      std::memcpy(oi, of.data(), sizeof(float) * D);
    }
  });
}

}  // namespace tdxl
