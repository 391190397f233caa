// GEMM benchmarks.
//   gemm M K N [ta tb] [dtype] [beta]  one shape, prints "ours <GFLOP/s>" (used by bench/gemm.sh,
//                                which runs OpenBLAS on the same shape right after, in turn);
//                                beta 1 adds to C (a linear layer's bias rows), default 0
//   gemm_suite                   the shape list, ours only (f32 and bf16)
// C[M,N] = op(A)[M,K] op(B)[K,N]; ta/tb are 0/1; dtype f32 (default), bf16, or bf16a (an f32 A
// rounded to bf16 while packed: gemm_bf16_round_a, the bf16 training path's call). With
// TUNEKIT_BENCH_COLD=1 every call reads its own A, B and C (a ring bigger than the last-level
// cache), as a training step's GEMMs do: each reads a weight and an activation no other call of
// the step left in cache.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "../core/dtype.h"
#include "../cpu/gemm.h"
#include "bench_harness.h"

namespace {
using tk::cpu::GemmShape;

GemmShape make_shape(int64_t M, int64_t K, int64_t N, bool ta, bool tb, float beta = 0.0f) {
  GemmShape s;
  s.beta = beta;
  s.M = M; s.N = N; s.K = K;
  s.transA = ta; s.transB = tb;
  s.lda = ta ? M : K; s.ldb = tb ? K : N; s.ldc = N;
  return s;
}

// GFLOP/s of our gemm on one shape (best of several calls).
enum class GemmDtype { F32, BF16, BF16RoundA };

// How many operand sets the timed calls cycle through: 1 (warm caches), or enough that the ring
// exceeds 256 MiB with TUNEKIT_BENCH_COLD=1.
size_t ring_size(const GemmShape& s) {
  const char* c = std::getenv("TUNEKIT_BENCH_COLD");
  if (!c || std::string(c) != "1") return 1;
  const double bytes = 4.0 * (s.M * s.K + s.K * s.N + s.M * s.N);
  return static_cast<size_t>(256.0 * (1 << 20) / bytes) + 1;
}

// GFLOP/s of our gemm on one shape (best of several calls).
double gflops(const GemmShape& s, GemmDtype dt) {
  const size_t ring = ring_size(s);
  std::vector<std::vector<float>> A(ring, std::vector<float>(s.M * s.K)), B(ring, std::vector<float>(s.K * s.N)),
      C(ring, std::vector<float>(s.M * s.N));
  std::vector<std::vector<uint16_t>> a(ring), b(ring);
  for (size_t k = 0; k < ring; ++k) {
    for (size_t i = 0; i < A[k].size(); ++i) A[k][i] = static_cast<float>(((i + k) * 7919 % 1000) * 1e-3 - 0.5);
    for (size_t i = 0; i < B[k].size(); ++i) B[k][i] = static_cast<float>(((i + k) * 104729 % 1000) * 1e-3 - 0.5);
    if (dt != GemmDtype::F32) {
      a[k].resize(A[k].size());
      b[k].resize(B[k].size());
      for (size_t i = 0; i < a[k].size(); ++i) a[k][i] = tk::f32_to_bf16(A[k][i]);
      for (size_t i = 0; i < b[k].size(); ++i) b[k][i] = tk::f32_to_bf16(B[k][i]);
    }
  }
  size_t k = 0;
  const double sec = tk::bench::best_seconds([&] {
    k = (k + 1) % ring;
    if (dt == GemmDtype::BF16) tk::cpu::gemm_bf16(s, a[k].data(), b[k].data(), C[k].data());
    else if (dt == GemmDtype::BF16RoundA) tk::cpu::gemm_bf16_round_a(s, A[k].data(), b[k].data(), C[k].data());
    else tk::cpu::gemm_f32(s, A[k].data(), B[k].data(), C[k].data());
  });
  return 2.0 * s.M * s.N * s.K / sec / 1e9;
}

}  // namespace

TK_BENCH(gemm, "M K N [ta tb] [f32|bf16|bf16a] [beta]: GFLOP/s of one shape (TUNEKIT_BENCH_COLD=1: cold caches)") {
  if (args.size() < 3) {
    std::fprintf(stderr, "gemm: need M K N\n");
    return 2;
  }
  const int64_t M = std::atoll(args[0].c_str()), K = std::atoll(args[1].c_str()), N = std::atoll(args[2].c_str());
  const bool ta = args.size() > 3 && args[3] == "1", tb = args.size() > 4 && args[4] == "1";
  const std::string dt = args.size() > 5 ? args[5] : "f32";
  if (dt != "f32" && dt != "bf16" && dt != "bf16a") {
    std::fprintf(stderr, "gemm: dtype must be f32, bf16 or bf16a, got %s\n", dt.c_str());
    return 2;
  }
  const float beta = args.size() > 6 ? static_cast<float>(std::atof(args[6].c_str())) : 0.0f;
  std::printf("ours %.2f\n", gflops(make_shape(M, K, N, ta, tb, beta),
                                      dt == "bf16" ? GemmDtype::BF16 : dt == "bf16a" ? GemmDtype::BF16RoundA : GemmDtype::F32));
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
    const double f = gflops(s, GemmDtype::F32), b = gflops(s, GemmDtype::BF16);
    std::printf("%6lld %6lld %6lld %3d %3d %10.1f %10.1f %6.2f\n", (long long)r.M, (long long)r.K, (long long)r.N,
                r.ta, r.tb, f, b, b / f);
    std::fflush(stdout);
  }
  return 0;
}
