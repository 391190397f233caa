// native.cuda: the LSTM layer (the CUDA twins of ops_lstm.cpp: same options, same checks;
// kernels in native/cuda/lstm.cu). Compiled to nothing without TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA

#include "cpu/lstm.h"  // LstmShape and its check: the same sizes refused as on the CPU

using namespace tk;
using namespace tk::napi;

namespace {

// B, T, inF, hidden, reverse (as ops_lstm.cpp reads them)
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
TK_CUDA_OP(lstmForward) {
  Opts o(info, "lstmForward", Backend::Cuda);
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
  use_call_device(o);
  cuda::lstm_forward_f32(s.B, s.T, s.in, s.H, s.reverse, x, wih, whh, bih, bhh, y, gates, cell);
  return info.Env().Undefined();
}

// lstmBackward({ dy, x, wih, whh, y, gates, cell, dx | null, dwih, dwhh, db, B, T, inF, hidden, reverse })
TK_CUDA_OP(lstmBackward) {
  Opts o(info, "lstmBackward", Backend::Cuda);
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
  use_call_device(o);
  cuda::lstm_backward_f32(s.B, s.T, s.in, s.H, s.reverse, dy, x, wih, whh, y, gates, cell, dx, dwih, dwhh, db);
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
