// Multi-head scaled dot-product attention on the CPU, f32, forward and backward.
//
// Shapes (contiguous, row-major):
//   q, out, dout, dq : [B, Hq, Tq, D]
//   k, v, dk, dv     : [B, Hkv, Tk, D]       Hq % Hkv == 0; query head h reads kv head h / (Hq / Hkv)
//   lse              : [B, Hq, Tq]           log-sum-exp of the scaled, masked scores of each row
//   key_mask         : i32 [B, Tk] or null   nonzero = the key may be attended to
//
// Scores S[i, j] = scale * q_i . k_j. With `causal`, query row i sits at absolute position
// Tk - Tq + i (the keys of a KV cache or a prefix come first) and sees keys j <= that position.
// A row whose keys are all masked gets out = 0 and lse = -inf; its gradients are 0 (never NaN).
//
// The backward recomputes probabilities from lse (P = exp(S - lse)), flash-attention style, so
// the forward saves only out and lse. Gradients are written (overwritten), not accumulated;
// dk and dv sum the contributions of every query head that shares the kv head.
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// The shape and its check (all sizes >= 0, Hkv >= 1, Hq % Hkv == 0, Tq <= Tk when causal, scale
// finite) are core/shapes.h's, shared with the CUDA backend.
using tk::AttentionShape;
using tk::check_attention_shape;

// Fast path: parallel over (batch, query head, query tile); query tiles against key tiles with
// the GEMM and an online softmax, so scratch is per tile and never Tq x Tk.
void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse);
void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv);

// Plain loops over the full score row, double accumulation: the oracle for the fast path.
void attention_forward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                 const int32_t* key_mask, float* out, float* lse);
void attention_backward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, const float* dout,
                                  const int32_t* key_mask, float* dq, float* dk, float* dv);

}  // namespace tk::cpu
