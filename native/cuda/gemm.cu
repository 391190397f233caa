// bf16 tensor-core GEMM (kernel in gemm_kernel.cuh), bf16 conversion, fused linear + LoRA.
#include "cuda/gemm_kernel.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

bool aligned16(const void* p, int64_t ld) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0 && ld % 8 == 0;
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ in, uint16_t* __restrict__ out, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    __nv_bfloat16 h = __float2bfloat16_rn(in[i] * scale);
    out[i] = *reinterpret_cast<uint16_t*>(&h);
  }
}

__global__ void bf16_to_f32_kernel(const uint16_t* __restrict__ in, float* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = bf16_bits_to_f32(in[i]);
}

// y[m, :] = bias
__global__ void fill_rows_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bias[i % cols];
}

void gemm_raw(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t lda,
              const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  GemmShape s;
  s.transA = ta;
  s.transB = tb;
  s.M = M;
  s.N = N;
  s.K = K;
  s.lda = lda;
  s.ldb = ldb;
  s.ldc = ldc;
  s.alpha = alpha;
  s.beta = beta;
  tk::cuda::gemm_bf16(s, A, B, C);
}

}  // namespace

void gemm_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C) {
  TK_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, Shape, "cuda gemm_bf16: negative size M=", s.M, " N=", s.N, " K=", s.K);
  const int64_t a_cols = s.transA ? s.M : s.K, b_cols = s.transB ? s.K : s.N;
  TK_CHECK(s.lda >= a_cols, Shape, "cuda gemm_bf16: lda ", s.lda, " < ", a_cols);
  TK_CHECK(s.ldb >= b_cols, Shape, "cuda gemm_bf16: ldb ", s.ldb, " < ", b_cols);
  TK_CHECK(s.ldc >= s.N, Shape, "cuda gemm_bf16: ldc ", s.ldc, " < ", s.N);
  if (s.M == 0 || s.N == 0) return;
  gemm_detail::Params p;
  p.M = s.M;
  p.N = s.N;
  p.K = s.K;
  p.A = A;
  p.lda = s.lda;
  p.B = B;
  p.ldb = s.ldb;
  p.C = C;
  p.ldc = s.ldc;
  p.alpha = s.alpha;
  p.beta = s.beta;
  p.vecA = aligned16(A, s.lda);
  p.vecB = aligned16(B, s.ldb);
  using namespace gemm_detail;
  if (!s.transA && !s.transB) launch_gemm<false, false, false>(p, "cuda gemm_bf16 (NN)");
  else if (!s.transA && s.transB) launch_gemm<false, true, false>(p, "cuda gemm_bf16 (NT)");
  else if (s.transA && !s.transB) launch_gemm<true, false, false>(p, "cuda gemm_bf16 (TN)");
  else launch_gemm<true, true, false>(p, "cuda gemm_bf16 (TT)");
}

void f32_to_bf16(const float* in, uint16_t* out, int64_t n, float scale) {
  TK_CHECK(n >= 0, Shape, "cuda f32_to_bf16: negative count");
  if (n == 0) return;
  f32_to_bf16_kernel<<<grid_1d(n, 256), 256>>>(in, out, n, scale);
  check_launch("cuda f32_to_bf16");
}

void bf16_to_f32(const uint16_t* in, float* out, int64_t n) {
  TK_CHECK(n >= 0, Shape, "cuda bf16_to_f32: negative count");
  if (n == 0) return;
  bf16_to_f32_kernel<<<grid_1d(n, 256), 256>>>(in, out, n);
  check_launch("cuda bf16_to_f32");
}

// ---- fused linear + LoRA ----------------------------------------------------------------------

void lora_linear_forward_bf16(const LoraShape& s, const uint16_t* x, const uint16_t* xd, const uint16_t* w,
                              const float* bias, const uint16_t* a, const uint16_t* b, float* y, float* xa) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  if (M == 0) return;
  if (out > 0) {
    // y = bias (broadcast), then y (+)= x W^T
    float beta = 0.0f;
    if (bias) {
      fill_rows_kernel<<<grid_1d(M * out, 256), 256>>>(y, bias, M, out);
      check_launch("cuda lora forward (bias)");
      beta = 1.0f;
    }
    if (!s.w_in_out) gemm_raw(false, true, M, out, in, 1.0f, x, in, w, in, beta, y, out);
    else gemm_raw(false, false, M, out, in, 1.0f, x, in, w, out, beta, y, out);
  }
  if (r == 0) return;
  // xa = xd A^T (f32, saved), y += bf16(s xa) B^T
  gemm_raw(false, true, M, r, in, 1.0f, xd, in, a, in, 0.0f, xa, r);
  if (out == 0) return;
  DeviceBuffer xa_bf(static_cast<size_t>(M * r) * 2);
  f32_to_bf16(xa, xa_bf.get<uint16_t>(), M * r, s.scale);
  gemm_raw(false, true, M, out, r, 1.0f, xa_bf.get<uint16_t>(), r, b, r, 1.0f, y, out);
}

void lora_linear_backward_bf16(const LoraShape& s, const float* dy, const uint16_t* xd, const uint16_t* w,
                               const uint16_t* a, const uint16_t* b, const float* xa, float* dx, float* dxd,
                               float* da, float* db, bool merge_dx) {
  check_lora_shape(s);
  TK_CHECK(merge_dx || dxd != nullptr, Value, "cuda lora backward: dxd is required unless merge_dx");
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  DeviceBuffer dy_bf(static_cast<size_t>(M * out) * 2);
  f32_to_bf16(dy, dy_bf.get<uint16_t>(), M * out);
  const uint16_t* dyb = dy_bf.get<uint16_t>();
  // dx = dy W
  if (M > 0 && in > 0) {
    if (out == 0) fill_zero(dx, static_cast<size_t>(M * in) * 4);
    else if (!s.w_in_out) gemm_raw(false, false, M, in, out, 1.0f, dyb, out, w, in, 0.0f, dx, in);
    else gemm_raw(false, true, M, in, out, 1.0f, dyb, out, w, out, 0.0f, dx, in);
  }
  if (r == 0) {
    if (!merge_dx && M * in > 0) fill_zero(dxd, static_cast<size_t>(M * in) * 4);
    return;
  }
  // g = s (dy B) [M, r], rounded to bf16
  DeviceBuffer g32(static_cast<size_t>(M * r) * 4), gbf(static_cast<size_t>(M * r) * 2);
  if (M > 0) {
    if (out > 0) gemm_raw(false, false, M, r, out, 1.0f, dyb, out, b, r, 0.0f, g32.get<float>(), r);
    else fill_zero(g32.get(), static_cast<size_t>(M * r) * 4);
    f32_to_bf16(g32.get<float>(), gbf.get<uint16_t>(), M * r, s.scale);
  }
  const uint16_t* gb = gbf.get<uint16_t>();
  if (M > 0 && in > 0) {
    if (merge_dx) gemm_raw(false, false, M, in, r, 1.0f, gb, r, a, in, 1.0f, dx, in);
    else gemm_raw(false, false, M, in, r, 1.0f, gb, r, a, in, 0.0f, dxd, in);
  }
  // dA [r, in] = (s dy B)^T xd ; dB [out, r] = s dy^T xa
  if (in > 0) gemm_raw(true, false, r, in, M, 1.0f, gb, r, xd, in, 0.0f, da, in);
  if (out > 0) {
    DeviceBuffer xa_bf(static_cast<size_t>(M * r) * 2);
    f32_to_bf16(xa, xa_bf.get<uint16_t>(), M * r);
    gemm_raw(true, false, out, r, M, s.scale, dyb, out, xa_bf.get<uint16_t>(), r, 0.0f, db, r);
  }
}

}  // namespace tk::cuda
