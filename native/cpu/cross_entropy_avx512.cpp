// cross_entropy.cpp's two row loops with AVX-512 intrinsics (compiled with AVX-512 flags; called
// where tk::cpu_features() reports AVX-512F). The portable loops vectorise, but their exp builds
// 2^n in two halves and their double sum goes through a buffer of 256 exps; here exp scales by
// vscalefps (math_avx512.h) and each vector of exps is widened and summed as it is made. GPT-2's
// 512 x 50257 logits: see bench/RESULTS.md.
#include <immintrin.h>

#include <cstdint>
#include <cmath>
#include <limits>

#include "cross_entropy_simd.h"
#include "math_avx512.h"

namespace tk::cpu::cross_entropy_detail {

float row_lse_avx512(const float* x, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  // max over the lanes; vmaxps returns its second operand when the first is NaN, so NaNs are
  // skipped here (as the portable loop's x > m does) and show up in the sum
  __m512 mx = ninf;
  for (int64_t i = 0; i < n; i += 16) mx = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, lanes_below(n - i), x + i), mx);
  const float m = _mm512_reduce_max_ps(mx);
  const __m512 vm = _mm512_set1_ps(m);
  // sum exp(x - m) in double: each vector's 16 exps widened to two 8-lane halves
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = lanes_below(n - i);
    const __m512 e = _mm512_maskz_mov_ps(k, exp_full(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm)));
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  const double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  return static_cast<float>(m + std::log(s));
}

void row_softmax_scaled_avx512(const float* x, float* d, int64_t n, float lse, float g) {
  const __m512 vl = _mm512_set1_ps(lse), vg = _mm512_set1_ps(g);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = lanes_below(n - i);
    _mm512_mask_storeu_ps(d + i, k, _mm512_mul_ps(vg, exp_full(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vl))));
  }
}

}  // namespace tk::cpu::cross_entropy_detail
