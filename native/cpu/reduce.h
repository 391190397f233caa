// Reductions over one axis and row-wise argmax, f32 in, f32 / i32 out.
//
// x is viewed as [outer, n, inner] (the reduced axis in the middle, so any single axis of a
// contiguous tensor fits); out is [outer, inner]. Sums accumulate in double.
// Semantics follow PyTorch: mean of an empty axis is NaN, max/min propagate NaN; max/min of an
// empty axis are -inf/+inf here (the binding refuses n == 0 for them, as PyTorch does).
#pragma once
#include <cstdint>

#include "core/op_codes.h"

namespace tk::cpu {

// op codes: core/op_codes.h (REDUCE_OPS in lib/native.ts)
using tk::kNumReduceOps;
using tk::ReduceOp;

// x (outer, n, inner) -> out (outer, inner)
void reduce_reference(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner);
void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner);

// x (rows, cols) -> out i32 (rows): index of the first maximum of each row; a NaN counts as the
// maximum (PyTorch), so the first NaN's index is returned. cols >= 1.
void argmax_reference(const float* x, int32_t* out, int64_t rows, int64_t cols);
void argmax(const float* x, int32_t* out, int64_t rows, int64_t cols);

}  // namespace tk::cpu
