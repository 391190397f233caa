// Reference GEMM: the readable definition every fast path is tested against.
#include "../core/dtype.h"
#include "gemm.h"

namespace tk::cpu {

namespace {
template <typename T, typename Load>
void reference(const GemmShape& s, const T* A, const T* B, float* C, Load load) {
  for (int64_t i = 0; i < s.M; ++i) {
    for (int64_t j = 0; j < s.N; ++j) {
      double acc = 0.0;
      for (int64_t k = 0; k < s.K; ++k) {
        double a = load(s.transA ? A[k * s.lda + i] : A[i * s.lda + k]);
        double b = load(s.transB ? B[j * s.ldb + k] : B[k * s.ldb + j]);
        acc += a * b;
      }
      // the second, thin product (row-major A2 [M, K2], B2 [K2, N]; f32)
      for (int64_t k = 0; k < s.K2; ++k) acc += static_cast<double>(s.A2[i * s.lda2 + k]) * s.B2[k * s.ldb2 + j];
      float* c = &C[i * s.ldc + j];
      *c = static_cast<float>(s.alpha * acc + (s.beta == 0.0f ? 0.0 : s.beta * static_cast<double>(*c)));
    }
  }
}
}  // namespace

void gemm_f32_reference(const GemmShape& s, const float* A, const float* B, float* C) {
  reference(s, A, B, C, [](float v) { return v; });
  // the epilogue, once over the whole of C (the fast path calls it per block)
  if (s.epilogue && s.M > 0 && s.N > 0) s.epilogue(s.epilogue_ctx, s.epilogue_i0, s.M, s.epilogue_j0, s.N, C, s.ldc);
}

void gemm_bf16_reference(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C) {
  reference(s, A, B, C, [](uint16_t v) { return bf16_to_f32(v); });
}

}  // namespace tk::cpu
