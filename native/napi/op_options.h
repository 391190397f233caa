// Option readers shared by the CPU and CUDA bindings of one op, so that both read and check an
// op's options object the same way (native.cpu.<op> and native.cuda.<op> take the same object).
#pragma once
#include "core/shapes.h"
#include "napi_util.h"

namespace tk::napi {

// rows x cols where a row needs at least one column (statistics of an empty row are undefined)
void check_rows_cols(const char* fn, int64_t rows, int64_t cols);
// options.eps: finite, >= 0
float eps_opt(const Opts& o);
// options.p: a drop probability in [0, 1)
float dropout_p_opt(const Opts& o);
// lr, beta1, beta2, eps, weightDecay, step, with the checks torch.optim.AdamW makes
AdamWHyper adamw_hyper(const Opts& o);
// B, Hq, Hkv, Tq, Tk, D, scale, causal (check_attention_shape)
AttentionShape attention_shape(const Opts& o);
// M, inF, outF, r, scale, wInOut (check_lora_shape)
LoraShape lora_shape(const Opts& o);
// options.blocksize of a 4-bit weight: bitsandbytes' range [32, 4096]
int quant4_blocksize(const Opts& o);
// options.quantType: 'nf4' | 'fp4'
inline Quant4Type quant4_type(const Opts& o) { return o.code<Quant4Type>("quantType", kQuant4TypeNames); }
// absmax blocks of n values
inline int64_t quant4_blocks(int64_t n, int bs) { return (n + bs - 1) / bs; }
// An NF4/FP4 weight: packed (u8), absmax (f32, double-dequantized), N, K, blocksize, quantType;
// packed and absmax bounds-checked on the backend's device
Nf4Weight nf4_weight(const Opts& o);
// Elements and the largest index of a strided view (shape, element strides), both >= 0.
std::pair<int64_t, int64_t> strided_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                                           const char* fn);
// Elements an operand of a broadcasting binary op spans under (shape, strides): 1 + sum
// (shape_k - 1) * stride_k, or 0 when the output is empty; a negative stride is ERR_SHAPE.
int64_t operand_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, const char* what);
// The op code of options.op from one of core/op_codes.h's lists
inline BinaryOp binary_op(const Opts& o) { return o.code<BinaryOp>("op", kBinaryOpNames); }
inline UnaryOp unary_op(const Opts& o) { return o.code<UnaryOp>("op", kUnaryOpNames); }
inline ReduceOp reduce_op(const Opts& o) { return o.code<ReduceOp>("op", kReduceOpNames); }

// ---- whole options objects of ops with a CPU and a CUDA binding ----------------------------
// Each reads and checks every field of the op (tensors bounds-checked on the backend's device,
// Opts' Backend) in the order the bindings always have, so the first bad field is the one named.

// binary({ op, a, b, out, outShape, aStrides, bStrides }): element strides of a and b over
// outShape (0 = broadcast); total = elements of out
struct BinaryArgs {
  BinaryOp op;
  std::vector<int64_t> shape, a_strides, b_strides;
  int64_t total = 0;
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
};
BinaryArgs binary_args(const Opts& o);

// unary({ op, x, out, n, param }); unaryBackward({ op, x, y, dy, dx, n, param }) with `backward`
// (out is then dx; y and dy are read)
struct UnaryArgs {
  UnaryOp op;
  int64_t n = 0;
  float param = 0.0f;
  const float* x = nullptr;
  const float* y = nullptr;   // unaryBackward only
  const float* dy = nullptr;  // unaryBackward only
  float* out = nullptr;       // out, or dx for unaryBackward
};
UnaryArgs unary_args(const Opts& o, bool backward);

// reduce({ op, x, out, outer, n, inner }): x [outer, n, inner] -> out [outer, inner]
struct ReduceArgs {
  ReduceOp op;
  int64_t outer = 0, n = 0, inner = 0;
  const float* x = nullptr;
  float* out = nullptr;
};
ReduceArgs reduce_args(const Opts& o);

// gemm({ a, b, c, transA, transB, M, N, K, alpha, beta, batch, dtype }): the shape (contiguous
// operands: lda/ldb/ldc from the transposes), batch >= 1, dtype, and the element counts of A, B
// and C over the batch; the tensors are read by the binding (their types follow dtype).
struct GemmArgs {
  GemmShape shape;
  int64_t batch = 1;
  DType dtype;
  int64_t na = 0, nb = 0, nc = 0;
};
GemmArgs gemm_args(const Opts& o);

// loraLinearForward({ x, w, bias | null, a, b, y, xa, mask | null, M, inF, outF, r, scale, wInOut, p, seed, wDtype? })
// mask (u8 [M, in]) is required when p > 0, else nullptr. wDtype 'bf16' (default 'f32'): w is the
// frozen weight's bf16 copy, read into w_bf16 (w is then null).
struct LoraForwardArgs {
  LoraShape s;
  float p = 0.0f;
  uint64_t seed = 0;
  const float* x = nullptr;
  const float* w = nullptr;
  const uint16_t* w_bf16 = nullptr;
  const float* bias = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
  float* y = nullptr;
  float* xa = nullptr;
  uint8_t* mask = nullptr;
};
LoraForwardArgs lora_forward_args(const Opts& o);

// loraLinearBackward({ dy, x, mask | null, w, a, b, xa, dx | null, da, db, M, inF, outF, r, scale, wInOut, p, wDtype? })
// mask (the forward's) is required when p > 0, else nullptr; dx null: no input gradient; wDtype
// as for the forward.
struct LoraBackwardArgs {
  LoraShape s;
  float p = 0.0f;
  const float* dy = nullptr;
  const float* x = nullptr;
  const uint8_t* mask = nullptr;
  const float* w = nullptr;
  const uint16_t* w_bf16 = nullptr;
  const float* a = nullptr;
  const float* b = nullptr;
  const float* xa = nullptr;
  float* dx = nullptr;
  float* da = nullptr;
  float* db = nullptr;
};
LoraBackwardArgs lora_backward_args(const Opts& o);

// B, T, inF, hidden, reverse (check_lstm_shape)
LstmShape lstm_shape(const Opts& o);

// lstmForward({ x, wih, whh, bih | null, bhh | null, y, gates, cell, B, T, inF, hidden, reverse })
struct LstmForwardArgs {
  LstmShape s;
  const float* x = nullptr;
  const float* wih = nullptr;
  const float* whh = nullptr;
  const float* bih = nullptr;
  const float* bhh = nullptr;
  float* y = nullptr;
  float* gates = nullptr;
  float* cell = nullptr;
};
LstmForwardArgs lstm_forward_args(const Opts& o);

// lstmBackward({ dy, x, wih, whh, y, gates, cell, dx | null, dwih, dwhh, db, B, T, inF, hidden, reverse })
struct LstmBackwardArgs {
  LstmShape s;
  const float* dy = nullptr;
  const float* x = nullptr;
  const float* wih = nullptr;
  const float* whh = nullptr;
  const float* y = nullptr;
  const float* gates = nullptr;
  const float* cell = nullptr;
  float* dx = nullptr;
  float* dwih = nullptr;
  float* dwhh = nullptr;
  float* db = nullptr;
};
LstmBackwardArgs lstm_backward_args(const Opts& o);

// adaloraUpdateScores({ a, ga | null, e, ge | null, b, gb | null, state, scores | null, r, inF, outF, beta1, beta2, update })
// A layer's EMA state is ONE f32 tensor laid out as
//   [ Ibar_A (r*in) | U_A (r*in) | Ibar_E (r) | U_E (r) | Ibar_B (out*r) | U_B (out*r) ],
// split into st. With update: finite betas, and the parameters a, e, b and their gradients
// (a null grad counts as zero) are read; without, those stay nullptr. scores may be nullptr.
struct AdaloraScoresArgs {
  AdaloraShape s;
  AdaloraState st;
  float* scores = nullptr;
  bool update = false;
  float beta1 = 0.0f, beta2 = 0.0f;
  const float* a = nullptr;
  const float* ga = nullptr;
  const float* e = nullptr;
  const float* ge = nullptr;
  const float* b = nullptr;
  const float* gb = nullptr;
};
AdaloraScoresArgs adalora_scores_args(const Opts& o);

// adaloraKthSmallest({ values, n, k }): 1 <= k <= n
struct AdaloraKthArgs {
  int64_t n = 0, k = 0;
  const float* values = nullptr;
};
AdaloraKthArgs adalora_kth_args(const Opts& o);

// adaloraCostThreshold({ scores, costs, n, budget }): n >= 1, costs f32 [n] (parameters per rank)
struct AdaloraCostArgs {
  int64_t n = 0;
  double budget = 0;
  const float* scores = nullptr;
  const float* costs = nullptr;
};
AdaloraCostArgs adalora_cost_args(const Opts& o);

// adaloraMask({ e, scores, r, threshold, keep | null }): r >= 0; keep (u8 [r]) may be nullptr
struct AdaloraMaskArgs {
  int64_t r = 0;
  float threshold = 0.0f;
  float* e = nullptr;
  const float* scores = nullptr;
  uint8_t* keep = nullptr;
};
AdaloraMaskArgs adalora_mask_args(const Opts& o);

// nf4Quantize({ w, n, blocksize, quantType, packed, absmax }): a flat f32 array of n values
// quantized to packed ((n+1)/2 bytes) and absmax (one per block)
struct Quant4QuantizeArgs {
  int64_t n = 0;
  int blocksize = 64;
  Quant4Type type;
  const float* w = nullptr;
  uint8_t* packed = nullptr;
  float* absmax = nullptr;
};
Quant4QuantizeArgs quant4_quantize_args(const Opts& o);

}  // namespace tk::napi
