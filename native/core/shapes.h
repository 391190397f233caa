// The shape and option structs every backend's kernels take (native/cpu and native/cuda alike),
// so that neither backend depends on the other: the N-API layer fills one of these from an
// already-checked options object and hands it to whichever backend owns the tensors.
// Row-major throughout; sizes are element counts.
#pragma once
#include <cstdint>

#include "core/op_codes.h"

namespace tk {

// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//   op(A) = A: A is [M,K] with row stride lda >= K;  A^T (transA): A is [K,M], lda >= M
//   op(B) = B: B is [K,N] with row stride ldb >= N;  B^T (transB): B is [N,K], ldb >= K
// beta == 0 overwrites C (NaNs in C are not propagated), as BLAS does.
struct GemmShape {
  bool transA = false, transB = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
};

// Scaled dot-product attention: q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D] (Hq % Hkv == 0), causal
// with query i at absolute position Tk - Tq + i.
struct AttentionShape {
  int64_t B = 0, Hq = 0, Hkv = 0, Tq = 0, Tk = 0, D = 0;
  float scale = 1.0f;
  bool causal = false;
};
// Throws tk::Error (ERR_SHAPE / ERR_VALUE) unless the sizes are consistent: all >= 0, Hkv >= 1,
// Hq % Hkv == 0, Tq <= Tk when causal, scale finite.
void check_attention_shape(const AttentionShape& s);

// Linear + LoRA: y [M, out] = x [M, in] W^T + bias + scale (xd A^T) B^T, A [r, in], B [out, r];
// W [out, in], or [in, out] when w_in_out (GPT-2 Conv1D).
struct LoraShape {
  int64_t M = 0, in = 0, out = 0, r = 0;
  float scale = 1.0f;
  bool w_in_out = false;
};
// Throws tk::Error (ERR_SHAPE / ERR_VALUE) on negative sizes or a non-finite scale.
void check_lora_shape(const LoraShape& s);

// An NF4 (or FP4) weight W [N,K] (row-major before flattening), bitsandbytes' layout: packed
// (N*K+1)/2 bytes with the even element in the high nibble, one absmax per block of `blocksize`
// (already double-dequantized). Pointers are host or device memory as the backend reading them.
struct Nf4Weight {
  const uint8_t* packed = nullptr;
  const float* absmax = nullptr;
  int64_t N = 0, K = 0;  // out features, in features
  int blocksize = 64;
  Quant4Type type = Quant4Type::NF4;
};

// One direction of one LSTM layer (cpu/lstm.h for the semantics): x [B, T, in], hidden size H,
// gates [B, T, 4H]; `reverse` walks the sequence from T-1 down to 0.
struct LstmShape {
  int64_t B = 0, T = 0, in = 0, H = 0;
  bool reverse = false;
};
// Throws tk::Error (ERR_SHAPE) on negative sizes or products that overflow.
void check_lstm_shape(const LstmShape& s);

// AdamW's hyper-parameters (PyTorch's torch.optim.AdamW). Doubles, as JS and PyTorch hold them:
// 1 - beta2 must be formed before rounding to f32 (1 - 0.999f is off by 5e-5 relative).
struct AdamWHyper {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  int64_t step = 1;  // number of this update, >= 1
};

// One AdaLoRA layer: A [r, in], E [r], B [out, r].
struct AdaloraShape {
  int64_t r = 0, in = 0, out = 0;
};
// Throws tk::Error (ERR_SHAPE) on negative sizes.
void check_adalora_shape(const AdaloraShape& s);

// EMA state of one AdaLoRA layer, each the shape of its parameter (zero at start).
struct AdaloraState {
  float* ibar_a = nullptr;  // [r, in]
  float* unc_a = nullptr;   // [r, in]
  float* ibar_e = nullptr;  // [r]
  float* unc_e = nullptr;   // [r]
  float* ibar_b = nullptr;  // [out, r]
  float* unc_b = nullptr;   // [out, r]
};

}  // namespace tk
