// Fused cross-entropy kernels. See cross_entropy.h.
#include "cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/cpu_features.h"
#include "../core/status.h"
#include "../core/thread_pool.h"
#include "cross_entropy_simd.h"
#include "elementwise.h"  // exp_fast, TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrainElems = 16384;

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, cols)); }

// log sum exp of one row: max pass, then sum exp(x - max) in double (8 lanes)
TK_SIMD_CLONES float row_lse(const float* x, int64_t n) {
  const float ninf = -std::numeric_limits<float>::infinity();
  float mx[16];
  for (int l = 0; l < 16; ++l) mx[l] = ninf;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) mx[l] = x[i + l] > mx[l] ? x[i + l] : mx[l];
  float m = ninf;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 16; ++l) m = mx[l] > m ? mx[l] : m;
  double s = exp_shift_sum(x, nullptr, n, m);
  return static_cast<float>(m + std::log(s));
}

// d[c] = g * exp(x[c] - lse)
TK_SIMD_CLONES void row_softmax_scaled(const float* x, float* d, int64_t n, float lse, float g) {
  for (int64_t i = 0; i < n; ++i) d[i] = g * exp_fast(x[i] - lse);
}

}  // namespace

void check_labels(const int32_t* labels, int64_t rows, int64_t classes, int64_t ignore_index) {
  for (int64_t r = 0; r < rows; ++r)
    TK_CHECK(labels[r] == ignore_index || (labels[r] >= 0 && labels[r] < classes), Index, "crossEntropy: label ",
             labels[r], " at row ", r, " is out of range [0, ", classes, ") and is not the ignore index ",
             ignore_index);
}

int64_t cross_entropy_reference(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                                int64_t classes, int64_t ignore_index) {
  check_labels(labels, rows, classes, ignore_index);
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = logits + r * classes;
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < classes; ++c) m = std::max<double>(m, x[c]);
    for (int64_t c = 0; c < classes; ++c) s += std::exp(x[c] - m);
    double l = m + std::log(s);
    lse[r] = static_cast<float>(l);
    bool ignored = labels[r] == ignore_index;
    loss[r] = ignored ? 0.0f : static_cast<float>(l - x[labels[r]]);
    counted += !ignored;
  }
  return counted;
}

int64_t cross_entropy(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                      int64_t classes, int64_t ignore_index) {
  check_labels(labels, rows, classes, ignore_index);
  const auto lse_of = cpu_features().avx512f ? &cross_entropy_detail::row_lse_avx512 : &row_lse;
  if (classes > 0)
    parallel_for(rows, row_grain(classes), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* x = logits + r * classes;
        // lse for ignored rows too: cheap next to the rest, and keeps the saved tensor defined
        float l = lse_of(x, classes);
        lse[r] = l;
        loss[r] = labels[r] == ignore_index ? 0.0f : l - x[labels[r]];
      }
    });
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) counted += labels[r] != ignore_index;
  return counted;
}

void cross_entropy_backward_reference(const float* logits, const int32_t* labels, const float* lse,
                                      const float* dloss, float* dlogits, int64_t rows, int64_t classes,
                                      int64_t ignore_index) {
  check_labels(labels, rows, classes, ignore_index);
  for (int64_t r = 0; r < rows; ++r) {
    bool ignored = labels[r] == ignore_index;
    for (int64_t c = 0; c < classes; ++c) {
      double p = std::exp(static_cast<double>(logits[r * classes + c]) - lse[r]);
      dlogits[r * classes + c] = ignored ? 0.0f : static_cast<float>(dloss[r] * (p - (c == labels[r] ? 1.0 : 0.0)));
    }
  }
}

void cross_entropy_backward(const float* logits, const int32_t* labels, const float* lse, const float* dloss,
                            float* dlogits, int64_t rows, int64_t classes, int64_t ignore_index) {
  check_labels(labels, rows, classes, ignore_index);
  if (classes <= 0) return;
  const auto softmax_scaled = cpu_features().avx512f ? &cross_entropy_detail::row_softmax_scaled_avx512 : &row_softmax_scaled;
  parallel_for(rows, row_grain(classes), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* d = dlogits + r * classes;
      if (labels[r] == ignore_index) {
        std::fill(d, d + classes, 0.0f);
        continue;
      }
      softmax_scaled(logits + r * classes, d, classes, lse[r], dloss[r]);
      d[labels[r]] -= dloss[r];
    }
  });
}

}  // namespace tk::cpu
