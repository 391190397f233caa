// 2-D pooling, NCHW, f32 (PyTorch's MaxPool2d, AvgPool2d, AdaptiveAvgPool2d), forward and backward.
//
//   max:  y[n, c, i, j] = max over the window rows i sh - ph + p dh, columns j sw - pw + q dw
//         (p < KH, q < KW) that lie inside the image (padding is -inf); idx (i32) keeps the
//         argmax as ih * W + iw; torch's rule `v > best || isnan(v)`: the first maximum in scan
//         order wins, a NaN propagates (the last NaN's index).
//   avg:  y = sum over the window inside the image / divisor, where the window is clipped to
//         [-ph, H + ph) and the divisor counts that clipped window (count_include_pad) or only
//         the pixels inside the image (torch's avg_pool2d, no divisor_override, no dilation).
//   adaptive avg: output cell (i, j) averages rows [floor(i H / Ho), ceil((i + 1) H / Ho)) and the
//         columns likewise (torch's adaptive_avg_pool2d).
// Output size (floor mode): Ho = (H + 2 ph - dh (KH - 1) - 1) / sh + 1; ceil_mode is not built.
// Reference versions are serial; the others run one task per (n, c) plane. Backward overwrites dx.
#pragma once
#include <cstdint>

namespace tk::cpu {

struct Pool2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t KH = 1, KW = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t Ho = 0, Wo = 0;  // filled by pool2d_check
};

// Sizes valid (padding at most half the kernel, as torch requires) and Ho, Wo filled; throws otherwise.
void pool2d_check(Pool2dShape& s, const char* fn);

void max_pool2d_reference(const Pool2dShape& s, const float* x, float* y, int32_t* idx);
void max_pool2d(const Pool2dShape& s, const float* x, float* y, int32_t* idx);
// dx[n, c, idx] += dy[n, c, i, j]
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* idx, float* dx);

void avg_pool2d_reference(const Pool2dShape& s, const float* x, float* y, bool count_include_pad);
void avg_pool2d(const Pool2dShape& s, const float* x, float* y, bool count_include_pad);
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx, bool count_include_pad);

// x (N, C, H, W) -> y (N, C, Ho, Wo)
void adaptive_avg_pool2d_reference(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo);
void adaptive_avg_pool2d(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo);
void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo);

}  // namespace tk::cpu
