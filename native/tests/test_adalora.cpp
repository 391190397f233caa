// AdaLoRA allocator kernels: EMA update and triplet scores against the double-precision
// reference (awkward sizes, null gradients, repeated steps), the k-th smallest against a sort
// (ties, NaN), masking and the frozen pattern, and argument errors.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../cpu/adalora.h"
#include "test_harness.h"

namespace {

struct Layer {
  tk::cpu::AdaloraShape s;
  std::vector<float> a, e, b, ga, ge, gb;
  std::vector<float> state;  // [Ibar_A | U_A | Ibar_E | U_E | Ibar_B | U_B]
  tk::cpu::AdaloraState st() {
    const int64_t na = s.r * s.in, nb = s.out * s.r;
    float* p = state.data();
    return {p, p + na, p + 2 * na, p + 2 * na + s.r, p + 2 * na + 2 * s.r, p + 2 * na + 2 * s.r + nb};
  }
};

Layer make(int64_t r, int64_t in, int64_t out, uint64_t seed) {
  Layer L;
  L.s = {r, in, out};
  L.a = tk::test::randn(r * in, seed, 0.02f);
  L.e = tk::test::randn(r, seed + 1, 0.1f);
  L.b = tk::test::randn(out * r, seed + 2, 0.02f);
  L.ga = tk::test::randn(r * in, seed + 3);
  L.ge = tk::test::randn(r, seed + 4);
  L.gb = tk::test::randn(out * r, seed + 5);
  L.state.assign(2 * (r * in + r + out * r), 0.0f);
  return L;
}

}  // namespace

TK_TEST(adalora_update_and_scores_match_reference) {
  for (auto [r, in, out] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{1, 1, 1}, {3, 17, 5}, {12, 48, 144}, {7, 300, 260}}) {
    Layer fast = make(r, in, out, 11 + r), ref = make(r, in, out, 11 + r);
    std::vector<float> sf(r), sr(r);
    for (int step = 0; step < 4; ++step) {
      // new gradients every step, same for both
      auto g1 = tk::test::randn(r * in, 100 + step), g2 = tk::test::randn(r, 200 + step), g3 = tk::test::randn(out * r, 300 + step);
      tk::cpu::adalora_update_f32(fast.s, fast.a.data(), g1.data(), fast.e.data(), g2.data(), fast.b.data(), g3.data(), fast.st(), 0.85f, 0.7f);
      tk::cpu::adalora_update_reference(ref.s, ref.a.data(), g1.data(), ref.e.data(), g2.data(), ref.b.data(), g3.data(), ref.st(), 0.85f, 0.7f);
    }
    TK_EXPECT_CLOSE(fast.state.data(), ref.state.data(), fast.state.size(), 1e-12, 1e-5);
    tk::cpu::adalora_triplet_scores_f32(fast.s, fast.st(), sf.data());
    tk::cpu::adalora_triplet_scores_reference(ref.s, ref.st(), sr.data());
    TK_EXPECT_CLOSE(sf.data(), sr.data(), r, 1e-20, 1e-5);
    for (float v : sf) TK_EXPECT(v > 0.0f && std::isfinite(v), "score %g", (double)v);
  }
}

TK_TEST(adalora_first_step_values) {
  // one element each: I = |w g| = 0.5, Ibar = 0.15 * 0.5 = 0.075, U = 0.15 * |0.5 - 0.075|
  Layer L = make(1, 1, 1, 5);
  L.a = {0.5f}; L.ga = {1.0f}; L.e = {-2.0f}; L.ge = {0.25f}; L.b = {1.0f}; L.gb = {-0.5f};
  tk::cpu::adalora_update_f32(L.s, L.a.data(), L.ga.data(), L.e.data(), L.ge.data(), L.b.data(), L.gb.data(), L.st(), 0.85f, 0.85f);
  const float ibar = 0.15f * 0.5f, unc = 0.15f * (0.5f - ibar);
  for (int i = 0; i < 6; i += 2) {
    TK_EXPECT(std::fabs(L.state[i] - ibar) < 1e-7, "Ibar[%d] = %g", i, (double)L.state[i]);
    TK_EXPECT(std::fabs(L.state[i + 1] - unc) < 1e-7, "U[%d] = %g", i, (double)L.state[i + 1]);
  }
  float s = 0;
  tk::cpu::adalora_triplet_scores_f32(L.s, L.st(), &s);
  TK_EXPECT(std::fabs(s - 3 * ibar * unc) < 1e-8, "score %g", (double)s);
}

TK_TEST(adalora_null_gradient_is_zero_sensitivity) {
  Layer L = make(4, 9, 6, 21), Z = make(4, 9, 6, 21);
  std::vector<float> zero_a(4 * 9, 0.0f), zero_e(4, 0.0f), zero_b(6 * 4, 0.0f);
  for (int step = 0; step < 2; ++step) {
    tk::cpu::adalora_update_f32(L.s, L.a.data(), L.ga.data(), L.e.data(), L.ge.data(), L.b.data(), L.gb.data(), L.st(), 0.85f, 0.85f);
    tk::cpu::adalora_update_f32(Z.s, Z.a.data(), Z.ga.data(), Z.e.data(), Z.ge.data(), Z.b.data(), Z.gb.data(), Z.st(), 0.85f, 0.85f);
  }
  tk::cpu::adalora_update_f32(L.s, L.a.data(), nullptr, L.e.data(), nullptr, L.b.data(), nullptr, L.st(), 0.85f, 0.85f);
  tk::cpu::adalora_update_f32(Z.s, Z.a.data(), zero_a.data(), Z.e.data(), zero_e.data(), Z.b.data(), zero_b.data(), Z.st(), 0.85f, 0.85f);
  TK_EXPECT(L.state == Z.state, "null gradients differ from zero gradients");
}

TK_TEST(adalora_kth_smallest_matches_sort) {
  auto v = tk::test::randn(257, 9);
  v[3] = v[100] = v[200] = 0.125f;  // ties
  std::vector<float> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t k : {1, 2, 50, 128, 256, 257}) {
    float got = tk::cpu::adalora_kth_smallest_f32(v.data(), 257, k);
    TK_EXPECT(got == sorted[k - 1], "k=%lld got %g want %g", (long long)k, (double)got, (double)sorted[k - 1]);
  }
  std::vector<float> w = {3.0f, NAN, 1.0f, 2.0f};
  TK_EXPECT(tk::cpu::adalora_kth_smallest_f32(w.data(), 4, 3) == 3.0f, "NaN must sort last");
  TK_EXPECT(std::isnan(tk::cpu::adalora_kth_smallest_f32(w.data(), 4, 4)), "k = n picks the NaN");
}

// Properties of the threshold on distinct random scores: the kept ranks fit the budget, and the
// best masked rank (the one scored exactly t) would not have fitted on top of them.
TK_TEST(adalora_cost_threshold_keeps_best_ranks_within_budget) {
  auto scores = tk::test::randn(97, 21);
  std::vector<float> costs(97);
  for (size_t i = 0; i < 97; ++i) costs[i] = static_cast<float>(257 + 512 * (i % 3));  // 257, 769, 1281
  double total = 0;
  for (float c : costs) total += c;
  for (double budget : {0.0, 256.0, 1000.0, 20000.0, total / 2, total - 1, total, total + 5}) {
    const float t = tk::cpu::adalora_cost_threshold_f32(scores.data(), costs.data(), 97, budget);
    double kept_cost = 0, at_t_cost = -1;
    for (size_t i = 0; i < 97; ++i) {
      if (scores[i] > t) kept_cost += costs[i];
      if (scores[i] == t) at_t_cost = costs[i];
    }
    TK_EXPECT(kept_cost <= budget, "budget %g: kept cost %g is over it", budget, kept_cost);
    if (budget >= total) {
      TK_EXPECT(std::isinf(t) && t < 0, "budget %g covers every rank but the threshold is %g", budget, (double)t);
    } else {
      TK_EXPECT(at_t_cost >= 0 && kept_cost + at_t_cost > budget, "budget %g: the rank at the threshold %g would have fitted", budget, (double)t);
    }
  }
  // scores 4 3 2 1 with costs 2 5 1 1: budget 3 keeps only the 4 (the 3 does not fit), 7 keeps 4 and 3
  std::vector<float> s4 = {1, 4, 2, 3}, c4 = {1, 2, 1, 5};
  TK_EXPECT(tk::cpu::adalora_cost_threshold_f32(s4.data(), c4.data(), 4, 3.0) == 3.0f, "must stop at the first misfit");
  TK_EXPECT(tk::cpu::adalora_cost_threshold_f32(s4.data(), c4.data(), 4, 7.0) == 2.0f, "4 and 3 fit in 7");
  // a tie with the misfit is masked with it, so the kept cost stays within the budget
  std::vector<float> st = {5, 2, 2}, ct = {1, 1, 1};
  TK_EXPECT(tk::cpu::adalora_cost_threshold_f32(st.data(), ct.data(), 3, 2.0) == 2.0f, "ties with the misfit");
  std::vector<float> sn = {1, NAN, 2}, cn = {1, 1, 1};
  TK_EXPECT(tk::cpu::adalora_cost_threshold_f32(sn.data(), cn.data(), 3, 1.0) == 2.0f, "NaN must be kept first");
  bool threw = false;
  try {
    std::vector<float> bad = {1, -1};
    tk::cpu::adalora_cost_threshold_f32(s4.data(), bad.data(), 2, 10.0);
  } catch (const tk::Error& err) {
    threw = err.code() == tk::ErrorCode::Value;
  }
  TK_EXPECT(threw, "a negative cost must be refused");
}

TK_TEST(adalora_mask_and_pattern) {
  std::vector<float> scores = {0.5f, 0.1f, 0.3f, 0.1f, 0.9f};
  std::vector<float> e = {1, 2, 3, 4, 5};
  std::vector<uint8_t> keep(5, 7);
  int64_t kept = tk::cpu::adalora_mask_f32(5, scores.data(), 0.3f, e.data(), keep.data());
  TK_EXPECT(kept == 2, "kept %lld", (long long)kept);  // <= threshold is masked (ties too)
  TK_EXPECT((e == std::vector<float>{1, 0, 0, 0, 5}), "E after mask");
  TK_EXPECT((keep == std::vector<uint8_t>{1, 0, 0, 0, 1}), "keep mask");
  std::vector<float> e2 = {1, 2, 3, 4, 5};
  tk::cpu::adalora_apply_pattern_f32(5, keep.data(), e2.data());
  TK_EXPECT(e2 == e, "pattern reproduces the mask");
}

TK_TEST(adalora_argument_errors) {
  Layer L = make(2, 3, 4, 1);
  bool threw = false;
  try {
    tk::cpu::adalora_update_f32(L.s, L.a.data(), L.ga.data(), L.e.data(), L.ge.data(), L.b.data(), L.gb.data(), L.st(), 1.0f, 0.5f);
  } catch (const tk::Error& err) {
    threw = err.code() == tk::ErrorCode::Value;
  }
  TK_EXPECT(threw, "beta1 = 1 must be refused");
  threw = false;
  try {
    tk::cpu::adalora_kth_smallest_f32(L.a.data(), 6, 0);
  } catch (const tk::Error& err) {
    threw = err.code() == tk::ErrorCode::Value;
  }
  TK_EXPECT(threw, "k = 0 must be refused");
  threw = false;
  try {
    tk::cpu::check_adalora_shape({-1, 2, 3});
  } catch (const tk::Error& err) {
    threw = err.code() == tk::ErrorCode::Shape;
  }
  TK_EXPECT(threw, "negative rank must be refused");
}
