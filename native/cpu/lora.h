// Linear layer fused with a LoRA adapter, f32, forward and backward.
//
//   y [M, out] = x [M, in] W^T + bias + s * (xd A^T) B^T
//
//   W    : [out, in]  (nn.Linear)  or [in, out] when w_in_out (GPT-2 Conv1D, y = x W)
//   bias : [out] or null
//   A    : [r, in]    B : [out, r]      s : the LoRA scale (alpha / r, or alpha / sqrt(r))
//   xd   : [M, in]    the adapter's input: x itself, or dropout(x)
//   xa   : [M, r]     = xd A^T, written by the forward and read by the backward
//
// W + s B A is never formed. The base product is one multi-threaded GEMM; the adapter path then
// runs over blocks of rows whose operands stay in cache: the block's xd (dropped rows are made
// in a scratch buffer, never in memory of size [M, in]), xa = xd A^T, and y += s xa B^T + bias in
// the same visit of the block of y. The backward never computes a gradient for W:
//
//   dx  [M, in]  = dy W                   (+ s (dy B) A when merge_dx: xd is x, no dropout)
//   dxd [M, in]  = s (dy B) A             (when !merge_dx: gradient w.r.t. the dropped input)
//   dA  [r, in]  = s (dy B)^T xd
//   dB  [out, r] = s dy^T xa
// Outputs are written (overwritten), not accumulated.
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// The shape and its check (ERR_SHAPE / ERR_VALUE on negative sizes or a non-finite scale) are
// core/shapes.h's, shared with the CUDA backend.
using tk::check_lora_shape;
using tk::LoraShape;

void lora_linear_forward_f32(const LoraShape& s, const float* x, const float* xd, const float* w,
                             const float* bias, const float* a, const float* b, float* y, float* xa);
// dxd may be null when merge_dx (it is not written then); it is required otherwise.
void lora_linear_backward_f32(const LoraShape& s, const float* dy, const float* xd, const float* w,
                              const float* a, const float* b, const float* xa, float* dx, float* dxd, float* da,
                              float* db, bool merge_dx);

// The same with PEFT's lora_dropout on the adapter path, fused: xd = dropout(x) is never stored.
// Element e of x (row-major index) is kept iff dropout_bits(seed, e) >= p 2^32 (dropout.h), kept
// values scaled by 1 / (1 - p); mask [M, in] receives the kept flags (1/0) for the backward.
// p == 0: xd is x and mask may be null. The backward recomputes xd's rows from x and the mask,
// adds the adapter path's input gradient into dx through the mask (dx = dy W + mask s (dy B) A
// / (1 - p)), and sums dA over fixed blocks of rows in a fixed order (the same bits for any
// thread count).
void lora_linear_forward_dropout_f32(const LoraShape& s, const float* x, const float* w, const float* bias,
                                     const float* a, const float* b, float p, uint64_t seed, uint8_t* mask, float* y,
                                     float* xa);
// dx may be null: the layer's input needs no gradient (the first adapted layer of a frozen
// model), and dx's GEMM, the backward's largest product, is skipped.
void lora_linear_backward_dropout_f32(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                      float p, const float* w, const float* a, const float* b, const float* xa,
                                      float* dx, float* da, float* db);

// bf16 compute (TUNEKIT_COMPUTE_DTYPE=bf16) with the same fusion: w is the frozen weight's bf16
// copy (bits, W's layout), and the base products x W and dy W^T round their f32 activation to
// bf16 while the GEMM packs it (gemm_bf16_round_a); the adapter path, its dropout and every
// gradient stay f32, added to the finished blocks of y and dx by the GEMM's epilogue. y equals
// round(x) W_bf16 + bias + s (xd A^T) B^T up to f32 summation order.
void lora_linear_forward_dropout_bf16w(const LoraShape& s, const float* x, const uint16_t* w, const float* bias,
                                       const float* a, const float* b, float p, uint64_t seed, uint8_t* mask,
                                       float* y, float* xa);
void lora_linear_backward_dropout_bf16w(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                        float p, const uint16_t* w, const float* a, const float* b, const float* xa,
                                        float* dx, float* da, float* db);

// Plain loops in double precision: the oracle for the fast path.
void lora_linear_forward_reference(const LoraShape& s, const float* x, const float* xd, const float* w,
                                   const float* bias, const float* a, const float* b, float* y, float* xa);
void lora_linear_backward_reference(const LoraShape& s, const float* dy, const float* xd, const float* w,
                                    const float* a, const float* b, const float* xa, float* dx, float* dxd,
                                    float* da, float* db, bool merge_dx);

}  // namespace tk::cpu
