// native.cuda: AdaLoRA's rank allocator (the CUDA twins of ops_adalora.cpp: the same options, the
// update's read and checked by op_options.h's adalora_scores_args). The sensitivity EMAs and triplet scores run on the device (native/cuda/ops.cu,
// nn.cu); the k-th smallest score, the cost threshold and the masking of E work on r values per
// layer (r <= a few hundred), so they copy those few values to the host, run the CPU kernel
// there and copy E back: the allocator runs unchanged on tensors on cuda:N. Compiled to nothing
// without TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA
#include <vector>

#include "cpu/adalora.h"

using namespace tk;
using namespace tk::napi;

// adaloraUpdateScores({ a, ga | null, e, ge | null, b, gb | null, state, scores | null, r, inF, outF, beta1, beta2, update })
TK_CUDA_OP(adaloraUpdateScores) {
  Opts o(info, "adaloraUpdateScores", Backend::Cuda);
  const AdaloraScoresArgs r = adalora_scores_args(o);
  use_call_device(o);
  if (r.update) cuda::adalora_update_f32(r.s, r.a, r.ga, r.e, r.ge, r.b, r.gb, r.st, r.beta1, r.beta2);
  if (r.scores) cuda::adalora_triplet_scores_f32(r.s, r.st, r.scores);
  return info.Env().Undefined();
}

// adaloraKthSmallest({ values, n, k }) -> number
TK_CUDA_OP(adaloraKthSmallest) {
  Opts o(info, "adaloraKthSmallest", Backend::Cuda);
  const AdaloraKthArgs r = adalora_kth_args(o);
  use_call_device(o);
  const std::vector<float> h = to_host(r.values, r.n);
  return Napi::Number::New(info.Env(), cpu::adalora_kth_smallest_f32(h.data(), r.n, r.k));
}

// adaloraCostThreshold({ scores, costs, n, budget }) -> number
TK_CUDA_OP(adaloraCostThreshold) {
  Opts o(info, "adaloraCostThreshold", Backend::Cuda);
  const AdaloraCostArgs r = adalora_cost_args(o);
  use_call_device(o);
  const std::vector<float> hs = to_host(r.scores, r.n), hc = to_host(r.costs, r.n);
  return Napi::Number::New(info.Env(), cpu::adalora_cost_threshold_f32(hs.data(), hc.data(), r.n, r.budget));
}

// adaloraMask({ e, scores, r, threshold, keep | null }) -> kept count
TK_CUDA_OP(adaloraMask) {
  Opts o(info, "adaloraMask", Backend::Cuda);
  const AdaloraMaskArgs m = adalora_mask_args(o);
  use_call_device(o);
  std::vector<float> he = to_host(m.e, m.r);
  const std::vector<float> hs = to_host(m.scores, m.r);
  std::vector<uint8_t> hk(static_cast<size_t>(m.r));
  const int64_t kept = cpu::adalora_mask_f32(m.r, hs.data(), m.threshold, he.data(), m.keep ? hk.data() : nullptr);
  cuda::copy_to_device(m.e, he.data(), static_cast<size_t>(m.r) * sizeof(float));
  if (m.keep) cuda::copy_to_device(m.keep, hk.data(), static_cast<size_t>(m.r));
  return Napi::Number::New(info.Env(), static_cast<double>(kept));
}

// adaloraApplyPattern({ e, keep, r }): E[i] = 0 where keep[i] == 0
TK_CUDA_OP(adaloraApplyPattern) {
  Opts o(info, "adaloraApplyPattern", Backend::Cuda);
  const int64_t r = o.integer("r");
  TK_CHECK(r >= 0, Shape, "adaloraApplyPattern: negative rank ", r);
  float* e = o.tensor<float>("e", r);
  const uint8_t* keep = o.tensor<uint8_t>("keep", r);
  use_call_device(o);
  std::vector<float> he = to_host(e, r);
  const std::vector<uint8_t> hk = to_host(keep, r);
  cpu::adalora_apply_pattern_f32(r, hk.data(), he.data());
  cuda::copy_to_device(e, he.data(), static_cast<size_t>(r) * sizeof(float));
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
