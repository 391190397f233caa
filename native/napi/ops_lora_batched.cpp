// Linear with a LoRA adapter per row (lib/native.ts "linear + gathered LoRA"; native/cpu/lora_batched.h).
// Every tensor argument is bounds-checked against its storage before any work, and the slot
// table (rOff, scales, rowSlot) is checked by the kernel before anything is read through it.
#include <string>

#include "cpu/lora_batched.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

// loraBatchedLinear({ x, w, bias | null, rowSlot, aPack | null, btPack | null, rOff, scales, y,
//                     M, inF, outF, slots, R, wInOut, reference? }): aPack / btPack may be null only
// when R == 0; reference runs the plain per-row loops in double (the tests' oracle).
TK_CPU_OP(loraBatchedLinear) {
  Opts o(info, "loraBatchedLinear");
  cpu::LoraBatchedShape s;
  s.M = o.count("M");
  s.in = o.count("inF");
  s.out = o.count("outF");
  s.slots = o.count("slots");
  s.R = o.count("R");
  s.w_in_out = o.flag("wInOut");
  const bool reference = o.flag_or("reference", false);
  const float* x = o.tensor<float>("x", checked_elems(s.M, s.in, "loraBatchedLinear x"));
  const float* w = o.tensor<float>("w", checked_elems(s.out, s.in, "loraBatchedLinear w"));
  const float* bias = o.optional_tensor<float>("bias", s.out);
  const int32_t* row_slot = o.tensor<int32_t>("rowSlot", s.M);
  const float* a_pack = s.R > 0 || o.has("aPack") ? o.tensor<float>("aPack", checked_elems(s.R, s.in, "loraBatchedLinear aPack")) : nullptr;
  const float* bt_pack = s.R > 0 || o.has("btPack") ? o.tensor<float>("btPack", checked_elems(s.R, s.out, "loraBatchedLinear btPack")) : nullptr;
  const int32_t* r_off = o.tensor<int32_t>("rOff", s.slots + 1);
  const float* scales = o.tensor<float>("scales", s.slots);
  float* y = o.tensor<float>("y", checked_elems(s.M, s.out, "loraBatchedLinear y"));
  if (reference) cpu::lora_batched_linear_forward_reference(s, x, w, bias, row_slot, a_pack, bt_pack, r_off, scales, y);
  else cpu::lora_batched_linear_forward_f32(s, x, w, bias, row_slot, a_pack, bt_pack, r_off, scales, y);
  return info.Env().Undefined();
}
