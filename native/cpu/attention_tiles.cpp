// attention_tiles.h's portable kernels and the choice between them and the ISA ones.
#include "attention_tiles.h"

#include <algorithm>

#include "../core/cpu_features.h"

namespace tk::cpu::attention_detail {

// Multi-versioned (AVX2 / baseline, picked at load time): this file is compiled for baseline
// x86-64, where the column loops would run 4 lanes wide.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TK_PORTABLE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TK_PORTABLE_CLONES
#endif

namespace {
// Columns per pass: a row's accumulators (1 KiB) stay in L1.
constexpr int64_t kCols = 256;
}  // namespace

// One row at a time, an axpy of B's row k per k into the row's accumulators: the loop the
// compiler vectorises on any ISA (no register tile to spill).
TK_PORTABLE_CLONES void row_block_product_portable(int rows, int64_t N, int64_t k0, int64_t k1, float alpha,
                                                   const float* A, int64_t a_row, int64_t a_col, const float* B,
                                                   int64_t ldb, float beta, float* C, int64_t ldc) {
  float acc[kCols];
  for (int i = 0; i < rows; ++i)
    for (int64_t j = 0; j < N; j += kCols) {
      const int64_t n = std::min(kCols, N - j);
      std::fill(acc, acc + n, 0.0f);
      for (int64_t k = k0; k < k1; ++k) {
        const float a = A[i * a_row + k * a_col];
        const float* __restrict b = B + k * ldb + j;
        for (int64_t c = 0; c < n; ++c) acc[c] += a * b[c];
      }
      float* c = C + i * ldc + j;
      if (beta != 0.0f) for (int64_t q = 0; q < n; ++q) c[q] += alpha * acc[q];
      else for (int64_t q = 0; q < n; ++q) c[q] = alpha * acc[q];
    }
}

void transpose_portable(const float* src, int64_t rows, int64_t cols, int64_t lds, float* dst, int64_t ldd) {
  constexpr int64_t kBlock = 16;  // square blocks: both sides' cache lines reused
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
      for (int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c) dst[c * ldd + r] = src[r * lds + c];
}

const TileKernels& tile_kernels() {
  static const TileKernels avx512{&row_block_product_avx512, &transpose_avx512};
  static const TileKernels avx2{&row_block_product_avx2, &transpose_portable};
  static const TileKernels portable{&row_block_product_portable, &transpose_portable};
  const CpuFeatures& f = cpu_features();
  return f.avx512f ? avx512 : f.avx2_fma ? avx2 : portable;
}

}  // namespace tk::cpu::attention_detail
