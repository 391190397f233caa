// Dropout: p = 0 identity, keep rate ~ 1 - p, scaling, mask independent of thread count and
// of where a range starts, backward uses the mask.
#include <cmath>
#include <vector>

#include "../core/thread_pool.h"
#include "../cpu/dropout.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;

TK_TEST(dropout_p0_is_identity) {
  auto x = randn(1001, 1);
  std::vector<float> y(x.size());
  std::vector<uint8_t> mask(x.size());
  dropout(x.data(), y.data(), mask.data(), x.size(), 0.0f, 42);
  TK_EXPECT(y == x, "p = 0 copies x exactly");
  for (auto m : mask) TK_EXPECT(m == 1, "p = 0 keeps everything");
}

TK_TEST(dropout_deterministic_and_scaled) {
  const int64_t n = 300007;
  const float p = 0.3f;
  auto x = randn(n, 2);
  std::vector<float> y1(n), y2(n), y3(n);
  std::vector<uint8_t> m1(n), m2(n), m3(n);
  int nt = tk::num_threads();
  tk::set_num_threads(1);
  dropout(x.data(), y1.data(), m1.data(), n, p, 1234);
  tk::set_num_threads(std::max(2, nt));
  dropout(x.data(), y2.data(), m2.data(), n, p, 1234);
  tk::set_num_threads(nt);
  TK_EXPECT(m1 == m2 && y1 == y2, "same mask for 1 and %d threads", std::max(2, nt));
  dropout_reference(x.data(), y3.data(), m3.data(), n, p, 1234);
  TK_EXPECT(m1 == m3 && y1 == y3, "fast == reference");
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    kept += m1[i];
    float want = m1[i] ? x[i] / (1 - p) : 0.0f;
    if (std::fabs(y1[i] - want) > 1e-6f * (1 + std::fabs(want))) {
      TK_EXPECT(false, "scaling at %lld", (long long)i);
      break;
    }
  }
  double rate = static_cast<double>(kept) / n;
  TK_EXPECT(std::fabs(rate - 0.7) < 0.005, "keep rate %.4f", rate);
  std::vector<float> y4(n);
  std::vector<uint8_t> m4(n);
  dropout(x.data(), y4.data(), m4.data(), n, p, 1235);
  TK_EXPECT(m4 != m1, "another seed, another mask");
  // backward
  auto dy = randn(n, 3);
  std::vector<float> dx1(n), dx2(n);
  dropout_backward(dy.data(), m1.data(), dx1.data(), n, p);
  dropout_backward_reference(dy.data(), m1.data(), dx2.data(), n, p);
  TK_EXPECT(dx1 == dx2, "backward fast == reference");
  for (int64_t i = 0; i < 100; ++i) TK_EXPECT(dx1[i] == (m1[i] ? dy[i] * (1.0f / (1 - p)) : 0.0f), "dx at %lld", (long long)i);
}

TK_TEST(dropout_backward_accumulate) {
  const int64_t n = 70001;
  const float p = 0.1f;
  auto x = randn(n, 4), dy = randn(n, 5), base = randn(n, 6);
  std::vector<float> y(n);
  std::vector<uint8_t> mask(n);
  dropout(x.data(), y.data(), mask.data(), n, p, 99);
  std::vector<float> fast = base, ref = base;
  dropout_backward(dy.data(), mask.data(), fast.data(), n, p, true);
  dropout_backward_reference(dy.data(), mask.data(), ref.data(), n, p, true);
  // the fast loop may fuse the multiply-add (one rounding instead of two): equal within an ulp or so
  for (int64_t i = 0; i < n; ++i) {
    const float want = base[i] + (mask[i] ? dy[i] * (1.0f / (1 - p)) : 0.0f);
    if (std::fabs(fast[i] - ref[i]) > 2e-7f * (1 + std::fabs(ref[i])) || std::fabs(fast[i] - want) > 2e-7f * (1 + std::fabs(want))) {
      TK_EXPECT(false, "dx += at %lld: fast %.9g, reference %.9g, expected %.9g", (long long)i, fast[i], ref[i], want);
      break;
    }
  }
}

TK_TEST(dropout_blocks_of_2_32_have_their_own_keys) {
  // index i and i + 2^32 must not share a mask bit stream (a wrapped 32-bit counter would)
  int same = 0;
  for (uint64_t i = 0; i < 4096; ++i) same += dropout_bits(uint64_t{7}, i) == dropout_bits(uint64_t{7}, i + (uint64_t{1} << 32));
  TK_EXPECT(same < 4, "%d of 4096 indices repeat their bits 2^32 later", same);
  // and the fast kernel agrees with the scalar form at the start of any block (pointer offsets)
  auto x = randn(64, 8);
  std::vector<float> y(64);
  std::vector<uint8_t> m(64);
  dropout(x.data(), y.data(), m.data(), 64, 0.5f, 7);
  for (uint64_t i = 0; i < 64; ++i) TK_EXPECT(m[i] == (dropout_bits(uint64_t{7}, i) >= 2147483648u), "mask bit %llu", (unsigned long long)i);
}

TK_TEST(dropout_bits_uniform) {
  // the keep rate at several p over 2^20 draws: within 4 sigma of 1 - p
  const int64_t n = 1 << 20;
  for (float p : {0.05f, 0.1f, 0.5f, 0.9f}) {
    auto x = randn(n, 9);
    std::vector<float> y(n);
    std::vector<uint8_t> m(n);
    dropout(x.data(), y.data(), m.data(), n, p, 2024);
    int64_t kept = 0;
    for (auto v : m) kept += v;
    const double rate = static_cast<double>(kept) / n, sigma = std::sqrt(p * (1 - p) / n);
    TK_EXPECT(std::fabs(rate - (1 - p)) < 4 * sigma, "p %.2f: keep rate %.5f", p, rate);
  }
}
