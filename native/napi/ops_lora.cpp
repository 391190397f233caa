// Fused linear + LoRA bindings (lib/native.ts "fused linear + LoRA"). Sizes are checked here and
// by the kernel; every tensor argument is bounds-checked against its storage before any work.
#include <cmath>
#include <limits>

#include "cpu/lora.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// Sizes at info[at..at+5]: M, inF, outF, r, scale, wInOut.
cpu::LoraShape shape_args(const Napi::CallbackInfo& info, size_t at) {
  cpu::LoraShape s;
  s.M = int_arg(info, at, "loraLinear M");
  s.in = int_arg(info, at + 1, "loraLinear inF");
  s.out = int_arg(info, at + 2, "loraLinear outF");
  s.r = int_arg(info, at + 3, "loraLinear r");
  const double scale = num_arg(info, at + 4, "loraLinear scale");
  TK_CHECK(std::isfinite(scale) && std::fabs(scale) <= std::numeric_limits<float>::max(), Value,
           "loraLinear: scale must be a finite f32 but is ", scale);
  s.scale = static_cast<float>(scale);
  s.w_in_out = bool_arg(info, at + 5, "loraLinear wInOut");
  cpu::check_lora_shape(s);
  return s;
}

bool is_null(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNull() || info[i].IsUndefined());
}

}  // namespace

// loraLinearForward(x, xOff, w, wOff, bias | null, bOff, a, aOff, b, bbOff, y, yOff, xa, xaOff,
//                   mask | null, maskOff, M, inF, outF, r, scale, wInOut, p, seed)
// The adapter path's dropout (p > 0) is fused: the kept flags go to mask (u8 [M, in]).
TK_EXPORT(loraLinearForward) {
  const cpu::LoraShape s = shape_args(info, 16);
  const double p = num_arg(info, 22, "loraLinearForward p");
  TK_CHECK(p >= 0 && p < 1, Value, "loraLinearForward: expected a dropout p in [0, 1) but received ", p);
  const int64_t seed = int_arg(info, 23, "loraLinearForward seed");
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearForward x"), n_w = checked_elems(s.out, s.in, "loraLinearForward w");
  const float* x = tensor_arg<float>(info, 0, n_x, "loraLinearForward x");
  const float* w = tensor_arg<float>(info, 2, n_w, "loraLinearForward w");
  const float* bias = is_null(info, 4) ? nullptr : tensor_arg<float>(info, 4, s.out, "loraLinearForward bias");
  const float* a = tensor_arg<float>(info, 6, checked_elems(s.r, s.in, "loraLinearForward a"), "loraLinearForward a");
  const float* b = tensor_arg<float>(info, 8, checked_elems(s.out, s.r, "loraLinearForward b"), "loraLinearForward b");
  float* y = tensor_arg<float>(info, 10, checked_elems(s.M, s.out, "loraLinearForward y"), "loraLinearForward y");
  float* xa = tensor_arg<float>(info, 12, checked_elems(s.M, s.r, "loraLinearForward xa"), "loraLinearForward xa");
  uint8_t* mask = nullptr;
  if (p > 0) {
    TK_CHECK(!is_null(info, 14), Value, "loraLinearForward: a mask buffer is required when the dropout p > 0");
    mask = tensor_arg<uint8_t>(info, 14, n_x, "loraLinearForward mask");
  }
  cpu::lora_linear_forward_dropout_f32(s, x, w, bias, a, b, static_cast<float>(p), static_cast<uint64_t>(seed), mask, y, xa);
  return info.Env().Undefined();
}

// loraLinearBackward(dy, dyOff, x, xOff, mask | null, maskOff, w, wOff, a, aOff, b, bbOff, xa, xaOff,
//                    dx, dxOff, da, daOff, db, dbOff, M, inF, outF, r, scale, wInOut, p)
// dx = dy W + (mask) s (dy B) A / (1 - p): the adapter path's input gradient is added through the mask.
TK_EXPORT(loraLinearBackward) {
  const cpu::LoraShape s = shape_args(info, 20);
  const double p = num_arg(info, 26, "loraLinearBackward p");
  TK_CHECK(p >= 0 && p < 1, Value, "loraLinearBackward: expected a dropout p in [0, 1) but received ", p);
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearBackward x");
  const float* dy = tensor_arg<float>(info, 0, checked_elems(s.M, s.out, "loraLinearBackward dy"), "loraLinearBackward dy");
  const float* x = tensor_arg<float>(info, 2, n_x, "loraLinearBackward x");
  const uint8_t* mask = nullptr;
  if (p > 0) {
    TK_CHECK(!is_null(info, 4), Value, "loraLinearBackward: the forward's mask is required when the dropout p > 0");
    mask = tensor_arg<uint8_t>(info, 4, n_x, "loraLinearBackward mask");
  }
  const float* w = tensor_arg<float>(info, 6, checked_elems(s.out, s.in, "loraLinearBackward w"), "loraLinearBackward w");
  const float* a = tensor_arg<float>(info, 8, checked_elems(s.r, s.in, "loraLinearBackward a"), "loraLinearBackward a");
  const float* b = tensor_arg<float>(info, 10, checked_elems(s.out, s.r, "loraLinearBackward b"), "loraLinearBackward b");
  const float* xa = tensor_arg<float>(info, 12, checked_elems(s.M, s.r, "loraLinearBackward xa"), "loraLinearBackward xa");
  float* dx = tensor_arg<float>(info, 14, n_x, "loraLinearBackward dx");
  float* da = tensor_arg<float>(info, 16, checked_elems(s.r, s.in, "loraLinearBackward da"), "loraLinearBackward da");
  float* db = tensor_arg<float>(info, 18, checked_elems(s.out, s.r, "loraLinearBackward db"), "loraLinearBackward db");
  cpu::lora_linear_backward_dropout_f32(s, dy, x, mask, static_cast<float>(p), w, a, b, xa, dx, da, db);
  return info.Env().Undefined();
}
