// AdaLoRA rank-allocator bindings (lib/native.ts "AdaLoRA"; kernels in native/cpu/adalora.h).
// A layer's EMA state is ONE f32 tensor laid out as
//   [ Ibar_A (r*in) | U_A (r*in) | Ibar_E (r) | U_E (r) | Ibar_B (out*r) | U_B (out*r) ].
#include <cmath>

#include "cpu/adalora.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

bool is_null(const Napi::CallbackInfo& info, size_t i) {
  return i >= info.Length() || info[i].IsNull() || info[i].IsUndefined();
}

}  // namespace

// adaloraUpdateScores(a, aOff, ga | null, gaOff, e, eOff, ge | null, geOff, b, bOff, gb | null, gbOff,
//                     state, stateOff, scores | null, scoresOff, r, inF, outF, beta1, beta2, update)
// update: EMAs from (param, grad) (a null grad counts as zero). scores (when given) [r]: triplet
// scores from the (updated) EMAs.
TK_EXPORT(adaloraUpdateScores) {
  cpu::AdaloraShape s;
  s.r = int_arg(info, 16, "adaloraUpdateScores r");
  s.in = int_arg(info, 17, "adaloraUpdateScores inF");
  s.out = int_arg(info, 18, "adaloraUpdateScores outF");
  cpu::check_adalora_shape(s);
  const double beta1 = num_arg(info, 19, "adaloraUpdateScores beta1");
  const double beta2 = num_arg(info, 20, "adaloraUpdateScores beta2");
  const bool update = bool_arg(info, 21, "adaloraUpdateScores update");
  const int64_t na = checked_elems(s.r, s.in, "adaloraUpdateScores a"), nb = checked_elems(s.out, s.r, "adaloraUpdateScores b");
  const int64_t nstate = 2 * (na + s.r + nb);
  float* state = tensor_arg<float>(info, 12, nstate, "adaloraUpdateScores state");
  cpu::AdaloraState st;
  st.ibar_a = state;
  st.unc_a = state + na;
  st.ibar_e = state + 2 * na;
  st.unc_e = state + 2 * na + s.r;
  st.ibar_b = state + 2 * na + 2 * s.r;
  st.unc_b = state + 2 * na + 2 * s.r + nb;
  float* scores = is_null(info, 14) ? nullptr : tensor_arg<float>(info, 14, s.r, "adaloraUpdateScores scores");
  if (update) {
    TK_CHECK(std::isfinite(beta1) && std::isfinite(beta2), Value, "adaloraUpdateScores: betas must be finite");
    const float* a = tensor_arg<float>(info, 0, na, "adaloraUpdateScores a");
    const float* ga = is_null(info, 2) ? nullptr : tensor_arg<float>(info, 2, na, "adaloraUpdateScores ga");
    const float* e = tensor_arg<float>(info, 4, s.r, "adaloraUpdateScores e");
    const float* ge = is_null(info, 6) ? nullptr : tensor_arg<float>(info, 6, s.r, "adaloraUpdateScores ge");
    const float* b = tensor_arg<float>(info, 8, nb, "adaloraUpdateScores b");
    const float* gb = is_null(info, 10) ? nullptr : tensor_arg<float>(info, 10, nb, "adaloraUpdateScores gb");
    cpu::adalora_update_f32(s, a, ga, e, ge, b, gb, st, static_cast<float>(beta1), static_cast<float>(beta2));
  }
  if (scores) cpu::adalora_triplet_scores_f32(s, st, scores);
  return info.Env().Undefined();
}

// adaloraKthSmallest(values, off, n, k) -> the k-th smallest (1-based) of n f32 values.
TK_EXPORT(adaloraKthSmallest) {
  const int64_t n = int_arg(info, 2, "adaloraKthSmallest n");
  const int64_t k = int_arg(info, 3, "adaloraKthSmallest k");
  TK_CHECK(n >= 1 && k >= 1 && k <= n, Value, "adaloraKthSmallest: needs 1 <= k <= n but k=", k, " n=", n);
  const float* v = tensor_arg<float>(info, 0, n, "adaloraKthSmallest values");
  return Napi::Number::New(info.Env(), cpu::adalora_kth_smallest_f32(v, n, k));
}

// adaloraCostThreshold(scores, sOff, costs, cOff, n, budget) -> the score threshold that keeps the
// highest-scored ranks whose summed cost (f32 [n], parameters per rank) fits the budget.
TK_EXPORT(adaloraCostThreshold) {
  const int64_t n = int_arg(info, 4, "adaloraCostThreshold n");
  TK_CHECK(n >= 1, Value, "adaloraCostThreshold: needs n >= 1 but n=", n);
  const double budget = num_arg(info, 5, "adaloraCostThreshold budget");
  const float* scores = tensor_arg<float>(info, 0, n, "adaloraCostThreshold scores");
  const float* costs = tensor_arg<float>(info, 2, n, "adaloraCostThreshold costs");
  return Napi::Number::New(info.Env(), cpu::adalora_cost_threshold_f32(scores, costs, n, budget));
}

// adaloraMask(e, eOff, scores, sOff, r, threshold, keep | null, keepOff) -> kept count.
// E[i] = 0 where scores[i] <= threshold; keep (u8 [r]) gets 1 for kept ranks.
TK_EXPORT(adaloraMask) {
  const int64_t r = int_arg(info, 4, "adaloraMask r");
  TK_CHECK(r >= 0, Shape, "adaloraMask: negative rank ", r);
  const double t = num_arg(info, 5, "adaloraMask threshold");
  float* e = tensor_arg<float>(info, 0, r, "adaloraMask e");
  const float* scores = tensor_arg<float>(info, 2, r, "adaloraMask scores");
  uint8_t* keep = is_null(info, 6) ? nullptr : tensor_arg<uint8_t>(info, 6, r, "adaloraMask keep");
  const int64_t kept = cpu::adalora_mask_f32(r, scores, static_cast<float>(t), e, keep);
  return Napi::Number::New(info.Env(), static_cast<double>(kept));
}

// adaloraApplyPattern(e, eOff, keep, keepOff, r): E[i] = 0 where keep[i] == 0.
TK_EXPORT(adaloraApplyPattern) {
  const int64_t r = int_arg(info, 4, "adaloraApplyPattern r");
  TK_CHECK(r >= 0, Shape, "adaloraApplyPattern: negative rank ", r);
  float* e = tensor_arg<float>(info, 0, r, "adaloraApplyPattern e");
  const uint8_t* keep = tensor_arg<uint8_t>(info, 2, r, "adaloraApplyPattern keep");
  cpu::adalora_apply_pattern_f32(r, keep, e);
  return info.Env().Undefined();
}
