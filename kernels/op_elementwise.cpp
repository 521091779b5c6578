// op_elementwise.cpp — activations, GEGLU, residual add, nearest upsample, channel concat,
// sinusoidal timestep embedding and NCHW/NHWC conversion. Transcendentals are evaluated in double
// and rounded once to float (at least as accurate as PyTorch's vectorised float versions).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core.h"

namespace tdxl {

namespace {
constexpr int64_t CHUNK = 4096;

template <class F>
void map_inplace(Pool& pool, float* x, int64_t n, F f) {
  pool.run((n + CHUNK - 1) / CHUNK, [&](int64_t t) {
    const int64_t i1 = std::min<int64_t>(n, t * CHUNK + CHUNK);
    for (int64_t i = t * CHUNK; i < i1; i++) x[i] = f(x[i]);
  });
}

inline float gelu_erf(float x) {
  return static_cast<float>(0.5 * x * (1.0 + std::erf(static_cast<double>(x) * M_SQRT1_2)));
}
}  // namespace

void silu_inplace(Pool& pool, float* x, int64_t n) {
  map_inplace(pool, x, n, [](float v) {
    return static_cast<float>(v / (1.0 + std::exp(-static_cast<double>(v))));
  });
}

void gelu_erf_inplace(Pool& pool, float* x, int64_t n) { map_inplace(pool, x, n, gelu_erf); }

void quick_gelu_inplace(Pool& pool, float* x, int64_t n) {
  // transformers QuickGELU: x * sigmoid(1.702 * x), the product 1.702*x rounded in float
  map_inplace(pool, x, n, [](float v) {
    const float z = 1.702f * v;
    const float sg = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(z))));
    return v * sg;
  });
}

void geglu(Pool& pool, const float* h, float* out, int64_t M, int64_t F) {
  const int64_t rows = std::max<int64_t>(1, CHUNK / std::max<int64_t>(1, F));
  pool.run((M + rows - 1) / rows, [&](int64_t t) {
    const int64_t m1 = std::min<int64_t>(M, t * rows + rows);
    for (int64_t m = t * rows; m < m1; m++) {
      const float* hr = h + m * 2 * F;
      float* o = out + m * F;
      for (int64_t f = 0; f < F; f++) o[f] = hr[f] * gelu_erf(hr[F + f]);
    }
  });
}

void add_inplace(Pool& pool, float* y, const float* x, int64_t n) {
  pool.run((n + CHUNK - 1) / CHUNK, [&](int64_t t) {
    const int64_t i1 = std::min<int64_t>(n, t * CHUNK + CHUNK);
    for (int64_t i = t * CHUNK; i < i1; i++) y[i] += x[i];
  });
}

namespace {
// PyTorch upsample_nearest2d source index (nearest_idx in UpSample.h).
inline int nearest_src(int dst, int in, int out) {
  if (out == in) return dst;
  if (out == 2 * in) return dst >> 1;
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  int s = static_cast<int>(std::floor(static_cast<float>(dst) * scale));
  return std::min(s, in - 1);
}
}  // namespace

void upsample_nearest(Pool& pool, const float* x, float* y, int B, int H, int W, int C, int OH,
                      int OW) {
  pool.run(static_cast<int64_t>(B) * OH, [&](int64_t t) {
    const int64_t b = t / OH;
    const int oy = static_cast<int>(t % OH);
    const int iy = nearest_src(oy, H, OH);
    for (int ox = 0; ox < OW; ox++) {
      const int ix = nearest_src(ox, W, OW);
      std::memcpy(y + ((b * OH + oy) * static_cast<int64_t>(OW) + ox) * C,
                  x + ((b * H + iy) * static_cast<int64_t>(W) + ix) * C, sizeof(float) * C);
    }
  });
}

void concat_channels(Pool& pool, const float* a, int Ca, const float* b, int Cb, float* y,
                     int64_t P) {
  const int64_t rows = 256;
  pool.run((P + rows - 1) / rows, [&](int64_t t) {
    const int64_t p1 = std::min<int64_t>(P, t * rows + rows);
    for (int64_t p = t * rows; p < p1; p++) {
      std::memcpy(y + p * (Ca + Cb), a + p * Ca, sizeof(float) * Ca);
      std::memcpy(y + p * (Ca + Cb) + Ca, b + p * Cb, sizeof(float) * Cb);
    }
  });
}

void timestep_embedding(const float* t, int64_t n, int dim, bool flip_sin_to_cos,
                        float downscale_freq_shift, float* out) {
  const int half = dim / 2;
  const float neg_log = static_cast<float>(-std::log(10000.0));
  std::vector<float> freq(static_cast<size_t>(half));
  for (int i = 0; i < half; i++) {
    float e = neg_log * static_cast<float>(i);
    e = e / (static_cast<float>(half) - downscale_freq_shift);
    freq[i] = static_cast<float>(std::exp(static_cast<double>(e)));
  }
  for (int64_t r = 0; r < n; r++) {
    float* o = out + r * dim;
    for (int i = 0; i < half; i++) {
      const float arg = t[r] * freq[i];
      const float s = static_cast<float>(std::sin(static_cast<double>(arg)));
      const float c = static_cast<float>(std::cos(static_cast<double>(arg)));
      if (flip_sin_to_cos) {
        o[i] = c;
        o[half + i] = s;
      } else {
        o[i] = s;
        o[half + i] = c;
      }
    }
    if (dim % 2 == 1) o[dim - 1] = 0.f;
  }
}

void nchw_to_nhwc(const float* x, float* y, int B, int C, int H, int W) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int i = 0; i < H * W; i++)
        y[(static_cast<int64_t>(b) * H * W + i) * C + c] = x[(static_cast<int64_t>(b) * C + c) * H * W + i];
}

void nhwc_to_nchw(const float* x, float* y, int B, int C, int H, int W) {
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int i = 0; i < H * W; i++)
        y[(static_cast<int64_t>(b) * C + c) * H * W + i] = x[(static_cast<int64_t>(b) * H * W + i) * C + c];
}

}  // namespace tdxl
