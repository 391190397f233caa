// Placeholder-free simple fast path: a cache-blocked loop that compilers vectorise. The packed
// AVX-512/AVX2 microkernels replace the body of gemm_f32 (see gemm_pack.* when present).
#include "gemm.h"

#include <algorithm>
#include <vector>

#include "../core/dtype.h"
#include "../core/thread_pool.h"

namespace tk::cpu {

namespace {
// C rows [r0, r1): C = alpha*op(A)op(B) + beta*C via an i-k-j loop over a transposed-as-needed copy.
void rows_kernel(const GemmShape& s, const float* A, const float* B, float* C, int64_t r0, int64_t r1) {
  std::vector<float> arow(s.K);
  for (int64_t i = r0; i < r1; ++i) {
    float* c = C + i * s.ldc;
    if (s.beta == 0.0f) std::fill(c, c + s.N, 0.0f);
    else if (s.beta != 1.0f) for (int64_t j = 0; j < s.N; ++j) c[j] *= s.beta;
    for (int64_t k = 0; k < s.K; ++k) arow[k] = s.alpha * (s.transA ? A[k * s.lda + i] : A[i * s.lda + k]);
    if (!s.transB) {
      for (int64_t k = 0; k < s.K; ++k) {
        const float a = arow[k];
        const float* b = B + k * s.ldb;
        for (int64_t j = 0; j < s.N; ++j) c[j] += a * b[j];
      }
    } else {
      for (int64_t j = 0; j < s.N; ++j) {
        const float* b = B + j * s.ldb;
        float acc = 0.0f;
        for (int64_t k = 0; k < s.K; ++k) acc += arow[k] * b[k];
        c[j] += acc;
      }
    }
  }
}
}  // namespace

void gemm_f32(const GemmShape& s, const float* A, const float* B, float* C) {
  if (s.M == 0 || s.N == 0) return;
  parallel_for(s.M, 4, [&](int64_t r0, int64_t r1) { rows_kernel(s, A, B, C, r0, r1); });
}

void gemm_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C) {
  const int64_t ar = s.transA ? s.K : s.M, ac = s.transA ? s.M : s.K;
  const int64_t br = s.transB ? s.N : s.K, bc = s.transB ? s.K : s.N;
  std::vector<float> a(ar * ac), b(br * bc);
  for (int64_t r = 0; r < ar; ++r) for (int64_t c = 0; c < ac; ++c) a[r * ac + c] = bf16_to_f32(A[r * s.lda + c]);
  for (int64_t r = 0; r < br; ++r) for (int64_t c = 0; c < bc; ++c) b[r * bc + c] = bf16_to_f32(B[r * s.ldb + c]);
  GemmShape t = s;
  t.lda = ac;
  t.ldb = bc;
  gemm_f32(t, a.data(), b.data(), C);
}

void gemm_f32_batched(const GemmShape& s, int64_t batch, const float* A, int64_t strideA,
                      const float* B, int64_t strideB, float* C, int64_t strideC) {
  for (int64_t i = 0; i < batch; ++i) gemm_f32(s, A + i * strideA, B + i * strideB, C + i * strideC);
}

const char* gemm_kernel_name() { return "portable"; }

}  // namespace tk::cpu
