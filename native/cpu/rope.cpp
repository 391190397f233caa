// RoPE kernels. See rope.h.
#include "rope.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrainElems = 16384;

// cos / sin of the f32 angle pos * inv_freq, evaluated in double and rounded (what torch's f32
// cos/sin return up to an ulp); sign = -1 for the inverse rotation.
inline void angle_cos_sin(int32_t pos, float inv_freq, double sign, float* c, float* s) {
  float a = static_cast<float>(pos) * inv_freq;
  *c = static_cast<float>(std::cos(static_cast<double>(a)));
  *s = static_cast<float>(sign * std::sin(static_cast<double>(a)));
}

// One row: x (D) -> o (D) with cos/sin tables (half). Reads both halves before writing, so o == x works.
TK_SIMD_CLONES void rope_row(const float* x, float* o, const float* cs, const float* sn, int64_t half, int64_t rot,
                             int64_t D) {
  for (int64_t i = 0; i < half; ++i) {
    float a = x[i], b = x[i + half];
    o[i] = a * cs[i] - b * sn[i];
    o[i + half] = b * cs[i] + a * sn[i];
  }
  if (o != x && D > rot) std::memcpy(o + rot, x + rot, (D - rot) * sizeof(float));
}

}  // namespace

void rope_reference(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H,
                    int64_t T, int64_t D, int64_t rot_dim, bool inverse) {
  const int64_t half = rot_dim / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const float* xr = x + ((b * H + h) * T + t) * D;
        float* o = out + ((b * H + h) * T + t) * D;
        std::vector<float> row(xr, xr + D);  // copy first: out may alias x
        for (int64_t i = 0; i < half; ++i) {
          float c, s;
          angle_cos_sin(positions[b * T + t], inv_freq[i], inverse ? -1.0 : 1.0, &c, &s);
          o[i] = row[i] * c - row[i + half] * s;
          o[i + half] = row[i + half] * c + row[i] * s;
        }
        for (int64_t j = rot_dim; j < D; ++j) o[j] = row[j];
      }
}

void rope(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H, int64_t T,
          int64_t D, int64_t rot_dim, bool inverse) {
  const int64_t half = rot_dim / 2;
  const int64_t BT = B * T;
  if (BT <= 0 || H <= 0 || D <= 0) return;
  // cos/sin once per (b, t), shared by the H heads: (B*T, half) each
  std::vector<float> cs(static_cast<size_t>(BT * half)), sn(static_cast<size_t>(BT * half));
  const double sign = inverse ? -1.0 : 1.0;
  parallel_for(BT, std::max<int64_t>(1, 2048 / std::max<int64_t>(1, half)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r)
      for (int64_t i = 0; i < half; ++i) angle_cos_sin(positions[r], inv_freq[i], sign, &cs[r * half + i], &sn[r * half + i]);
  });
  // rows of x in memory order (b, h, t)
  parallel_for(B * H * T, std::max<int64_t>(1, kGrainElems / D), [&](int64_t b0, int64_t e0) {
    for (int64_t row = b0; row < e0; ++row) {
      int64_t t = row % T, b = row / (H * T);
      int64_t r = b * T + t;
      rope_row(x + row * D, out + row * D, cs.data() + r * half, sn.data() + r * half, half, rot_dim, D);
    }
  });
}

}  // namespace tk::cpu
