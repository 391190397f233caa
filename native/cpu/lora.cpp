// Linear + LoRA on the CPU: a sequence of GEMM calls (each multi-threaded by gemm_f32) and a
// plain reference. See lora.h for shapes and semantics.
#include "lora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"

namespace tk::cpu {

namespace {

// C [M, N] = alpha op(A) op(B) + beta C, contiguous operands with the given leading dims.
inline void gemm_call(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: C = beta C, without asking the GEMM about an empty inner dimension
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  gemm_f32(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

void check_lora_shape(const LoraShape& s) {
  TK_CHECK(s.M >= 0 && s.in >= 0 && s.out >= 0 && s.r >= 0, Shape, "loraLinear: negative size M=", s.M,
           " in=", s.in, " out=", s.out, " r=", s.r);
  TK_CHECK(std::isfinite(s.scale), Value, "loraLinear: scale must be finite but is ", s.scale);
}

void lora_linear_forward_f32(const LoraShape& s, const float* x, const float* xd, const float* w,
                             const float* bias, const float* a, const float* b, float* y, float* xa) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  // y = bias broadcast over rows, then the base product accumulates onto it.
  if (bias) {
    parallel_for(M, 64, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) std::copy(bias, bias + out, y + i * out);
    });
  }
  const float base_beta = bias ? 1.0f : 0.0f;
  // y [M, out] (+)= x [M, in] W^T  (W [out, in])   or   x W  (W [in, out])
  if (s.w_in_out) gemm_call(false, false, M, out, in, 1.0f, x, in, w, out, base_beta, y, out);
  else gemm_call(false, true, M, out, in, 1.0f, x, in, w, in, base_beta, y, out);
  if (r == 0) return;
  // xa [M, r] = xd [M, in] A^T  (A [r, in])
  gemm_call(false, true, M, r, in, 1.0f, xd, in, a, in, 0.0f, xa, r);
  // y [M, out] += s xa [M, r] B^T  (B [out, r])
  gemm_call(false, true, M, out, r, s.scale, xa, r, b, r, 1.0f, y, out);
}

void lora_linear_backward_f32(const LoraShape& s, const float* dy, const float* xd, const float* w,
                              const float* a, const float* b, const float* xa, float* dx, float* dxd, float* da,
                              float* db, bool merge_dx) {
  check_lora_shape(s);
  TK_CHECK(merge_dx || dxd != nullptr || s.M * s.in == 0, Value,
           "loraLinearBackward: dxd is required when mergeDx is false");
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  // dx [M, in] = dy [M, out] W [out, in]   or   dy W^T with W [in, out]
  if (s.w_in_out) gemm_call(false, true, M, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  else gemm_call(false, false, M, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (r == 0) {
    if (!merge_dx && dxd) std::fill(dxd, dxd + M * in, 0.0f);
    return;
  }
  // t [M, r] = dy [M, out] B [out, r]: the gradient at the adapter's bottleneck (before s).
  std::vector<float> t(static_cast<size_t>(M * r));
  gemm_call(false, false, M, r, out, 1.0f, dy, out, b, r, 0.0f, t.data(), r);
  // dA [r, in] = s t^T xd
  gemm_call(true, false, r, in, M, s.scale, t.data(), r, xd, in, 0.0f, da, in);
  // dB [out, r] = s dy^T xa
  gemm_call(true, false, out, r, M, s.scale, dy, out, xa, r, 0.0f, db, r);
  // LoRA part of the input gradient, s t A [M, in]: into dx, or separately into dxd.
  if (merge_dx) gemm_call(false, false, M, in, r, s.scale, t.data(), r, a, in, 1.0f, dx, in);
  else gemm_call(false, false, M, in, r, s.scale, t.data(), r, a, in, 0.0f, dxd, in);
}

// ---------------------------------------------------------------------------------------------
// Reference

void lora_linear_forward_reference(const LoraShape& s, const float* x, const float* xd, const float* w,
                                   const float* bias, const float* a, const float* b, float* y, float* xa) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  for (int64_t i = 0; i < M; ++i) {
    // xa[i, k] = sum_c xd[i, c] A[k, c]
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t c = 0; c < in; ++c) acc += static_cast<double>(xd[i * in + c]) * a[k * in + c];
      xa[i * r + k] = static_cast<float>(acc);
    }
    // y[i, o] = sum_c x[i, c] W(o, c) + bias[o] + s sum_k xa[i, k] B[o, k]
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < in; ++c)
        acc += static_cast<double>(x[i * in + c]) * (s.w_in_out ? w[c * out + o] : w[o * in + c]);
      double lora = 0;
      for (int64_t k = 0; k < r; ++k) lora += static_cast<double>(xa[i * r + k]) * b[o * r + k];
      y[i * out + o] = static_cast<float>(acc + s.scale * lora);
    }
  }
}

void lora_linear_backward_reference(const LoraShape& s, const float* dy, const float* xd, const float* w,
                                    const float* a, const float* b, const float* xa, float* dx, float* dxd,
                                    float* da, float* db, bool merge_dx) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  std::vector<double> t(static_cast<size_t>(M * r));  // dy B [M, r]
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t o = 0; o < out; ++o) acc += static_cast<double>(dy[i * out + o]) * b[o * r + k];
      t[i * r + k] = acc;
    }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t c = 0; c < in; ++c) {
      double base = 0, lora = 0;
      for (int64_t o = 0; o < out; ++o)
        base += static_cast<double>(dy[i * out + o]) * (s.w_in_out ? w[c * out + o] : w[o * in + c]);
      for (int64_t k = 0; k < r; ++k) lora += t[i * r + k] * a[k * in + c];
      lora *= s.scale;
      if (merge_dx) {
        dx[i * in + c] = static_cast<float>(base + lora);
      } else {
        dx[i * in + c] = static_cast<float>(base);
        dxd[i * in + c] = static_cast<float>(lora);
      }
    }
  for (int64_t k = 0; k < r; ++k)  // dA[k, c] = s sum_i t[i, k] xd[i, c]
    for (int64_t c = 0; c < in; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < M; ++i) acc += t[i * r + k] * xd[i * in + c];
      da[k * in + c] = static_cast<float>(s.scale * acc);
    }
  for (int64_t o = 0; o < out; ++o)  // dB[o, k] = s sum_i dy[i, o] xa[i, k]
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t i = 0; i < M; ++i) acc += static_cast<double>(dy[i * out + o]) * xa[i * r + k];
      db[o * r + k] = static_cast<float>(s.scale * acc);
    }
}

}  // namespace tk::cpu
