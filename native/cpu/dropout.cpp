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

// `count` elements starting at index lo0 of one 2^32-element block (key fixed): 32-bit lanes
// throughout, so the loop vectorizes. Keep iff bits >= thr (thr == 0 keeps all).
// What keeps GCC vectorizing it: __restrict (a uint8_t store may alias anything) and a 32-bit
// loop counter (with an int64 counter and 32-bit index arithmetic the loop stays scalar).
TK_SIMD_CLONES void dropout_run(const float* __restrict x, float* __restrict y, uint8_t* __restrict mask, uint32_t count,
                                uint32_t lo0, uint32_t thr, float scale, uint32_t key) {
  for (uint32_t j = 0; j < count; ++j) {
    const int32_t keep = dropout_bits(key, lo0 + j) >= thr;  // i32: u32 -> f32 has no AVX2 instruction
    mask[j] = static_cast<uint8_t>(keep);
    y[j] = x[j] * (static_cast<float>(keep) * scale);  // branch-free; x * mask * scale as torch
  }
}

// Elements [begin, end), split where the index crosses a multiple of 2^32 (a new block key).
// x and mask are indexed by the element index, y by the element index minus y_origin.
void dropout_chunk(const float* x, float* y, uint8_t* mask, int64_t begin, int64_t end, uint64_t thr, float scale,
                   uint64_t seed, int64_t y_origin = 0) {
  for (int64_t b = begin; b < end;) {
    const uint64_t hi = static_cast<uint64_t>(b) >> 32;
    // at most 2^31 elements a run, so the count fits the loop's 32-bit counter
    const int64_t e = std::min<int64_t>({end, static_cast<int64_t>((hi + 1) << 32), b + (int64_t{1} << 31)});
    dropout_run(x + b, y + (b - y_origin), mask + b, static_cast<uint32_t>(e - b), static_cast<uint32_t>(b),
                static_cast<uint32_t>(thr), scale, dropout_key(seed, static_cast<uint32_t>(hi)));
    b = e;
  }
}

TK_SIMD_CLONES void dropout_backward_chunk(const float* __restrict dy, const uint8_t* __restrict mask, float* __restrict dx, int64_t n,
                                           float scale) {
  // mask is 0/1; the u8 -> i32 -> f32 conversion is the form GCC vectorizes
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (static_cast<float>(static_cast<int32_t>(mask[i])) * scale);
}

TK_SIMD_CLONES void dropout_backward_add_chunk(const float* __restrict dy, const uint8_t* __restrict mask, float* __restrict dx,
                                               int64_t n, float scale) {
  for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * (static_cast<float>(static_cast<int32_t>(mask[i])) * scale);
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

void dropout_range(const float* x, float* y_local, uint8_t* mask, int64_t begin, int64_t count, float p, uint64_t seed) {
  const float scale = 1.0f / (1.0f - p);
  const uint64_t thr = keep_threshold(p);
  dropout_chunk(x, y_local, mask, begin, begin + count, thr, scale, seed, begin);
}

void dropout_backward_reference(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p, bool accumulate) {
  float scale = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i] * (mask[i] ? scale : 0.0f);
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p, bool accumulate) {
  float scale = 1.0f / (1.0f - p);
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    if (accumulate) dropout_backward_add_chunk(dy + b, mask + b, dx + b, e - b, scale);
    else dropout_backward_chunk(dy + b, mask + b, dx + b, e - b, scale);
  });
}

}  // namespace tk::cpu
