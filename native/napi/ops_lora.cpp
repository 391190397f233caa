// Fused linear + LoRA bindings (lib/native.ts "fused linear + LoRA"), one options object each.
// Sizes are checked here and by the kernel; every tensor is bounds-checked before any work.
#include "cpu/lora.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

// loraLinearForward({ x, w, bias | null, a, b, y, xa, mask | null, M, inF, outF, r, scale, wInOut, p, seed, wDtype? })
// The adapter path's dropout (p > 0) is fused: the kept flags go to mask (u8 [M, in]). wDtype
// 'bf16': w is the frozen weight's bf16 copy (bf16 compute; the adapter path stays f32).
TK_CPU_OP(loraLinearForward) {
  Opts o(info, "loraLinearForward");
  const LoraForwardArgs r = lora_forward_args(o);
  if (r.w_bf16) cpu::lora_linear_forward_dropout_bf16w(r.s, r.x, r.w_bf16, r.bias, r.a, r.b, r.p, r.seed, r.mask, r.y, r.xa);
  else cpu::lora_linear_forward_dropout_f32(r.s, r.x, r.w, r.bias, r.a, r.b, r.p, r.seed, r.mask, r.y, r.xa);
  return info.Env().Undefined();
}

// loraLinearBackward({ dy, x, mask | null, w, a, b, xa, dx | null, da, db, M, inF, outF, r, scale, wInOut, p, wDtype? })
// dx = dy W + (mask) s (dy B) A / (1 - p): the adapter path's input gradient is added through the
// mask; dx null skips it (the input needs no gradient).
TK_CPU_OP(loraLinearBackward) {
  Opts o(info, "loraLinearBackward");
  const LoraBackwardArgs r = lora_backward_args(o);
  if (r.w_bf16) cpu::lora_linear_backward_dropout_bf16w(r.s, r.dy, r.x, r.mask, r.p, r.w_bf16, r.a, r.b, r.xa, r.dx, r.da, r.db);
  else cpu::lora_linear_backward_dropout_f32(r.s, r.dy, r.x, r.mask, r.p, r.w, r.a, r.b, r.xa, r.dx, r.da, r.db);
  return info.Env().Undefined();
}
