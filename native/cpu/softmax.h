// Row-wise softmax and log-softmax over the last axis, forward and backward, f32.
//
// Semantics follow PyTorch: the row maximum is subtracted first, so large logits are safe;
// -inf entries (masked) get probability 0; a row that is entirely -inf, or holds +inf or NaN,
// comes out NaN, as torch.softmax does. Sums are accumulated in double.
#pragma once
#include <cstdint>

namespace tk::cpu {

// x (rows, cols) -> y (rows, cols); log: y = log_softmax(x). y may alias x.
void softmax_reference(const float* x, float* y, int64_t rows, int64_t cols, bool log);
void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log);

// y (rows, cols) = the forward output, dy (rows, cols) -> dx (rows, cols), written:
//   softmax:     dx = y * (dy - sum(dy * y))
//   log_softmax: dx = dy - exp(y) * sum(dy)
void softmax_backward_reference(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log);

}  // namespace tk::cpu
