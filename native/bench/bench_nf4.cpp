// NF4 matmul benchmarks, each figure beside our f32 GEMM/GEMV on the same shape, run alternately
// in the same process (3 rounds, best of each side).
//   nf4_gemm   fused NF4 GEMM (forward Y = X W^T and input gradient dX = dY W) vs gemm_f32
//   nf4_gemv   batch-1 NF4 GEMV vs f32 GEMV (gemm_f32 with M = 1, its streaming path)
#include <algorithm>
#include <cstdio>
#include <vector>

#include "../cpu/gemm.h"
#include "../cpu/nf4.h"
#include "bench_harness.h"

namespace {
using namespace tk::cpu;

struct Nf4Bundle {
  std::vector<float> w;  // f32 weight [N,K] (dequantized NF4, so both sides multiply the same values)
  std::vector<uint8_t> packed;
  std::vector<float> absmax;
  Nf4Weight W;
  Nf4Bundle(int64_t N, int64_t K) : w(N * K), packed((N * K + 1) / 2), absmax((N * K + 63) / 64) {
    for (int64_t i = 0; i < N * K; ++i) w[i] = static_cast<float>((i * 2654435761u % 2001) * 1e-3 - 1.0);
    nf4_quantize(w.data(), N * K, 64, packed.data(), absmax.data());
    nf4_dequantize(packed.data(), absmax.data(), N * K, 64, w.data());
    W = Nf4Weight{packed.data(), absmax.data(), N, K, 64};
  }
};

// Best seconds of a and b over `rounds` alternating measurements.
std::pair<double, double> alternate(const std::function<void()>& a, const std::function<void()>& b, int rounds = 3,
                                    double min_seconds = 0.2) {
  double ba = 1e30, bb = 1e30;
  for (int r = 0; r < rounds; ++r) {
    ba = std::min(ba, tk::bench::best_seconds(a, 3, min_seconds));
    bb = std::min(bb, tk::bench::best_seconds(b, 3, min_seconds));
  }
  return {ba, bb};
}

}  // namespace

TK_BENCH(nf4_gemm, "fused NF4 GEMM vs f32 GEMM on GPT-2 training shapes (GFLOP/s, ratio)") {
  (void)args;
  // nn.Linear weights [out, in] = [N, K]; M = 512 tokens.
  const int64_t shapes[][3] = {{512, 2304, 768}, {512, 768, 768}, {512, 3072, 768}, {512, 768, 3072}};
  std::printf("%-8s %6s %6s %6s %10s %10s %7s\n", "pass", "M", "N", "K", "f32", "nf4", "ratio");
  for (auto& sh : shapes) {
    const int64_t M = sh[0], N = sh[1], K = sh[2];
    Nf4Bundle b(N, K);
    std::vector<float> X(M * K, 0.01f), Y(M * N), dY(M * N, 0.02f), dX(M * K);
    GemmShape f;
    f.M = M; f.N = N; f.K = K; f.transB = true; f.lda = K; f.ldb = K; f.ldc = N;
    GemmShape d;
    d.M = M; d.N = K; d.K = N; d.lda = N; d.ldb = K; d.ldc = K;
    const double flops = 2.0 * M * N * K;
    auto fw = alternate([&] { gemm_f32(f, X.data(), b.w.data(), Y.data()); },
                        [&] { nf4_gemm(X.data(), M, K, b.W, Y.data(), N); });
    std::printf("%-8s %6lld %6lld %6lld %10.1f %10.1f %7.2f\n", "forward", (long long)M, (long long)N, (long long)K,
                flops / fw.first / 1e9, flops / fw.second / 1e9, fw.first / fw.second);
    auto bw = alternate([&] { gemm_f32(d, dY.data(), b.w.data(), dX.data()); },
                        [&] { nf4_gemm_dx(dY.data(), M, N, b.W, dX.data(), K); });
    std::printf("%-8s %6lld %6lld %6lld %10.1f %10.1f %7.2f\n", "dX", (long long)M, (long long)N, (long long)K,
                flops / bw.first / 1e9, flops / bw.second / 1e9, bw.first / bw.second);
    std::fflush(stdout);
  }
  return 0;
}

TK_BENCH(nf4_gemv, "batch-1 NF4 GEMV vs f32 GEMV (microseconds, weight GB/s, speed-up)") {
  (void)args;
  const int64_t shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {8192, 8192}};
  std::printf("%6s %6s %10s %10s %9s %9s %8s\n", "N", "K", "f32 us", "nf4 us", "f32 GB/s", "nf4 GB/s", "speedup");
  for (auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    Nf4Bundle b(N, K);
    std::vector<float> x(K, 0.01f), y(N);
    GemmShape s;
    s.M = 1; s.N = N; s.K = K; s.transB = true; s.lda = K; s.ldb = K; s.ldc = N;
    auto t = alternate([&] { gemm_f32(s, x.data(), b.w.data(), y.data()); },
                       [&] { nf4_gemm(x.data(), 1, K, b.W, y.data(), N); }, 3, 0.3);
    const double f32_bytes = 4.0 * N * K, nf4_bytes = 0.5 * N * K + 4.0 * N * K / 64;
    std::printf("%6lld %6lld %10.1f %10.1f %9.1f %9.1f %8.2f\n", (long long)N, (long long)K, t.first * 1e6,
                t.second * 1e6, f32_bytes / t.first / 1e9, nf4_bytes / t.second / 1e9, t.first / t.second);
    std::fflush(stdout);
  }
  return 0;
}
