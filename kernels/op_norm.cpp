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
  std::vector<float> a(static_cast<size_t>(B) * C), b(static_cast<size_t>(B) * C);
  pool.run(static_cast<int64_t>(B) * groups, [&](int64_t task) {
    const int64_t bi = task / groups;
    const int g = static_cast<int>(task % groups);
    const float* xb = x + bi * HW * C + static_cast<int64_t>(g) * cg;
    double sum = 0;
    for (int64_t p = 0; p < HW; p++)
      for (int c = 0; c < cg; c++) sum += xb[p * C + c];
    const double n = static_cast<double>(HW) * cg;
    const double mean = sum / n;
    double sq = 0;
    for (int64_t p = 0; p < HW; p++)
      for (int c = 0; c < cg; c++) {
        double d = xb[p * C + c] - mean;
        sq += d * d;
      }
    const double var = sq / n;
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    for (int c = 0; c < cg; c++) {
      const int ch = g * cg + c;
      const float ga = gamma ? gamma[ch] : 1.f;
      const float be = beta ? beta[ch] : 0.f;
      const float sa = static_cast<float>(rstd) * ga;
      a[bi * C + ch] = sa;
      b[bi * C + ch] = be - static_cast<float>(mean) * sa;
    }
  });
  const int64_t chunk = 256;
  const int64_t per_b = (HW + chunk - 1) / chunk;
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
