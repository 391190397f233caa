// RoPE: matches the naive rotate-half formula, forward then inverse is the identity, in-place
// works, the backward (inverse) matches finite differences.
#include <cmath>
#include <vector>

#include "../cpu/rope.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;

namespace {
std::vector<float> llama_inv_freq(int64_t rot_dim, double base = 10000.0) {
  std::vector<float> f(rot_dim / 2);
  for (int64_t i = 0; i < rot_dim / 2; ++i) f[i] = static_cast<float>(1.0 / std::pow(base, 2.0 * i / rot_dim));
  return f;
}
// transformers: q * cos + rotate_half(q) * sin with cos/sin duplicated over the two halves
std::vector<double> naive(const std::vector<float>& x, const std::vector<int32_t>& pos, const std::vector<float>& f,
                          int64_t B, int64_t H, int64_t T, int64_t D, int64_t rot, double sign) {
  std::vector<double> o(x.begin(), x.end());
  int64_t half = rot / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < half; ++i) {
          size_t base = ((b * H + h) * T + t) * D;
          double a = static_cast<float>(pos[b * T + t]) * f[i];
          double c = std::cos(a), s = sign * std::sin(a);
          o[base + i] = x[base + i] * c - x[base + i + half] * s;
          o[base + i + half] = x[base + i + half] * c + x[base + i] * s;
        }
  return o;
}
}  // namespace

TK_TEST(rope_matches_naive_and_inverts) {
  const int64_t cases[][5] = {{1, 1, 1, 2, 2}, {2, 3, 7, 16, 16}, {1, 4, 33, 64, 32}, {2, 2, 129, 128, 128},
                              {1, 32, 100, 80, 64}, {3, 1, 5, 10, 0}};
  for (auto& c : cases) {
    int64_t B = c[0], H = c[1], T = c[2], D = c[3], rot = c[4];
    auto x = randn(B * H * T * D, T + D);
    std::vector<int32_t> pos(B * T);
    for (int64_t i = 0; i < B * T; ++i) pos[i] = static_cast<int32_t>((i * 37) % 4096);  // up to long contexts
    auto f = llama_inv_freq(std::max<int64_t>(rot, 2));
    std::vector<float> o(x.size()), o2(x.size()), back(x.size());
    rope(x.data(), o.data(), pos.data(), f.data(), B, H, T, D, rot, false);
    rope_reference(x.data(), o2.data(), pos.data(), f.data(), B, H, T, D, rot, false);
    TK_EXPECT_CLOSE(o.data(), o2.data(), o.size(), 1e-6, 1e-6);  // the SIMD clones may fuse a*c - b*s
    auto want = tk::test::to_float(naive(x, pos, f, B, H, T, D, rot, 1.0));
    TK_EXPECT_CLOSE(o.data(), want.data(), o.size(), 1e-5, 1e-5);
    rope(o.data(), back.data(), pos.data(), f.data(), B, H, T, D, rot, true);
    TK_EXPECT_CLOSE(back.data(), x.data(), x.size(), 1e-5, 1e-5);
    // in place
    auto y = x;
    rope(y.data(), y.data(), pos.data(), f.data(), B, H, T, D, rot, false);
    TK_EXPECT(y == o, "in-place == out-of-place");
    for (int64_t row = 0; row < B * H * T; ++row)
      for (int64_t j = rot; j < D; ++j)
        if (o[row * D + j] != x[row * D + j]) {
          TK_EXPECT(false, "dims >= rotDim untouched");
          row = B * H * T;
          break;
        }
  }
}

TK_TEST(rope_backward_matches_finite_differences) {
  const int64_t B = 1, H = 2, T = 3, D = 6, rot = 4;
  auto x = randn(B * H * T * D, 5), dy = randn(B * H * T * D, 6);
  std::vector<int32_t> pos = {0, 5, 11};
  auto f = llama_inv_freq(rot);
  std::vector<float> dx(x.size());
  rope(dy.data(), dx.data(), pos.data(), f.data(), B, H, T, D, rot, true);  // backward = inverse rotation
  auto g = tk::test::to_float(tk::test::numeric_vjp(
      [&](const tk::test::VecD& v) { return naive(tk::test::to_float(v), pos, f, B, H, T, D, rot, 1.0); },
      tk::test::to_double(x), tk::test::to_double(dy), 1e-2));  // linear in x: any step is exact
  TK_EXPECT_CLOSE(dx.data(), g.data(), g.size(), 1e-5, 1e-4);
}
