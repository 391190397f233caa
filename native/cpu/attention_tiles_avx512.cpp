// attention_tiles.h's kernels with AVX-512 intrinsics (compiled with AVX-512 flags; called only
// where tk::cpu_features() reports AVX-512F).
//
// The product's register tile is R (<= 8) rows x 32 columns: 16 zmm accumulators; per k two
// loads of B's row (in place, row stride ldb), R broadcasts of a(i, k), 2R FMAs. On Zen 4 (one
// 512-bit FMA a cycle, two loads) that is FMA-bound from R = 5 up, and 8 rows divide the
// attention tiles (64 query rows, 64 or 128 keys) with no edge block.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "attention_tiles.h"
#include "gemm_avx512_kernels.h"  // transpose16 (internal linkage: this file's own copy)
#include "math_avx512.h"           // lanes_below

namespace tk::cpu::attention_detail {
namespace {

// One R x 16NV block of C (n <= 16NV valid columns from column j of B and C).
template <int R, int NV>
__attribute__((always_inline)) inline void block(int64_t n, int64_t k0, int64_t k1, float alpha,
                                                const float* const (&arow)[R], int64_t a_col, const float* B,
                                                int64_t ldb, float beta, float* C, int64_t ldc) {
  __mmask16 m[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) m[v] = lanes_below(n - 16 * v);
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const float* b = B + k0 * ldb;
  int64_t off = k0 * a_col;
  for (int64_t k = k0; k < k1; ++k, b += ldb, off += a_col) {
    __m512 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(m[v], b + 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(arow[i][off]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, bv[v], acc[i][v]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* c = C + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(acc[i][v], va);
      if (beta != 0.0f) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], c));  // beta is 1 (attention_tiles.h)
      _mm512_mask_storeu_ps(c, m[v], r);
    }
}

// 32 columns a block; a last block of at most 16 (a causal row block's edge) with half the FMAs.
template <int R>
void rows_product(int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row, int64_t a_col,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const float* arow[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) arow[i] = A + i * a_row;
  for (int64_t j = 0; j < N; j += 32) {
    const int64_t n = std::min<int64_t>(32, N - j);
    if (n > 16) block<R, 2>(n, k0, k1, alpha, arow, a_col, B + j, ldb, beta, C + j, ldc);
    else block<R, 1>(n, k0, k1, alpha, arow, a_col, B + j, ldb, beta, C + j, ldc);
  }
}

using RowsFn = void (*)(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*, int64_t, float,
                        float*, int64_t);
// rows_product<R> for R = 1 .. sizeof...(I), at index R - 1
template <size_t... I>
constexpr std::array<RowsFn, sizeof...(I)> rows_table(std::index_sequence<I...>) {
  return {&rows_product<static_cast<int>(I) + 1>...};
}

}  // namespace

void row_block_product_avx512(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row,
                              int64_t a_col, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static constexpr auto by_rows = rows_table(std::make_index_sequence<kRowBlock>{});
  if (rows >= 1 && rows <= kRowBlock) by_rows[rows - 1](N, k0, k1, alpha, A, a_row, a_col, B, ldb, beta, C, ldc);
}

// 16 x 16 blocks through registers (gemm's transpose16); the edges under masks, so nothing past
// src's rows and columns is read and nothing past dst's is written.
void transpose_avx512(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16) {
    const int64_t nr = std::min<int64_t>(16, rows - r0);
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, cols - c0);
      const __mmask16 mc = lanes_below(nc), mr = lanes_below(nr);
      __m512 r[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i)
        r[i] = i < nr ? _mm512_maskz_loadu_ps(mc, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      gemm_detail::transpose16(r);
#pragma GCC unroll 16
      for (int c = 0; c < 16; ++c)
        if (c < nc) _mm512_mask_storeu_ps(dst + (c0 + c) * ldd + r0, mr, r[c]);
    }
  }
}

}  // namespace tk::cpu::attention_detail
