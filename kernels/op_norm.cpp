// op_norm.cpp — reference GroupNorm (NHWC, optional fused SiLU) and LayerNorm (rows).
// Statistics are accumulated in double in a fixed order (two passes: mean, then variance), so they
// do not depend on the thread count; the affine part is y = x*a + b with per-channel
// a = rstd*gamma, b = beta - mean*a in float, as PyTorch's CPU kernels do.
#include <algorithm>
#include <cmath>

#include "core.h"

namespace tdxl {

void ref_group_norm(Pool& pool, const float* x, float* y, int B, int64_t HW, int C, int groups,
                    float eps, const float* gamma, const float* beta, bool silu) {
  if (groups <= 0 || C % groups != 0) throw Error("group_norm: channels not divisible by groups");
  const int cg = C / groups;
  // Statistics: fixed pixel chunks produce per-group partial sums (double), combined in chunk
  // order, so the result is independent of the thread count; rows are read contiguously.
  const int64_t chunk = 512;
  const int64_t nch = (HW + chunk - 1) / chunk;
  std::vector<double> part(static_cast<size_t>(B) * nch * groups);
  std::vector<double> mean(static_cast<size_t>(B) * groups), rstd(static_cast<size_t>(B) * groups);
  const double n = static_cast<double>(HW) * cg;
  for (int pass = 0; pass < 2; pass++) {
    pool.run(static_cast<int64_t>(B) * nch, [&](int64_t task) {
      const int64_t bi = task / nch, c0 = (task % nch) * chunk;
      const int64_t c1 = std::min<int64_t>(HW, c0 + chunk);
      double* ps = part.data() + task * groups;
      const double* mb = mean.data() + bi * groups;
      for (int g = 0; g < groups; g++) ps[g] = 0;
      for (int64_t p = c0; p < c1; p++) {
        const float* xr = x + (bi * HW + p) * C;
        for (int g = 0; g < groups; g++) {
          double acc = 0;
          for (int c = 0; c < cg; c++) {
            const double v = xr[g * cg + c];
            if (pass == 0) {
              acc += v;
            } else {
              const double d = v - mb[g];
              acc += d * d;
            }
          }
          ps[g] += acc;
        }
      }
    });
    for (int bi = 0; bi < B; bi++)
      for (int g = 0; g < groups; g++) {
        double tot = 0;
        for (int64_t k = 0; k < nch; k++) tot += part[(bi * nch + k) * groups + g];
        if (pass == 0)
          mean[bi * groups + g] = tot / n;
        else
          rstd[bi * groups + g] = 1.0 / std::sqrt(tot / n + static_cast<double>(eps));
      }
  }
  std::vector<float> a(static_cast<size_t>(B) * C), b(static_cast<size_t>(B) * C);
  for (int bi = 0; bi < B; bi++)
    for (int ch = 0; ch < C; ch++) {
      const int g = ch / cg;
      const float ga = gamma ? gamma[ch] : 1.f;
      const float be = beta ? beta[ch] : 0.f;
      const float sa = static_cast<float>(rstd[bi * groups + g]) * ga;
      a[bi * C + ch] = sa;
      b[bi * C + ch] = be - static_cast<float>(mean[bi * groups + g]) * sa;
    }
  const int64_t per_b = nch;
  pool.run(static_cast<int64_t>(B) * per_b, [&](int64_t task) {
    const int64_t bi = task / per_b;
    const int64_t p0 = (task % per_b) * chunk;
    const int64_t p1 = std::min<int64_t>(HW, p0 + chunk);
    const float* ab = a.data() + bi * C;
    const float* bb = b.data() + bi * C;
    for (int64_t p = p0; p < p1; p++) {
      const float* xr = x + (bi * HW + p) * C;
      float* yr = y + (bi * HW + p) * C;
      for (int c = 0; c < C; c++) {
        float v = xr[c] * ab[c] + bb[c];
        if (silu) v = static_cast<float>(v / (1.0 + std::exp(-static_cast<double>(v))));
        yr[c] = v;
      }
    }
  });
}

void ref_layer_norm(Pool& pool, const float* x, float* y, int64_t M, int C, float eps,
                    const float* gamma, const float* beta) {
  const int64_t chunk = 16;
  pool.run((M + chunk - 1) / chunk, [&](int64_t task) {
    const int64_t m1 = std::min<int64_t>(M, task * chunk + chunk);
    for (int64_t m = task * chunk; m < m1; m++) {
      const float* xr = x + m * C;
      float* yr = y + m * C;
      double sum = 0;
      for (int c = 0; c < C; c++) sum += xr[c];
      const double mean = sum / C;
      double sq = 0;
      for (int c = 0; c < C; c++) {
        double d = xr[c] - mean;
        sq += d * d;
      }
      const double rstd = 1.0 / std::sqrt(sq / C + static_cast<double>(eps));
      for (int c = 0; c < C; c++) {
        double v = (xr[c] - mean) * rstd;
        float f = static_cast<float>(v);
        yr[c] = f * (gamma ? gamma[c] : 1.f) + (beta ? beta[c] : 0.f);
      }
    }
  });
}

}  // namespace tdxl
