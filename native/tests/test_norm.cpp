// LayerNorm / RMSNorm: fast vs reference at awkward sizes, forward vs a double definition,
// dx / dw / db vs finite differences in double.
#include <cmath>
#include <vector>

#include "../cpu/norm.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;
using tk::test::to_double;
using tk::test::to_float;
using tk::test::VecD;

namespace {
// y = layernorm(x) * w + b (biased variance), or rmsnorm(x) * w when rms
VecD norm_double(const VecD& x, const VecD& w, const VecD& b, int64_t rows, int64_t cols, double eps, bool rms) {
  VecD y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mu = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) mu += x[r * cols + c];
    mu = rms ? 0 : mu / cols;
    for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mu) * (x[r * cols + c] - mu);
    var /= cols;
    for (int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = (x[r * cols + c] - mu) / std::sqrt(var + eps) * w[c] + (rms ? 0 : b[c]);
  }
  return y;
}
const int64_t kShapes[][2] = {{1, 1}, {1, 7}, {3, 33}, {7, 129}, {33, 768}, {5, 1000}, {130, 2049}};
}  // namespace

TK_TEST(layer_norm_matches_reference) {
  for (auto& s : kShapes) {
    int64_t rows = s[0], cols = s[1];
    auto x = randn(rows * cols, cols, 3.0f), w = randn(cols, 2), b = randn(cols, 3), dy = randn(rows * cols, 4);
    for (auto& v : x) v += 5.0f;  // an offset mean: the two-pass variance must not cancel
    std::vector<float> y1(x.size()), y2(x.size()), m1(rows), m2(rows), r1(rows), r2(rows);
    layer_norm(x.data(), w.data(), b.data(), y1.data(), m1.data(), r1.data(), rows, cols, 1e-5f);
    layer_norm_reference(x.data(), w.data(), b.data(), y2.data(), m2.data(), r2.data(), rows, cols, 1e-5f);
    TK_EXPECT_CLOSE(y1.data(), y2.data(), y1.size(), 1e-5, 1e-5);
    TK_EXPECT_CLOSE(m1.data(), m2.data(), rows, 1e-6, 1e-6);
    TK_EXPECT_CLOSE(r1.data(), r2.data(), rows, 1e-6, 1e-6);
    std::vector<float> dx1(x.size()), dx2(x.size()), dw1(cols), dw2(cols), db1(cols), db2(cols);
    layer_norm_backward(x.data(), w.data(), m2.data(), r2.data(), dy.data(), dx1.data(), dw1.data(), db1.data(), rows, cols);
    layer_norm_backward_reference(x.data(), w.data(), m2.data(), r2.data(), dy.data(), dx2.data(), dw2.data(), db2.data(),
                                  rows, cols);
    TK_EXPECT_CLOSE(dx1.data(), dx2.data(), dx1.size(), 1e-5, 1e-4);
    TK_EXPECT_CLOSE(dw1.data(), dw2.data(), cols, 1e-5, 1e-5);
    TK_EXPECT_CLOSE(db1.data(), db2.data(), cols, 1e-5, 1e-5);
    // without weight gradients: dx only, dw / db untouched
    std::vector<float> dx3(x.size());
    layer_norm_backward(x.data(), w.data(), m2.data(), r2.data(), dy.data(), dx3.data(), nullptr, nullptr, rows, cols);
    TK_EXPECT(dx3 == dx1, "dx independent of needWeightGrad");
  }
}

TK_TEST(layer_norm_backward_matches_finite_differences) {
  const int64_t rows = 3, cols = 5;
  const double eps = 1e-5;
  auto x = randn(rows * cols, 1, 2.0f), w = randn(cols, 2), b = randn(cols, 3), dy = randn(rows * cols, 4);
  std::vector<float> y(x.size()), mean(rows), rstd(rows), dx(x.size()), dw(cols), db(cols);
  layer_norm(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), rows, cols, eps);
  auto yd = to_float(norm_double(to_double(x), to_double(w), to_double(b), rows, cols, eps, false));
  TK_EXPECT_CLOSE(y.data(), yd.data(), y.size(), 1e-5, 1e-5);
  layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dw.data(), db.data(), rows, cols);
  VecD X = to_double(x), W = to_double(w), Bv = to_double(b), DY = to_double(dy);
  auto gx = to_float(tk::test::numeric_vjp([&](const VecD& v) { return norm_double(v, W, Bv, rows, cols, eps, false); }, X, DY));
  auto gw = to_float(tk::test::numeric_vjp([&](const VecD& v) { return norm_double(X, v, Bv, rows, cols, eps, false); }, W, DY));
  auto gb = to_float(tk::test::numeric_vjp([&](const VecD& v) { return norm_double(X, W, v, rows, cols, eps, false); }, Bv, DY));
  TK_EXPECT_CLOSE(dx.data(), gx.data(), gx.size(), 1e-4, 1e-4);
  TK_EXPECT_CLOSE(dw.data(), gw.data(), gw.size(), 1e-4, 1e-4);
  TK_EXPECT_CLOSE(db.data(), gb.data(), gb.size(), 1e-4, 1e-4);
}

TK_TEST(rms_norm_matches_reference) {
  for (auto& s : kShapes) {
    int64_t rows = s[0], cols = s[1];
    auto x = randn(rows * cols, cols + 1, 3.0f), w = randn(cols, 5), dy = randn(rows * cols, 6);
    std::vector<float> y1(x.size()), y2(x.size()), r1(rows), r2(rows);
    rms_norm(x.data(), w.data(), y1.data(), r1.data(), rows, cols, 1e-6f);
    rms_norm_reference(x.data(), w.data(), y2.data(), r2.data(), rows, cols, 1e-6f);
    TK_EXPECT_CLOSE(y1.data(), y2.data(), y1.size(), 1e-6, 1e-5);
    TK_EXPECT_CLOSE(r1.data(), r2.data(), rows, 1e-7, 1e-6);
    std::vector<float> dx1(x.size()), dx2(x.size()), dw1(cols), dw2(cols);
    rms_norm_backward(x.data(), w.data(), r2.data(), dy.data(), dx1.data(), dw1.data(), rows, cols);
    rms_norm_backward_reference(x.data(), w.data(), r2.data(), dy.data(), dx2.data(), dw2.data(), rows, cols);
    TK_EXPECT_CLOSE(dx1.data(), dx2.data(), dx1.size(), 1e-5, 1e-4);
    TK_EXPECT_CLOSE(dw1.data(), dw2.data(), cols, 1e-5, 1e-5);
  }
}

TK_TEST(rms_norm_backward_matches_finite_differences) {
  const int64_t rows = 4, cols = 6;
  const double eps = 1e-6;
  auto x = randn(rows * cols, 11), w = randn(cols, 12), dy = randn(rows * cols, 13);
  std::vector<float> y(x.size()), rstd(rows), dx(x.size()), dw(cols);
  rms_norm(x.data(), w.data(), y.data(), rstd.data(), rows, cols, eps);
  VecD X = to_double(x), W = to_double(w), DY = to_double(dy), none(cols, 0.0);
  auto yd = to_float(norm_double(X, W, none, rows, cols, eps, true));
  TK_EXPECT_CLOSE(y.data(), yd.data(), y.size(), 1e-6, 1e-5);
  rms_norm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), rows, cols);
  auto gx = to_float(tk::test::numeric_vjp([&](const VecD& v) { return norm_double(v, W, none, rows, cols, eps, true); }, X, DY));
  auto gw = to_float(tk::test::numeric_vjp([&](const VecD& v) { return norm_double(X, v, none, rows, cols, eps, true); }, W, DY));
  TK_EXPECT_CLOSE(dx.data(), gx.data(), gx.size(), 1e-4, 1e-4);
  TK_EXPECT_CLOSE(dw.data(), gw.data(), gw.size(), 1e-4, 1e-4);
}
