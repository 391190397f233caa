// AdamW update in place on f32 parameters (PyTorch torch.optim.AdamW semantics, non-amsgrad):
//
//   p  = p * (1 - lr * wd)                      decoupled weight decay, before the moments
//   m  = beta1 m + (1 - beta1) g
//   v  = beta2 v + (1 - beta2) g^2
//   p -= lr * mhat / (sqrt(vhat) + eps),  mhat = m / (1 - beta1^step), vhat = v / (1 - beta2^step)
//
// computed as PyTorch does: p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). step is 1-based.
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// The hyper-parameters (doubles, as JS and PyTorch hold them): core/shapes.h, shared with CUDA.
using tk::AdamWHyper;

// param, grad, m, v (n); param, m, v updated in place
void adamw_reference(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h);
void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h);

}  // namespace tk::cpu
