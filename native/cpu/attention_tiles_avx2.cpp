// attention_tiles.h's product with AVX2/FMA intrinsics (compiled with AVX2 flags; called only
// where tk::cpu_features() reports AVX2 with FMA and not AVX-512F).
//
// Register tile: 4 rows x 16 columns, 8 ymm accumulators; per k two loads of B's row (in place),
// four broadcasts, eight FMAs. A block of up to 8 rows runs as two such halves.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "attention_tiles.h"

namespace tk::cpu::attention_detail {
namespace {

// Lane masks for maskload/maskstore: the first n of 8 lanes.
inline __m256i lanes_below(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(n, 0, 8))), idx);
}

// R (<= 4) rows x 16 columns of C, n <= 16 of them valid. Full blocks use plain loads and stores
// (AMD runs vmaskmovps stores slowly); the edge block masks.
template <int R, bool kFull>
void block(int64_t n, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row, int64_t a_col,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const __m256i m0 = lanes_below(n), m1 = lanes_below(n - 8);
  const float* arow[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) arow[i] = A + i * a_row;
  __m256 acc[R][2];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const float* b = B + k0 * ldb;
  int64_t off = k0 * a_col;
  for (int64_t k = k0; k < k1; ++k, b += ldb, off += a_col) {
    const __m256 b0 = kFull ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
    const __m256 b1 = kFull ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(arow[i] + off);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    float* c = C + i * ldc;
    __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
    if constexpr (kFull) {
      if (beta != 0.0f) {  // beta is 1 (attention_tiles.h)
        r0 = _mm256_add_ps(r0, _mm256_loadu_ps(c));
        r1 = _mm256_add_ps(r1, _mm256_loadu_ps(c + 8));
      }
      _mm256_storeu_ps(c, r0);
      _mm256_storeu_ps(c + 8, r1);
    } else {
      if (beta != 0.0f) {
        r0 = _mm256_add_ps(r0, _mm256_maskload_ps(c, m0));
        r1 = _mm256_add_ps(r1, _mm256_maskload_ps(c + 8, m1));
      }
      _mm256_maskstore_ps(c, m0, r0);
      _mm256_maskstore_ps(c + 8, m1, r1);
    }
  }
}

template <int R>
void rows_product(int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row, int64_t a_col,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  int64_t j = 0;
  for (; j + 16 <= N; j += 16) block<R, true>(16, k0, k1, alpha, A, a_row, a_col, B + j, ldb, beta, C + j, ldc);
  if (j < N) block<R, false>(N - j, k0, k1, alpha, A, a_row, a_col, B + j, ldb, beta, C + j, ldc);
}

using RowsFn = void (*)(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*, int64_t, float,
                        float*, int64_t);
// rows_product<R> for R = 1 .. sizeof...(I), at index R - 1
template <size_t... I>
constexpr std::array<RowsFn, sizeof...(I)> rows_table(std::index_sequence<I...>) {
  return {&rows_product<static_cast<int>(I) + 1>...};
}

}  // namespace

void row_block_product_avx2(int rows, int64_t N, int64_t k0, int64_t k1, float alpha, const float* A, int64_t a_row,
                            int64_t a_col, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static constexpr auto by_rows = rows_table(std::make_index_sequence<4>{});
  for (int r = 0; r < rows; r += 4)
    by_rows[std::min(4, rows - r) - 1](N, k0, k1, alpha, A + r * a_row, a_row, a_col, B, ldb, beta, C + r * ldc, ldc);
}

}  // namespace tk::cpu::attention_detail
