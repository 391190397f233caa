// Axis reductions and argmax. See reduce.h.
#include "reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrainElems = 32768;  // elements of x per task
constexpr int64_t kInnerBlock = 512;    // columns of `inner` one task accumulates at once

float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }  // NaN wins
float min_nan(float a, float b) { return (a < b || a != a) ? a : b; }

float init_value(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return -std::numeric_limits<float>::infinity();
    case ReduceOp::Min: return std::numeric_limits<float>::infinity();
    default: return 0.0f;
  }
}

// One contiguous row x[n] -> scalar. Sums use 8 double lanes, max/min 16 float lanes, so the
// loops vectorise without reassociation flags.
TK_SIMD_CLONES float reduce_row(ReduceOp op, const float* x, int64_t n) {
  int64_t i = 0;
  if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
    double s = 0;
    for (; i < n; ++i) s += x[i];
    for (int l = 0; l < 8; ++l) s += acc[l];
    return op == ReduceOp::Mean ? static_cast<float>(n > 0 ? s / static_cast<double>(n) : NAN)
                                : static_cast<float>(s);
  }
  const bool is_max = op == ReduceOp::Max;
  float acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = init_value(op);
  if (is_max) {
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] = max_nan(x[i + l], acc[l]);
  } else {
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) acc[l] = min_nan(x[i + l], acc[l]);
  }
  float r = init_value(op);
  for (; i < n; ++i) r = is_max ? max_nan(x[i], r) : min_nan(x[i], r);
  for (int l = 0; l < 16; ++l) r = is_max ? max_nan(acc[l], r) : min_nan(acc[l], r);
  return r;
}

// x (n, stride inner) columns [0, w) -> out[w]; the inner loop runs along contiguous columns.
TK_SIMD_CLONES void reduce_columns(ReduceOp op, const float* x, float* out, int64_t n, int64_t inner, int64_t w) {
  if (op == ReduceOp::Sum || op == ReduceOp::Mean) {
    double acc[kInnerBlock];
    for (int64_t j = 0; j < w; ++j) acc[j] = 0;
    for (int64_t k = 0; k < n; ++k) {
      const float* row = x + k * inner;
      for (int64_t j = 0; j < w; ++j) acc[j] += row[j];
    }
    double scale = op == ReduceOp::Mean ? (n > 0 ? 1.0 / static_cast<double>(n) : NAN) : 1.0;
    for (int64_t j = 0; j < w; ++j) out[j] = static_cast<float>(acc[j] * scale);
    return;
  }
  float acc[kInnerBlock];
  for (int64_t j = 0; j < w; ++j) acc[j] = init_value(op);
  for (int64_t k = 0; k < n; ++k) {
    const float* row = x + k * inner;
    if (op == ReduceOp::Max)
      for (int64_t j = 0; j < w; ++j) acc[j] = max_nan(row[j], acc[j]);
    else
      for (int64_t j = 0; j < w; ++j) acc[j] = min_nan(row[j], acc[j]);
  }
  for (int64_t j = 0; j < w; ++j) out[j] = acc[j];
}

int32_t argmax_row(const float* x, int64_t cols) {
  // pass 1: the max (vectorised, NaN wins); pass 2: its first position
  float m = reduce_row(ReduceOp::Max, x, cols);
  if (m != m) {
    for (int64_t j = 0; j < cols; ++j)
      if (x[j] != x[j]) return static_cast<int32_t>(j);
  }
  for (int64_t j = 0; j < cols; ++j)
    if (x[j] == m) return static_cast<int32_t>(j);
  return 0;
}

}  // namespace

void reduce_reference(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double s = 0;
      float m = init_value(op);
      bool nan = false;
      for (int64_t k = 0; k < n; ++k) {
        float v = x[(o * n + k) * inner + i];
        s += v;
        if (std::isnan(v)) nan = true;
        if (op == ReduceOp::Max) m = std::max(m, v);
        if (op == ReduceOp::Min) m = std::min(m, v);
      }
      float r;
      switch (op) {
        case ReduceOp::Sum: r = static_cast<float>(s); break;
        case ReduceOp::Mean: r = static_cast<float>(s / static_cast<double>(n)); break;  // 0/0 = NaN
        default: r = nan ? NAN : m; break;
      }
      out[o * inner + i] = r;
    }
}

void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  if (inner == 1) {
    // rows of n contiguous values
    int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, n));
    parallel_for(outer, grain, [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) out[o] = reduce_row(op, x + o * n, n);
    });
    return;
  }
  // tasks = (outer index, block of inner columns)
  const int64_t nblk = (inner + kInnerBlock - 1) / kInnerBlock;
  int64_t per_task = std::max<int64_t>(1, n) * std::min(inner, kInnerBlock);
  int64_t grain = std::max<int64_t>(1, kGrainElems / per_task);
  parallel_for(outer * nblk, grain, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      int64_t o = t / nblk, j0 = (t % nblk) * kInnerBlock;
      int64_t w = std::min(kInnerBlock, inner - j0);
      reduce_columns(op, x + o * n * inner + j0, out + o * inner + j0, n, inner, w);
    }
  });
}

void argmax_reference(const float* x, int32_t* out, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    int64_t best = 0;
    for (int64_t j = 0; j < cols; ++j) {
      if (std::isnan(row[best])) break;
      if (std::isnan(row[j]) || row[j] > row[best]) best = j;
    }
    out[r] = static_cast<int32_t>(best);
  }
}

void argmax(const float* x, int32_t* out, int64_t rows, int64_t cols) {
  int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, cols));
  parallel_for(rows, grain, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) out[r] = argmax_row(x + r * cols, cols);
  });
}

}  // namespace tk::cpu
