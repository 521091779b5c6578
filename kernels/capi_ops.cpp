// capi_ops.cpp — test hooks: run one reference op on caller buffers (used by the op tests in Go,
// and usable as the oracle of faster variants). Not for production paths.
#include <cstring>

#include "core.h"
#include "tdxl_capi.h"

using namespace tdxl;

namespace {
Pool& test_pool(int threads) {
  static Pool p1(1), p2(2), p4(4);
  return threads <= 1 ? p1 : threads == 2 ? p2 : p4;
}
template <class F>
int guarded(F f) {
  try {
    f();
    return TDXL_OK;
  } catch (...) {
    return TDXL_ERR;
  }
}
}  // namespace

extern "C" {

int tdxl_op_linear(int threads, const float* w, const float* bias, int64_t N, int64_t K,
                   const float* x, int64_t M, const float* residual, float* y) {
  return guarded([&] {
    Packed p;
    ref_ops().pack(nullptr, &p, w, N, static_cast<int>(K), 1, 1, bias);
    ref_ops().linear(test_pool(threads), p, x, K, y, N, M, residual, N);
  });
}

int tdxl_op_conv2d(int threads, const float* w, const float* bias, int cout, int cin, int k,
                   int stride, int pad, const float* x, int B, int H, int W, float* y) {
  return guarded([&] {
    Packed p;
    ref_ops().pack(nullptr, &p, w, cout, cin, k, k, bias);
    ConvShape s{B, H, W, (H + 2 * pad - k) / stride + 1, (W + 2 * pad - k) / stride + 1, stride, pad};
    ref_ops().conv2d(test_pool(threads), p, x, s, y, nullptr);
  });
}

int tdxl_op_attention(int threads, const float* q, const float* k, const float* v, float* o, int B,
                      int64_t Tq, int64_t Tk, int H, int D, float scale, int causal) {
  return guarded([&] {
    const int64_t ld = static_cast<int64_t>(H) * D;
    ref_ops().attention(test_pool(threads), q, ld, k, ld, v, ld, o, ld, B, Tq, Tk, H, D, scale,
                        causal != 0);
  });
}

int tdxl_op_group_norm(int threads, const float* x, float* y, int B, int64_t HW, int C, int groups,
                       float eps, const float* gamma, const float* beta, int silu) {
  return guarded([&] {
    ref_ops().group_norm(test_pool(threads), x, y, B, HW, C, groups, eps, gamma, beta, silu != 0);
  });
}

}  // extern "C"
