// 4-bit NF4 / FP4 blockwise quantization, bit-compatible with bitsandbytes (see REFERENCE.md
// "NF4"), and the matmuls that use NF4 weights without expanding them in memory.
//
// Layout (bitsandbytes): the weight is flattened row-major (W [N,K] -> n = N*K values), cut into
// blocks of `blocksize` consecutive values (the last block may be partial), one fp32 absmax per
// block. Codes are packed two per byte, even element in the HIGH nibble:
//   packed[j] = code[2j] << 4 | code[2j+1]          (odd n: the last low nibble is the code of 0.0,
//                                                    NF4 7 / FP4 0, as bitsandbytes pads)
// Values: w ~= codebook[code] * absmax[block].
//
// Double quantization (QLoRA): the absmax array itself is stored as 8-bit codes of the signed
// dynamic map in blocks of 256 plus one fp32 `nested_absmax` per 256 and one fp32 offset:
//   absmax[i] = dynamic_map[q[i]] * nested_absmax[i / 256] + offset
//
// Example (quantize a [N,K] weight and run y = x W^T):
//   std::vector<uint8_t> packed((N*K + 1) / 2);
//   std::vector<float> absmax((N*K + 63) / 64);
//   nf4_quantize(W, N*K, 64, packed.data(), absmax.data());
//   Nf4Weight w{packed.data(), absmax.data(), N, K, 64};
//   nf4_gemm(x, M, K, w, y, N);      // y [M,N]
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/shapes.h"
#include "gemm.h"

namespace tk::cpu {

using tk::Quant4Type;  // core/op_codes.h

// 16 fp32 values indexed by code (REFERENCE.md; NF4 ascending, FP4 in bitsandbytes' bit order).
const float* nf4_codebook();
const float* fp4_codebook();

// Quantize n values in blocks. packed: (n+1)/2 bytes; absmax: ceil(n/blocksize) floats.
// blocksize in [32, 4096] (bitsandbytes allows 32..4096; any value >= 2 works here).
// NF4 code = number of midpoints (c_i + c_{i+1})/2 that v * (1/absmax) is strictly above.
// An all-zero block gets code 7 (0.0) everywhere (bitsandbytes' CPU path writes 0x77).
void nf4_quantize(const float* w, int64_t n, int blocksize, uint8_t* packed, float* absmax);
// FP4: sign bit for v < 0, magnitude by bitsandbytes' FP4 thresholds (midpoints of magnitudes).
void fp4_quantize(const float* w, int64_t n, int blocksize, uint8_t* packed, float* absmax);

// out[i] = codebook[code(i)] * absmax[i / blocksize], multiplied in fp32.
void nf4_dequantize(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, float* out);
void fp4_dequantize(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, float* out);
// Same, rounded to bf16 (round to nearest even) - the compute dtype of QLoRA.
void nf4_dequantize_bf16(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, uint16_t* out);

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): 256 sorted
// fp32 values, code[0] = -0.99296875, code[127] = 0, code[255] = 1.
const float* dynamic_map_signed();

// Double quantization of an absmax array: offset = mean(absmax); (absmax - offset) quantized in
// blocks of 256 to the nearest dynamic-map value (ties to the lower code) after division by the
// block's max |absmax - offset|. q: nblocks bytes; nested_absmax: ceil(nblocks/256) floats.
void nf4_double_quantize_absmax(const float* absmax, int64_t nblocks, uint8_t* q, float* nested_absmax,
                                float* offset);
// absmax[i] = dynamic_map[q[i]] * nested_absmax[i/256] + offset
void nf4_double_dequantize_absmax(const uint8_t* q, const float* nested_absmax, float offset, int64_t nblocks,
                                  float* absmax);

// An NF4 (or FP4) weight W [N,K] as the matmuls read it: core/shapes.h (shared with CUDA).
using tk::Nf4Weight;

// Forward: Y[M,N] = X[M,K] dequant(W)^T + beta * Y. X rows ldx >= K apart, Y rows ldy >= N apart.
// W is dequantized inside the GEMM's B packing (it stays 4-bit in memory); M <= 4 takes a
// streaming GEMV path that reads each weight byte once.
void nf4_gemm(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy,
              float beta = 0.0f);
// Input gradient: dX[M,K] = dY[M,N] dequant(W) + beta * dX.
void nf4_gemm_dx(const float* dY, int64_t M, int64_t ldy, const Nf4Weight& W, float* dX, int64_t ldx,
                 float beta = 0.0f);

// Internal: the AVX-512 kernels behind nf4_gemm / nf4_gemm_dx (nf4_avx512.cpp), called by the
// front ends in nf4.cpp only when cpu_features().avx512f.
namespace nf4_detail {
constexpr int64_t kGemvMaxRows = 4;  // M up to this takes the streaming GEMV path
// One thread's slice of the fused GEMM. s: the sub-problem (s.N columns of C starting at C).
//   forward (dx=false): C[M, s.N] = A[M,K] dequant(W rows row0..row0+s.N)^T (+ beta C)
//   dx (dx=true):       C[M, s.N] = A[M,N] dequant(W)[:, col0..col0+s.N]   (+ beta C)
void nf4_gemm_avx512(const GemmShape& s, const float* A, const Nf4Weight& W, int64_t row0, int64_t col0,
                     bool dx, float* C, void* (*workspace)(size_t));
// Y[m, n] = sum_k X[m,k] dequant(W)[n,k] (+ beta Y) for m < M <= kGemvMaxRows, n in [n0, n1).
void nf4_gemv_avx512(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, int64_t n0, int64_t n1, float* Y,
                     int64_t ldy, float beta);
}  // namespace nf4_detail

}  // namespace tk::cpu
