// The sigmoid-based activations (GELU tanh form, SiLU) and their backwards with AVX-512
// intrinsics (compiled with AVX-512 flags; elementwise.cpp dispatches here when
// tk::cpu_features().avx512f). Why: the portable loops (elementwise.cpp) vectorise, but their
// exp builds 2^k in two halves to reach the subnormals, and 1 / (1 + e) is a vdivps; here exp
// scales by vscalefps (any k in one instruction) and the reciprocal is vrcp14ps refined by one
// Newton step (relative error ~2^-28, under an f32 ulp). GPT-2's GELU over a 512 x 3072
// activation, 2 threads on Zen 4: forward 0.55 -> 0.37 ms, backward 0.67 -> 0.50 ms (SiLU 0.43 ->
// 0.29, 0.49 -> 0.39); about one 512-bit instruction a cycle, so compute-bound still.
#include <immintrin.h>

#include <cstdint>

#include "elementwise_simd.h"
#include "math_avx512.h"

namespace tk::cpu::elementwise_detail {
namespace {

// 1 / (1 + exp(-z)): d in [1, e^88], its reciprocal from vrcp14ps and one Newton step.
inline __m512 sigmoid(__m512 z) {
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_clamped(_mm512_sub_ps(_mm512_setzero_ps(), z)));
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kA = 0.044715f;

// GELU (tanh form) = x sigmoid(2u), u = c (x + a x^3): 0.5 (1 + tanh u) == sigmoid(2u).
inline __m512 gelu_sigmoid_arg(__m512 x) {
  const __m512 x2 = _mm512_mul_ps(x, x);
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f * kC), x), _mm512_fmadd_ps(_mm512_set1_ps(kA), x2, _mm512_set1_ps(1.0f)));
}

}  // namespace

void gelu_tanh_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid(gelu_sigmoid_arg(v))));
  }
}

// dy/dx = s + 2 x s (1 - s) u', u' = c (1 + 3 a x^2)
void gelu_tanh_backward_avx512(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 s = sigmoid(gelu_sigmoid_arg(v));
    const __m512 du = _mm512_mul_ps(_mm512_set1_ps(kC), _mm512_fmadd_ps(_mm512_set1_ps(3.0f * kA), _mm512_mul_ps(v, v), _mm512_set1_ps(1.0f)));
    const __m512 s1s = _mm512_mul_ps(s, _mm512_sub_ps(_mm512_set1_ps(1.0f), s));
    const __m512 g = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_add_ps(v, v), s1s), du, s);
    _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), g));
  }
}

void silu_avx512(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, sigmoid(v)));
  }
}

// dy/dx = s (1 + x (1 - s))
void silu_backward_avx512(const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 s = sigmoid(v);
    const __m512 g = _mm512_mul_ps(s, _mm512_fmadd_ps(v, _mm512_sub_ps(_mm512_set1_ps(1.0f), s), _mm512_set1_ps(1.0f)));
    _mm512_mask_storeu_ps(dx + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), g));
  }
}

}  // namespace tk::cpu::elementwise_detail
