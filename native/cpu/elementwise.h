// Element-wise f32 kernels: binary ops with broadcasting strides, unary ops and their backward,
// and the two whole-tensor scans the trainer needs (sum of squares for the global gradient norm,
// count of non-finite values for the overflow check).
//
// Conventions (shared with lib/native.ts):
//   - contiguous row-major f32 unless a stride argument says otherwise; strides are in elements;
//   - backward kernels write (overwrite) dx, never accumulate;
//   - every op has a plain `*_reference` (the oracle in tests) and a fast version (vectorisable
//     inner loops, multi-threaded over the core pool, single-threaded for small tensors).
//   - NaN propagates like PyTorch: maximum/minimum return NaN when either operand is NaN.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/op_codes.h"

namespace tk::cpu {

// Op codes: one list each in core/op_codes.h, shared with the CUDA backend and lib/native.ts.
using tk::BinaryOp;
using tk::kNumBinaryOps;
using tk::kNumUnaryOps;
using tk::UnaryOp;

const char* binary_op_name(BinaryOp op);
const char* unary_op_name(UnaryOp op);

// out[shape] = a[.] op b[.]: element (i0..i{nd-1}) of out (contiguous) reads
// a[sum_k i_k * a_strides[k]] and b[sum_k i_k * b_strides[k]] (stride 0 = broadcast).
// Strides must be >= 0. Division by zero gives +-inf / NaN as IEEE says.
void binary_reference(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
                      const int64_t* a_strides, const int64_t* b_strides);
void binary(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides);

// y[n] = f(x[n]); `param` is the scalar of MulScalar / AddScalar / PowScalar. y may alias x.
void unary_reference(UnaryOp op, const float* x, float* y, int64_t n, float param);
void unary(UnaryOp op, const float* x, float* y, int64_t n, float param);

// dx[n] = dy[n] * f'(x[n]); y = f(x) is given as well, rules use whichever is cheaper/exacter
// (exp, tanh, sigmoid, sqrt, rsqrt use y; the rest use x).
void unary_backward_reference(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n,
                              float param);
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n,
                    float param);

// sum_i x[i]^2 in double. The fast version sums fixed 64Ki-element blocks, so the result does not
// depend on the thread count.
double sum_squares_reference(const float* x, int64_t n);
double sum_squares(const float* x, int64_t n);

// number of NaN / +-inf among x[0..n)
int64_t count_non_finite_reference(const float* x, int64_t n);
int64_t count_non_finite(const float* x, int64_t n);

// ---- small shared numerics (header-inline so other kernel files can vectorise with them) ----

// exp(x) for f32, branch-free so loops over it vectorise: range reduction x = k ln2 + r,
// |r| <= ln2/2, then a degree-7 Taylor polynomial (truncation error < 6e-9 relative) and
// 2^k built in two halves so that results down into the subnormals and up to +inf come out
// right. Relative error ~2 ulp over the normal range; exp(-inf) = 0, exp(+inf) = inf, NaN -> NaN.
inline float exp_fast(float x) {
  const float lo = -104.0f, hi = 89.0f;
  float xc = x < lo ? lo : x;  // NaN compares false and stays NaN here ...
  xc = xc > hi ? hi : xc;
  // round-to-nearest of x*log2(e) with the 1.5*2^23 trick (no floor/nearbyint libcall)
  const float magic = 12582912.0f;
  float t = xc * 1.44269504088896341f + magic;
  float k = t - magic;
  int32_t tb;
  std::memcpy(&tb, &t, 4);
  int32_t ki = tb - 0x4B400000;  // integer k (bits of magic are 0x4B400000)
  float r = xc - k * 0.693145751953125f;  // ln2 split hi/lo so k*hi is exact
  r = r - k * 1.428606765330187e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t k1 = ki >> 1, k2 = ki - k1;  // 2^k = 2^k1 * 2^k2, each exponent in range
  int32_t b1 = (k1 + 127) << 23, b2 = (k2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  float res = p * s1 * s2;
  res = x < lo ? 0.0f : res;
  return x != x ? x : res;  // ... and NaN is passed through here
}

// 1 / (1 + exp(-x)), saturating cleanly to 0 and 1.
inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_fast(-x)); }

// e[i] = exp(x[i] - shift) for i < n (x and e must not overlap)
void exp_shift(const float* x, float* e, int64_t n, float shift);

// sum_i exp(x[i] - shift) in double; the exps are also stored in y when y is non-null.
double exp_shift_sum(const float* x, float* y, int64_t n, float shift);

}  // namespace tk::cpu

// Function multi-versioning for hot loops (AVX-512, AVX2, baseline), picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TK_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TK_SIMD_CLONES
#endif

