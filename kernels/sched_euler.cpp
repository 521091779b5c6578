// sched_euler.cpp — EulerAncestralDiscreteScheduler (diffusers 0.26) tables and step, in float32
// exactly as the reference computes them:
//   betas = linspace(√β0, √β1, N, float32)²  (scaled_linear) or linspace(β0, β1, N)  (linear)
//   alphas_cumprod = cumprod(1 - betas) (double accumulator, stored float32, as torch.cumprod)
//   train sigmas = sqrt((1-ac)/ac) (float32), reversed, then 0
//   timesteps ("trailing") = round_half_even(arange(N, 0, -N/steps)) - 1, float32
//   sigmas = interp(timesteps, arange(N), sqrt((1-ac)/ac)) (float64 interp → float32), then 0
//   init_noise_sigma = max(sigmas) (trailing/linspace) or sqrt(max²+1) (leading)
//   step: x0 = x - σ·ε; σ↑ = sqrt(σn²(σ²-σn²)/σ²); σ↓ = sqrt(σn² - σ↑²);
//         x' = x + (x - x0)/σ · (σ↓ - σ) + noise·σ↑
#include <algorithm>
#include <cmath>
#include <vector>

#include "core.h"
#include "tdxl_capi.h"

namespace tdxl {

namespace {
// torch.linspace on CPU for float32 (scalar path): symmetric from both ends.
std::vector<float> linspace_f32(float start, float end, int n) {
  std::vector<float> v(n);
  if (n == 1) {
    v[0] = start;
    return v;
  }
  const float step = (end - start) / static_cast<float>(n - 1);
  const int half = n / 2;
  for (int i = 0; i < n; i++)
    v[i] = (i < half) ? start + step * static_cast<float>(i)
                      : end - step * static_cast<float>(n - i - 1);
  return v;
}
}  // namespace

void sched_tables(const tdxl_sched_config& cfg, int steps, std::vector<float>* timesteps,
                  std::vector<float>* sigmas, float* init_noise_sigma,
                  std::vector<float>* alphas_cumprod, std::vector<float>* train_sigmas) {
  const int N = cfg.num_train_timesteps;
  if (N <= 1 || N > 100000) throw Error("scheduler: bad num_train_timesteps");
  if (steps < 1 || steps > N) throw Error("scheduler: steps must be in [1, num_train_timesteps]");
  std::vector<float> betas;
  if (cfg.beta_schedule == TDXL_BETAS_SCALED_LINEAR) {
    betas = linspace_f32(static_cast<float>(std::sqrt(cfg.beta_start)),
                         static_cast<float>(std::sqrt(cfg.beta_end)), N);
    for (float& b : betas) b = b * b;
  } else if (cfg.beta_schedule == TDXL_BETAS_LINEAR) {
    betas = linspace_f32(static_cast<float>(cfg.beta_start), static_cast<float>(cfg.beta_end), N);
  } else {
    throw Error("scheduler: unsupported beta_schedule");
  }
  std::vector<float> ac(N);
  double acc = 1.0;
  for (int i = 0; i < N; i++) {
    const float alpha = 1.0f - betas[i];
    acc *= static_cast<double>(alpha);
    ac[i] = static_cast<float>(acc);
  }
  std::vector<float> base(N);  // sqrt((1-ac)/ac), float32
  for (int i = 0; i < N; i++) base[i] = std::sqrt((1.0f - ac[i]) / ac[i]);
  if (alphas_cumprod) *alphas_cumprod = ac;
  if (train_sigmas) {
    train_sigmas->assign(base.rbegin(), base.rend());
    train_sigmas->push_back(0.f);
  }
  std::vector<double> ts;
  if (cfg.spacing == TDXL_SPACING_TRAILING) {
    // numpy.arange(N, 0, -ratio): length ceil((0 - N) / -ratio), values N + i*(-ratio)
    const double ratio = static_cast<double>(N) / steps;
    const int64_t len = static_cast<int64_t>(std::ceil((0.0 - N) / -ratio));
    for (int64_t i = 0; i < len; i++) {
      const double v = static_cast<double>(N) + static_cast<double>(i) * -ratio;
      ts.push_back(static_cast<double>(static_cast<float>(std::nearbyint(v))) - 1.0);
    }
  } else if (cfg.spacing == TDXL_SPACING_LEADING) {
    const int ratio = N / steps;
    for (int i = steps - 1; i >= 0; i--)
      ts.push_back(static_cast<double>(static_cast<float>(std::nearbyint(static_cast<double>(i) * ratio))) +
                   cfg.steps_offset);
  } else if (cfg.spacing == TDXL_SPACING_LINSPACE) {
    for (int i = steps - 1; i >= 0; i--) {
      const double v = steps == 1 ? 0.0 : static_cast<double>(N - 1) * i / (steps - 1);
      ts.push_back(v);
    }
  } else {
    throw Error("scheduler: unsupported timestep_spacing");
  }
  if (static_cast<int>(ts.size()) != steps) throw Error("scheduler: internal timestep count mismatch");
  timesteps->resize(steps);
  sigmas->resize(steps + 1);
  float mx = 0;
  for (int i = 0; i < steps; i++) {
    const float tf = static_cast<float>(ts[i]);
    (*timesteps)[i] = tf;
    const double x = static_cast<double>(tf);
    double s;
    if (x <= 0) {
      s = base[0];
    } else if (x >= N - 1) {
      s = base[N - 1];
    } else {
      const int j = static_cast<int>(std::floor(x));
      const double slope = (static_cast<double>(base[j + 1]) - base[j]) / 1.0;
      s = slope * (x - j) + base[j];
    }
    (*sigmas)[i] = static_cast<float>(s);
    mx = std::max(mx, (*sigmas)[i]);
  }
  (*sigmas)[steps] = 0.f;
  *init_noise_sigma =
      (cfg.spacing == TDXL_SPACING_LEADING) ? std::sqrt(mx * mx + 1.0f) : mx;
}

// Euler-ancestral update in place, all float32.
void euler_ancestral_step(float* x, const float* eps, const float* noise, int64_t n, float sigma,
                          float sigma_next, int prediction) {
  const float s2 = sigma * sigma, sn2 = sigma_next * sigma_next;
  const float sigma_up = std::sqrt(sn2 * (s2 - sn2) / s2);
  const float sigma_down = std::sqrt(sn2 - sigma_up * sigma_up);
  const float dt = sigma_down - sigma;
  const float vden = std::sqrt(s2 + 1.0f);
  for (int64_t i = 0; i < n; i++) {
    float x0;
    if (prediction == TDXL_PRED_V)
      x0 = eps[i] * (-sigma / vden) + x[i] / (s2 + 1.0f);
    else
      x0 = x[i] - sigma * eps[i];
    const float deriv = (x[i] - x0) / sigma;
    float v = x[i] + deriv * dt;
    if (noise) v = v + noise[i] * sigma_up;
    x[i] = v;
  }
}

}  // namespace tdxl
