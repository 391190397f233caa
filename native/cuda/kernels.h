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
//
// Not yet on the GPU: SVD (AdaLoRA's rank re-allocation runs it rarely; it stays on the CPU).
#pragma once
#include <cstdint>

// The shape structs and op codes are the backend-neutral ones of native/core (no native/cpu
// header is included: the CUDA backend does not depend on the CPU one).
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

}  // namespace tk::cuda
