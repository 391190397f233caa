// AdaLoRA rank-allocator kernels (lib/native.ts "AdaLoRA"; kernels in native/cpu/adalora.h), one
// options object each. A layer's EMA state is ONE f32 tensor laid out as
//   [ Ibar_A (r*in) | U_A (r*in) | Ibar_E (r) | U_E (r) | Ibar_B (out*r) | U_B (out*r) ].
#include <cmath>

#include "cpu/adalora.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

// adaloraUpdateScores({ a, ga | null, e, ge | null, b, gb | null, state, scores | null, r, inF, outF, beta1, beta2, update })
// update: EMAs from (param, grad) (a null grad counts as zero). scores (when given) [r]: triplet
// scores from the (updated) EMAs.
TK_CPU_OP(adaloraUpdateScores) {
  Opts o(info, "adaloraUpdateScores");
  cpu::AdaloraShape s;
  s.r = o.integer("r");
  s.in = o.integer("inF");
  s.out = o.integer("outF");
  cpu::check_adalora_shape(s);
  const double beta1 = o.number("beta1");
  const double beta2 = o.number("beta2");
  const bool update = o.flag("update");
  const int64_t na = checked_elems(s.r, s.in, "adaloraUpdateScores a"), nb = checked_elems(s.out, s.r, "adaloraUpdateScores b");
  const int64_t nstate = 2 * (na + s.r + nb);
  float* state = o.tensor<float>("state", nstate);
  cpu::AdaloraState st;
  st.ibar_a = state;
  st.unc_a = state + na;
  st.ibar_e = state + 2 * na;
  st.unc_e = state + 2 * na + s.r;
  st.ibar_b = state + 2 * na + 2 * s.r;
  st.unc_b = state + 2 * na + 2 * s.r + nb;
  float* scores = o.optional_tensor<float>("scores", s.r);
  if (update) {
    TK_CHECK(std::isfinite(beta1) && std::isfinite(beta2), Value, "adaloraUpdateScores: betas must be finite");
    const float* a = o.tensor<float>("a", na);
    const float* ga = o.optional_tensor<float>("ga", na);
    const float* e = o.tensor<float>("e", s.r);
    const float* ge = o.optional_tensor<float>("ge", s.r);
    const float* b = o.tensor<float>("b", nb);
    const float* gb = o.optional_tensor<float>("gb", nb);
    cpu::adalora_update_f32(s, a, ga, e, ge, b, gb, st, static_cast<float>(beta1), static_cast<float>(beta2));
  }
  if (scores) cpu::adalora_triplet_scores_f32(s, st, scores);
  return info.Env().Undefined();
}

// adaloraKthSmallest({ values, n, k }) -> the k-th smallest (1-based) of n f32 values.
TK_CPU_OP(adaloraKthSmallest) {
  Opts o(info, "adaloraKthSmallest");
  const int64_t n = o.integer("n");
  const int64_t k = o.integer("k");
  TK_CHECK(n >= 1 && k >= 1 && k <= n, Value, "adaloraKthSmallest: needs 1 <= k <= n but k=", k, " n=", n);
  const float* v = o.tensor<float>("values", n);
  return Napi::Number::New(info.Env(), cpu::adalora_kth_smallest_f32(v, n, k));
}

// adaloraCostThreshold({ scores, costs, n, budget }) -> the score threshold that keeps the
// highest-scored ranks whose summed cost (f32 [n], parameters per rank) fits the budget.
TK_CPU_OP(adaloraCostThreshold) {
  Opts o(info, "adaloraCostThreshold");
  const int64_t n = o.integer("n");
  TK_CHECK(n >= 1, Value, "adaloraCostThreshold: needs n >= 1 but n=", n);
  const double budget = o.number("budget");
  const float* scores = o.tensor<float>("scores", n);
  const float* costs = o.tensor<float>("costs", n);
  return Napi::Number::New(info.Env(), cpu::adalora_cost_threshold_f32(scores, costs, n, budget));
}

// adaloraMask({ e, scores, r, threshold, keep | null }) -> kept count.
// E[i] = 0 where scores[i] <= threshold; keep (u8 [r]) gets 1 for kept ranks.
TK_CPU_OP(adaloraMask) {
  Opts o(info, "adaloraMask");
  const int64_t r = o.integer("r");
  TK_CHECK(r >= 0, Shape, "adaloraMask: negative rank ", r);
  const double t = o.number("threshold");
  float* e = o.tensor<float>("e", r);
  const float* scores = o.tensor<float>("scores", r);
  uint8_t* keep = o.optional_tensor<uint8_t>("keep", r);
  const int64_t kept = cpu::adalora_mask_f32(r, scores, static_cast<float>(t), e, keep);
  return Napi::Number::New(info.Env(), static_cast<double>(kept));
}

// adaloraApplyPattern({ e, keep, r }): E[i] = 0 where keep[i] == 0.
TK_CPU_OP(adaloraApplyPattern) {
  Opts o(info, "adaloraApplyPattern");
  const int64_t r = o.integer("r");
  TK_CHECK(r >= 0, Shape, "adaloraApplyPattern: negative rank ", r);
  float* e = o.tensor<float>("e", r);
  const uint8_t* keep = o.tensor<uint8_t>("keep", r);
  cpu::adalora_apply_pattern_f32(r, keep, e);
  return info.Env().Undefined();
}
