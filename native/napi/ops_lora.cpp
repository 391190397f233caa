// Fused linear + LoRA bindings (lib/native.ts "fused linear + LoRA"), one options object each.
// Sizes are checked here and by the kernel; every tensor is bounds-checked before any work.
#include <cmath>
#include <limits>

#include "cpu/lora.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

// loraLinearForward({ x, w, bias | null, a, b, y, xa, mask | null, M, inF, outF, r, scale, wInOut, p, seed })
// The adapter path's dropout (p > 0) is fused: the kept flags go to mask (u8 [M, in]).
TK_CPU_OP(loraLinearForward) {
  Opts o(info, "loraLinearForward");
  const LoraShape s = lora_shape(o);
  const float p = dropout_p_opt(o);
  const int64_t seed = o.count("seed");
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearForward x"), n_w = checked_elems(s.out, s.in, "loraLinearForward w");
  const float* x = o.tensor<float>("x", n_x);
  const float* w = o.tensor<float>("w", n_w);
  const float* bias = o.optional_tensor<float>("bias", s.out);
  const float* a = o.tensor<float>("a", checked_elems(s.r, s.in, "loraLinearForward a"));
  const float* b = o.tensor<float>("b", checked_elems(s.out, s.r, "loraLinearForward b"));
  float* y = o.tensor<float>("y", checked_elems(s.M, s.out, "loraLinearForward y"));
  float* xa = o.tensor<float>("xa", checked_elems(s.M, s.r, "loraLinearForward xa"));
  uint8_t* mask = nullptr;
  if (p > 0) {
    TK_CHECK(o.has("mask"), Value, "loraLinearForward: options.mask is required when the dropout p > 0");
    mask = o.tensor<uint8_t>("mask", n_x);
  }
  cpu::lora_linear_forward_dropout_f32(s, x, w, bias, a, b, p, static_cast<uint64_t>(seed), mask, y, xa);
  return info.Env().Undefined();
}

// loraLinearBackward({ dy, x, mask | null, w, a, b, xa, dx, da, db, M, inF, outF, r, scale, wInOut, p })
// dx = dy W + (mask) s (dy B) A / (1 - p): the adapter path's input gradient is added through the mask.
TK_CPU_OP(loraLinearBackward) {
  Opts o(info, "loraLinearBackward");
  const LoraShape s = lora_shape(o);
  const float p = dropout_p_opt(o);
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearBackward x");
  const float* dy = o.tensor<float>("dy", checked_elems(s.M, s.out, "loraLinearBackward dy"));
  const float* x = o.tensor<float>("x", n_x);
  const uint8_t* mask = nullptr;
  if (p > 0) {
    TK_CHECK(o.has("mask"), Value, "loraLinearBackward: options.mask (the forward's) is required when the dropout p > 0");
    mask = o.tensor<uint8_t>("mask", n_x);
  }
  const float* w = o.tensor<float>("w", checked_elems(s.out, s.in, "loraLinearBackward w"));
  const float* a = o.tensor<float>("a", checked_elems(s.r, s.in, "loraLinearBackward a"));
  const float* b = o.tensor<float>("b", checked_elems(s.out, s.r, "loraLinearBackward b"));
  const float* xa = o.tensor<float>("xa", checked_elems(s.M, s.r, "loraLinearBackward xa"));
  float* dx = o.tensor<float>("dx", n_x);
  float* da = o.tensor<float>("da", checked_elems(s.r, s.in, "loraLinearBackward da"));
  float* db = o.tensor<float>("db", checked_elems(s.out, s.r, "loraLinearBackward db"));
  cpu::lora_linear_backward_dropout_f32(s, dy, x, mask, p, w, a, b, xa, dx, da, db);
  return info.Env().Undefined();
}
