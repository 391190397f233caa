// LSTM bindings (lib/native.ts "LSTM"): one direction of one layer, forward and backward through
// time. Every tensor argument is bounds-checked against its storage before any work.
#include "cpu/lstm.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// Sizes at info[at..at+4]: B, T, inF, H, reverse.
cpu::LstmShape lstm_shape_args(const Napi::CallbackInfo& info, size_t at) {
  cpu::LstmShape s;
  s.B = int_arg(info, at, "lstm B");
  s.T = int_arg(info, at + 1, "lstm T");
  s.in = int_arg(info, at + 2, "lstm inF");
  s.H = int_arg(info, at + 3, "lstm H");
  s.reverse = bool_arg(info, at + 4, "lstm reverse");
  cpu::check_lstm_shape(s);
  return s;
}

bool is_null_arg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNull() || info[i].IsUndefined());
}

}  // namespace

// lstmForward(x, xOff, wih, wihOff, whh, whhOff, bih | null, bihOff, bhh | null, bhhOff,
//             y, yOff, gates, gatesOff, cell, cellOff, B, T, inF, H, reverse)
TK_EXPORT(lstmForward) {
  const cpu::LstmShape s = lstm_shape_args(info, 16);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  const float* x = tensor_arg<float>(info, 0, BT * s.in, "lstmForward x");
  const float* wih = tensor_arg<float>(info, 2, G * s.in, "lstmForward w_ih");
  const float* whh = tensor_arg<float>(info, 4, G * s.H, "lstmForward w_hh");
  const float* bih = is_null_arg(info, 6) ? nullptr : tensor_arg<float>(info, 6, G, "lstmForward b_ih");
  const float* bhh = is_null_arg(info, 8) ? nullptr : tensor_arg<float>(info, 8, G, "lstmForward b_hh");
  float* y = tensor_arg<float>(info, 10, BT * s.H, "lstmForward y");
  float* gates = tensor_arg<float>(info, 12, BT * G, "lstmForward gates");
  float* cell = tensor_arg<float>(info, 14, BT * s.H, "lstmForward cell");
  cpu::lstm_forward_f32(s, x, wih, whh, bih, bhh, y, gates, cell);
  return info.Env().Undefined();
}

// lstmBackward(dy, dyOff, x, xOff, wih, wihOff, whh, whhOff, y, yOff, gates, gatesOff, cell, cellOff,
//              dx | null, dxOff, dwih, dwihOff, dwhh, dwhhOff, db, dbOff, B, T, inF, H, reverse)
TK_EXPORT(lstmBackward) {
  const cpu::LstmShape s = lstm_shape_args(info, 22);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  const float* dy = tensor_arg<float>(info, 0, BT * s.H, "lstmBackward dy");
  const float* x = tensor_arg<float>(info, 2, BT * s.in, "lstmBackward x");
  const float* wih = tensor_arg<float>(info, 4, G * s.in, "lstmBackward w_ih");
  const float* whh = tensor_arg<float>(info, 6, G * s.H, "lstmBackward w_hh");
  const float* y = tensor_arg<float>(info, 8, BT * s.H, "lstmBackward y");
  const float* gates = tensor_arg<float>(info, 10, BT * G, "lstmBackward gates");
  const float* cell = tensor_arg<float>(info, 12, BT * s.H, "lstmBackward cell");
  float* dx = is_null_arg(info, 14) ? nullptr : tensor_arg<float>(info, 14, BT * s.in, "lstmBackward dx");
  float* dwih = tensor_arg<float>(info, 16, G * s.in, "lstmBackward dw_ih");
  float* dwhh = tensor_arg<float>(info, 18, G * s.H, "lstmBackward dw_hh");
  float* db = tensor_arg<float>(info, 20, G, "lstmBackward db");
  cpu::lstm_backward_f32(s, dy, x, wih, whh, y, gates, cell, dx, dwih, dwhh, db);
  return info.Env().Undefined();
}
