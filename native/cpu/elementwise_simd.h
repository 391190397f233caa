// Element-wise kernels written with ISA intrinsics (elementwise_avx512.cpp), dispatched from
// elementwise.cpp's unary / unary_backward by tk::cpu_features(). Declarations only: no inline
// code may be shared between ISA translation units.
#pragma once
#include <cstdint>

namespace tk::cpu::elementwise_detail {

// y = GELU (tanh form) of x; dx = dy GELU'(x)   (n elements)
void gelu_tanh_avx512(const float* x, float* y, int64_t n);
void gelu_tanh_backward_avx512(const float* x, const float* dy, float* dx, int64_t n);
// y = x sigmoid(x); dx = dy SiLU'(x)
void silu_avx512(const float* x, float* y, int64_t n);
void silu_backward_avx512(const float* x, const float* dy, float* dx, int64_t n);

}  // namespace tk::cpu::elementwise_detail
