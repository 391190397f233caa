// Rotary position embedding in the rotate-half layout of transformers' Llama, f32.
//
// For each row x[b, h, t, :] (D values), with half = rot_dim / 2 and
// angle_i = float(pos[b, t]) * inv_freq[i] (an f32 product, as transformers computes it):
//   out[i]        = x[i] cos(angle_i) - x[i + half] sin(angle_i)      i < half
//   out[i + half] = x[i + half] cos(angle_i) + x[i] sin(angle_i)
//   out[j]        = x[j]                                              rot_dim <= j < D
// inverse = true rotates by -angle: the exact inverse, and also the backward (the rotation is
// orthogonal, so dx = R^T dout = R(-angle) dout).
#pragma once
#include <cstdint>

namespace tk::cpu {

// x (B, H, T, D), positions i32 (B, T), inv_freq (rot_dim / 2) -> out (B, H, T, D).
// rot_dim even, 0 <= rot_dim <= D. out may alias x.
void rope_reference(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H,
                    int64_t T, int64_t D, int64_t rot_dim, bool inverse);
void rope(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H, int64_t T,
          int64_t D, int64_t rot_dim, bool inverse);

}  // namespace tk::cpu
