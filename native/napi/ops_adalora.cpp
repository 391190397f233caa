// AdaLoRA rank-allocator kernels (lib/native.ts "AdaLoRA"; kernels in native/cpu/adalora.h), one
// options object each. A layer's EMA state is ONE f32 tensor laid out as
//   [ Ibar_A (r*in) | U_A (r*in) | Ibar_E (r) | U_E (r) | Ibar_B (out*r) | U_B (out*r) ].
#include "cpu/adalora.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

// adaloraUpdateScores({ a, ga | null, e, ge | null, b, gb | null, state, scores | null, r, inF, outF, beta1, beta2, update })
// update: EMAs from (param, grad) (a null grad counts as zero). scores (when given) [r]: triplet
// scores from the (updated) EMAs.
TK_CPU_OP(adaloraUpdateScores) {
  Opts o(info, "adaloraUpdateScores");
  const AdaloraScoresArgs r = adalora_scores_args(o);
  if (r.update) cpu::adalora_update_f32(r.s, r.a, r.ga, r.e, r.ge, r.b, r.gb, r.st, r.beta1, r.beta2);
  if (r.scores) cpu::adalora_triplet_scores_f32(r.s, r.st, r.scores);
  return info.Env().Undefined();
}

// adaloraKthSmallest({ values, n, k }) -> the k-th smallest (1-based) of n f32 values.
TK_CPU_OP(adaloraKthSmallest) {
  Opts o(info, "adaloraKthSmallest");
  const AdaloraKthArgs r = adalora_kth_args(o);
  return Napi::Number::New(info.Env(), cpu::adalora_kth_smallest_f32(r.values, r.n, r.k));
}

// adaloraCostThreshold({ scores, costs, n, budget }) -> the score threshold that keeps the
// highest-scored ranks whose summed cost (f32 [n], parameters per rank) fits the budget.
TK_CPU_OP(adaloraCostThreshold) {
  Opts o(info, "adaloraCostThreshold");
  const AdaloraCostArgs r = adalora_cost_args(o);
  return Napi::Number::New(info.Env(), cpu::adalora_cost_threshold_f32(r.scores, r.costs, r.n, r.budget));
}

// adaloraMask({ e, scores, r, threshold, keep | null }) -> kept count.
// E[i] = 0 where scores[i] <= threshold; keep (u8 [r]) gets 1 for kept ranks.
TK_CPU_OP(adaloraMask) {
  Opts o(info, "adaloraMask");
  const AdaloraMaskArgs m = adalora_mask_args(o);
  const int64_t kept = cpu::adalora_mask_f32(m.r, m.scores, m.threshold, m.e, m.keep);
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
