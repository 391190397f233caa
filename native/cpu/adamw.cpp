// AdamW kernel. See adamw.h.
#include "adamw.h"

#include <cmath>

#include "../core/cpu_features.h"
#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace adamw_detail {
void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float one_b1,
                  float one_b2, float eps, float decay, float step_size, float bc2_sqrt);  // adamw_avx512.cpp
}  // namespace adamw_detail

namespace {

constexpr int64_t kGrain = 16384;  // 4 streams of f32 per element: memory bound

// Scalars derived once per call, in double like PyTorch's Python-side arithmetic.
struct Derived {
  float beta1, beta2, one_b1, one_b2, eps;
  float decay;       // 1 - lr wd
  float step_size;   // lr / bc1
  float bc2_sqrt;    // sqrt(bc2), divided by as PyTorch does
};

Derived derive(const AdamWHyper& h) {
  double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  Derived d;
  d.beta1 = static_cast<float>(h.beta1);
  d.beta2 = static_cast<float>(h.beta2);
  d.one_b1 = static_cast<float>(1.0 - h.beta1);
  d.one_b2 = static_cast<float>(1.0 - h.beta2);
  d.eps = static_cast<float>(h.eps);
  d.decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  d.step_size = static_cast<float>(h.lr / bc1);
  d.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  return d;
}

TK_SIMD_CLONES void adamw_chunk(float* p, const float* g, float* m, float* v, int64_t n, Derived d) {
  const float b1 = d.beta1, b2 = d.beta2, one_b1 = d.one_b1, one_b2 = d.one_b2, eps = d.eps;
  for (int64_t i = 0; i < n; ++i) {
    float gi = g[i];
    float mi = b1 * m[i] + one_b1 * gi;
    float vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = std::sqrt(vi) / d.bc2_sqrt + eps;
    p[i] = p[i] * d.decay - d.step_size * mi / denom;
  }
}

}  // namespace

void adamw_reference(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h) {
  // the textbook formula, in double
  double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  for (int64_t i = 0; i < n; ++i) {
    double p = param[i], g = grad[i];
    p -= h.lr * h.weight_decay * p;
    double mi = h.beta1 * static_cast<double>(m[i]) + (1.0 - h.beta1) * g;
    double vi = h.beta2 * static_cast<double>(v[i]) + (1.0 - h.beta2) * g * g;
    double mhat = mi / bc1, vhat = vi / bc2;
    p -= h.lr * mhat / (std::sqrt(vhat) + h.eps);
    param[i] = static_cast<float>(p);
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
  }
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h) {
  Derived d = derive(h);
  const bool avx512 = cpu_features().avx512f;
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (avx512)
      adamw_detail::adamw_avx512(param + b, grad + b, m + b, v + b, e - b, d.beta1, d.beta2, d.one_b1, d.one_b2, d.eps,
                                 d.decay, d.step_size, d.bc2_sqrt);
    else
      adamw_chunk(param + b, grad + b, m + b, v + b, e - b, d);
  });
}

}  // namespace tk::cpu
