// Softmax / log-softmax kernels. See softmax.h.
#include "softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/thread_pool.h"
#include "elementwise.h"  // exp_fast, TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrainElems = 16384;  // elements per task (a row costs ~3 passes)

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, cols)); }

// max of a row, 16 float lanes (NaN handling is left to the exp pass, which turns it into NaN)
TK_SIMD_CLONES float row_max(const float* x, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  float acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  float m = ninf;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 16; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

TK_SIMD_CLONES void softmax_row(const float* x, float* y, int64_t n, bool log) {
  float m = row_max(x, n);
  if (log) {
    double s = exp_shift_sum(x, nullptr, n, m);
    float ls = static_cast<float>(std::log(s));
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - ls;
  } else {
    double s = exp_shift_sum(x, y, n, m);
    float inv = static_cast<float>(1.0 / s);
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// sum a[i] * b[i] (b == nullptr: sum a[i]) in double, 8 lanes
TK_SIMD_CLONES double dot_or_sum(const float* a, const float* b, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  double s = 0;
  if (b) {
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(a[i + l]) * b[i + l];
    for (; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += a[i + l];
    for (; i < n; ++i) s += a[i];
  }
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

TK_SIMD_CLONES void softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n, bool log) {
  if (log) {
    float s = static_cast<float>(dot_or_sum(dy, nullptr, n));
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] - exp_fast(y[i]) * s;
  } else {
    float s = static_cast<float>(dot_or_sum(dy, y, n));
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - s);
  }
}

}  // namespace

void softmax_reference(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    double m = -INFINITY;
    for (int64_t j = 0; j < cols; ++j) m = std::max<double>(m, xr[j]);
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += std::exp(xr[j] - m);
    for (int64_t j = 0; j < cols; ++j)
      yr[j] = static_cast<float>(log ? (xr[j] - m) - std::log(s) : std::exp(xr[j] - m) / s);
  }
}

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) softmax_row(x + r * cols, y + r * cols, cols, log);
  });
}

void softmax_backward_reference(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* gr = dy + r * cols;
    float* dr = dx + r * cols;
    double s = 0;
    for (int64_t j = 0; j < cols; ++j) s += log ? gr[j] : static_cast<double>(gr[j]) * yr[j];
    for (int64_t j = 0; j < cols; ++j)
      dr[j] = static_cast<float>(log ? gr[j] - std::exp(static_cast<double>(yr[j])) * s : yr[j] * (gr[j] - s));
  }
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) softmax_backward_row(y + r * cols, dy + r * cols, dx + r * cols, cols, log);
  });
}

}  // namespace tk::cpu
