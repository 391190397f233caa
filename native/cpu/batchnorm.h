// Batch normalization over (N, HW) per channel, NCHW, f32 (PyTorch's nn.BatchNorm2d).
//
//   train: mean_c, var_c = biased mean and variance of x[:, c, :] over N HW values;
//          y = (x - mean_c) rstd_c w_c + b_c, rstd_c = 1 / sqrt(var_c + eps);
//          running stats, when given, move toward the batch: r = (1 - momentum) r + momentum stat,
//          with the unbiased variance (var M / (M - 1)) as torch does.
//   eval:  the same with mean_c = running_mean_c and var_c = running_var_c.
// mean and rstd (C) are written in both modes and are what the backward reads.
//   backward, train (batch statistics depend on x), M = N HW, xhat = (x - mean) rstd:
//     dx = w rstd / M (M dy - sum(dy) - xhat sum(dy xhat)),  dw = sum(dy xhat),  db = sum(dy)
//   backward, eval (constants): dx = dy w rstd, dw and db as above.
// w and b may be null (affine=False: w = 1, b = 0). Statistics accumulate in double.
// The reference is serial; the fast version runs one task per channel. Backward overwrites dx, dw, db
// (each may be null).
#pragma once
#include <cstdint>

namespace tk::cpu {

struct BatchNormShape {
  int64_t N = 0, C = 0, HW = 0;
};

// running_mean / running_var may be null (track_running_stats=False) in training
void batch_norm_train_reference(const BatchNormShape& s, const float* x, const float* w, const float* b, float* y,
                                float* mean, float* rstd, float* running_mean, float* running_var, float eps,
                                float momentum);
void batch_norm_train(const BatchNormShape& s, const float* x, const float* w, const float* b, float* y, float* mean,
                      float* rstd, float* running_mean, float* running_var, float eps, float momentum);
void batch_norm_eval(const BatchNormShape& s, const float* x, const float* w, const float* b, const float* running_mean,
                     const float* running_var, float* y, float* mean, float* rstd, float eps);

void batch_norm_backward_reference(const BatchNormShape& s, const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* dy, float* dx, float* dw, float* db, bool train);
void batch_norm_backward(const BatchNormShape& s, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dw, float* db, bool train);

}  // namespace tk::cpu
