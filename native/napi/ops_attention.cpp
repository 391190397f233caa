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

namespace {

// The shape (N, S, H, D, scale, causal, lastQueryOnly optional) and the element counts it gives:
// qkv [N, 3C], out / dout [rows, C], lse [H, rows] with rows = S under lastQueryOnly, else N. The
// offsets are checked by the kernel once they are bounds-checked.
struct RowsArgs {
  cpu::AttentionRowsShape s;
  int64_t nqkv, nout, nl;
};
RowsArgs attention_rows_args(const Opts& o) {
  RowsArgs a;
  cpu::AttentionRowsShape& s = a.s;
  s.N = o.count("N");
  s.S = o.count("S");
  s.H = o.integer("H");
  s.D = o.count("D");
  s.scale = o.finite_f32("scale");
  s.causal = o.flag("causal");
  s.last_query_only = o.flag_or("lastQueryOnly", false);
  TK_CHECK(s.H >= 1, Shape, o.op(), ": H must be >= 1, got ", s.H);
  const int64_t rows = s.last_query_only ? s.S : s.N;
  a.nqkv = checked_elems({s.N, 3, s.H, s.D}, "attentionRows qkv");
  a.nout = checked_elems({rows, s.H, s.D}, "attentionRows out");
  a.nl = checked_elems(s.H, rows, "attentionRows lse");
  return a;
}

}  // namespace

// attentionRows({ qkv, offsets, keyMask | null, out, lse, N, S, H, D, scale, causal, lastQueryOnly? })
TK_CPU_OP(attentionRows) {
  Opts o(info, "attentionRows");
  const RowsArgs a = attention_rows_args(o);
  cpu::attention_rows_forward_f32(a.s, o.tensor<float>("qkv", a.nqkv), o.tensor<int32_t>("offsets", a.s.S + 1),
                                  o.optional_tensor<int32_t>("keyMask", a.s.N), o.tensor<float>("out", a.nout),
                                  o.tensor<float>("lse", a.nl));
  return info.Env().Undefined();
}

// attentionRowsBackward({ qkv, offsets, keyMask | null, out, lse, dout, dqkv, N, S, H, D, scale, causal, lastQueryOnly? })
TK_CPU_OP(attentionRowsBackward) {
  Opts o(info, "attentionRowsBackward");
  const RowsArgs a = attention_rows_args(o);
  cpu::attention_rows_backward_f32(a.s, o.tensor<float>("qkv", a.nqkv), o.tensor<int32_t>("offsets", a.s.S + 1),
                                   o.optional_tensor<int32_t>("keyMask", a.s.N), o.tensor<float>("out", a.nout),
                                   o.tensor<float>("lse", a.nl), o.tensor<float>("dout", a.nout), o.tensor<float>("dqkv", a.nqkv));
  return info.Env().Undefined();
}
