// Softmax / log-softmax: fast vs reference, masked (-inf) and huge logits, backward vs finite
// differences in double.
#include <cmath>
#include <limits>
#include <vector>

#include "../cpu/softmax.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;
using tk::test::VecD;

namespace {
VecD softmax_double(const VecD& x, int64_t rows, int64_t cols, bool log) {
  VecD y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < cols; ++c) m = std::max(m, x[r * cols + c]);
    for (int64_t c = 0; c < cols; ++c) s += std::exp(x[r * cols + c] - m);
    for (int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = log ? x[r * cols + c] - m - std::log(s) : std::exp(x[r * cols + c] - m) / s;
  }
  return y;
}
}  // namespace

TK_TEST(softmax_matches_reference) {
  const int64_t shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {2, 129}, {17, 1000}, {4, 50257}, {300, 64}};
  for (auto& s : shapes)
    for (int lg = 0; lg < 2; ++lg) {
      int64_t rows = s[0], cols = s[1];
      auto x = randn(rows * cols, rows * 31 + cols, 4.0f);
      std::vector<float> y1(x.size()), y2(x.size());
      softmax(x.data(), y1.data(), rows, cols, lg);
      softmax_reference(x.data(), y2.data(), rows, cols, lg);
      TK_EXPECT_CLOSE(y1.data(), y2.data(), x.size(), 1e-8, 2e-6);
      auto dy = randn(rows * cols, 77);
      std::vector<float> d1(x.size()), d2(x.size());
      softmax_backward(y2.data(), dy.data(), d1.data(), rows, cols, lg);
      softmax_backward_reference(y2.data(), dy.data(), d2.data(), rows, cols, lg);
      TK_EXPECT_CLOSE(d1.data(), d2.data(), x.size(), 1e-6, 1e-5);
    }
}

TK_TEST(softmax_masked_and_large_values) {
  const float inf = std::numeric_limits<float>::infinity();
  // row 0: some -inf (masked); row 1: huge values (two exact 1e30 ties, one a few ulps below,
  // exp(-1e24 + ...) == 0); row 2: all masked -> NaN as torch
  std::vector<float> x = {1, -inf, 2, -inf, 0.5f, /**/ 1e30f, 1e30f - 1e24f, -1e30f, 3e4f, 1e30f,
                          /**/ -inf, -inf, -inf, -inf, -inf};
  for (int lg = 0; lg < 2; ++lg) {
    std::vector<float> y(15);
    softmax(x.data(), y.data(), 3, 5, lg);
    double s = 0;
    for (int c = 0; c < 5; ++c) s += lg ? std::exp(y[c]) : y[c];
    TK_EXPECT(std::fabs(s - 1) < 1e-6, "masked row sums to %.9g", s);
    TK_EXPECT(lg ? y[1] == -inf && y[3] == -inf : y[1] == 0 && y[3] == 0, "masked entries exactly 0 / -inf");
    for (int c = 5; c < 10; ++c) TK_EXPECT(!std::isnan(y[c]), "large row finite at %d", c);
    float p0 = lg ? std::exp(y[5]) : y[5];
    TK_EXPECT(std::fabs(p0 - 0.5f) < 1e-6, "1e30 ties: %g", p0);
    for (int c = 10; c < 15; ++c) TK_EXPECT(std::isnan(y[c]), "all-masked row is NaN (torch)");
    std::vector<float> yr(15);
    softmax_reference(x.data(), yr.data(), 3, 5, lg);
    TK_EXPECT_CLOSE(y.data(), yr.data(), 10, 1e-8, 2e-6);
  }
}

TK_TEST(softmax_backward_matches_finite_differences) {
  const int64_t rows = 3, cols = 6;
  auto x = randn(rows * cols, 5, 2.0f), dy = randn(rows * cols, 6);
  for (int lg = 0; lg < 2; ++lg) {
    std::vector<float> y(x.size()), dx(x.size());
    softmax(x.data(), y.data(), rows, cols, lg);
    softmax_backward(y.data(), dy.data(), dx.data(), rows, cols, lg);
    auto g = tk::test::to_float(tk::test::numeric_vjp([&](const VecD& xx) { return softmax_double(xx, rows, cols, lg); },
                                                     tk::test::to_double(x), tk::test::to_double(dy)));
    TK_EXPECT_CLOSE(dx.data(), g.data(), g.size(), 1e-5, 1e-4);
    auto yd = tk::test::to_float(softmax_double(tk::test::to_double(x), rows, cols, lg));
    TK_EXPECT_CLOSE(y.data(), yd.data(), yd.size(), 1e-8, 2e-6);
  }
}
