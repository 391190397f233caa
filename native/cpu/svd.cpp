// One-sided Jacobi SVD. See svd.h.
//
// Notation: X [L, p] is A when m >= n, else A^T, so p = min(m, n) <= L = max(m, n). Its p
// columns are stored as the rows of G [p, L] (contiguous, so each rotation streams two rows).
// Rotations J [p, p] accumulate as the rows of Jt = J^T. At convergence X J = G^T has orthogonal
// columns, so X = Ux diag(sigma) J^T with sigma_j = |G_j| and Ux's columns G_j / sigma_j.
//   m >= n: U = Ux, Vt = J^T          m < n: A = X^T = J diag(sigma) Ux^T, so U = J, Vt = Ux^T
#include "svd.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"

namespace tk::cpu {

namespace {

constexpr int kMaxSweeps = 80;

// Eight independent double accumulators: the compiler vectorizes them (one 512-bit lane set)
// without -ffast-math, since the summation order is written out.
constexpr int kLanes = 8;

double sum_lanes(const double* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
double dot(const T* x, const T* y, int64_t n) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(x[i + l]) * y[i + l];
  for (; i < n; ++i) acc[i % kLanes] += static_cast<double>(x[i]) * y[i];
  return sum_lanes(acc);
}

// rows x, y <- c x - s y, s x + c y; returns |x'|^2 and |y'|^2 of the rotated (stored) rows in
// the same pass (recomputed rather than updated: alpha - t gamma loses accuracy for tiny rows).
template <typename T>
void rotate_norms(T* __restrict x, T* __restrict y, int64_t n, double c, double s, double* nx, double* ny) {
  double ax[kLanes] = {}, ay[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const double xi = x[i + l], yi = y[i + l];
      const T xr = static_cast<T>(c * xi - s * yi), yr = static_cast<T>(s * xi + c * yi);
      x[i + l] = xr;
      y[i + l] = yr;
      ax[l] += static_cast<double>(xr) * xr;
      ay[l] += static_cast<double>(yr) * yr;
    }
  for (; i < n; ++i) {
    const double xi = x[i], yi = y[i];
    const T xr = static_cast<T>(c * xi - s * yi), yr = static_cast<T>(s * xi + c * yi);
    x[i] = xr;
    y[i] = yr;
    ax[i % kLanes] += static_cast<double>(xr) * xr;
    ay[i % kLanes] += static_cast<double>(yr) * yr;
  }
  *nx = sum_lanes(ax);
  *ny = sum_lanes(ay);
}

// rows x, y <- c x - s y, s x + c y
template <typename T>
void rotate(T* __restrict x, T* __restrict y, int64_t n, double c, double s) {
  for (int64_t i = 0; i < n; ++i) {
    const double xi = x[i], yi = y[i];
    x[i] = static_cast<T>(c * xi - s * yi);
    y[i] = static_cast<T>(s * xi + c * yi);
  }
}

template <typename T>
int svd_impl(int64_t m, int64_t n, int64_t k, const T* a, T* u, T* s, T* vt) {
  TK_CHECK(m >= 0 && n >= 0, Shape, "svd: negative size m=", m, " n=", n);
  TK_CHECK(k >= 0 && k <= std::min(m, n), Shape, "svd: k must lie in [0, min(m, n) = ", std::min(m, n),
           "] but is ", k);
  for (int64_t i = 0; i < m * n; ++i)
    TK_CHECK(std::isfinite(a[i]), Value, "svd: the matrix holds a non-finite value at index ", i);
  if (k == 0) return 0;

  const bool tall = m >= n;
  const int64_t p = std::min(m, n), L = std::max(m, n);
  std::vector<T> G(static_cast<size_t>(p * L)), Jt(static_cast<size_t>(p * p), T(0));
  if (tall) {  // G = A^T
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) G[j * L + i] = a[i * n + j];
  } else {  // G = A
    std::copy(a, a + m * n, G.begin());
  }
  for (int64_t j = 0; j < p; ++j) Jt[j * p + j] = T(1);

  // A pair counts as orthogonal when |g_i . g_j| <= tol |g_i| |g_j|. With T rounding, the
  // achievable level is a few ulps times sqrt(L) (the dot product's rounding).
  const double eps = std::numeric_limits<T>::epsilon();
  const double tol = eps * std::max(1.0, std::sqrt(static_cast<double>(L)));
  std::vector<double> norm2(p);  // |g_j|^2, kept current across rotations
  for (int64_t j = 0; j < p; ++j) norm2[j] = dot(&G[j * L], &G[j * L], L);

  // Round-robin (tournament) ordering: each sweep is P - 1 rounds of P / 2 disjoint pairs
  // (P = p rounded up to even; the pair with the padding index is skipped). Pairs of a round touch
  // different rows of G, Jt and norm2, so they run in parallel, and the result does not depend on
  // the thread count.
  const int64_t P = p + (p & 1);
  std::vector<int64_t> slot(static_cast<size_t>(P));
  std::iota(slot.begin(), slot.end(), 0);
  // one pair: rotate rows i < j if they are not yet orthogonal; returns whether it rotated
  auto orthogonalize = [&](int64_t i, int64_t j) {
    const double alpha = norm2[i], beta = norm2[j];
    if (alpha == 0.0 || beta == 0.0) return false;  // a zero column is orthogonal to everything
    const double gamma = dot(&G[i * L], &G[j * L], L);
    if (std::fabs(gamma) <= tol * std::sqrt(alpha) * std::sqrt(beta)) return false;
    // Rotation angle that zeroes the (i, j) entry of G G^T (the symmetric 2x2 Schur step).
    const double zeta = (beta - alpha) / (2.0 * gamma);
    const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1.0 + zeta * zeta));
    const double c = 1.0 / std::sqrt(1.0 + t * t), sn = c * t;
    rotate_norms(&G[i * L], &G[j * L], L, c, sn, &norm2[i], &norm2[j]);
    rotate(&Jt[i * p], &Jt[j * p], p, c, sn);
    return true;
  };
  // ~32k multiply-adds per pair-chunk at the least, so small matrices stay on one thread
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, L + p));
  int sweeps = 0;
  for (; sweeps < kMaxSweeps; ++sweeps) {
    std::atomic<bool> rotated{false};
    for (int64_t round = 0; round < P - 1; ++round) {
      parallel_for(P / 2, grain, [&](int64_t b, int64_t e) {
        bool any = false;
        for (int64_t k = b; k < e; ++k) {
          const int64_t x = slot[static_cast<size_t>(k)], y = slot[static_cast<size_t>(P - 1 - k)];
          if (x >= p || y >= p) continue;  // the padding index of an odd p
          any |= orthogonalize(std::min(x, y), std::max(x, y));
        }
        if (any) rotated.store(true, std::memory_order_relaxed);
      });
      // circle method: slot 0 stays, the others move one place
      std::rotate(slot.begin() + 1, slot.end() - 1, slot.end());
    }
    if (!rotated.load()) break;
  }

  // sigma, sorted descending; keep the first k.
  std::vector<double> sigma(p);
  for (int64_t j = 0; j < p; ++j) sigma[j] = std::sqrt(norm2[j]);
  std::vector<int64_t> order(p);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return sigma[x] > sigma[y]; });

  // Ux columns (length L) of the kept triplets, as rows of Q [k, L], in double.
  // A column whose norm is zero (or too small to be a direction) is completed: the standard basis
  // vector least covered by the columns so far, Gram-Schmidt'ed twice against them.
  const double smax = sigma[order[0]];
  const double tiny = std::max(smax * eps * eps, static_cast<double>(std::numeric_limits<T>::min()) * 1e3);
  std::vector<double> Q(static_cast<size_t>(k * L));
  for (int64_t c = 0; c < k; ++c) {
    const int64_t j = order[c];
    double* q = &Q[c * L];
    if (sigma[j] > tiny) {
      for (int64_t i = 0; i < L; ++i) q[i] = G[j * L + i] / sigma[j];
      continue;
    }
    sigma[j] = 0.0;
    int64_t best = 0;
    double best_res = -1;
    for (int64_t i = 0; i < L; ++i) {  // residual of e_i after projecting out the columns so far
      double covered = 0;
      for (int64_t c2 = 0; c2 < c; ++c2) covered += Q[c2 * L + i] * Q[c2 * L + i];
      if (1.0 - covered > best_res) best_res = 1.0 - covered, best = i;
    }
    std::fill(q, q + L, 0.0);
    q[best] = 1.0;
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t c2 = 0; c2 < c; ++c2) {
        const double* o = &Q[c2 * L];
        const double d = dot(q, o, L);
        for (int64_t i = 0; i < L; ++i) q[i] -= d * o[i];
      }
    const double nq = std::sqrt(dot(q, q, L));
    for (int64_t i = 0; i < L; ++i) q[i] /= nq;
  }

  for (int64_t c = 0; c < k; ++c) s[c] = static_cast<T>(sigma[order[c]]);
  if (tall) {  // U [m, k] = Ux: U[i, c] = Q[c, i];  Vt [k, n] = Jt rows
    if (u)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < k; ++c) u[i * k + c] = static_cast<T>(Q[c * L + i]);
    if (vt)
      for (int64_t c = 0; c < k; ++c) std::copy(&Jt[order[c] * p], &Jt[order[c] * p] + n, vt + c * n);
  } else {  // U [m, k] = J: U[i, c] = Jt[order[c], i];  Vt [k, n] = Ux^T: rows of Q
    if (u)
      for (int64_t i = 0; i < m; ++i)
        for (int64_t c = 0; c < k; ++c) u[i * k + c] = Jt[order[c] * p + i];
    if (vt)
      for (int64_t c = 0; c < k; ++c)
        for (int64_t i = 0; i < n; ++i) vt[c * n + i] = static_cast<T>(Q[c * L + i]);
  }
  return sweeps + 1;
}

}  // namespace

int svd_f32(int64_t m, int64_t n, int64_t k, const float* a, float* u, float* s, float* vt) {
  return svd_impl<float>(m, n, k, a, u, s, vt);
}

int svd_f64(int64_t m, int64_t n, int64_t k, const double* a, double* u, double* s, double* vt) {
  return svd_impl<double>(m, n, k, a, u, s, vt);
}

}  // namespace tk::cpu
