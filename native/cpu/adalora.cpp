// AdaLoRA rank allocator kernels (see adalora.h). The work per layer is O(r (in + out)) and runs
// once per optimizer step, so these are plain loops; the EMA update of the two large factors
// is split over the thread pool when it is big enough to pay for it.
#include "cpu/adalora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"

namespace tk::cpu {

namespace {

// One parameter tensor: Ibar, U updated in place from w and g (g may be null: I = 0).
// The arithmetic is f32 with separate products, as PyTorch's element-wise ops compute it.
void update_one(int64_t n, const float* w, const float* g, float* ibar, float* unc, float b1, float c1, float b2,
                float c2) {
  auto body = [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const float ipt = g ? std::fabs(w[i] * g[i]) : 0.0f;
      const float m = b1 * ibar[i] + c1 * ipt;
      ibar[i] = m;
      unc[i] = b2 * unc[i] + c2 * std::fabs(ipt - m);
    }
  };
  if (n >= (int64_t{1} << 16)) parallel_for(n, int64_t{1} << 14, body);
  else body(0, n);
}

}  // namespace

void adalora_update_f32(const AdaloraShape& s, const float* a, const float* ga, const float* e, const float* ge,
                        const float* b, const float* gb, const AdaloraState& st, float beta1, float beta2) {
  check_adalora_shape(s);
  TK_CHECK(beta1 > 0.0f && beta1 < 1.0f && beta2 > 0.0f && beta2 < 1.0f, Value,
           "adalora: beta1 and beta2 must lie in (0, 1) but are ", beta1, " and ", beta2);
  // (1 - beta) in double, then rounded: PyTorch receives the Python float 1 - beta.
  const float c1 = static_cast<float>(1.0 - static_cast<double>(beta1));
  const float c2 = static_cast<float>(1.0 - static_cast<double>(beta2));
  update_one(s.r * s.in, a, ga, st.ibar_a, st.unc_a, beta1, c1, beta2, c2);
  update_one(s.r, e, ge, st.ibar_e, st.unc_e, beta1, c1, beta2, c2);
  update_one(s.out * s.r, b, gb, st.ibar_b, st.unc_b, beta1, c1, beta2, c2);
}

void adalora_triplet_scores_f32(const AdaloraShape& s, const AdaloraState& st, float* scores) {
  check_adalora_shape(s);
  const int64_t r = s.r;
  // mean over a row of A, accumulated in double and rounded once
  std::vector<double> col_b(static_cast<size_t>(r), 0.0);
  for (int64_t j = 0; j < s.out; ++j) {
    const float* ib = st.ibar_b + j * r;
    const float* ub = st.unc_b + j * r;
    for (int64_t i = 0; i < r; ++i) col_b[i] += static_cast<double>(ib[i] * ub[i]);
  }
  for (int64_t i = 0; i < r; ++i) {
    double row_a = 0.0;
    const float* ia = st.ibar_a + i * s.in;
    const float* ua = st.unc_a + i * s.in;
    for (int64_t j = 0; j < s.in; ++j) row_a += static_cast<double>(ia[j] * ua[j]);
    const float mean_a = s.in ? static_cast<float>(row_a / static_cast<double>(s.in)) : NAN;
    const float mean_b = s.out ? static_cast<float>(col_b[i] / static_cast<double>(s.out)) : NAN;
    const float se = st.ibar_e[i] * st.unc_e[i];
    scores[i] = se + (mean_a + mean_b);
  }
}

float adalora_kth_smallest_f32(const float* values, int64_t n, int64_t k) {
  TK_CHECK(n >= 1 && k >= 1 && k <= n, Value, "adalora: k-th smallest needs 1 <= k <= n but k=", k, " n=", n);
  std::vector<float> v(values, values + n);
  auto less = [](float x, float y) {
    // NaN sorts after every number (torch.kthvalue treats NaN as the largest)
    if (std::isnan(x)) return false;
    if (std::isnan(y)) return true;
    return x < y;
  };
  std::nth_element(v.begin(), v.begin() + (k - 1), v.end(), less);
  return v[static_cast<size_t>(k - 1)];
}

float adalora_cost_threshold_f32(const float* scores, const float* costs, int64_t n, double budget) {
  TK_CHECK(n >= 0, Value, "adalora cost threshold: negative count ", n);
  TK_CHECK(!std::isnan(budget), Value, "adalora cost threshold: the budget is NaN");
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  // descending score; NaN counts as the largest (kept first), as in adalora_kth_smallest_f32
  auto higher = [&](int64_t x, int64_t y) {
    const float a = scores[x], b = scores[y];
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
    return a > b;
  };
  std::stable_sort(order.begin(), order.end(), higher);
  double used = 0.0;
  for (int64_t i : order) {
    TK_CHECK(costs[i] >= 0.0f, Value, "adalora cost threshold: negative cost ", costs[i], " at ", i);
    if (used + costs[i] > budget) return scores[i];
    used += costs[i];
  }
  return -INFINITY;
}

int64_t adalora_mask_f32(int64_t r, const float* scores, float threshold, float* e, uint8_t* keep) {
  TK_CHECK(r >= 0, Shape, "adalora mask: negative rank ", r);
  int64_t kept = 0;
  for (int64_t i = 0; i < r; ++i) {
    const bool masked = scores[i] <= threshold;
    if (masked) e[i] = 0.0f;
    else ++kept;
    if (keep) keep[i] = masked ? 0 : 1;
  }
  return kept;
}

void adalora_apply_pattern_f32(int64_t r, const uint8_t* keep, float* e) {
  TK_CHECK(r >= 0, Shape, "adalora pattern: negative rank ", r);
  for (int64_t i = 0; i < r; ++i)
    if (!keep[i]) e[i] = 0.0f;
}

void adalora_update_reference(const AdaloraShape& s, const float* a, const float* ga, const float* e,
                              const float* ge, const float* b, const float* gb, const AdaloraState& st,
                              float beta1, float beta2) {
  const double b1 = beta1, b2 = beta2;
  auto one = [&](int64_t n, const float* w, const float* g, float* ibar, float* unc) {
    for (int64_t i = 0; i < n; ++i) {
      const double ipt = g ? std::fabs(static_cast<double>(w[i]) * g[i]) : 0.0;
      const double m = b1 * ibar[i] + (1.0 - b1) * ipt;
      const double u = b2 * unc[i] + (1.0 - b2) * std::fabs(ipt - m);
      ibar[i] = static_cast<float>(m);
      unc[i] = static_cast<float>(u);
    }
  };
  one(s.r * s.in, a, ga, st.ibar_a, st.unc_a);
  one(s.r, e, ge, st.ibar_e, st.unc_e);
  one(s.out * s.r, b, gb, st.ibar_b, st.unc_b);
}

void adalora_triplet_scores_reference(const AdaloraShape& s, const AdaloraState& st, float* scores) {
  for (int64_t i = 0; i < s.r; ++i) {
    double sa = 0, sb = 0;
    for (int64_t j = 0; j < s.in; ++j) sa += static_cast<double>(st.ibar_a[i * s.in + j]) * st.unc_a[i * s.in + j];
    for (int64_t j = 0; j < s.out; ++j) sb += static_cast<double>(st.ibar_b[j * s.r + i]) * st.unc_b[j * s.r + i];
    scores[i] = static_cast<float>(static_cast<double>(st.ibar_e[i]) * st.unc_e[i] + sa / s.in + sb / s.out);
  }
}

}  // namespace tk::cpu
