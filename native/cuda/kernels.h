// CUDA kernels of the native core: the op families of native/cpu with the same shapes and
// semantics, on DEVICE pointers. Plain C++ header (implementations in native/cuda/*.cu, built
// only with TUNEKIT_WITH_CUDA). Every function validates its sizes on the host (tk::Error as the
// CPU kernels throw), launches on the default stream and returns without waiting unless noted.
//
//   gemm.cu       bf16 tensor-core GEMM (mma.sync m16n8k16, f32 accumulate), LoRA fwd/bwd,
//                 f32 <-> bf16 conversion
//   nf4.cu        NF4/FP4 dequantize, batch-1..4 NF4 GEMV, NF4 dequant-GEMM (forward and dx)
//   attention.cu  flash-style attention forward/backward (f32)
//   ops.cu        element-wise, softmax, layer/RMS norm, cross-entropy, AdamW, AdaLoRA EMAs
//   gemm_f32.cu   plain f32 GEMM (CUDA cores, f32 accumulate), f32 linear + LoRA with dropout
//   data.cu       fill, cast, strided / row / byte copies, counter-based random fills, arange
//   nn.cu         dropout, embedding rows (gather, scatter-add), RoPE, reductions, argmax,
//                 sum of squares, non-finite count, AdaLoRA triplet scores
//   lstm.cu       one direction of one LSTM layer, forward and backward through time
//
// Not yet on the GPU: SVD (AdaLoRA's rank re-allocation runs it rarely; it stays on the CPU),
// NF4 quantization itself (weights are quantized on the host at load), vision ops.
#pragma once
#include <cstdint>

// The shape structs and op codes are the backend-neutral ones of native/core (no native/cpu
// header is included: the CUDA backend does not depend on the CPU one).
#include "core/dtype.h"
#include "core/op_codes.h"
#include "core/shapes.h"

namespace tk::cuda {

// ---- GEMM (gemm.cu) --------------------------------------------------------------------------
// C[M,N] = alpha op(A) op(B) + beta C, A and B bf16 bits, C f32; GemmShape exactly as the CPU's
// (row-major, all four transpose combinations, leading dimensions). 128x128x32 tiles, 8 warps,
// 3-stage cp.async pipeline when rows are 16-byte aligned (ld % 8 == 0), element loads otherwise.
void gemm_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C);

// out[i] = bf16(scale * in[i]) (round to nearest even), and back.
void f32_to_bf16(const float* in, uint16_t* out, int64_t n, float scale = 1.0f);
void bf16_to_f32(const uint16_t* in, float* out, int64_t n);

// Fused linear + LoRA (cpu/lora.h semantics) with bf16 operands and f32 results: x, xd, w, a, b
// are bf16; bias, y, xa, dy, dx, dxd, da, db are f32. Intermediates that feed a second product
// (xa, dy B, dy) are rounded to bf16, as a bf16 autocast would. Temporaries come from the
// caching allocator.
void lora_linear_forward_bf16(const LoraShape& s, const uint16_t* x, const uint16_t* xd, const uint16_t* w,
                              const float* bias, const uint16_t* a, const uint16_t* b, float* y, float* xa);
void lora_linear_backward_bf16(const LoraShape& s, const float* dy, const uint16_t* xd, const uint16_t* w,
                               const uint16_t* a, const uint16_t* b, const float* xa, float* dx, float* dxd,
                               float* da, float* db, bool merge_dx);

// ---- NF4 (nf4.cu) ----------------------------------------------------------------------------
// W.packed / W.absmax are device pointers (absmax already double-dequantized), layout as
// cpu/nf4.h (bitsandbytes: even element in the high nibble, one absmax per block).
void nf4_dequantize(const Nf4Weight& W, float* out);        // out [N*K]
void nf4_dequantize_bf16(const Nf4Weight& W, uint16_t* out);  // f32 product rounded to bf16
// Streaming GEMV: Y[M,N] = X[M,K] dequant(W)^T + beta Y for small M (any M works; M <= 4 per
// pass, each weight byte read once per pass). X, Y f32.
void nf4_gemv(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy, float beta = 0.0f);
// Many tokens: tiles of W are dequantized to bf16 in shared memory and fed to the tensor-core
// GEMM. X, dY bf16 [M, .]; Y, dX f32.
void nf4_gemm_bf16(const uint16_t* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy,
                   float beta = 0.0f);  // Y = X W^T
void nf4_gemm_dx_bf16(const uint16_t* dY, int64_t M, int64_t lddy, const Nf4Weight& W, float* dX, int64_t lddx,
                      float beta = 0.0f);  // dX = dY W
// absmax[i] = code[q[i]] nested[i / 256] + offset (bitsandbytes' double quantization, two
// roundings as cpu/nf4.h); code: the 256-value signed dynamic map, a HOST array (the caller's
// cpu::dynamic_map_signed(): the CUDA backend does not build the table itself)
void nf4_double_dequantize_absmax(const uint8_t* q, const float* nested_absmax, float offset, int64_t nblocks,
                                  const float* dynamic_map_host, float* absmax);

// ---- attention (attention.cu) ----------------------------------------------------------------
// cpu/attention.h semantics (causal with offset Tk - Tq, key mask, grouped-query, lse, fully
// masked rows -> 0 / -inf). D <= 256. Backward: dq, dk, dv written; no T x T buffer anywhere.
void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse);
void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv);

// ---- element-wise, softmax, norms, losses, optimizers (ops.cu) -------------------------------
constexpr int kMaxDims = 8;
void binary(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides);  // shape/strides: host arrays
void unary(UnaryOp op, const float* x, float* y, int64_t n, float param);
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n, float param);

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log);

void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                int64_t cols, float eps);
void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols);
void rms_norm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps);
void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols);

// Checks the labels on the device first (ERR_INDEX naming the first bad row, nothing written),
// then computes; returns the number of counted rows (synchronises: the count comes back).
int64_t cross_entropy(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                      int64_t classes, int64_t ignore_index);
void cross_entropy_backward(const float* logits, const int32_t* labels, const float* lse, const float* dloss,
                            float* dlogits, int64_t rows, int64_t classes, int64_t ignore_index);

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h);

// AdaLoRA sensitivity EMAs (as cpu/adalora.h's adalora_update_f32): for each of A [r,in], E [r],
// B [out,r] with gradient g (null = no gradient, I = 0): I = |w g|, Ibar = b1 Ibar + (1-b1) I,
// U = b2 U + (1-b2) |I - Ibar|. AdaloraShape / AdaloraState: core/shapes.h.
void adalora_update_f32(const AdaloraShape& s, const float* a, const float* ga, const float* e, const float* ge,
                        const float* b, const float* gb, const AdaloraState& st, float beta1, float beta2);

// AdaLoRA triplet scores (cpu/adalora.h adalora_triplet_scores_f32): scores[i] = Ibar_E U_E +
// (mean_j Ibar_A U_A [i, j] + mean_j Ibar_B U_B [j, i]), products in f32, sums in double.
void adalora_triplet_scores_f32(const AdaloraShape& s, const AdaloraState& st, float* scores);

// ---- f32 GEMM and f32 linear + LoRA (gemm_f32.cu) --------------------------------------------
// C = alpha op(A) op(B) + beta C in f32 on the CUDA cores (64x64x16 tiles, 4x4 outputs per
// thread, f32 fma accumulation): cpu/gemm.h's gemm_f32 semantics (beta == 0 overwrites C), results
// equal to rounding (the summation order differs). Batched: operand i at A + i strideA, etc.
void gemm_f32(const GemmShape& s, const float* A, const float* B, float* C);
void gemm_f32_batched(const GemmShape& s, int64_t batch, const float* A, int64_t stride_a, const float* B,
                      int64_t stride_b, float* C, int64_t stride_c);

// cpu/lora.h's lora_linear_{forward,backward}_dropout_f32, composed from gemm_f32 and the dropout
// kernels (masks bit-identical to the CPU's for the same seed): all operands f32, f32 products.
// Temporaries ([M, in] for the dropped input and the masked gradient, [M, r]) come from the
// caching allocator. The backward's dx may be null (no input gradient: its products are skipped).
void lora_linear_forward_dropout_f32(const LoraShape& s, const float* x, const float* w, const float* bias,
                                     const float* a, const float* b, float p, uint64_t seed, uint8_t* mask, float* y,
                                     float* xa);
void lora_linear_backward_dropout_f32(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                      float p, const float* w, const float* a, const float* b, const float* xa,
                                      float* dx, float* da, float* db);

// ---- data movement (data.cu): cpu/copy.h semantics -------------------------------------------
// dst[0..n) = value converted to d (the element's bytes are made on the host, as cpu::fill makes them)
void fill(void* dst, DType d, int64_t n, double value);
// dst[i] = (dd) src[i] through double, as cpu::cast (float -> int truncates toward zero; bf16/f16
// round to nearest even with the same bit code as core/dtype.h); sd == dd copies bytes.
void cast(const void* src, DType sd, void* dst, DType dd, int64_t n);
// contiguous dst = the view (shape, element strides; host arrays of ndim, any ndim: dimensions are
// merged on the host down to at most kMaxDims, else ERR_SHAPE) of elem_size-byte elements at src
void copy_strided(const void* src, void* dst, int64_t elem_size, int ndim, const int64_t* shape, const int64_t* strides);
// `rows` rows of row_bytes bytes, byte strides (a stride may be 0: a broadcast row); rows must not overlap
void copy_rows(const void* src, void* dst, int64_t rows, int64_t row_bytes, int64_t src_stride, int64_t dst_stride);
// memmove: src and dst may overlap (an overlapping copy goes through a temporary)
void copy_bytes(const void* src, void* dst, int64_t bytes);
// cpu::random_normal_f32 / random_uniform_f32: the same splitmix64 counters, so the same values
// up to the last bits of log/cos/sin (libm on the host, CUDA's on the device)
void random_normal_f32(float* dst, int64_t n, uint64_t seed, float mean, float std);
void random_uniform_f32(float* dst, int64_t n, uint64_t seed, float low, float high);
// dst[i] = start + step i in double, stored as d (bit-identical to cpu::arange)
void arange(void* dst, DType d, int64_t n, double start, double step);

// ---- dropout, embedding, RoPE, reductions (nn.cu): native/cpu semantics ----------------------
// cpu/dropout.h: mask from core/counter_hash.h (bit-identical to the CPU's for the same seed)
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);
// dx (+)= dy * mask / (1 - p)
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p, bool accumulate);
// cpu/embedding.h: ids checked on the device first (ERR_INDEX naming the first bad position and
// its id, nothing written; synchronises). scatter_add_rows adds with atomics: rows hit by
// several ids are summed in no fixed order (equal to the CPU's to rounding).
void gather_rows(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size, int64_t num_rows);
void scatter_add_rows(const float* src, const int32_t* idx, float* dst, int64_t n, int64_t row_size, int64_t num_rows);
// cpu/rope.h: x [B, H, T, D] (out may be x), positions i32 [B, T], inv_freq [rot_dim / 2]
void rope(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H, int64_t T,
          int64_t D, int64_t rot_dim, bool inverse);
// cpu/reduce.h: x [outer, n, inner] -> out [outer, inner]; sums in double; max/min: NaN wins
void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner);
// out[r] = first index of the row's max (the first NaN when there is one)
void argmax(const float* x, int32_t* out, int64_t rows, int64_t cols);
// synchronise (the value comes back): sum of squares in double; count of infinities and NaNs
double sum_squares(const float* x, int64_t n);
int64_t count_non_finite(const float* x, int64_t n);

// ---- LSTM (lstm.cu): cpu/lstm.h semantics (PyTorch's gate order i, f, g, o; batch first) ------
// x [B, T, in], w_ih [4H, in], w_hh [4H, H], b_ih / b_hh [4H] or null; y, cell [B, T, H] and the
// activated gates [B, T, 4H] written; reverse walks T-1 .. 0. The backward overwrites dx (may be
// null), dw_ih, dw_hh and db (the gradient of b_ih and of b_hh). Temporaries: [B, T, 4H] + [B, T, H].
void lstm_forward_f32(int64_t B, int64_t T, int64_t in, int64_t H, bool reverse, const float* x, const float* w_ih,
                      const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* gates, float* cell);
void lstm_backward_f32(int64_t B, int64_t T, int64_t in, int64_t H, bool reverse, const float* dy, const float* x,
                       const float* w_ih, const float* w_hh, const float* y, const float* gates, const float* cell,
                       float* dx, float* dw_ih, float* dw_hh, float* db);

}  // namespace tk::cuda
