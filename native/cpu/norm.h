// LayerNorm and RMSNorm over the last axis, forward and backward, f32.
//
//   layer_norm: y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps), biased variance
//               (PyTorch nn.LayerNorm); mean and rstd are saved for the backward.
//   rms_norm:   y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps) (Llama / T5 RMSNorm).
// Row statistics accumulate in double. w (and b) may be null: no affine transform.
// Backward writes (overwrites) dx, and dw / db when they are non-null.
#pragma once
#include <cstdint>

namespace tk::cpu {

// x (rows, cols), w (cols), b (cols) -> y (rows, cols), mean (rows), rstd (rows)
void layer_norm_reference(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                          int64_t rows, int64_t cols, float eps);
void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                int64_t cols, float eps);

// x, dy (rows, cols), w (cols), mean, rstd (rows) -> dx (rows, cols); dw, db (cols) if non-null
//   xhat = (x - mean) rstd, g = dy w:  dx = rstd (g - mean(g) - xhat mean(g xhat))
//   dw = sum_rows dy xhat,  db = sum_rows dy
void layer_norm_backward_reference(const float* x, const float* w, const float* mean, const float* rstd,
                                   const float* dy, float* dx, float* dw, float* db, int64_t rows, int64_t cols);
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols);

// x (rows, cols), w (cols) -> y (rows, cols), rstd (rows)
void rms_norm_reference(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps);
void rms_norm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps);

// x, dy (rows, cols), w (cols), rstd (rows) -> dx (rows, cols); dw (cols) if non-null
//   xhat = x rstd, g = dy w:  dx = rstd (g - xhat mean(g xhat)),  dw = sum_rows dy xhat
void rms_norm_backward_reference(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                 float* dw, int64_t rows, int64_t cols);
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols);

}  // namespace tk::cpu
