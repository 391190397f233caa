// cross_entropy.cpp's row loops written with ISA intrinsics (cross_entropy_avx512.cpp), chosen by
// tk::cpu_features(). Declarations only: no inline code may be shared between ISA translation
// units.
#pragma once
#include <cstdint>

namespace tk::cpu::cross_entropy_detail {

// log sum_c exp(x[c]) over one row of n, the sum in double
float row_lse_avx512(const float* x, int64_t n);
// d[c] = g * exp(x[c] - lse)
void row_softmax_scaled_avx512(const float* x, float* d, int64_t n, float lse, float g);

}  // namespace tk::cpu::cross_entropy_detail
