// Attention benchmark: `attention B H T D [causal]` prints the fused forward and backward times
// and their GFLOP/s (the products QK^T and PV forward, four products backward; causal counts
// the visible half), the figure a tuned kernel is judged by beside the GEMM's own peak.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "../cpu/attention.h"
#include "bench_harness.h"

TK_BENCH(attention, "B H T D [causal=1]: fused attention forward/backward ms and GFLOP/s") {
  if (args.size() < 4) {
    std::fprintf(stderr, "attention: need B H T D\n");
    return 2;
  }
  tk::cpu::AttentionShape s;
  s.B = std::atoll(args[0].c_str());
  s.Hq = s.Hkv = std::atoll(args[1].c_str());
  s.Tq = s.Tk = std::atoll(args[2].c_str());
  s.D = std::atoll(args[3].c_str());
  s.causal = args.size() < 5 || args[4] != "0";
  s.scale = 1.0f / 8.0f;
  const int64_t n = s.B * s.Hq * s.Tq * s.D;
  std::vector<float> q(n), k(n), v(n), o(n), dq(n), dk(n), dv(n), dout(n), lse(s.B * s.Hq * s.Tq);
  for (int64_t i = 0; i < n; ++i) {
    q[i] = static_cast<float>((i * 7919 % 1000) * 1e-3 - 0.5);
    k[i] = static_cast<float>((i * 104729 % 1000) * 1e-3 - 0.5);
    v[i] = static_cast<float>((i * 1299709 % 1000) * 1e-3 - 0.5);
    dout[i] = static_cast<float>((i * 15485863 % 1000) * 1e-3 - 0.5);
  }
  const double fwd = tk::bench::best_seconds([&] { tk::cpu::attention_forward_f32(s, q.data(), k.data(), v.data(), nullptr, o.data(), lse.data()); });
  const double bwd = tk::bench::best_seconds([&] {
    tk::cpu::attention_backward_f32(s, q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), nullptr, dq.data(), dk.data(), dv.data());
  });
  // the same sequences as token-major rows of a packed projection [B*T, 3C] (attention_rows_*)
  tk::cpu::AttentionRowsShape rs;
  rs.N = s.B * s.Tq;
  rs.S = s.B;
  rs.H = s.Hq;
  rs.D = s.D;
  rs.scale = s.scale;
  rs.causal = s.causal;
  std::vector<int32_t> offsets(s.B + 1);
  for (int64_t b = 0; b <= s.B; ++b) offsets[b] = static_cast<int32_t>(b * s.Tq);
  std::vector<float> qkv(3 * n), dqkv(3 * n);
  for (int64_t i = 0; i < 3 * n; ++i) qkv[i] = static_cast<float>((i * 7919 % 1000) * 1e-3 - 0.5);
  const double rfwd = tk::bench::best_seconds([&] {
    tk::cpu::attention_rows_forward_f32(rs, qkv.data(), offsets.data(), nullptr, o.data(), lse.data());
  });
  const double rbwd = tk::bench::best_seconds([&] {
    tk::cpu::attention_rows_backward_f32(rs, qkv.data(), offsets.data(), nullptr, o.data(), lse.data(), dout.data(), dqkv.data());
  });
  const double pairs = static_cast<double>(s.B * s.Hq) * s.Tq * s.Tk * (s.causal ? 0.5 : 1.0);
  const double ff = 4.0 * pairs * s.D / 1e9, bf = 8.0 * pairs * s.D / 1e9;
  std::printf("attention B=%lld H=%lld T=%lld D=%lld causal=%d: forward %.3f ms (%.1f GFLOP/s), backward %.3f ms (%.1f GFLOP/s)\n",
              (long long)s.B, (long long)s.Hq, (long long)s.Tq, (long long)s.D, (int)s.causal, fwd * 1e3, ff / fwd, bwd * 1e3, bf / bwd);
  std::printf("  token-major rows [B*T, 3C]:     forward %.3f ms (%.1f GFLOP/s), backward %.3f ms (%.1f GFLOP/s)\n", rfwd * 1e3,
              ff / rfwd, rbwd * 1e3, bf / rbwd);
  return 0;
}
