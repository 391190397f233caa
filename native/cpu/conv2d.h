// 2-D convolution (PyTorch's nn.Conv2d / F.conv2d), NCHW, f32, forward and backward.
//
//   x (N, C, H, W), w (O, C/groups, KH, KW), b (O) or null -> y (N, O, Ho, Wo)
//   Ho = (H + 2 ph - dh (KH - 1) - 1) / sh + 1   (floor), likewise Wo
//   y[n, o, i, j] = b[o] + sum_{c in group(o), p, q} w[o, c, p, q] x[n, c, i sh - ph + p dh, j sw - pw + q dw]
// Zero padding. Groups split C and O into `groups` equal parts (depthwise: groups = C).
//
// The reference is the plain sum above with double accumulation (the oracle). The fast path is
// im2col + our GEMM: for each group, col (C/g KH KW, n Ho Wo) over a chunk of n images, then
// W_g (O/g, K) x col -> (O/g, n Ho Wo), scattered back to NCHW. The backward recomputes col
// (nothing beyond x is saved) and gives dW_g = dy_g col^T, dcol = W_g^T dy_g -> col2im into dx.
// Backward overwrites dx, dw and db; any of them may be null (not wanted).
#pragma once
#include <cstdint>

namespace tk::cpu {

struct Conv2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t O = 0, KH = 0, KW = 0;       // weight (O, C / groups, KH, KW)
  int64_t sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t groups = 1;
  int64_t Ho = 0, Wo = 0;  // filled by conv2d_check
};

// Validates sizes (positive kernel/stride/dilation, non-negative padding, groups dividing C and O,
// an output of at least one pixel) and fills Ho, Wo; throws tk::Error (ERR_SHAPE / ERR_VALUE).
void conv2d_check(Conv2dShape& s);

void conv2d_forward_reference(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);

// dy (N, O, Ho, Wo) -> dx (N, C, H, W), dw (O, C/g, KH, KW), db (O); each may be null
void conv2d_backward_reference(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                               float* dw, float* db);
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db);

}  // namespace tk::cpu

namespace tk::cpu {

// Fused LoRA convolution (PEFT's lora.Conv2d, no dropout), groups 1:
//   low = conv(x, A)                      A (r, C, KH, KW), the layer's stride / padding / dilation
//   y   = conv(x, W) + bias + scale * B low   B (O, r) (the 1x1 lora_B)
// One im2col feeds both products. `low` (N, r, Ho, Wo) is written for the backward, which
// recomputes im2col once for dA and runs one col2im for the input gradient of both paths:
//   dlow = scale B^T dy,  dB = scale dy low^T,  dA = dlow col^T,  dcol = W^T dy + A^T dlow.
// W and bias get no gradient (frozen base). dx, da, db may be null; they are overwritten.
void lora_conv2d_forward(const Conv2dShape& s, int64_t r, float scale, const float* x, const float* w, const float* bias,
                         const float* a, const float* b, float* y, float* low);
void lora_conv2d_backward(const Conv2dShape& s, int64_t r, float scale, const float* x, const float* w, const float* a,
                          const float* b, const float* low, const float* dy, float* dx, float* da, float* db);

}  // namespace tk::cpu
