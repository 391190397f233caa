// LSTM kernels (lib/native.ts "LSTM"), native.cpu.lstmForward / lstmBackward: one direction of one
// layer, forward and backward through time, one options object each. Every tensor field is
// bounds-checked against its storage before any work.
#include "cpu/lstm.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

// lstmForward({ x, wih, whh, bih | null, bhh | null, y, gates, cell, B, T, inF, hidden, reverse })
TK_CPU_OP(lstmForward) {
  Opts o(info, "lstmForward");
  const LstmForwardArgs r = lstm_forward_args(o);
  cpu::lstm_forward_f32(r.s, r.x, r.wih, r.whh, r.bih, r.bhh, r.y, r.gates, r.cell);
  return info.Env().Undefined();
}

// lstmBackward({ dy, x, wih, whh, y, gates, cell, dx | null, dwih, dwhh, db, B, T, inF, hidden, reverse })
TK_CPU_OP(lstmBackward) {
  Opts o(info, "lstmBackward");
  const LstmBackwardArgs r = lstm_backward_args(o);
  cpu::lstm_backward_f32(r.s, r.dy, r.x, r.wih, r.whh, r.y, r.gates, r.cell, r.dx, r.dwih, r.dwhh, r.db);
  return info.Env().Undefined();
}
