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

}  // namespace tk::napi
