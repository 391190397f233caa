// GEMM benchmarks.
//   gemm M K N [ta tb] [dtype]   one shape, prints "ours <GFLOP/s>" (used by bench/gemm.sh, which
//                                runs OpenBLAS on the same shape right after, in turn)
//   gemm_suite                   the shape list, ours only (f32 and bf16)
// C[M,N] = op(A)[M,K] op(B)[K,N]; ta/tb are 0/1; dtype f32 (default) or bf16.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../core/dtype.h"
#include "../cpu/gemm.h"
#include "bench_harness.h"

namespace {
using tk::cpu::GemmShape;

GemmShape make_shape(int64_t M, int64_t K, int64_t N, bool ta, bool tb) {
  GemmShape s;
  s.M = M; s.N = N; s.K = K;
  s.transA = ta; s.transB = tb;
  s.lda = ta ? M : K; s.ldb = tb ? K : N; s.ldc = N;
  return s;
}

// GFLOP/s of our gemm on one shape (best of several calls).
double gflops(const GemmShape& s, bool bf16) {
  std::vector<float> A(s.M * s.K), B(s.K * s.N), C(s.M * s.N);
  for (size_t i = 0; i < A.size(); ++i) A[i] = static_cast<float>((i * 7919 % 1000) * 1e-3 - 0.5);
  for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<float>((i * 104729 % 1000) * 1e-3 - 0.5);
  double sec;
  if (bf16) {
    std::vector<uint16_t> a(A.size()), b(B.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = tk::f32_to_bf16(A[i]);
    for (size_t i = 0; i < b.size(); ++i) b[i] = tk::f32_to_bf16(B[i]);
    sec = tk::bench::best_seconds([&] { tk::cpu::gemm_bf16(s, a.data(), b.data(), C.data()); });
  } else {
    sec = tk::bench::best_seconds([&] { tk::cpu::gemm_f32(s, A.data(), B.data(), C.data()); });
  }
  return 2.0 * s.M * s.N * s.K / sec / 1e9;
}

}  // namespace

TK_BENCH(gemm, "M K N [ta tb] [f32|bf16]: GFLOP/s of one shape") {
  if (args.size() < 3) {
    std::fprintf(stderr, "gemm: need M K N\n");
    return 2;
  }
  const int64_t M = std::atoll(args[0].c_str()), K = std::atoll(args[1].c_str()), N = std::atoll(args[2].c_str());
  const bool ta = args.size() > 3 && args[3] == "1", tb = args.size() > 4 && args[4] == "1";
  const bool bf16 = args.size() > 5 && args[5] == "bf16";
  std::printf("ours %.2f\n", gflops(make_shape(M, K, N, ta, tb), bf16));
  return 0;
}

TK_BENCH(gemm_suite, "issue shapes, ours only: f32 and bf16 GFLOP/s") {
  (void)args;
  struct Row { int64_t M, K, N; bool ta, tb; };
  const Row rows[] = {
      {256, 256, 256, 0, 0},   {512, 512, 512, 0, 0},   {1024, 1024, 1024, 0, 0}, {2048, 2048, 2048, 0, 0},
      {512, 768, 2304, 0, 0},  {512, 3072, 768, 0, 0},  {512, 768, 3072, 0, 0},   {512, 768, 50257, 0, 1},
      {512, 2304, 768, 0, 1},  {768, 512, 2304, 1, 0},
  };
  std::printf("kernel %s\n%6s %6s %6s %3s %3s %10s %10s %6s\n", tk::cpu::gemm_kernel_name(), "M", "K", "N", "tA",
              "tB", "f32", "bf16", "ratio");
  for (const Row& r : rows) {
    GemmShape s = make_shape(r.M, r.K, r.N, r.ta, r.tb);
    const double f = gflops(s, false), b = gflops(s, true);
    std::printf("%6lld %6lld %6lld %3d %3d %10.1f %10.1f %6.2f\n", (long long)r.M, (long long)r.K, (long long)r.N,
                r.ta, r.tb, f, b, b / f);
    std::fflush(stdout);
  }
  return 0;
}
