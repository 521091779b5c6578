// op_gemm.cpp — reference packed GEMM: linear layers and NHWC conv2d as implicit GEMM.
//
// Weights are packed once into panels of NR=8 output columns: packed[p][k][j] = W[p*8+j][k] with K
// ordered (ky, kx, ci) for convs and zero padding past N. The micro-kernel keeps an MR×NR=6×8 tile
// in registers (GCC vector extensions, 4-wide: baseline x86-64 SSE2, no -march flags) and walks K in
// blocks of KC; Y itself is the accumulator between K blocks, so every output element is summed over
// k = 0..K-1 in exactly the same order whatever the tiling or thread count (bitwise reproducible).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core.h"

namespace tdxl {

namespace {

constexpr int MR = 6;
constexpr int NR = 8;
constexpr int KC = 256;      // K block
constexpr int MC = 72;       // rows per task (multiple of MR)
constexpr int NC = 128;      // columns per task (multiple of NR)

typedef float v4 __attribute__((vector_size(16)));

inline v4 ldu(const float* p) {
  v4 r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
inline void stu(float* p, v4 v) { std::memcpy(p, &v, sizeof v); }

const float* zero_row() {
  alignas(64) static const float z[KC] = {0};
  return z;
}

// acc[r] (r < mr) over kc steps: rows xr[r][0..kc), panel wp[kc][8]. If first, start from 0,
// else from y. Stores nvalid (<= 8) columns of each row back to y.
template <int R>
void kernel(const float* const* xr, const float* wp, int kc, float* y, int64_t ldy, int nvalid,
            bool first) {
  v4 a0[R], a1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    if (first) {
      a0[r] = v4{0, 0, 0, 0};
      a1[r] = v4{0, 0, 0, 0};
    } else if (nvalid == NR) {
      a0[r] = ldu(y + r * ldy);
      a1[r] = ldu(y + r * ldy + 4);
    } else {
      float t[NR] = {0};
      std::memcpy(t, y + r * ldy, sizeof(float) * nvalid);
      a0[r] = ldu(t);
      a1[r] = ldu(t + 4);
    }
  }
  for (int k = 0; k < kc; k++) {
    v4 w0 = ldu(wp + k * NR);
    v4 w1 = ldu(wp + k * NR + 4);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      float s = xr[r][k];
      v4 b = v4{s, s, s, s};
      a0[r] += b * w0;
      a1[r] += b * w1;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    if (nvalid == NR) {
      stu(y + r * ldy, a0[r]);
      stu(y + r * ldy + 4, a1[r]);
    } else {
      float t[NR];
      stu(t, a0[r]);
      stu(t + 4, a1[r]);
      std::memcpy(y + r * ldy, t, sizeof(float) * nvalid);
    }
  }
}

// The full 6-row tile with named accumulators, so that all twelve stay in registers.
void kernel6(const float* const* xr, const float* wp, int kc, float* y, int64_t ldy, int nvalid,
             bool first) {
  if (nvalid != NR) {
    kernel<6>(xr, wp, kc, y, ldy, nvalid, first);
    return;
  }
  v4 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
  if (first) {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = v4{0, 0, 0, 0};
  } else {
    c00 = ldu(y), c01 = ldu(y + 4);
    c10 = ldu(y + ldy), c11 = ldu(y + ldy + 4);
    c20 = ldu(y + 2 * ldy), c21 = ldu(y + 2 * ldy + 4);
    c30 = ldu(y + 3 * ldy), c31 = ldu(y + 3 * ldy + 4);
    c40 = ldu(y + 4 * ldy), c41 = ldu(y + 4 * ldy + 4);
    c50 = ldu(y + 5 * ldy), c51 = ldu(y + 5 * ldy + 4);
  }
  const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3], *x4 = xr[4], *x5 = xr[5];
  for (int k = 0; k < kc; k++) {
    const v4 w0 = ldu(wp + k * NR), w1 = ldu(wp + k * NR + 4);
    v4 b;
    b = v4{x0[k], x0[k], x0[k], x0[k]};
    c00 += b * w0, c01 += b * w1;
    b = v4{x1[k], x1[k], x1[k], x1[k]};
    c10 += b * w0, c11 += b * w1;
    b = v4{x2[k], x2[k], x2[k], x2[k]};
    c20 += b * w0, c21 += b * w1;
    b = v4{x3[k], x3[k], x3[k], x3[k]};
    c30 += b * w0, c31 += b * w1;
    b = v4{x4[k], x4[k], x4[k], x4[k]};
    c40 += b * w0, c41 += b * w1;
    b = v4{x5[k], x5[k], x5[k], x5[k]};
    c50 += b * w0, c51 += b * w1;
  }
  stu(y, c00), stu(y + 4, c01);
  stu(y + ldy, c10), stu(y + ldy + 4, c11);
  stu(y + 2 * ldy, c20), stu(y + 2 * ldy + 4, c21);
  stu(y + 3 * ldy, c30), stu(y + 3 * ldy + 4, c31);
  stu(y + 4 * ldy, c40), stu(y + 4 * ldy + 4, c41);
  stu(y + 5 * ldy, c50), stu(y + 5 * ldy + 4, c51);
}

void kernel_any(int mr, const float* const* xr, const float* wp, int kc, float* y, int64_t ldy,
                int nvalid, bool first) {
  switch (mr) {
    case 6: kernel6(xr, wp, kc, y, ldy, nvalid, first); break;
    case 5: kernel<5>(xr, wp, kc, y, ldy, nvalid, first); break;
    case 4: kernel<4>(xr, wp, kc, y, ldy, nvalid, first); break;
    case 3: kernel<3>(xr, wp, kc, y, ldy, nvalid, first); break;
    case 2: kernel<2>(xr, wp, kc, y, ldy, nvalid, first); break;
    default: kernel<1>(xr, wp, kc, y, ldy, nvalid, first); break;
  }
}

// Row source: gives, for output row m and tap t, the pointer to the cin input values (or null for
// zero padding).
struct LinearRows {
  const float* x;
  int64_t ldx;
  const float* row(int64_t m, int /*tap*/) const { return x + m * ldx; }
};

struct ConvRows {
  const float* x;
  ConvShape s;
  int kw, cin;
  const float* row(int64_t m, int tap) const {
    int64_t per_img = static_cast<int64_t>(s.OH) * s.OW;
    int64_t b = m / per_img;
    int64_t r = m % per_img;
    int oy = static_cast<int>(r / s.OW), ox = static_cast<int>(r % s.OW);
    int iy = oy * s.stride - s.pad + tap / kw;
    int ix = ox * s.stride - s.pad + tap % kw;
    if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) return nullptr;
    return x + ((b * s.H + iy) * static_cast<int64_t>(s.W) + ix) * cin;
  }
};

template <class Rows>
void gemm_driver(Pool& pool, const Packed& w, const Rows& rows, int64_t M, float* y, int64_t ldy,
                 const float* residual, int64_t ldr) {
  const int64_t N = w.N, K = w.K;
  const int taps = w.kh * w.kw;
  const int cin = w.cin;
  const int64_t mt = (M + MC - 1) / MC, nt = (N + NC - 1) / NC;
  pool.run(mt * nt, [&](int64_t task) {
    const int64_t m0 = (task / nt) * MC, n0 = (task % nt) * NC;
    const int64_t m1 = std::min<int64_t>(M, m0 + MC), n1 = std::min<int64_t>(N, n0 + NC);
    const float* xr[MR];
    bool first = true;
    for (int t = 0; t < taps; t++) {
      for (int c0 = 0; c0 < cin; c0 += KC) {
        const int kc = std::min(KC, cin - c0);
        const int64_t koff = static_cast<int64_t>(t) * cin + c0;
        for (int64_t mb = m0; mb < m1; mb += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, m1 - mb));
          for (int r = 0; r < mr; r++) {
            const float* p = rows.row(mb + r, t);
            xr[r] = p ? p + c0 : zero_row();
          }
          for (int64_t nb = n0; nb < n1; nb += NR) {
            const int nvalid = static_cast<int>(std::min<int64_t>(NR, n1 - nb));
            const float* wp = w.data + (nb / NR) * K * NR + koff * NR;
            kernel_any(mr, xr, wp, kc, y + mb * ldy + nb, ldy, nvalid, first);
          }
        }
        first = false;
      }
    }
    if (first) {  // K == 0: define the output
      for (int64_t m = m0; m < m1; m++)
        for (int64_t n = n0; n < n1; n++) y[m * ldy + n] = 0.f;
    }
    // epilogue: bias, residual
    if (!w.bias.empty() || residual != nullptr) {
      const float* b = w.bias.empty() ? nullptr : w.bias.data();
      for (int64_t m = m0; m < m1; m++) {
        float* yr = y + m * ldy;
        const float* rr = residual ? residual + m * ldr : nullptr;
        for (int64_t n = n0; n < n1; n++) {
          float v = yr[n];
          if (b) v += b[n];
          if (rr) v += rr[n];
          yr[n] = v;
        }
      }
    }
  });
}

void ref_pack(Pool* pool, Packed* p, const float* w, int64_t N, int cin, int kh, int kw,
              const float* bias) {
  const int taps = kh * kw;
  const int64_t K = static_cast<int64_t>(cin) * taps;
  const int64_t panels = (N + NR - 1) / NR;
  p->N = N;
  p->K = K;
  p->kh = kh;
  p->kw = kw;
  p->cin = cin;
  if (p->data) std::free(p->data);
  p->data_len = static_cast<size_t>(panels * K * NR);
  size_t bytes = (p->data_len * sizeof(float) + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  p->data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p->data) throw Error("out of memory packing weights");
  std::memset(p->data, 0, bytes);
  auto panel = [&](int64_t pi) {  // one panel of NR output rows
    for (int64_t n = pi * NR; n < std::min<int64_t>(N, pi * NR + NR); n++) {
      float* dst = p->data + pi * K * NR + (n % NR);
      const float* src = w + n * K;  // [cin][kh][kw]
      for (int ci = 0; ci < cin; ci++)
        for (int t = 0; t < taps; t++)
          dst[(static_cast<int64_t>(t) * cin + ci) * NR] = src[ci * taps + t];
    }
  };
  if (pool)
    pool->run(panels, panel);
  else
    for (int64_t pi = 0; pi < panels; pi++) panel(pi);
  if (bias) p->bias.assign(bias, bias + N);  // else p->bias is left as it is (filled separately)
}

}  // namespace

Packed::~Packed() {
  std::free(data);
  if (ext && ext_free) ext_free(ext);
}

void ref_linear(Pool& pool, const Packed& w, const float* x, int64_t ldx, float* y, int64_t ldy,
                int64_t M, const float* residual, int64_t ldr) {
  if (w.kh != 1 || w.kw != 1) throw Error("linear called with a conv weight");
  LinearRows rows{x, ldx};
  gemm_driver(pool, w, rows, M, y, ldy, residual, ldr);
}

void ref_conv2d(Pool& pool, const Packed& w, const float* x, const ConvShape& s, float* y,
                const float* residual) {
  ConvRows rows{x, s, w.kw, w.cin};
  const int64_t M = static_cast<int64_t>(s.B) * s.OH * s.OW;
  gemm_driver(pool, w, rows, M, y, w.N, residual, w.N);
}

void ref_pack_weights(Pool* pool, Packed* p, const float* w, int64_t N, int cin, int kh, int kw,
                      const float* bias) {
  ref_pack(pool, p, w, N, cin, kh, kw, bias);
}

}  // namespace tdxl
