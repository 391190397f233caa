// Small AVX-512 helpers of the element-wise, cross-entropy and attention ISA files (the
// *_avx512.cpp files only: compiled with AVX-512 flags; internal linkage in each): lane masks, and
// exp on 16 f32 lanes with the range reduction and degree-7 Taylor polynomial of elementwise.h's
// exp_fast, 2^n applied by vscalefps, which reaches the subnormals and overflows to inf in one
// instruction (exp_fast builds 2^n in two halves for that).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace tk::cpu {
namespace {

// The first n of 16 lanes (none for n <= 0, all for n >= 16): a row's tail under a mask.
inline __mmask16 lanes_below(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u);
}

// p(r) ~ exp(r), |r| <= ln2 / 2, and n, for x already clamped to a finite range.
inline __m512 exp_reduced(__m512 x) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// exp(t) for t clamped to [-88, 88], for callers whose arguments saturate there (a sigmoid's
// e^-z: e^-88 ~ 6e-39 is 0 to them). A NaN t comes out as a clamp bound: such callers multiply
// by the input, which carries the NaN through.
inline __m512 exp_clamped(__m512 t) {
  return exp_reduced(_mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f)));
}

// exp(x) with exp_fast's edges: exactly 0 below -104 (and for -inf: a masked score), inf above
// ~88.7, NaN passed through.
inline __m512 exp_full(__m512 x) {
  const __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.0f)), _mm512_set1_ps(89.0f));
  __m512 e = exp_reduced(xc);
  e = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, _mm512_set1_ps(-104.0f), _CMP_LT_OQ), _mm512_setzero_ps());
  return _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

}  // namespace
}  // namespace tk::cpu
