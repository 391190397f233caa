// Dropout benchmark: `dropout n p` prints the forward and backward time per element (ns) and
// GB/s of the memory each pass moves (forward: read x, write y and the mask; backward: read dy
// and the mask, write dx), beside the same figures of a plain copy of x (the memory bound).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../cpu/dropout.h"
#include "bench_harness.h"

TK_BENCH(dropout, "n p: dropout forward/backward ns per element and GB/s, beside a copy") {
  const int64_t n = args.size() > 0 ? std::atoll(args[0].c_str()) : (int64_t{2048} * 1024);
  const float p = args.size() > 1 ? static_cast<float>(std::atof(args[1].c_str())) : 0.05f;
  std::vector<float> x(n, 1.0f), y(n), dx(n);
  std::vector<uint8_t> mask(n);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 97) * 0.01f;
  const double fwd = tk::bench::best_seconds([&] { tk::cpu::dropout(x.data(), y.data(), mask.data(), n, p, 42); });
  const double bwd = tk::bench::best_seconds([&] { tk::cpu::dropout_backward(y.data(), mask.data(), dx.data(), n, p, true); });
  const double cpy = tk::bench::best_seconds([&] { std::memcpy(dx.data(), x.data(), n * sizeof(float)); });
  std::printf("dropout n=%lld p=%.3f: forward %.3f ns/elem (%.1f GB/s), backward+add %.3f ns/elem (%.1f GB/s), copy %.3f ns/elem (%.1f GB/s)\n",
              (long long)n, p, fwd / n * 1e9, 9.0 * n / fwd / 1e9, bwd / n * 1e9, 13.0 * n / bwd / 1e9, cpy / n * 1e9,
              8.0 * n / cpy / 1e9);
  return 0;
}
