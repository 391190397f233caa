// Attention bindings (lib/native.ts "attention"). Every size is checked here and again by the
// kernel, and every tensor argument is bounds-checked against its storage before any work.
#include <cmath>
#include <limits>

#include "cpu/attention.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// Sizes at info[at..at+7]: B, Hq, Hkv, Tq, Tk, D, scale, causal.
cpu::AttentionShape shape_args(const Napi::CallbackInfo& info, size_t at) {
  cpu::AttentionShape s;
  s.B = int_arg(info, at, "attention B");
  s.Hq = int_arg(info, at + 1, "attention Hq");
  s.Hkv = int_arg(info, at + 2, "attention Hkv");
  s.Tq = int_arg(info, at + 3, "attention Tq");
  s.Tk = int_arg(info, at + 4, "attention Tk");
  s.D = int_arg(info, at + 5, "attention D");
  const double scale = num_arg(info, at + 6, "attention scale");
  TK_CHECK(std::isfinite(scale) && std::fabs(scale) <= std::numeric_limits<float>::max(), Value,
           "attention: scale must be a finite f32 but is ", scale);
  s.scale = static_cast<float>(scale);
  s.causal = bool_arg(info, at + 7, "attention causal");
  cpu::check_attention_shape(s);
  return s;
}

// keyMask i32 [B, Tk] at info[i], info[i+1], or null (no padding mask).
const int32_t* mask_arg(const Napi::CallbackInfo& info, size_t i, const cpu::AttentionShape& s) {
  if (i < info.Length() && (info[i].IsNull() || info[i].IsUndefined())) return nullptr;
  return tensor_arg<int32_t>(info, i, checked_elems({s.B, s.Tk}, "attention keyMask"), "attention keyMask");
}

}  // namespace

// attention(q, qOff, k, kOff, v, vOff, out, oOff, lse, lseOff, keyMask | null, mOff,
//           B, Hq, Hkv, Tq, Tk, D, scale, causal)
TK_EXPORT(attention) {
  const cpu::AttentionShape s = shape_args(info, 12);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attention q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attention k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attention lse");
  const float* q = tensor_arg<float>(info, 0, nq, "attention q");
  const float* k = tensor_arg<float>(info, 2, nk, "attention k");
  const float* v = tensor_arg<float>(info, 4, nk, "attention v");
  float* out = tensor_arg<float>(info, 6, nq, "attention out");
  float* lse = tensor_arg<float>(info, 8, nl, "attention lse");
  const int32_t* mask = mask_arg(info, 10, s);
  cpu::attention_forward_f32(s, q, k, v, mask, out, lse);
  return info.Env().Undefined();
}

// attentionBackward(q, qOff, k, kOff, v, vOff, out, oOff, lse, lseOff, dout, doOff, dq, dqOff,
//                   dk, dkOff, dv, dvOff, keyMask | null, mOff, B, Hq, Hkv, Tq, Tk, D, scale, causal)
TK_EXPORT(attentionBackward) {
  const cpu::AttentionShape s = shape_args(info, 20);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attentionBackward q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attentionBackward k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attentionBackward lse");
  const float* q = tensor_arg<float>(info, 0, nq, "attentionBackward q");
  const float* k = tensor_arg<float>(info, 2, nk, "attentionBackward k");
  const float* v = tensor_arg<float>(info, 4, nk, "attentionBackward v");
  const float* out = tensor_arg<float>(info, 6, nq, "attentionBackward out");
  const float* lse = tensor_arg<float>(info, 8, nl, "attentionBackward lse");
  const float* dout = tensor_arg<float>(info, 10, nq, "attentionBackward dout");
  float* dq = tensor_arg<float>(info, 12, nq, "attentionBackward dq");
  float* dk = tensor_arg<float>(info, 14, nk, "attentionBackward dk");
  float* dv = tensor_arg<float>(info, 16, nk, "attentionBackward dv");
  const int32_t* mask = mask_arg(info, 18, s);
  cpu::attention_backward_f32(s, q, k, v, out, lse, dout, mask, dq, dk, dv);
  return info.Env().Undefined();
}
