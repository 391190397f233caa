// Dropout kernels. See dropout.h.
#include "dropout.h"

#include <algorithm>
#include <cmath>

#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrain = 32768;

// keep iff bits >= threshold; threshold = floor(p 2^32) < 2^32 for p < 1 (0 keeps all)
uint64_t keep_threshold(float p) {
  double t = std::floor(static_cast<double>(p) * 4294967296.0);
  return t <= 0 ? 0 : static_cast<uint64_t>(std::min(t, 4294967295.0));
}

TK_SIMD_CLONES void dropout_chunk(const float* x, float* y, uint8_t* mask, int64_t begin, int64_t end,
                                  uint64_t thr, float scale, uint64_t seed) {
  for (int64_t i = begin; i < end; ++i) {
    uint8_t keep = dropout_bits(seed, static_cast<uint64_t>(i)) >= thr;
    mask[i] = keep;
    y[i] = x[i] * (static_cast<float>(keep) * scale);  // branch-free; x * mask * scale as torch
  }
}

TK_SIMD_CLONES void dropout_backward_chunk(const float* dy, const uint8_t* mask, float* dx, int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (static_cast<float>(mask[i] != 0) * scale);
}

}  // namespace

void dropout_reference(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed) {
  uint64_t thr = keep_threshold(p);
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) {
    bool keep = dropout_bits(seed, static_cast<uint64_t>(i)) >= thr;
    mask[i] = keep ? 1 : 0;
    y[i] = x[i] * (keep ? scale : 0.0f);
  }
}

void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed) {
  uint64_t thr = keep_threshold(p);
  float scale = 1.0f / (1.0f - p);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { dropout_chunk(x, y, mask, b, e, thr, scale, seed); });
}

void dropout_backward_reference(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p) {
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p) {
  float scale = 1.0f / (1.0f - p);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) { dropout_backward_chunk(dy + b, mask + b, dx + b, e - b, scale); });
}

}  // namespace tk::cpu
