// The small products and transposes inside attention's tiles (attention.cpp), without the GEMM's
// packing. A tile's products are 64 x 128 x 64 or smaller: the general GEMM packs both operands
// for each (a fifth of the time at GPT-2's T = 128, D = 64) and computes whole tiles where a
// causal row block sees only part of its keys. Here the caller hands over one block of at most
// kRowBlock rows at a time with its own column count and k range, so causal tiles compute little
// beyond the triangle, and B is read in place (its rows contiguous: K, V, dO or Q as stored, or a
// transposed copy made once per tile).
//
// Declarations only: the AVX-512 and AVX2 versions live in attention_tiles_avx512.cpp and
// attention_tiles_avx2.cpp (compiled with those flags), the portable ones in attention_tiles.cpp;
// tile_kernels() picks by CPU.
#pragma once
#include <cstdint>

namespace tk::cpu::attention_detail {

// Rows of one product call (the AVX-512 kernel's register tile: 8 rows x 32 columns).
constexpr int kRowBlock = 8;

// C[rows, N] = alpha * sum_{k0 <= k < k1} a(i, k) B[k, 0..N) + beta * C, for rows <= kRowBlock:
//   a(i, k) = A[i * a_row + k * a_col]   (A row-major: a_col = 1; A transposed: a_row = 1)
//   B: [K, N] rows of stride ldb;  C: [rows, N] rows of stride ldc
// beta is 0 (C is written, never read) or 1; k1 <= k0 gives alpha * 0.
using RowBlockProduct = void (*)(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A,
                                 int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float beta, float* C,
                                 int64_t ldc);

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols.
using Transpose = void (*)(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd);

struct TileKernels {
  RowBlockProduct product;
  Transpose transpose;
};

// By CPU (tk::cpu_features, which TUNEKIT_ISA caps): AVX-512F, else AVX2 with FMA (the product;
// the transpose portable), else the portable ones.
const TileKernels& tile_kernels();

void row_block_product_avx512(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row,
                              int64_t a_col, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void transpose_avx512(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd);
void row_block_product_avx2(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row,
                            int64_t a_col, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void row_block_product_portable(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A,
                                int64_t a_row, int64_t a_col, const float* B, int64_t ldb, float beta, float* C,
                                int64_t ldc);
void transpose_portable(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd);

}  // namespace tk::cpu::attention_detail
