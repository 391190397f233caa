// f32 GEMM on the CUDA cores and the f32 linear + LoRA (forward/backward with the adapter's
// dropout) composed from it. The bf16 tensor-core GEMM (gemm.cu) is faster, but rounds both
// operands to bf16 (8 bits of mantissa); this one keeps cpu::gemm_f32's precision, so an f32 op
// gives the CPU's result to rounding on either backend.
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

// 64x64 output tile per CTA, 16 of K per stage, 256 threads as 16x16, each computing a 4x4
// sub-tile at rows ty + 16 i, cols tx + 16 j (strided, so a warp's shared reads are broadcasts
// or consecutive words).
constexpr int kBM = 64, kBN = 64, kBK = 16, kThreads = 256;

template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads)
    sgemm_kernel(int64_t M, int64_t N, int64_t K, float alpha, const float* __restrict__ A, int64_t lda, int64_t stride_a,
                 const float* __restrict__ B, int64_t ldb, int64_t stride_b, float beta, float* __restrict__ C, int64_t ldc,
                 int64_t stride_c) {
  __shared__ float As[kBK][kBM + 4];  // As[k][m] = op(A)[m0 + m, k0 + k]
  __shared__ float Bs[kBK][kBN + 4];  // Bs[k][n] = op(B)[k0 + k, n0 + n]
  A += blockIdx.z * stride_a;
  B += blockIdx.z * stride_b;
  C += blockIdx.z * stride_c;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    // 1024 elements of each operand per stage, 4 per thread; consecutive threads walk the
    // operand's contiguous axis (coalesced global reads)
#pragma unroll
    for (int l = 0; l < 4; ++l) {
      const int e = tid + kThreads * l;
      int mm, kk;
      if (TA) {  // A is [K, M]: contiguous along m
        mm = e % kBM;
        kk = e / kBM;
      } else {  // A is [M, K]: contiguous along k
        kk = e % kBK;
        mm = e / kBK;
      }
      int64_t gm = m0 + mm, gk = k0 + kk;
      As[kk][mm] = (gm < M && gk < K) ? (TA ? A[gk * lda + gm] : A[gm * lda + gk]) : 0.0f;
      int nn;
      if (TB) {  // B is [N, K]: contiguous along k
        kk = e % kBK;
        nn = e / kBK;
      } else {  // B is [K, N]: contiguous along n
        nn = e % kBN;
        kk = e / kBN;
      }
      const int64_t gn = n0 + nn;
      gk = k0 + kk;
      Bs[kk][nn] = (gn < N && gk < K) ? (TB ? B[gn * ldb + gk] : B[gk * ldb + gn]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty + 16 * i;
    if (gm >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx + 16 * j;
      if (gn >= N) continue;
      float* c = C + gm * ldc + gn;
      const float v = alpha * acc[i][j];
      *c = beta == 0.0f ? v : v + beta * *c;  // beta == 0 overwrites (NaN in C not propagated)
    }
  }
}

void check_shape(const GemmShape& s, const char* what) {
  TK_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, Shape, what, ": negative size M=", s.M, " N=", s.N, " K=", s.K);
  const int64_t a_cols = s.transA ? s.M : s.K, b_cols = s.transB ? s.K : s.N;
  TK_CHECK(s.lda >= a_cols, Shape, what, ": lda ", s.lda, " < ", a_cols);
  TK_CHECK(s.ldb >= b_cols, Shape, what, ": ldb ", s.ldb, " < ", b_cols);
  TK_CHECK(s.ldc >= s.N, Shape, what, ": ldc ", s.ldc, " < ", s.N);
  TK_CHECK((s.M + kBM - 1) / kBM <= 65535, Shape, what, ": M = ", s.M, " exceeds one launch (", 65535LL * kBM, " rows)");
}

void launch(const GemmShape& s, int64_t batch, const float* A, int64_t sa, const float* B, int64_t sb, float* C,
            int64_t sc) {
  const dim3 grid(static_cast<unsigned>((s.N + kBN - 1) / kBN), static_cast<unsigned>((s.M + kBM - 1) / kBM),
                  static_cast<unsigned>(batch));
  if (!s.transA && !s.transB)
    sgemm_kernel<false, false><<<grid, kThreads>>>(s.M, s.N, s.K, s.alpha, A, s.lda, sa, B, s.ldb, sb, s.beta, C, s.ldc, sc);
  else if (!s.transA && s.transB)
    sgemm_kernel<false, true><<<grid, kThreads>>>(s.M, s.N, s.K, s.alpha, A, s.lda, sa, B, s.ldb, sb, s.beta, C, s.ldc, sc);
  else if (s.transA && !s.transB)
    sgemm_kernel<true, false><<<grid, kThreads>>>(s.M, s.N, s.K, s.alpha, A, s.lda, sa, B, s.ldb, sb, s.beta, C, s.ldc, sc);
  else
    sgemm_kernel<true, true><<<grid, kThreads>>>(s.M, s.N, s.K, s.alpha, A, s.lda, sa, B, s.ldb, sb, s.beta, C, s.ldc, sc);
  check_launch("cuda gemm_f32");
}

// C [M, N] (ldc = N) = alpha op(A) op(B) + beta C, contiguous operands
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
          int64_t ldb, float beta, float* C, int64_t ldc) {
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
  gemm_f32(s, A, B, C);
}

// y[m, :] = bias
__global__ void bias_rows_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = bias[i % cols];
}

}  // namespace

void gemm_f32(const GemmShape& s, const float* A, const float* B, float* C) {
  check_shape(s, "cuda gemm_f32");
  if (s.M == 0 || s.N == 0) return;
  launch(s, 1, A, 0, B, 0, C, 0);
}

void gemm_f32_batched(const GemmShape& s, int64_t batch, const float* A, int64_t stride_a, const float* B,
                      int64_t stride_b, float* C, int64_t stride_c) {
  check_shape(s, "cuda gemm_f32_batched");
  TK_CHECK(batch >= 0, Shape, "cuda gemm_f32_batched: negative batch ", batch);
  if (s.M == 0 || s.N == 0) return;
  for (int64_t b0 = 0; b0 < batch; b0 += 65535) {  // gridDim.z <= 65535
    const int64_t nb = batch - b0 < 65535 ? batch - b0 : 65535;
    launch(s, nb, A + b0 * stride_a, stride_a, B + b0 * stride_b, stride_b, C + b0 * stride_c, stride_c);
  }
}

// ---- f32 linear + LoRA with the adapter's dropout (cpu/lora.h) --------------------------------

void lora_linear_forward_dropout_f32(const LoraShape& s, const float* x, const float* w, const float* bias,
                                     const float* a, const float* b, float p, uint64_t seed, uint8_t* mask, float* y,
                                     float* xa) {
  check_lora_shape(s);
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "cuda lora forward: dropout p must be in [0, 1) but is ", p);
  TK_CHECK(p == 0.0f || mask != nullptr, Value, "cuda lora forward: a mask is required when p > 0");
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  if (M == 0) return;
  // base path: y = bias (broadcast) + x W^T   (W [out, in]; [in, out] when w_in_out: y = x W)
  if (out > 0) {
    float beta = 0.0f;
    if (bias) {
      bias_rows_kernel<<<grid_1d(M * out, 256), 256>>>(y, bias, M, out);
      check_launch("cuda lora forward (bias)");
      beta = 1.0f;
    }
    if (s.w_in_out) gemm(false, false, M, out, in, 1.0f, x, in, w, out, beta, y, out);
    else gemm(false, true, M, out, in, 1.0f, x, in, w, in, beta, y, out);
  }
  // adapter input: xd = x, or dropout(x) with the kept flags in mask (element e of x hashed as e)
  DeviceBuffer xd_buf(p > 0.0f ? static_cast<size_t>(M * in) * sizeof(float) : 0);
  const float* xd = x;
  if (p > 0.0f) {
    dropout(x, xd_buf.get<float>(), mask, M * in, p, seed);
    xd = xd_buf.get<float>();
  }
  if (r == 0) return;
  // xa [M, r] = xd A^T (saved for the backward); y += s xa B^T
  gemm(false, true, M, r, in, 1.0f, xd, in, a, in, 0.0f, xa, r);
  if (out > 0) gemm(false, true, M, out, r, s.scale, xa, r, b, r, 1.0f, y, out);
}

void lora_linear_backward_dropout_f32(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                      float p, const float* w, const float* a, const float* b, const float* xa,
                                      float* dx, float* da, float* db) {
  check_lora_shape(s);
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "cuda lora backward: dropout p must be in [0, 1) but is ", p);
  TK_CHECK(p == 0.0f || mask != nullptr, Value, "cuda lora backward: the forward's mask is required when p > 0");
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  // Empty sizes need no special case: a GEMM with K = 0 writes zeros (beta 0), so with no rows
  // dA and dB come out zero, with out = 0 dx and dA do, as the CPU writes them.
  // dx = dy W   (W [out, in]: NN; W [in, out]: dx = dy W^T, NT); dx null: no input gradient
  if (dx && s.w_in_out) gemm(false, true, M, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  else if (dx) gemm(false, false, M, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (r == 0) return;
  // g [M, r] = dy B
  DeviceBuffer g_buf(static_cast<size_t>(M * r) * sizeof(float));
  float* g = g_buf.get<float>();
  gemm(false, false, M, r, out, 1.0f, dy, out, b, r, 0.0f, g, r);
  const float* xd = x;
  DeviceBuffer xd_buf(p > 0.0f ? static_cast<size_t>(M * in) * sizeof(float) : 0);
  if (p == 0.0f) {
    // dx += s g A
    if (dx) gemm(false, false, M, in, r, s.scale, g, r, a, in, 1.0f, dx, in);
  } else {
    // t = s g A, dx += t mask / (1 - p); xd rebuilt as x mask / (1 - p) (the forward's values)
    if (dx) {
      DeviceBuffer t_buf(static_cast<size_t>(M * in) * sizeof(float));
      gemm(false, false, M, in, r, s.scale, g, r, a, in, 0.0f, t_buf.get<float>(), in);
      dropout_backward(t_buf.get<float>(), mask, dx, M * in, p, true);
    }
    dropout_backward(x, mask, xd_buf.get<float>(), M * in, p, false);
    xd = xd_buf.get<float>();
  }
  // dA [r, in] = s g^T xd ; dB [out, r] = s dy^T xa
  gemm(true, false, r, in, M, s.scale, g, r, xd, in, 0.0f, da, in);
  gemm(true, false, out, r, M, s.scale, dy, out, xa, r, 0.0f, db, r);
}

}  // namespace tk::cuda
