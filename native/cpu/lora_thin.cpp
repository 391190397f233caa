// Thin LoRA products as row loops (see lora_thin.h). The loops work on 16-float vectors (GCC's
// vector extension: one 512-bit register in the AVX-512 clone, two 256-bit ones under AVX2, four
// SSE registers at baseline); the functions are multi-versioned and picked at load time. Plain
// float loops with per-lane arrays did not vectorize here (GCC left the lane loops scalar) and
// ran slower than the GEMM calls they replace.
#include "lora_thin.h"

#include <algorithm>
#include <cstring>

#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {

typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kW = 16;

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }
inline v16 splat(float x) { return v16{} + x; }
inline float hsum(v16 v) {
  float t = 0.0f;
  for (int l = 0; l < kW; ++l) t += v[l];
  return t;
}
// 16 mask bytes (0/1) as floats
inline v16 mask16(const uint8_t* m) {
  v16 v;
  for (int l = 0; l < kW; ++l) v[l] = static_cast<float>(static_cast<int32_t>(m[l]));
  return v;
}

}  // namespace

TK_SIMD_CLONES void thin_rowdot(const float* X, int64_t ldx, const float* Wt, int64_t n, int64_t r, int64_t K,
                                float alpha, float* out, int64_t ldo) {
  constexpr int kGroup = 8;  // output columns per pass over a row of X: 8 accumulators + loads fit the registers
  for (int64_t i = 0; i < n; ++i) {
    const float* x = X + i * ldx;
    for (int64_t k0 = 0; k0 < r; k0 += kGroup) {
      const int64_t kn = std::min<int64_t>(kGroup, r - k0);
      // rows past r repeat row k0: computed and dropped, so the loop body has a fixed shape
      const float* w[kGroup];
      for (int g = 0; g < kGroup; ++g) w[g] = Wt + (k0 + (g < kn ? g : 0)) * K;
      v16 acc[kGroup];
      for (int g = 0; g < kGroup; ++g) acc[g] = v16{};
      int64_t c = 0;
      for (; c + kW <= K; c += kW) {
        const v16 xv = load(x + c);
        for (int g = 0; g < kGroup; ++g) acc[g] += xv * load(w[g] + c);
      }
      for (int g = 0; g < kn; ++g) {
        float t = hsum(acc[g]);
        for (int64_t cc = c; cc < K; ++cc) t += x[cc] * w[g][cc];
        out[i * ldo + k0 + g] = alpha * t;
      }
    }
  }
}

TK_SIMD_CLONES void thin_rowaxpy(const float* C, int64_t ldc, const float* Wt, int64_t n, int64_t r, int64_t N,
                                 float alpha, const float* bias, const uint8_t* mask, float mask_scale, float* Y,
                                 int64_t ldy, bool accumulate) {
  constexpr int64_t kMaxR = 256;  // coefficients per row kept on the stack; larger ranks in slices
  float coef[kMaxR];
  const v16 ms = splat(mask_scale);
  for (int64_t i = 0; i < n; ++i) {
    float* y = Y + i * ldy;
    const uint8_t* m = mask ? mask + i * ldy : nullptr;
    for (int64_t k0 = 0; k0 < std::max<int64_t>(r, 1); k0 += kMaxR) {
      const int64_t kn = std::min(kMaxR, r - k0);
      const bool first = k0 == 0;
      for (int64_t k = 0; k < kn; ++k) coef[k] = alpha * C[i * ldc + k0 + k];
      // a slice after the first adds to what the first wrote (mask o (a + b) = mask o a + mask o b;
      // the bias goes with the first slice)
      const bool acc_in = accumulate || !first;
      const float* bb = first ? bias : nullptr;
      int64_t o = 0;
      for (; o + kW <= N; o += kW) {
        v16 v = bb ? load(bb + o) : v16{};
        for (int64_t k = 0; k < kn; ++k) v += splat(coef[k]) * load(Wt + (k0 + k) * N + o);
        if (m) v *= mask16(m + o) * ms;
        store(y + o, acc_in ? load(y + o) + v : v);
      }
      for (; o < N; ++o) {
        float v = bb ? bb[o] : 0.0f;
        for (int64_t k = 0; k < kn; ++k) v += coef[k] * Wt[(k0 + k) * N + o];
        if (m) v *= static_cast<float>(static_cast<int32_t>(m[o])) * mask_scale;
        y[o] = acc_in ? y[o] + v : v;
      }
      if (r == 0) break;
    }
  }
}

TK_SIMD_CLONES void thin_outer(const float* C, int64_t ldc, const float* X, int64_t ldx, int64_t n, int64_t r,
                               int64_t K, float alpha, float* D, bool accumulate) {
  if (!accumulate) std::memset(D, 0, static_cast<size_t>(r * K) * sizeof(float));
  // row by row: D (r x K) stays in L1/L2 while each row of X is read r times from L1
  for (int64_t i = 0; i < n; ++i) {
    const float* x = X + i * ldx;
    for (int64_t k = 0; k < r; ++k) {
      const float ck = alpha * C[i * ldc + k];
      const v16 cv = splat(ck);
      float* d = D + k * K;
      int64_t c = 0;
      for (; c + kW <= K; c += kW) store(d + c, load(d + c) + cv * load(x + c));
      for (; c < K; ++c) d[c] += ck * x[c];
    }
  }
}

}  // namespace tk::cpu
