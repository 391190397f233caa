// Embedding gather / scatter-add. See embedding.h.
#include "embedding.h"

#include <algorithm>
#include <cstring>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {
constexpr int64_t kGrainElems = 32768;  // floats copied / added per task
constexpr int64_t kMinCols = 64;        // narrowest column slice a scatter task gets

TK_SIMD_CLONES void add_row(float* dst, const float* src, int64_t n) {
  for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
}
}  // namespace

void check_row_ids(const int32_t* idx, int64_t n, int64_t num_rows, const char* what) {
  for (int64_t i = 0; i < n; ++i)
    TK_CHECK(idx[i] >= 0 && idx[i] < num_rows, Index, what, ": id ", idx[i], " at position ", i,
             " is out of range [0, ", num_rows, ")");
}

void gather_rows_reference(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size,
                           int64_t num_rows) {
  check_row_ids(idx, n, num_rows, "gatherRows");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < row_size; ++j) out[i * row_size + j] = table[idx[i] * row_size + j];
}

void gather_rows(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size, int64_t num_rows) {
  check_row_ids(idx, n, num_rows, "gatherRows");
  if (row_size <= 0) return;
  int64_t grain = std::max<int64_t>(1, kGrainElems / row_size);
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      std::memcpy(out + i * row_size, table + static_cast<int64_t>(idx[i]) * row_size, row_size * sizeof(float));
  });
}

void scatter_add_rows_reference(const float* d_out, const int32_t* idx, float* d_table, int64_t n, int64_t row_size,
                                int64_t num_rows) {
  check_row_ids(idx, n, num_rows, "scatterAddRows");
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < row_size; ++j) d_table[idx[i] * row_size + j] += d_out[i * row_size + j];
}

void scatter_add_rows(const float* d_out, const int32_t* idx, float* d_table, int64_t n, int64_t row_size,
                      int64_t num_rows) {
  check_row_ids(idx, n, num_rows, "scatterAddRows");
  if (row_size <= 0 || n <= 0) return;
  // Threads own column slices [c0, c1) of every row. Only worth it when there is enough work
  // per slice; otherwise one thread does all.
  int64_t grain = std::max(kMinCols, kGrainElems / std::max<int64_t>(1, n));
  parallel_for(row_size, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t i = 0; i < n; ++i)
      add_row(d_table + static_cast<int64_t>(idx[i]) * row_size + c0, d_out + i * row_size + c0, c1 - c0);
  });
}

}  // namespace tk::cpu
