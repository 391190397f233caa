// One direction of one LSTM layer, f32, forward and backward through time (P-tuning's prompt
// encoder). PyTorch's semantics and weight layout (torch.nn.LSTM, batch_first):
//
//   x    : [B, T, in]         w_ih : [4H, in]   w_hh : [4H, H]   b_ih, b_hh : [4H] (or null)
//   gates, in this order: i (input), f (forget), g (cell), o (output), rows k*H .. (k+1)*H of W
//   z_t  = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
//   i = sigmoid(z_i)  f = sigmoid(z_f)  g = tanh(z_g)  o = sigmoid(z_o)
//   c_t  = f * c_{t-1} + i * g         h_t = o * tanh(c_t)         h_0 = c_0 = 0
//   y    : [B, T, H] = h_t at every step. With `reverse` the sequence is walked from T-1 down to
//          0 (the `_reverse` half of a bidirectional LSTM); y stays in input order.
//
// The forward saves `gates` [B, T, 4H] (activated i, f, g, o) and `cell` [B, T, H] (c_t) for the
// backward, which returns (overwrites) dx [B, T, in] (may be null), dW_ih, dW_hh and db [4H]
// (the gradient of b_ih and of b_hh, which are equal).
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// The shape and its check are backend-neutral (core/shapes.h), shared with native/cuda.
using tk::check_lstm_shape;
using tk::LstmShape;

void lstm_forward_f32(const LstmShape& s, const float* x, const float* w_ih, const float* w_hh, const float* b_ih,
                      const float* b_hh, float* y, float* gates, float* cell);
void lstm_backward_f32(const LstmShape& s, const float* dy, const float* x, const float* w_ih, const float* w_hh,
                       const float* y, const float* gates, const float* cell, float* dx, float* dw_ih, float* dw_hh,
                       float* db);

// Plain loops in double precision: the oracle for the fast path.
void lstm_forward_reference(const LstmShape& s, const float* x, const float* w_ih, const float* w_hh,
                            const float* b_ih, const float* b_hh, float* y, float* gates, float* cell);
void lstm_backward_reference(const LstmShape& s, const float* dy, const float* x, const float* w_ih,
                             const float* w_hh, const float* y, const float* gates, const float* cell, float* dx,
                             float* dw_ih, float* dw_hh, float* db);

}  // namespace tk::cpu
