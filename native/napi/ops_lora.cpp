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

// loraLinearForward(x, xOff, xd, xdOff, w, wOff, bias | null, bOff, a, aOff, b, bbOff, y, yOff,
//                   xa, xaOff, M, inF, outF, r, scale, wInOut)
TK_EXPORT(loraLinearForward) {
  const cpu::LoraShape s = shape_args(info, 16);
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearForward x"), n_w = checked_elems(s.out, s.in, "loraLinearForward w");
  const float* x = tensor_arg<float>(info, 0, n_x, "loraLinearForward x");
  const float* xd = tensor_arg<float>(info, 2, n_x, "loraLinearForward xd");
  const float* w = tensor_arg<float>(info, 4, n_w, "loraLinearForward w");
  const float* bias = is_null(info, 6) ? nullptr : tensor_arg<float>(info, 6, s.out, "loraLinearForward bias");
  const float* a = tensor_arg<float>(info, 8, checked_elems(s.r, s.in, "loraLinearForward a"), "loraLinearForward a");
  const float* b = tensor_arg<float>(info, 10, checked_elems(s.out, s.r, "loraLinearForward b"), "loraLinearForward b");
  float* y = tensor_arg<float>(info, 12, checked_elems(s.M, s.out, "loraLinearForward y"), "loraLinearForward y");
  float* xa = tensor_arg<float>(info, 14, checked_elems(s.M, s.r, "loraLinearForward xa"), "loraLinearForward xa");
  cpu::lora_linear_forward_f32(s, x, xd, w, bias, a, b, y, xa);
  return info.Env().Undefined();
}

// loraLinearBackward(dy, dyOff, x, xOff, xd, xdOff, w, wOff, a, aOff, b, bbOff, xa, xaOff, dx, dxOff,
//                    dxd | null, dxdOff, da, daOff, db, dbOff, M, inF, outF, r, scale, wInOut, mergeDx)
TK_EXPORT(loraLinearBackward) {
  const cpu::LoraShape s = shape_args(info, 22);
  const bool merge_dx = bool_arg(info, 28, "loraLinearBackward mergeDx");
  const int64_t n_x = checked_elems(s.M, s.in, "loraLinearBackward x");
  const float* dy = tensor_arg<float>(info, 0, checked_elems(s.M, s.out, "loraLinearBackward dy"), "loraLinearBackward dy");
  // x itself is not read (dy W needs no input) but it is part of the contract: check it anyway.
  (void)tensor_arg<float>(info, 2, n_x, "loraLinearBackward x");
  const float* xd = tensor_arg<float>(info, 4, n_x, "loraLinearBackward xd");
  const float* w = tensor_arg<float>(info, 6, checked_elems(s.out, s.in, "loraLinearBackward w"), "loraLinearBackward w");
  const float* a = tensor_arg<float>(info, 8, checked_elems(s.r, s.in, "loraLinearBackward a"), "loraLinearBackward a");
  const float* b = tensor_arg<float>(info, 10, checked_elems(s.out, s.r, "loraLinearBackward b"), "loraLinearBackward b");
  const float* xa = tensor_arg<float>(info, 12, checked_elems(s.M, s.r, "loraLinearBackward xa"), "loraLinearBackward xa");
  float* dx = tensor_arg<float>(info, 14, n_x, "loraLinearBackward dx");
  float* dxd = nullptr;
  if (!merge_dx) {
    TK_CHECK(!is_null(info, 16), Value, "loraLinearBackward: dxd is required when mergeDx is false");
    dxd = tensor_arg<float>(info, 16, n_x, "loraLinearBackward dxd");
  }
  float* da = tensor_arg<float>(info, 18, checked_elems(s.r, s.in, "loraLinearBackward da"), "loraLinearBackward da");
  float* db = tensor_arg<float>(info, 20, checked_elems(s.out, s.r, "loraLinearBackward db"), "loraLinearBackward db");
  cpu::lora_linear_backward_f32(s, dy, xd, w, a, b, xa, dx, dxd, da, db, merge_dx);
  return info.Env().Undefined();
}
