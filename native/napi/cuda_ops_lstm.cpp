// native.cuda: the LSTM layer (the CUDA twins of ops_lstm.cpp: the same options, read and
// checked by op_options.h's lstm_*_args; kernels in native/cuda/lstm.cu). Compiled to nothing without TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA

using namespace tk;
using namespace tk::napi;

// lstmForward({ x, wih, whh, bih | null, bhh | null, y, gates, cell, B, T, inF, hidden, reverse })
TK_CUDA_OP(lstmForward) {
  Opts o(info, "lstmForward", Backend::Cuda);
  const LstmForwardArgs r = lstm_forward_args(o);
  const LstmShape& s = r.s;
  use_call_device(o);
  cuda::lstm_forward_f32(s.B, s.T, s.in, s.H, s.reverse, r.x, r.wih, r.whh, r.bih, r.bhh, r.y, r.gates, r.cell);
  return info.Env().Undefined();
}

// lstmBackward({ dy, x, wih, whh, y, gates, cell, dx | null, dwih, dwhh, db, B, T, inF, hidden, reverse })
TK_CUDA_OP(lstmBackward) {
  Opts o(info, "lstmBackward", Backend::Cuda);
  const LstmBackwardArgs r = lstm_backward_args(o);
  const LstmShape& s = r.s;
  use_call_device(o);
  cuda::lstm_backward_f32(s.B, s.T, s.in, s.H, s.reverse, r.dy, r.x, r.wih, r.whh, r.y, r.gates, r.cell, r.dx, r.dwih,
                          r.dwhh, r.db);
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
