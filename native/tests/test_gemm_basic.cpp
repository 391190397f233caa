#include "../cpu/gemm.h"
#include "test_harness.h"

TK_TEST(gemm_f32_matches_reference_all_transposes) {
  using namespace tk::cpu;
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {33, 7, 129}, {129, 65, 17}};
  for (auto& sz : sizes) {
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s;
      s.M = sz[0]; s.N = sz[1]; s.K = sz[2];
      s.transA = ta; s.transB = tb;
      s.lda = ta ? s.M : s.K; s.ldb = tb ? s.K : s.N; s.ldc = s.N;
      s.alpha = 0.5f; s.beta = 0.25f;
      auto A = tk::test::randn(s.M * s.K, 1), B = tk::test::randn(s.K * s.N, 2), C0 = tk::test::randn(s.M * s.N, 3);
      auto C1 = C0, C2 = C0;
      gemm_f32(s, A.data(), B.data(), C1.data());
      gemm_f32_reference(s, A.data(), B.data(), C2.data());
      TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
    }
  }
}
