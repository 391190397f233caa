// A tiny test registry for the native test runner (no Node needed, so it also runs on the GPU
// machine). TK_TEST(name) { ... } registers a test; TK_EXPECT* record failures and continue.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace tk::test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();
int& failures();

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

// Max |a-b| / (atol + rtol*|b|) over a range: <= 1 means within tolerance.
inline double worst_ratio(const float* a, const float* b, size_t n, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
    double r = d / (atol + rtol * std::fabs(static_cast<double>(b[i])));
    if (r > worst) worst = r;
  }
  return worst;
}

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace tk::test

#define TK_CONCAT2(a, b) a##b
#define TK_CONCAT(a, b) TK_CONCAT2(a, b)
#define TK_TEST(name)                                                              \
  static void name();                                                              \
  static ::tk::test::Register TK_CONCAT(tk_reg_, name)(#name, name);               \
  static void name()

#define TK_EXPECT(cond, ...)                                                       \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "  FAIL %s:%d: %s ", __FILE__, __LINE__, #cond);        \
      std::fprintf(stderr, __VA_ARGS__);                                           \
      std::fprintf(stderr, "\n");                                                  \
      ::tk::test::failures()++;                                                    \
    }                                                                              \
  } while (0)

// a within tolerance of reference b, elementwise
#define TK_EXPECT_CLOSE(a, b, n, atol, rtol)                                       \
  do {                                                                             \
    double tk_r = ::tk::test::worst_ratio((a), (b), (n), (atol), (rtol));          \
    TK_EXPECT(tk_r <= 1.0, "worst error ratio %.3g (atol %g rtol %g)", tk_r,       \
              (double)(atol), (double)(rtol));                                     \
  } while (0)
