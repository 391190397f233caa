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
// 16 mask bytes (0/1) as floats
inline v16 mask16(const uint8_t* m) {
  v16 v;
  for (int l = 0; l < kW; ++l) v[l] = static_cast<float>(static_cast<int32_t>(m[l]));
  return v;
}

// AVX-512's 32 vector registers (the multi-versioned loops pick their tile width by it)
inline bool wide_registers() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool wide = __builtin_cpu_supports("avx512f");
  return wide;
#else
  return false;
#endif
}

// The 8 horizontal sums of acc[0..7] as lanes 0..7 of one vector: a transpose-and-add tree
// (16 -> 8 -> 4 -> 2 -> 1 lanes per accumulator) instead of 8 serial 16-lane sums.
inline v16 hsum8(const v16* a) {
  v16 u[4], w[2];
  for (int j = 0; j < 4; ++j)
    u[j] = __builtin_shufflevector(a[2 * j], a[2 * j + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(a[2 * j], a[2 * j + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int j = 0; j < 2; ++j)
    w[j] = __builtin_shufflevector(u[2 * j], u[2 * j + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(u[2 * j], u[2 * j + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  const v16 z = __builtin_shufflevector(w[0], w[1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
                __builtin_shufflevector(w[0], w[1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  return __builtin_shufflevector(z, z, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15) +
         __builtin_shufflevector(z, z, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14);
}

}  // namespace

TK_SIMD_CLONES void thin_rowdot(const float* X, int64_t ldx, const float* Wt, int64_t n, int64_t r, int64_t K,
                                float alpha, float* out, int64_t ldo) {
  // Two rows of X per pass (16 accumulators): each 16-float slice of Wt loaded from L1 serves two
  // rows. Output columns in groups of 8; a group's columns past r repeat column k0 (computed and
  // dropped, so the loop body has a fixed shape). Lanes 0..7 of hsum8 are the 8 sums.
  constexpr int kGroup = 8;
  for (int64_t k0 = 0; k0 < r; k0 += kGroup) {
    const int64_t kn = std::min<int64_t>(kGroup, r - k0);
    const float* w[kGroup];
    for (int g = 0; g < kGroup; ++g) w[g] = Wt + (k0 + (g < kn ? g : 0)) * K;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
      const float* x0 = X + i * ldx;
      const float* x1 = x0 + ldx;
      v16 a0[kGroup], a1[kGroup];
      for (int g = 0; g < kGroup; ++g) a0[g] = a1[g] = v16{};
      int64_t c = 0;
      for (; c + kW <= K; c += kW) {
        const v16 xv0 = load(x0 + c), xv1 = load(x1 + c);
        // the next pair's lines: X (dy in the backward, 6-8 MiB) streams from memory, and the
        // hardware prefetcher alone left this loop waiting on it (backward 256x768 -0.5 ms)
        __builtin_prefetch(x0 + 2 * ldx + c);
        __builtin_prefetch(x1 + 2 * ldx + c);
        for (int g = 0; g < kGroup; ++g) {
          const v16 wv = load(w[g] + c);
          a0[g] += xv0 * wv;
          a1[g] += xv1 * wv;
        }
      }
      const v16 s0 = hsum8(a0), s1 = hsum8(a1);
      for (int g = 0; g < kn; ++g) {
        float t0 = s0[g], t1 = s1[g];
        for (int64_t cc = c; cc < K; ++cc) {
          t0 += x0[cc] * w[g][cc];
          t1 += x1[cc] * w[g][cc];
        }
        out[i * ldo + k0 + g] = alpha * t0;
        out[(i + 1) * ldo + k0 + g] = alpha * t1;
      }
    }
    for (; i < n; ++i) {
      const float* x = X + i * ldx;
      v16 acc[kGroup];
      for (int g = 0; g < kGroup; ++g) acc[g] = v16{};
      int64_t c = 0;
      for (; c + kW <= K; c += kW) {
        const v16 xv = load(x + c);
        for (int g = 0; g < kGroup; ++g) acc[g] += xv * load(w[g] + c);
      }
      const v16 sv = hsum8(acc);
      for (int g = 0; g < kn; ++g) {
        float t = sv[g];
        for (int64_t cc = c; cc < K; ++cc) t += x[cc] * w[g][cc];
        out[i * ldo + k0 + g] = alpha * t;
      }
    }
  }
}

TK_SIMD_CLONES void thin_rowaxpy(const float* C, int64_t ldc, const float* Wt, int64_t ldw, int64_t n, int64_t r,
                                 int64_t N, float alpha, const float* bias, const uint8_t* mask, float mask_scale,
                                 float* Y, int64_t ldy, bool accumulate) {
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
      // 64 columns per step: four independent FMA chains over k (one 16-column chain is r FMAs
      // back to back, bound by the FMA latency rather than its throughput)
      for (; o + 4 * kW <= N; o += 4 * kW) {
        v16 v[4];
        for (int u = 0; u < 4; ++u) v[u] = bb ? load(bb + o + u * kW) : v16{};
        for (int64_t k = 0; k < kn; ++k) {
          const v16 cv = splat(coef[k]);
          const float* w = Wt + (k0 + k) * ldw + o;
          for (int u = 0; u < 4; ++u) v[u] += cv * load(w + u * kW);
        }
        for (int u = 0; u < 4; ++u) {
          if (m) v[u] *= mask16(m + o + u * kW) * ms;
          float* yo = y + o + u * kW;
          store(yo, acc_in ? load(yo) + v[u] : v[u]);
        }
      }
      for (; o + kW <= N; o += kW) {
        v16 v = bb ? load(bb + o) : v16{};
        for (int64_t k = 0; k < kn; ++k) v += splat(coef[k]) * load(Wt + (k0 + k) * ldw + o);
        if (m) v *= mask16(m + o) * ms;
        store(y + o, acc_in ? load(y + o) + v : v);
      }
      for (; o < N; ++o) {
        float v = bb ? bb[o] : 0.0f;
        for (int64_t k = 0; k < kn; ++k) v += coef[k] * Wt[(k0 + k) * ldw + o];
        if (m) v *= static_cast<float>(static_cast<int32_t>(m[o])) * mask_scale;
        y[o] = acc_in ? y[o] + v : v;
      }
      if (r == 0) break;
    }
  }
}

TK_SIMD_CLONES void thin_outer(const float* C, int64_t ldc, const float* X, int64_t ldx, int64_t n, int64_t r,
                               int64_t K, float alpha, float* D, bool accumulate) {
  // Column tiles of 16 with up to 8 rows of D in registers: for each row i of X one 16-float load
  // feeds 8 FMAs (C[i, k] broadcast), and D is loaded and stored once per tile instead of once
  // per row i. A group's rows past r repeat row k0 (computed, not stored). The sum over i runs in
  // row order for every element (fixed: no dependence on how callers split rows between calls).
  constexpr int kGroup = 8;
  for (int64_t k0 = 0; k0 < std::max<int64_t>(r, 0); k0 += kGroup) {
    const int64_t kn = std::min<int64_t>(kGroup, r - k0);
    int64_t col[kGroup];
    for (int g = 0; g < kGroup; ++g) col[g] = k0 + (g < kn ? g : 0);
    const v16 av = splat(alpha);
    int64_t c = 0;
    // two column tiles at once (16 accumulators) where there are 32 vector registers; under AVX2
    // the 16-float vectors take two registers each and 32 accumulators would spill
    for (; wide_registers() && c + 2 * kW <= K; c += 2 * kW) {
      v16 acc[kGroup], acc2[kGroup];
      for (int g = 0; g < kGroup; ++g) acc[g] = acc2[g] = v16{};
      for (int64_t i = 0; i < n; ++i) {
        const v16 xv = load(X + i * ldx + c), xv2 = load(X + i * ldx + c + kW);
        const float* ci = C + i * ldc;
        for (int g = 0; g < kGroup; ++g) {
          const v16 cv = splat(ci[col[g]]);
          acc[g] += cv * xv;
          acc2[g] += cv * xv2;
        }
      }
      for (int g = 0; g < kn; ++g) {
        float* d = D + (k0 + g) * K + c;
        store(d, accumulate ? load(d) + av * acc[g] : av * acc[g]);
        store(d + kW, accumulate ? load(d + kW) + av * acc2[g] : av * acc2[g]);
      }
    }
    for (; c + kW <= K; c += kW) {
      v16 acc[kGroup];
      for (int g = 0; g < kGroup; ++g) acc[g] = v16{};
      for (int64_t i = 0; i < n; ++i) {
        const v16 xv = load(X + i * ldx + c);
        const float* ci = C + i * ldc;
        for (int g = 0; g < kGroup; ++g) acc[g] += splat(ci[col[g]]) * xv;
      }
      for (int g = 0; g < kn; ++g) {
        float* d = D + (k0 + g) * K + c;
        store(d, accumulate ? load(d) + av * acc[g] : av * acc[g]);
      }
    }
    for (; c < K; ++c)
      for (int g = 0; g < kn; ++g) {
        float t = 0.0f;
        for (int64_t i = 0; i < n; ++i) t += C[i * ldc + k0 + g] * X[i * ldx + c];
        float* d = D + (k0 + g) * K + c;
        *d = accumulate ? *d + alpha * t : alpha * t;
      }
  }
}

TK_SIMD_CLONES void thin_dropped(const float* x, const uint8_t* mask, float scale, int64_t count, float* out) {
  const v16 sv = splat(scale);
  int64_t e = 0;
  for (; e + kW <= count; e += kW) {
    // x and the mask stream from memory (8 + 2 MiB for the main job's 2048 x 1024 input)
    __builtin_prefetch(x + e + 1024);
    __builtin_prefetch(mask + e + 1024);
    store(out + e, load(x + e) * (mask16(mask + e) * sv));
  }
  for (; e < count; ++e) out[e] = x[e] * (static_cast<float>(static_cast<int32_t>(mask[e])) * scale);
}

}  // namespace tk::cpu
