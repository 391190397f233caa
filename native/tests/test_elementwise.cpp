// Element-wise kernels: fast vs reference at awkward sizes, broadcasting, IEEE edge cases,
// every unary backward against double-precision finite differences, scan determinism.
#include <cmath>
#include <limits>
#include <vector>

#include "../core/thread_pool.h"
#include "../cpu/elementwise.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;
using tk::test::VecD;

namespace {

const int64_t kSizes[] = {1, 7, 16, 33, 129, 1000, 4099, 70001};

// Inputs valid for op: positive where the op needs a positive domain.
std::vector<float> input_for(UnaryOp op, size_t n, uint64_t seed) {
  auto x = randn(n, seed, 2.0f);
  if (op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt || op == UnaryOp::PowScalar)
    for (auto& v : x) v = std::fabs(v) + 0.1f;
  return x;
}

// The forward in double, written from the definitions (PyTorch's formulas), independent of
// the kernel code.
double f_double(UnaryOp op, double x, double p) {
  const double pi = 3.14159265358979323846;
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return std::pow(x, -0.5);
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1 / (1 + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : 0;
    case UnaryOp::GeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
    case UnaryOp::GeluErf: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
    case UnaryOp::Silu: return x / (1 + std::exp(-x));
    case UnaryOp::Square: return x * x;
    case UnaryOp::MulScalar: return x * p;
    case UnaryOp::AddScalar: return x + p;
    case UnaryOp::PowScalar: return std::pow(x, p);
  }
  return NAN;
}

float param_for(UnaryOp op) {
  if (op == UnaryOp::PowScalar) return 1.7f;
  if (op == UnaryOp::MulScalar) return -0.3f;
  if (op == UnaryOp::AddScalar) return 2.5f;
  return 0.0f;
}

}  // namespace

TK_TEST(exp_fast_accuracy_and_edges) {
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    float x = -87.0f + 175.0f * static_cast<float>(i) / 200000.0f;  // normal results only
    double want = std::exp(static_cast<double>(x));
    if (want > 3.4e38) continue;
    double rel = std::fabs(exp_fast(x) - want) / want;
    if (rel > worst) worst = rel;
  }
  TK_EXPECT(worst < 1e-6, "exp_fast worst relative error %.3g", worst);
  const float inf = std::numeric_limits<float>::infinity();
  TK_EXPECT(exp_fast(-inf) == 0.0f, "exp(-inf) = %g", exp_fast(-inf));
  TK_EXPECT(exp_fast(inf) == inf, "exp(inf) = %g", exp_fast(inf));
  TK_EXPECT(std::isnan(exp_fast(NAN)), "exp(nan) not nan");
  TK_EXPECT(exp_fast(0.0f) == 1.0f, "exp(0) = %.9g", exp_fast(0.0f));
  TK_EXPECT(exp_fast(89.0f) == inf, "exp(89) overflows to inf, got %g", exp_fast(89.0f));
  TK_EXPECT(std::isfinite(exp_fast(88.7f)), "exp(88.7) finite");
  float sub = exp_fast(-100.0f);  // subnormal ~3.7e-44
  TK_EXPECT(sub > 0 && std::fabs(sub - 3.72e-44) < 3e-45, "exp(-100) = %g", sub);
  TK_EXPECT(exp_fast(-200.0f) == 0.0f, "exp(-200) = %g", exp_fast(-200.0f));
}

TK_TEST(binary_same_shape_matches_reference) {
  for (int op = 0; op < kNumBinaryOps; ++op)
    for (int64_t n : kSizes) {
      auto a = randn(n, 1), b = randn(n, 2);
      std::vector<float> o1(n), o2(n);
      int64_t sh[] = {n}, st[] = {1};
      binary(BinaryOp(op), a.data(), b.data(), o1.data(), 1, sh, st, st);
      binary_reference(BinaryOp(op), a.data(), b.data(), o2.data(), 1, sh, st, st);
      TK_EXPECT(o1 == o2, "op %s n %lld", binary_op_name(BinaryOp(op)), (long long)n);
    }
}

TK_TEST(binary_broadcast_matches_reference) {
  struct Case {
    std::vector<int64_t> shape, as, bs;
  };
  // rows x cols with a bias row; a column; a scalar; middle-axis broadcast; both broadcast;
  // a transposed (non-contiguous) operand; a size-1 axis; a big one for the thread pool.
  std::vector<Case> cases = {
      {{7, 33}, {33, 1}, {0, 1}},
      {{33, 7}, {7, 1}, {1, 0}},
      {{129, 17}, {17, 1}, {0, 0}},
      {{3, 5, 7}, {35, 7, 1}, {7, 0, 1}},
      {{5, 9}, {0, 1}, {1, 0}},
      {{6, 11}, {1, 6}, {11, 1}},
      {{4, 1, 13}, {13, 13, 1}, {0, 0, 1}},
      {{1}, {0}, {0}},
      {{301, 1037}, {1037, 1}, {0, 1}},
      {{2, 3, 1000, 7}, {21000, 7000, 7, 1}, {0, 7, 0, 1}},
  };
  for (auto& c : cases) {
    int nd = static_cast<int>(c.shape.size());
    int64_t total = 1, ea = 1, eb = 1;
    for (int k = 0; k < nd; ++k) {
      total *= c.shape[k];
      ea += (c.shape[k] - 1) * c.as[k];
      eb += (c.shape[k] - 1) * c.bs[k];
    }
    auto a = randn(ea, 3), b = randn(eb, 4);
    for (int op = 0; op < kNumBinaryOps; ++op) {
      std::vector<float> o1(total), o2(total);
      binary(BinaryOp(op), a.data(), b.data(), o1.data(), nd, c.shape.data(), c.as.data(), c.bs.data());
      binary_reference(BinaryOp(op), a.data(), b.data(), o2.data(), nd, c.shape.data(), c.as.data(), c.bs.data());
      TK_EXPECT(o1 == o2, "op %d, case with %d dims, total %lld", op, nd, (long long)total);
    }
  }
}

TK_TEST(binary_ieee_edges) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> a = {1, -1, 0, NAN, 2, 5}, b = {0, 0, 0, 1, NAN, 5}, o(6);
  int64_t sh[] = {6}, st[] = {1};
  binary(BinaryOp::Div, a.data(), b.data(), o.data(), 1, sh, st, st);
  TK_EXPECT(o[0] == inf && o[1] == -inf && std::isnan(o[2]), "div by zero: %g %g %g", o[0], o[1], o[2]);
  binary(BinaryOp::Maximum, a.data(), b.data(), o.data(), 1, sh, st, st);
  TK_EXPECT(std::isnan(o[3]) && std::isnan(o[4]) && o[0] == 1 && o[5] == 5, "maximum NaN propagation");
  binary(BinaryOp::Minimum, a.data(), b.data(), o.data(), 1, sh, st, st);
  TK_EXPECT(std::isnan(o[3]) && std::isnan(o[4]) && o[1] == -1, "minimum NaN propagation");
  // zero-size output writes nothing
  int64_t sh0[] = {0, 5}, st0[] = {5, 1};
  binary(BinaryOp::Add, a.data(), b.data(), nullptr, 2, sh0, st0, st0);
}

TK_TEST(binary_in_place) {
  auto a = randn(1000, 5), b = randn(1000, 6), want(a);
  int64_t sh[] = {1000}, st[] = {1};
  binary_reference(BinaryOp::Mul, a.data(), b.data(), want.data(), 1, sh, st, st);
  binary(BinaryOp::Mul, a.data(), b.data(), a.data(), 1, sh, st, st);
  TK_EXPECT(a == want, "out aliasing a");
}

TK_TEST(unary_matches_reference) {
  for (int op = 0; op < kNumUnaryOps; ++op)
    for (int64_t n : kSizes) {
      auto x = input_for(UnaryOp(op), n, 7 + n);
      x[0] = op == int(UnaryOp::Relu) ? 0.0f : x[0];
      float p = param_for(UnaryOp(op));
      std::vector<float> y1(n), y2(n);
      unary(UnaryOp(op), x.data(), y1.data(), n, p);
      unary_reference(UnaryOp(op), x.data(), y2.data(), n, p);
      TK_EXPECT_CLOSE(y1.data(), y2.data(), n, 1e-7, 2e-6);
      if (tk::test::worst_ratio(y1.data(), y2.data(), n, 1e-7, 2e-6) > 1)
        std::fprintf(stderr, "    (op %s, n %lld)\n", unary_op_name(UnaryOp(op)), (long long)n);
    }
}

TK_TEST(unary_forward_matches_double_definitions) {
  // Pins the PyTorch formulas themselves (gelu_tanh via tanh, gelu_erf via erf, ...).
  for (int op = 0; op < kNumUnaryOps; ++op) {
    auto x = input_for(UnaryOp(op), 257, 11);
    float p = param_for(UnaryOp(op));
    std::vector<float> y(x.size()), want(x.size());
    unary(UnaryOp(op), x.data(), y.data(), x.size(), p);
    for (size_t i = 0; i < x.size(); ++i) want[i] = static_cast<float>(f_double(UnaryOp(op), x[i], p));
    TK_EXPECT_CLOSE(y.data(), want.data(), x.size(), 1e-7, 2e-6);
  }
}

TK_TEST(unary_nan_inf_edges) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {NAN, inf, -inf, -100.0f, 100.0f}, y(5);
  unary(UnaryOp::Relu, x.data(), y.data(), 5, 0);
  TK_EXPECT(std::isnan(y[0]) && y[1] == inf && y[2] == 0, "relu edges");
  unary(UnaryOp::Sigmoid, x.data(), y.data(), 5, 0);
  TK_EXPECT(std::isnan(y[0]) && y[1] == 1 && y[2] == 0 && y[3] >= 0 && y[4] == 1, "sigmoid edges");
  unary(UnaryOp::Silu, x.data() + 3, y.data(), 2, 0);
  TK_EXPECT(std::fabs(y[0]) < 1e-30 && y[1] == 100.0f, "silu(-100)=%g silu(100)=%g", y[0], y[1]);
  unary(UnaryOp::GeluTanh, x.data() + 3, y.data(), 2, 0);
  TK_EXPECT(std::fabs(y[0]) < 1e-30 && y[1] == 100.0f, "gelu_tanh(-100)=%g gelu_tanh(100)=%g", y[0], y[1]);
}

TK_TEST(unary_backward_matches_finite_differences) {
  for (int op = 0; op < kNumUnaryOps; ++op) {
    const int n = 9;
    auto x = input_for(UnaryOp(op), n, 21 + op);
    for (auto& v : x)
      if (std::fabs(v) < 0.05f) v = 0.3f;  // keep away from the kinks of relu / abs
    auto dy = randn(n, 99);
    float p = param_for(UnaryOp(op));
    std::vector<float> y(n), dx(n), dx_ref(n);
    unary(UnaryOp(op), x.data(), y.data(), n, p);
    unary_backward(UnaryOp(op), x.data(), y.data(), dy.data(), dx.data(), n, p);
    unary_backward_reference(UnaryOp(op), x.data(), y.data(), dy.data(), dx_ref.data(), n, p);
    VecD g = tk::test::numeric_vjp(
        [&](const VecD& xx) {
          VecD yy(xx.size());
          for (size_t i = 0; i < xx.size(); ++i) yy[i] = f_double(UnaryOp(op), xx[i], p);
          return yy;
        },
        tk::test::to_double(x), tk::test::to_double(dy));
    auto gf = tk::test::to_float(g);
    TK_EXPECT_CLOSE(dx.data(), gf.data(), n, 1e-5, 1e-4);
    TK_EXPECT_CLOSE(dx_ref.data(), gf.data(), n, 1e-5, 1e-4);
    if (tk::test::worst_ratio(dx.data(), gf.data(), n, 1e-5, 1e-4) > 1)
      std::fprintf(stderr, "    (op %s)\n", unary_op_name(UnaryOp(op)));
  }
}

TK_TEST(unary_backward_fast_matches_reference) {
  for (int op = 0; op < kNumUnaryOps; ++op)
    for (int64_t n : {int64_t(1), int64_t(33), int64_t(1000), int64_t(9001)}) {
      auto x = input_for(UnaryOp(op), n, 31 + op);
      auto dy = randn(n, 32);
      float p = param_for(UnaryOp(op));
      std::vector<float> y(n), d1(n), d2(n);
      unary_reference(UnaryOp(op), x.data(), y.data(), n, p);
      unary_backward(UnaryOp(op), x.data(), y.data(), dy.data(), d1.data(), n, p);
      unary_backward_reference(UnaryOp(op), x.data(), y.data(), dy.data(), d2.data(), n, p);
      TK_EXPECT_CLOSE(d1.data(), d2.data(), n, 1e-6, 1e-5);
    }
}

TK_TEST(sum_squares_and_non_finite) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), int64_t(1000), int64_t(200003)}) {
    auto x = randn(n, 41);
    double a = sum_squares(x.data(), n), b = sum_squares_reference(x.data(), n);
    TK_EXPECT(std::fabs(a - b) <= 1e-12 * (1 + b), "n %lld: %.17g vs %.17g", (long long)n, a, b);
    int nt = tk::num_threads();
    tk::set_num_threads(1);
    double a1 = sum_squares(x.data(), n);
    tk::set_num_threads(nt);
    TK_EXPECT(a1 == a, "sum_squares depends on the thread count");
    if (n > 100) {
      x[3] = NAN;
      x[n - 1] = std::numeric_limits<float>::infinity();
      x[n / 2] = -std::numeric_limits<float>::infinity();
    }
    TK_EXPECT(count_non_finite(x.data(), n) == count_non_finite_reference(x.data(), n), "count n %lld", (long long)n);
    TK_EXPECT(count_non_finite(x.data(), n) == (n > 100 ? 3 : 0), "count %lld", (long long)count_non_finite(x.data(), n));
  }
  // large values: squares beyond f32 range are fine in double
  std::vector<float> big = {3e30f, 4e30f};
  TK_EXPECT(std::fabs(sum_squares(big.data(), 2) / 25e60 - 1) < 1e-6, "double accumulation");
}
