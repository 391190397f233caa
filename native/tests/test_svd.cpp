// SVD: orthonormal factors, reconstruction, ordering and known singular values on random,
// ill-conditioned, rank-deficient, tall and wide matrices, f32 and f64, thin and truncated.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "../core/status.h"
#include "../cpu/svd.h"
#include "test_harness.h"

namespace {

// Orthonormal columns: Gram-Schmidt (twice) of a random [rows, cols] matrix, rows >= cols.
std::vector<double> random_orthonormal(int64_t rows, int64_t cols, uint64_t seed) {
  auto r = tk::test::randn(rows * cols, seed);
  std::vector<double> q(r.begin(), r.end());
  for (int64_t c = 0; c < cols; ++c) {
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t c2 = 0; c2 < c; ++c2) {
        double d = 0;
        for (int64_t i = 0; i < rows; ++i) d += q[i * cols + c] * q[i * cols + c2];
        for (int64_t i = 0; i < rows; ++i) q[i * cols + c] -= d * q[i * cols + c2];
      }
    double nn = 0;
    for (int64_t i = 0; i < rows; ++i) nn += q[i * cols + c] * q[i * cols + c];
    for (int64_t i = 0; i < rows; ++i) q[i * cols + c] /= std::sqrt(nn);
  }
  return q;
}

// A [m, n] = U diag(sv) V^T with random orthonormal U [m, p], V [n, p], p = sv.size().
std::vector<double> with_singular_values(int64_t m, int64_t n, const std::vector<double>& sv, uint64_t seed) {
  const int64_t p = static_cast<int64_t>(sv.size());
  auto U = random_orthonormal(m, p, seed), V = random_orthonormal(n, p, seed + 1);
  std::vector<double> a(m * n, 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < p; ++c) a[i * n + j] += U[i * p + c] * sv[c] * V[j * p + c];
  return a;
}

struct Check {
  double orth_u, orth_v, recon, order;  // worst |U^T U - I|, |Vt Vt^T - I|, |A - U S Vt| / |A|_F, ordering
};

template <typename T>
Check run_svd(int64_t m, int64_t n, int64_t k, const std::vector<double>& ad, std::vector<double>* s_out,
              int* sweeps) {
  std::vector<T> a(ad.begin(), ad.end()), u(m * k, T(7)), s(k, T(7)), vt(k * n, T(7));
  if constexpr (sizeof(T) == 4) *sweeps = tk::cpu::svd_f32(m, n, k, a.data(), u.data(), s.data(), vt.data());
  else *sweeps = tk::cpu::svd_f64(m, n, k, a.data(), u.data(), s.data(), vt.data());
  Check c{0, 0, 0, 0};
  for (int64_t x = 0; x < k; ++x)
    for (int64_t y = 0; y < k; ++y) {
      double du = 0, dv = 0;
      for (int64_t i = 0; i < m; ++i) du += static_cast<double>(u[i * k + x]) * u[i * k + y];
      for (int64_t j = 0; j < n; ++j) dv += static_cast<double>(vt[x * n + j]) * vt[y * n + j];
      c.orth_u = std::max(c.orth_u, std::fabs(du - (x == y)));
      c.orth_v = std::max(c.orth_v, std::fabs(dv - (x == y)));
    }
  double err2 = 0, norm2 = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double r = 0;
      for (int64_t x = 0; x < k; ++x) r += static_cast<double>(u[i * k + x]) * s[x] * vt[x * n + j];
      err2 += (r - a[i * n + j]) * (r - a[i * n + j]);
      norm2 += static_cast<double>(a[i * n + j]) * a[i * n + j];
    }
  c.recon = norm2 > 0 ? std::sqrt(err2 / norm2) : std::sqrt(err2);
  for (int64_t x = 0; x < k; ++x) {
    if (s[x] < 0) c.order = 1;
    if (x > 0 && s[x] > s[x - 1]) c.order = 1;
  }
  if (s_out) s_out->assign(s.begin(), s.end());
  return c;
}

template <typename T>
void check_thin(const char* what, int64_t m, int64_t n, const std::vector<double>& a, const std::vector<double>* known) {
  const double tol = sizeof(T) == 4 ? 2e-5 : 1e-12;
  const int64_t k = std::min(m, n);
  std::vector<double> s;
  int sweeps = 0;
  Check c = run_svd<T>(m, n, k, a, &s, &sweeps);
  TK_EXPECT(c.orth_u <= tol && c.orth_v <= tol && c.recon <= tol && c.order == 0,
            "%s %s m=%lld n=%lld: |UtU-I| %.3g |VVt-I| %.3g recon %.3g order %g (sweeps %d)", what,
            sizeof(T) == 4 ? "f32" : "f64", (long long)m, (long long)n, c.orth_u, c.orth_v, c.recon, c.order, sweeps);
  TK_EXPECT(sweeps < 30, "%s: %d sweeps", what, sweeps);
  if (known) {  // known singular values: absolute error relative to the largest
    std::vector<double> ks = *known;
    std::sort(ks.rbegin(), ks.rend());
    ks.resize(k, 0.0);
    double worst = 0;
    for (int64_t x = 0; x < k; ++x) worst = std::max(worst, std::fabs(s[x] - ks[x]) / ks[0]);
    TK_EXPECT(worst <= tol, "%s: singular values off by %.3g of the largest", what, worst);
  }
}

std::vector<double> randn_d(int64_t n, uint64_t seed) {
  auto r = tk::test::randn(n, seed);
  return std::vector<double>(r.begin(), r.end());
}

}  // namespace

TK_TEST(svd_random_tall_wide_square) {
  const int64_t sizes[][2] = {{1, 1}, {1, 7}, {7, 1}, {8, 8}, {50, 20}, {20, 50}, {64, 64}, {12, 768}, {300, 12}};
  uint64_t seed = 10;
  for (auto& z : sizes) {
    auto a = randn_d(z[0] * z[1], seed++);
    check_thin<float>("random", z[0], z[1], a, nullptr);
    check_thin<double>("random", z[0], z[1], a, nullptr);
  }
}

TK_TEST(svd_ill_conditioned_known_values) {
  // singular values 10^0 .. 10^-10 (f64 sees them all; f32 to ~1e-6 of the largest)
  for (auto dims : {std::pair<int64_t, int64_t>{30, 12}, {12, 30}, {16, 16}}) {
    const int64_t p = std::min(dims.first, dims.second);
    std::vector<double> sv(p);
    for (int64_t i = 0; i < p; ++i) sv[i] = std::pow(10.0, -10.0 * i / (p - 1));
    std::reverse(sv.begin(), sv.end());  // unsorted input order on purpose
    auto a = with_singular_values(dims.first, dims.second, sv, 77);
    check_thin<float>("ill-conditioned", dims.first, dims.second, a, &sv);
    check_thin<double>("ill-conditioned", dims.first, dims.second, a, &sv);
    // f64: one-sided Jacobi keeps the small ones to high relative accuracy for this graded case
    std::vector<double> s;
    int sweeps;
    run_svd<double>(dims.first, dims.second, p, a, &s, &sweeps);
    std::sort(sv.rbegin(), sv.rend());
    double rel = 0;
    for (int64_t i = 0; i < p; ++i) rel = std::max(rel, std::fabs(s[i] - sv[i]) / sv[i]);
    TK_EXPECT(rel < 1e-5, "smallest singular values relative error %.3g", rel);
  }
}

TK_TEST(svd_rank_deficient_and_zero) {
  // rank 3 out of min(m, n): trailing singular values are ~0, factors stay orthonormal
  for (auto dims : {std::pair<int64_t, int64_t>{20, 9}, {9, 20}, {10, 10}}) {
    std::vector<double> sv = {5.0, 2.0, 0.5};
    auto a = with_singular_values(dims.first, dims.second, sv, 5);
    check_thin<float>("rank-3", dims.first, dims.second, a, &sv);
    check_thin<double>("rank-3", dims.first, dims.second, a, &sv);
  }
  // exact zero columns/rows and the zero matrix: completion must still give orthonormal factors
  std::vector<double> a(6 * 4, 0.0);
  check_thin<double>("zero", 6, 4, a, nullptr);
  check_thin<float>("zero", 4, 6, a, nullptr);
  for (int i = 0; i < 6; ++i) a[i * 4 + 1] = i + 1.0;  // one nonzero column
  check_thin<double>("one column", 6, 4, a, nullptr);
  check_thin<float>("one column (wide)", 4, 6, a, nullptr);
}

TK_TEST(svd_truncated_is_best_rank_k) {
  for (auto dims : {std::pair<int64_t, int64_t>{40, 16}, {16, 40}}) {
    auto a = randn_d(dims.first * dims.second, 99);
    const int64_t p = std::min(dims.first, dims.second);
    std::vector<double> full, trunc;
    int sweeps;
    run_svd<double>(dims.first, dims.second, p, a, &full, &sweeps);
    for (int64_t k : {int64_t{1}, int64_t{4}, p - 1}) {
      Check c = run_svd<double>(dims.first, dims.second, k, a, &trunc, &sweeps);
      TK_EXPECT(c.orth_u < 1e-12 && c.orth_v < 1e-12, "truncated factors orthonormal");
      for (int64_t x = 0; x < k; ++x) TK_EXPECT(std::fabs(trunc[x] - full[x]) < 1e-12, "top-k values");
      // Eckart-Young: |A - A_k|_F^2 = sum of the dropped sigma^2
      double tail = 0, total = 0;
      for (int64_t x = 0; x < p; ++x) (x >= k ? tail : total) += full[x] * full[x];
      total += tail;
      TK_EXPECT(std::fabs(c.recon - std::sqrt(tail / total)) < 1e-10, "k=%lld: residual %.6g vs %.6g",
                (long long)k, c.recon, std::sqrt(tail / total));
    }
    Check c32 = run_svd<float>(dims.first, dims.second, 4, a, &trunc, &sweeps);
    TK_EXPECT(c32.orth_u < 2e-5 && c32.orth_v < 2e-5, "f32 truncated orthonormal");
    for (int64_t x = 0; x < 4; ++x) TK_EXPECT(std::fabs(trunc[x] - full[x]) < 2e-5 * full[0], "f32 top-k values");
  }
}

TK_TEST(svd_rejects_bad_input) {
  std::vector<float> a = {1, 2, 3, NAN}, u(4), s(2), vt(4);
  auto code = [&](int64_t m, int64_t n, int64_t k) {
    try {
      tk::cpu::svd_f32(m, n, k, a.data(), u.data(), s.data(), vt.data());
    } catch (const tk::Error& e) {
      return static_cast<int>(e.code());
    }
    return -1;
  };
  TK_EXPECT(code(2, 2, 2) == static_cast<int>(tk::ErrorCode::Value), "NaN input");
  a[3] = 4;
  TK_EXPECT(code(2, 2, 3) == static_cast<int>(tk::ErrorCode::Shape), "k > min(m, n)");
  TK_EXPECT(code(-1, 2, 0) == static_cast<int>(tk::ErrorCode::Shape), "negative m");
  TK_EXPECT(code(2, 2, 2) == -1, "valid input");
  TK_EXPECT(code(0, 5, 0) == -1, "empty matrix");
}
