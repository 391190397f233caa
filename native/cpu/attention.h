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
// small products (attention_tiles.h) and an online softmax, so scratch is per tile and never
// Tq x Tk.
void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse);
void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv);

// Token-major self-attention over variable-length sequences, straight from a packed projection
// (GPT-2's c_attn output) and without padding:
//   qkv  : [N, 3C] rows, C = H * D; q | k | v, head h at columns h*D of each third
//   offsets : i32 [S + 1], sequence i is rows offsets[i] .. offsets[i + 1] (0 = offsets[0] <=
//          ... <= offsets[S] = N); a sequence attends only to its own rows
//   key_mask : i32 [N] or null (nonzero = the row may be attended to)
//   out, dout : [N, C] (heads merged); lse : [H, N]; dqkv : [N, 3C] (written, not accumulated)
// Causal: row i of a sequence sees its rows j <= i. The same tile loops as the head-major path,
// each (sequence, head) is one head of that path with row strides 3C (q, k, v) and C (out).
// last_query_only: only the last row of each sequence is a query (sequence classification's
// last layer needs no other): out and dout are [S, C], lse [H, S], and dqkv's q part is zero
// except at those rows; every sequence must then have a row.
struct AttentionRowsShape {
  int64_t N = 0, S = 0, H = 0, D = 0;
  float scale = 1.0f;
  bool causal = false;
  bool last_query_only = false;
};
// Throws tk::Error (ERR_SHAPE / ERR_VALUE) unless N, S >= 0, H >= 1, D >= 1, scale finite and the
// offsets run from 0 to N without decreasing (reads offsets[0 .. S]), none equal with
// last_query_only.
void check_attention_rows_shape(const AttentionRowsShape& s, const int32_t* offsets);
void attention_rows_forward_f32(const AttentionRowsShape& s, const float* qkv, const int32_t* offsets,
                                const int32_t* key_mask, float* out, float* lse);
void attention_rows_backward_f32(const AttentionRowsShape& s, const float* qkv, const int32_t* offsets,
                                 const int32_t* key_mask, const float* out, const float* lse, const float* dout,
                                 float* dqkv);

// Plain loops over the full score row, double accumulation: the oracle for the fast path.
void attention_forward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                 const int32_t* key_mask, float* out, float* lse);
void attention_backward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, const float* dout,
                                  const int32_t* key_mask, float* dq, float* dk, float* dv);

}  // namespace tk::cpu
