// Attention bindings (lib/native.ts "attention"). Every size is checked here and again by the
// kernel, and every tensor argument is bounds-checked against its storage before any work.
#include <cmath>
#include <limits>

#include "cpu/attention.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;


// attention({ q, k, v, out, lse, keyMask | null, B, Hq, Hkv, Tq, Tk, D, scale, causal })
TK_CPU_OP(attention) {
  Opts o(info, "attention");
  const AttentionShape s = attention_shape(o);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attention q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attention k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attention lse");
  cpu::attention_forward_f32(s, o.tensor<float>("q", nq), o.tensor<float>("k", nk), o.tensor<float>("v", nk),
                             o.optional_tensor<int32_t>("keyMask", checked_elems(s.B, s.Tk, "attention keyMask")),
                             o.tensor<float>("out", nq), o.tensor<float>("lse", nl));
  return info.Env().Undefined();
}

// attentionBackward({ q, k, v, out, lse, dout, dq, dk, dv, keyMask | null, B, Hq, Hkv, Tq, Tk, D, scale, causal })
TK_CPU_OP(attentionBackward) {
  Opts o(info, "attentionBackward");
  const AttentionShape s = attention_shape(o);
  const int64_t nq = checked_elems({s.B, s.Hq, s.Tq, s.D}, "attentionBackward q");
  const int64_t nk = checked_elems({s.B, s.Hkv, s.Tk, s.D}, "attentionBackward k");
  const int64_t nl = checked_elems({s.B, s.Hq, s.Tq}, "attentionBackward lse");
  cpu::attention_backward_f32(s, o.tensor<float>("q", nq), o.tensor<float>("k", nk), o.tensor<float>("v", nk),
                              o.tensor<float>("out", nq), o.tensor<float>("lse", nl), o.tensor<float>("dout", nq),
                              o.optional_tensor<int32_t>("keyMask", checked_elems(s.B, s.Tk, "attention keyMask")),
                              o.tensor<float>("dq", nq), o.tensor<float>("dk", nk), o.tensor<float>("dv", nk));
  return info.Env().Undefined();
}
