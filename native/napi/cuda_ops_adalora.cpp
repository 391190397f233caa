// native.cuda: AdaLoRA's rank allocator (the CUDA twins of ops_adalora.cpp: same options, same
// checks). The sensitivity EMAs and triplet scores run on the device (native/cuda/ops.cu,
// nn.cu); the k-th smallest score, the cost threshold and the masking of E work on r values per
// layer (r <= a few hundred), so they copy those few values to the host, run the CPU kernel
// there and copy E back: the allocator runs unchanged on tensors on cuda:N. Compiled to nothing
// without TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA
#include <cmath>
#include <vector>

#include "cpu/adalora.h"

using namespace tk;
using namespace tk::napi;

namespace {

template <typename T>
std::vector<T> to_host(const T* p, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  cuda::copy_to_host(h.data(), p, static_cast<size_t>(n) * sizeof(T));  // waits for queued work
  return h;
}

}  // namespace

// adaloraUpdateScores({ a, ga | null, e, ge | null, b, gb | null, state, scores | null, r, inF, outF, beta1, beta2, update })
TK_CUDA_OP(adaloraUpdateScores) {
  Opts o(info, "adaloraUpdateScores", Backend::Cuda);
  AdaloraShape s;
  s.r = o.integer("r");
  s.in = o.integer("inF");
  s.out = o.integer("outF");
  check_adalora_shape(s);
  const double beta1 = o.number("beta1"), beta2 = o.number("beta2");
  const bool update = o.flag("update");
  const int64_t na = checked_elems(s.r, s.in, "adaloraUpdateScores a"), nb = checked_elems(s.out, s.r, "adaloraUpdateScores b");
  float* state = o.tensor<float>("state", 2 * (na + s.r + nb));
  AdaloraState st;
  st.ibar_a = state;
  st.unc_a = state + na;
  st.ibar_e = state + 2 * na;
  st.unc_e = state + 2 * na + s.r;
  st.ibar_b = state + 2 * na + 2 * s.r;
  st.unc_b = state + 2 * na + 2 * s.r + nb;
  float* scores = o.optional_tensor<float>("scores", s.r);
  use_call_device(o);
  if (update) {
    TK_CHECK(std::isfinite(beta1) && std::isfinite(beta2), Value, "adaloraUpdateScores: betas must be finite");
    const float* a = o.tensor<float>("a", na);
    const float* ga = o.optional_tensor<float>("ga", na);
    const float* e = o.tensor<float>("e", s.r);
    const float* ge = o.optional_tensor<float>("ge", s.r);
    const float* b = o.tensor<float>("b", nb);
    const float* gb = o.optional_tensor<float>("gb", nb);
    cuda::adalora_update_f32(s, a, ga, e, ge, b, gb, st, static_cast<float>(beta1), static_cast<float>(beta2));
  }
  if (scores) cuda::adalora_triplet_scores_f32(s, st, scores);
  return info.Env().Undefined();
}

// adaloraKthSmallest({ values, n, k }) -> number
TK_CUDA_OP(adaloraKthSmallest) {
  Opts o(info, "adaloraKthSmallest", Backend::Cuda);
  const int64_t n = o.integer("n");
  const int64_t k = o.integer("k");
  TK_CHECK(n >= 1 && k >= 1 && k <= n, Value, "adaloraKthSmallest: needs 1 <= k <= n but k=", k, " n=", n);
  const float* v = o.tensor<float>("values", n);
  use_call_device(o);
  const std::vector<float> h = to_host(v, n);
  return Napi::Number::New(info.Env(), cpu::adalora_kth_smallest_f32(h.data(), n, k));
}

// adaloraCostThreshold({ scores, costs, n, budget }) -> number
TK_CUDA_OP(adaloraCostThreshold) {
  Opts o(info, "adaloraCostThreshold", Backend::Cuda);
  const int64_t n = o.integer("n");
  TK_CHECK(n >= 1, Value, "adaloraCostThreshold: needs n >= 1 but n=", n);
  const double budget = o.number("budget");
  const float* scores = o.tensor<float>("scores", n);
  const float* costs = o.tensor<float>("costs", n);
  use_call_device(o);
  const std::vector<float> hs = to_host(scores, n), hc = to_host(costs, n);
  return Napi::Number::New(info.Env(), cpu::adalora_cost_threshold_f32(hs.data(), hc.data(), n, budget));
}

// adaloraMask({ e, scores, r, threshold, keep | null }) -> kept count
TK_CUDA_OP(adaloraMask) {
  Opts o(info, "adaloraMask", Backend::Cuda);
  const int64_t r = o.integer("r");
  TK_CHECK(r >= 0, Shape, "adaloraMask: negative rank ", r);
  const double t = o.number("threshold");
  float* e = o.tensor<float>("e", r);
  const float* scores = o.tensor<float>("scores", r);
  uint8_t* keep = o.optional_tensor<uint8_t>("keep", r);
  use_call_device(o);
  std::vector<float> he = to_host(e, r);
  const std::vector<float> hs = to_host(scores, r);
  std::vector<uint8_t> hk(static_cast<size_t>(r));
  const int64_t kept = cpu::adalora_mask_f32(r, hs.data(), static_cast<float>(t), he.data(), keep ? hk.data() : nullptr);
  cuda::copy_to_device(e, he.data(), static_cast<size_t>(r) * sizeof(float));
  if (keep) cuda::copy_to_device(keep, hk.data(), static_cast<size_t>(r));
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
