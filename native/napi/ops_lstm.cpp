// LSTM kernels (lib/native.ts "LSTM"), native.cpu.lstmForward / lstmBackward: one direction of one
// layer, forward and backward through time, one options object each. Every tensor field is
// bounds-checked against its storage before any work.
#include "cpu/lstm.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// B, T, inF, hidden, reverse
cpu::LstmShape lstm_shape(const Opts& o) {
  cpu::LstmShape s;
  s.B = o.integer("B");
  s.T = o.integer("T");
  s.in = o.integer("inF");
  s.H = o.integer("hidden");
  s.reverse = o.flag("reverse");
  cpu::check_lstm_shape(s);
  return s;
}

}  // namespace

// lstmForward({ x, wih, whh, bih | null, bhh | null, y, gates, cell, B, T, inF, hidden, reverse })
TK_CPU_OP(lstmForward) {
  Opts o(info, "lstmForward");
  const cpu::LstmShape s = lstm_shape(o);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  const float* x = o.tensor<float>("x", BT * s.in);
  const float* wih = o.tensor<float>("wih", G * s.in);
  const float* whh = o.tensor<float>("whh", G * s.H);
  const float* bih = o.optional_tensor<float>("bih", G);
  const float* bhh = o.optional_tensor<float>("bhh", G);
  float* y = o.tensor<float>("y", BT * s.H);
  float* gates = o.tensor<float>("gates", BT * G);
  float* cell = o.tensor<float>("cell", BT * s.H);
  cpu::lstm_forward_f32(s, x, wih, whh, bih, bhh, y, gates, cell);
  return info.Env().Undefined();
}

// lstmBackward({ dy, x, wih, whh, y, gates, cell, dx | null, dwih, dwhh, db, B, T, inF, hidden, reverse })
TK_CPU_OP(lstmBackward) {
  Opts o(info, "lstmBackward");
  const cpu::LstmShape s = lstm_shape(o);
  const int64_t G = 4 * s.H, BT = s.B * s.T;
  const float* dy = o.tensor<float>("dy", BT * s.H);
  const float* x = o.tensor<float>("x", BT * s.in);
  const float* wih = o.tensor<float>("wih", G * s.in);
  const float* whh = o.tensor<float>("whh", G * s.H);
  const float* y = o.tensor<float>("y", BT * s.H);
  const float* gates = o.tensor<float>("gates", BT * G);
  const float* cell = o.tensor<float>("cell", BT * s.H);
  float* dx = o.optional_tensor<float>("dx", BT * s.in);
  float* dwih = o.tensor<float>("dwih", G * s.in);
  float* dwhh = o.tensor<float>("dwhh", G * s.H);
  float* db = o.tensor<float>("db", G);
  cpu::lstm_backward_f32(s, dy, x, wih, whh, y, gates, cell, dx, dwih, dwhh, db);
  return info.Env().Undefined();
}
