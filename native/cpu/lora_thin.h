// The thin products of a LoRA adapter (rank r, small next to the layer's in and out), written as
// row loops instead of GEMM calls: at r = 8 a GEMM spends more on packing its operands than on
// arithmetic, and each call reads and writes a whole [rows, out] block once more. Here each row of
// the output is visited once, with the adapter's small matrices in L1. Row-major throughout;
// these run serially (the caller splits rows across the pool).
#pragma once
#include <cstdint>

namespace tk::cpu {

// out [n, r] (row stride ldo) = alpha * X [n, K] (row stride ldx) Wt^T, Wt [r, K]:
// out[i, k] = alpha * sum_c X[i, c] Wt[k, c]   (xa = xd A^T; t = dy B with Wt = B^T)
void thin_rowdot(const float* X, int64_t ldx, const float* Wt, int64_t n, int64_t r, int64_t K, float alpha,
                 float* out, int64_t ldo);

// Y [n, N] (row stride ldy) (+)= mask o (alpha * C [n, r] Wt + bias), Wt [r, N] (row stride ldw):
// Y[i, o] = (accumulate ? Y[i, o] : 0) + m(i, o) (alpha sum_k C[i, k] Wt[k, o] + bias[o]).
// bias may be null. mask (u8, same layout as Y) may be null; where given, m = mask * mask_scale
// (the dropout backward: the adapter path's input gradient through the kept flags).
void thin_rowaxpy(const float* C, int64_t ldc, const float* Wt, int64_t ldw, int64_t n, int64_t r, int64_t N,
                  float alpha, const float* bias, const uint8_t* mask, float mask_scale, float* Y, int64_t ldy,
                  bool accumulate);

// D [r, K] (+)= alpha * C [n, r]^T X [n, K]: D[k, c] += alpha sum_i C[i, k] X[i, c]   (dA = s t^T xd)
void thin_outer(const float* C, int64_t ldc, const float* X, int64_t ldx, int64_t n, int64_t r, int64_t K, float alpha,
                float* D, bool accumulate);

// out[e] = x[e] * mask[e] * scale for e < count: rows of the dropped input rebuilt from x and the
// dropout's kept flags (u8 0/1) in the backward.
void thin_dropped(const float* x, const uint8_t* mask, float scale, int64_t count, float* out);

}  // namespace tk::cpu
