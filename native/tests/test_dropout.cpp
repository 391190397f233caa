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
