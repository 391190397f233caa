// AdamW inner loop with AVX-512 intrinsics (CMake compiles *_avx512.cpp with AVX-512 flags;
// adamw.cpp dispatches here when tk::cpu_features().avx512f). Exists because GCC will not
// vectorise std::sqrt without -fno-math-errno, which the portable loop cannot assume.
// Same arithmetic, same order as adamw_chunk in adamw.cpp (FMA may fuse the multiply-adds).
#include <immintrin.h>

#include <cstdint>

namespace tk::cpu::adamw_detail {

// p, g, m, v (n): one AdamW update; scalars precomputed by the caller (see adamw.cpp)
void adamw_avx512(float* p, const float* g, float* m, float* v, int64_t n, float beta1, float beta2, float one_b1,
                  float one_b2, float eps, float decay, float step_size, float bc2_sqrt) {
  const __m512 B1 = _mm512_set1_ps(beta1), B2 = _mm512_set1_ps(beta2), OB1 = _mm512_set1_ps(one_b1),
               OB2 = _mm512_set1_ps(one_b2), EPS = _mm512_set1_ps(eps), DEC = _mm512_set1_ps(decay),
               STEP = _mm512_set1_ps(step_size), BC2 = _mm512_set1_ps(bc2_sqrt);
  for (int64_t i = 0; i < n; i += 16) {
    // the tail runs under a lane mask, so there is no scalar remainder loop
    __mmask16 k = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 gi = _mm512_maskz_loadu_ps(k, g + i);
    __m512 mi = _mm512_add_ps(_mm512_mul_ps(B1, _mm512_maskz_loadu_ps(k, m + i)), _mm512_mul_ps(OB1, gi));
    __m512 vi = _mm512_add_ps(_mm512_mul_ps(B2, _mm512_maskz_loadu_ps(k, v + i)),
                              _mm512_mul_ps(_mm512_mul_ps(OB2, gi), gi));
    _mm512_mask_storeu_ps(m + i, k, mi);
    _mm512_mask_storeu_ps(v + i, k, vi);
    __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), BC2), EPS);
    __m512 pi = _mm512_maskz_loadu_ps(k, p + i);
    pi = _mm512_sub_ps(_mm512_mul_ps(pi, DEC), _mm512_div_ps(_mm512_mul_ps(STEP, mi), denom));
    _mm512_mask_storeu_ps(p + i, k, pi);
  }
}

}  // namespace tk::cpu::adamw_detail
