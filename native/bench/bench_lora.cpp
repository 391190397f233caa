// LoRA linear benchmark: `lora M in out r [w_in_out]` prints the fused forward and backward
// times beside the base products alone (the GEMMs a frozen linear layer needs anyway: forward
// x W, backward dy W^T), so the adapter's overhead shows as the difference.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../cpu/gemm.h"
#include "../cpu/lora.h"
#include "bench_harness.h"

TK_BENCH(lora, "M in out r [w_in_out] [p]: fused LoRA forward/backward ms beside the base GEMMs alone (p: lora_dropout)") {
  if (args.size() < 4) {
    std::fprintf(stderr, "lora: need M in out r\n");
    return 2;
  }
  tk::cpu::LoraShape s;
  s.M = std::atoll(args[0].c_str());
  s.in = std::atoll(args[1].c_str());
  s.out = std::atoll(args[2].c_str());
  s.r = std::atoll(args[3].c_str());
  s.w_in_out = args.size() > 4 && args[4] == "1";
  const float p = args.size() > 5 ? static_cast<float>(std::atof(args[5].c_str())) : 0.0f;
  s.scale = 2.0f;
  auto fill = [](std::vector<float>& v, int k) { for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(((i * (7919 + k)) % 1000) * 1e-3 - 0.5); };
  std::vector<float> x(s.M * s.in), w(s.in * s.out), bias(s.out), a(s.r * s.in), b(s.out * s.r), y(s.M * s.out), xa(s.M * s.r);
  std::vector<float> dy(s.M * s.out), dx(s.M * s.in), dxd(s.M * s.in), da(s.r * s.in), db(s.out * s.r);
  fill(x, 1); fill(w, 2); fill(bias, 3); fill(a, 4); fill(b, 5); fill(dy, 6);
  std::vector<uint8_t> mask(s.M * s.in);
  // the training path: the dropout-fused kernels (p = 0: no mask, the adapter's input gradient
  // appended to the dx GEMM)
  const double fwd = tk::bench::best_seconds([&] { tk::cpu::lora_linear_forward_dropout_f32(s, x.data(), w.data(), bias.data(), a.data(), b.data(), p, 42, mask.data(), y.data(), xa.data()); });
  const double bwd = tk::bench::best_seconds([&] { tk::cpu::lora_linear_backward_dropout_f32(s, dy.data(), x.data(), mask.data(), p, w.data(), a.data(), b.data(), xa.data(), dx.data(), da.data(), db.data()); });
  const double base_f = tk::bench::best_seconds([&] {
    if (s.w_in_out) tk::cpu::gemm_f32(false, false, s.M, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.out, 0.0f, y.data(), s.out);
    else tk::cpu::gemm_f32(false, true, s.M, s.out, s.in, 1.0f, x.data(), s.in, w.data(), s.in, 0.0f, y.data(), s.out);
  });
  const double base_b = tk::bench::best_seconds([&] {
    if (s.w_in_out) tk::cpu::gemm_f32(false, true, s.M, s.in, s.out, 1.0f, dy.data(), s.out, w.data(), s.out, 0.0f, dx.data(), s.in);
    else tk::cpu::gemm_f32(false, false, s.M, s.in, s.out, 1.0f, dy.data(), s.out, w.data(), s.in, 0.0f, dx.data(), s.in);
  });
  const double gf = 2.0 * s.M * s.in * s.out / 1e9;
  std::printf("lora M=%lld in=%lld out=%lld r=%lld p=%.2f: forward %.3f ms (base GEMM %.3f ms, %.0f GFLOP/s), backward %.3f ms (base GEMM %.3f ms, %.0f GFLOP/s); overhead forward %.0f%%, backward %.0f%%\n",
              (long long)s.M, (long long)s.in, (long long)s.out, (long long)s.r, p, fwd * 1e3, base_f * 1e3, gf / base_f,
              bwd * 1e3, base_b * 1e3, gf / base_b, 100 * (fwd / base_f - 1), 100 * (bwd / base_b - 1));
  return 0;
}
