// Embedding lookup (row gather) and its backward (row scatter-add), f32 rows, i32 ids.
#pragma once
#include <cstdint>

namespace tk::cpu {

// Throws tk::Error(ERR_INDEX) naming the first id outside [0, num_rows) and its position.
void check_row_ids(const int32_t* idx, int64_t n, int64_t num_rows, const char* what);

// table (num_rows, row_size), idx i32 (n) -> out (n, row_size). Ids are checked first.
void gather_rows_reference(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size,
                           int64_t num_rows);
void gather_rows(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size, int64_t num_rows);

// d_table (num_rows, row_size) += d_out (n, row_size) at rows idx (repeated ids add up).
// The fast version splits columns between threads, so repeated ids never race and the
// summation order (by i) is the same as the reference's.
void scatter_add_rows_reference(const float* d_out, const int32_t* idx, float* d_table, int64_t n, int64_t row_size,
                                int64_t num_rows);
void scatter_add_rows(const float* d_out, const int32_t* idx, float* d_table, int64_t n, int64_t row_size,
                      int64_t num_rows);

}  // namespace tk::cpu
