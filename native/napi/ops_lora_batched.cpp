// Linear with a LoRA adapter per row (lib/native.ts "linear + gathered LoRA"; native/cpu/lora_batched.h).
// Every tensor argument is bounds-checked against its storage before any work, and the slot
// table (rOff, scales, rowSlot) is checked by the kernel before anything is read through it.
#include <string>

#include "cpu/lora_batched.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

bool is_null(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNull() || info[i].IsUndefined());
}

// The arguments of both exports, unwrapped and bounds-checked (`what` names the export in errors).
struct Args {
  cpu::LoraBatchedShape s;
  const float *x = nullptr, *w = nullptr, *bias = nullptr, *a_pack = nullptr, *bt_pack = nullptr, *scales = nullptr;
  const int32_t *row_slot = nullptr, *r_off = nullptr;
  float* y = nullptr;
};

Args unwrap(const Napi::CallbackInfo& info, const std::string& what) {
  Args a;
  cpu::LoraBatchedShape& s = a.s;
  auto name = [&](const char* arg) { return what + " " + arg; };
  s.M = count_arg(info, 18, name("M").c_str());
  s.in = count_arg(info, 19, name("inF").c_str());
  s.out = count_arg(info, 20, name("outF").c_str());
  s.slots = count_arg(info, 21, name("slots").c_str());
  s.R = count_arg(info, 22, name("R").c_str());
  s.w_in_out = bool_arg(info, 23, name("wInOut").c_str());
  a.x = tensor_arg<float>(info, 0, checked_elems(s.M, s.in, name("x").c_str()), name("x").c_str());
  a.w = tensor_arg<float>(info, 2, checked_elems(s.out, s.in, name("w").c_str()), name("w").c_str());
  if (!is_null(info, 4)) a.bias = tensor_arg<float>(info, 4, s.out, name("bias").c_str());
  a.row_slot = tensor_arg<int32_t>(info, 6, s.M, name("rowSlot").c_str());
  if (s.R > 0 || !is_null(info, 8))
    a.a_pack = tensor_arg<float>(info, 8, checked_elems(s.R, s.in, name("aPack").c_str()), name("aPack").c_str());
  if (s.R > 0 || !is_null(info, 10))
    a.bt_pack = tensor_arg<float>(info, 10, checked_elems(s.R, s.out, name("btPack").c_str()), name("btPack").c_str());
  a.r_off = tensor_arg<int32_t>(info, 12, s.slots + 1, name("rOff").c_str());
  a.scales = tensor_arg<float>(info, 14, s.slots, name("scales").c_str());
  a.y = tensor_arg<float>(info, 16, checked_elems(s.M, s.out, name("y").c_str()), name("y").c_str());
  return a;
}

}  // namespace

// loraBatchedLinearForward(x, xOff, w, wOff, bias | null, bOff, rowSlot, rsOff, aPack | null, aOff,
//                          btPack | null, btOff, rOff, roOff, scales, scOff, y, yOff,
//                          M, inF, outF, slots, R, wInOut)
// aPack / btPack may be null only when R == 0.
TK_EXPORT(loraBatchedLinearForward) {
  const Args a = unwrap(info, "loraBatchedLinearForward");
  cpu::lora_batched_linear_forward_f32(a.s, a.x, a.w, a.bias, a.row_slot, a.a_pack, a.bt_pack, a.r_off, a.scales, a.y);
  return info.Env().Undefined();
}

// loraBatchedLinearReference(...the same arguments...): the plain per-row loops in double (tests).
TK_EXPORT(loraBatchedLinearReference) {
  const Args a = unwrap(info, "loraBatchedLinearReference");
  cpu::lora_batched_linear_forward_reference(a.s, a.x, a.w, a.bias, a.row_slot, a.a_pack, a.bt_pack, a.r_off, a.scales,
                                             a.y);
  return info.Env().Undefined();
}
