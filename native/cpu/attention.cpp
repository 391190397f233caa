// Attention on the CPU: a tiled fast path built on gemm_f32 and a plain reference.
// See attention.h for shapes and semantics.
#include "attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"

namespace tk::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Tile sizes: a 64 x 128 f32 score tile is 32 KiB, so a query tile, a key/value tile and the
// score tiles stay in L2 while the GEMM works on them. 128 keys a tile: sequences up to 128 (the
// main job's) need one key tile per query tile, so no online rescaling and fewer, larger GEMMs.
constexpr int64_t kQTile = 64;
constexpr int64_t kKTile = 128;

// Last key index query row i may see (inclusive), before the padding mask.
inline int64_t last_visible_key(const AttentionShape& s, int64_t i) {
  return s.causal ? s.Tk - s.Tq + i : s.Tk - 1;
}

// x[i] = exp(x[i] - shift) over a score row, written as straight-line float arithmetic so the
// compiler vectorises it (std::exp does not): exp(y) = 2^n exp(r), n = round(y / ln 2),
// |r| <= ln2 / 2, exp(r) by a degree-7 minimax polynomial (the classic Cephes expf
// coefficients), about 1 ulp. y = -inf (a masked score) and y < -87.3 give exactly 0, so masked
// entries need no branch; the scores here are <= ~0 so the upper clamp only guards overflow.
// GCC keeps floating-point selects as branches under its default -ftrapping-math, which stops
// the loop below from vectorising; the loop raises no FP exceptions anyone observes, so allow
// if-conversion for this one function. (Clang does not trap by default and ignores nothing here.)
#if defined(__GNUC__) && !defined(__clang__)
#define TK_VECTORIZABLE_SELECTS __attribute__((optimize("no-trapping-math")))
#else
#define TK_VECTORIZABLE_SELECTS
#endif

// The tile functions below are multi-versioned (AVX-512 / AVX2 / baseline, picked at load time):
// this file is compiled for baseline x86-64, where their loops would run 4 lanes wide.
// They carry the no-trapping-math setting themselves: an inline helper with an optimize
// attribute of its own is not inlined into them (GCC refuses the mismatch) and would run at
// baseline width out of line.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TK_TILE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TK_TILE_CLONES
#endif

inline void exp_shifted(float* __restrict x, int64_t n, float shift) {
  for (int64_t i = 0; i < n; ++i) {
    const float y0 = x[i] - shift;
    float y = y0 < -87.3f ? -87.3f : y0;  // also maps -inf (masked) to a finite value
    y = y > 88.0f ? 88.0f : y;
    // round(y * log2(e)) by the 1.5 * 2^23 trick: the integer lands in the low mantissa bits
    const float t = y * 1.44269504088896341f + 12582912.0f;
    const float nf = t - 12582912.0f;
    int32_t ti;
    std::memcpy(&ti, &t, 4);
    const int32_t ni = ti - 0x4B400000;  // bits of 12582912.0f
    const float r = (y - nf * 0.693359375f) - nf * -2.12194440e-4f;  // y - n ln2, in two parts
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const int32_t bits = (ni + 127) << 23;  // 2^n, n in [-126, 127] after the clamps
    float scale;
    std::memcpy(&scale, &bits, 4);
    x[i] = y0 < -87.3f ? 0.0f : p * scale;  // exact 0 for masked scores
  }
}

// max and sum of a row with 16 independent lanes (a single running value does not vectorize:
// the compiler may not reorder float additions)
inline float row_max(const float* __restrict x, int64_t n) {
  float lanes[16];
  for (int l = 0; l < 16; ++l) lanes[l] = kNegInf;
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int l = 0; l < 16; ++l) lanes[l] = x[c + l] > lanes[l] ? x[c + l] : lanes[l];
  float m = kNegInf;
  for (; c < n; ++c) m = x[c] > m ? x[c] : m;
  for (int l = 0; l < 16; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

inline float row_sum(const float* __restrict x, int64_t n) {
  float lanes[16] = {};
  int64_t c = 0;
  for (; c + 16 <= n; c += 16)
    for (int l = 0; l < 16; ++l) lanes[l] += x[c + l];
  float t = 0.0f;
  for (; c < n; ++c) t += x[c];
  for (int l = 0; l < 16; ++l) t += lanes[l];
  return t;
}

// Marks the scores a row may not see with -inf: keys past the causal limit (a tail of the
// row, no per-key test) and keys the padding mask drops (only when the tile has any).
inline void mask_row(float* row, int64_t bk, int64_t visible, const int32_t* mtile) {
  const int64_t v = std::max<int64_t>(0, std::min(bk, visible));
  if (mtile)
    for (int64_t c = 0; c < v; ++c)
      if (mtile[c] == 0) row[c] = kNegInf;
  std::fill(row + v, row + bk, kNegInf);
}

// Forward, one score tile S [bq, bk] (keys j0..): masks, the online softmax update of the rows'
// running max m and sum l, acc [bq, D] rescaled where the max grew; S becomes P (unnormalised).
TK_TILE_CLONES void softmax_tile_forward(const AttentionShape& s, float* S, int64_t bq, int64_t bk, int64_t i0,
                                         int64_t j0, const int32_t* mtile, float* m, float* l, float* acc) {
  for (int64_t r = 0; r < bq; ++r) {
    float* row = S + r * bk;
    const int64_t visible = last_visible_key(s, i0 + r) - j0 + 1;
    mask_row(row, bk, visible, mtile);
    const float rmax = row_max(row, std::max<int64_t>(0, std::min(bk, visible)));
    const float m_new = std::max(m[r], rmax);
    if (m_new == kNegInf) {  // nothing visible yet: contribute exact zeros (no -inf * v)
      std::fill(row, row + bk, 0.0f);
      continue;
    }
    const float corr = std::exp(m[r] - m_new);  // m[r] = -inf -> 0 (acc is still 0)
    exp_shifted(row, bk, m_new);
    l[r] = l[r] * corr + row_sum(row, bk);
    if (corr != 1.0f) {
      float* a = acc + r * s.D;
      for (int64_t d = 0; d < s.D; ++d) a[d] *= corr;
    }
    m[r] = m_new;
  }
}

// Backward, one tile: P = exp(S - lse) on visible entries (0 elsewhere) from the scores in P.
TK_TILE_CLONES void probs_tile_backward(const AttentionShape& s, float* P, int64_t bq, int64_t bk, int64_t i0,
                                        int64_t j0, const int32_t* mtile, const float* L) {
  for (int64_t r = 0; r < bq; ++r) {
    float* row = P + r * bk;
    const float lr = L[i0 + r];
    if (lr == kNegInf) {  // fully masked row: no probability mass, no gradient
      std::fill(row, row + bk, 0.0f);
      continue;
    }
    mask_row(row, bk, last_visible_key(s, i0 + r) - j0 + 1, mtile);
    exp_shifted(row, bk, lr);
  }
}

// dS = P (dP - delta) in place of dP, one tile
TK_TILE_CLONES void dscores_tile(const float* __restrict P, float* __restrict dP, int64_t bq, int64_t bk,
                                 const float* delta) {
  for (int64_t r = 0; r < bq; ++r) {
    const float dl = delta[r];
    const float* p = P + r * bk;
    float* d = dP + r * bk;
    for (int64_t c = 0; c < bk; ++c) d[c] = p[c] * (d[c] - dl);
  }
}

// rowsum(dO * O) for Tq rows of D: the softmax backward's row term, 16 lanes per row
TK_TILE_CLONES void row_dots(const float* __restrict a, const float* __restrict b, int64_t rows, int64_t D, float* out) {
  for (int64_t i = 0; i < rows; ++i) {
    float lanes[16] = {};
    const float* x = a + i * D;
    const float* y = b + i * D;
    int64_t d = 0;
    for (; d + 16 <= D; d += 16)
      for (int l = 0; l < 16; ++l) lanes[l] += x[d + l] * y[d + l];
    float t = 0.0f;
    for (; d < D; ++d) t += x[d] * y[d];
    for (int l = 0; l < 16; ++l) t += lanes[l];
    out[i] = t;
  }
}

// The key mask's slice for keys j0..j0+n, or null when it drops none of them (the common case:
// no padding in this tile), so rows skip the per-key test.
inline const int32_t* tile_mask(const int32_t* mask_row_ptr, int64_t j0, int64_t n) {
  if (!mask_row_ptr) return nullptr;
  for (int64_t j = j0; j < j0 + n; ++j)
    if (mask_row_ptr[j] == 0) return mask_row_ptr + j0;
  return nullptr;
}

inline bool all_masked(const int32_t* mask_row, int64_t j0, int64_t n) {
  if (!mask_row) return false;
  for (int64_t j = j0; j < j0 + n; ++j)
    if (mask_row[j] != 0) return false;
  return true;
}

// C[M,N] (+)= alpha * A[M,K] op(B), contiguous operands with the leading dims given.
inline void gemm_call(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm_f32(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Per-thread scratch of the backward, sized by tiles (and Tq for the row dots).
struct BackwardScratch {
  std::vector<float> p, dp, delta;
};

// Gradients of one (b, h) query head. dq's head slice is written; dk_dst / dv_dst [Tk, D] are
// accumulated into (the caller zeroes them), so several query heads may share one destination.
void backward_head(const AttentionShape& s, int64_t b, int64_t h, const float* q, const float* k, const float* v,
                   const float* out, const float* lse, const float* dout, const int32_t* key_mask, float* dq,
                   float* dk_dst, float* dv_dst, BackwardScratch& sc) {
  const int64_t D = s.D, Tq = s.Tq, Tk = s.Tk;
  const int64_t g = h / (s.Hq / s.Hkv);
  const int64_t bh = b * s.Hq + h;
  const float* Qh = q + bh * Tq * D;
  const float* Oh = out + bh * Tq * D;
  const float* dOh = dout + bh * Tq * D;
  const float* Lh = lse + bh * Tq;
  const float* Kh = k + (b * s.Hkv + g) * Tk * D;
  const float* Vh = v + (b * s.Hkv + g) * Tk * D;
  const int32_t* mrow = key_mask ? key_mask + b * Tk : nullptr;
  float* dQh = dq + bh * Tq * D;
  std::fill(dQh, dQh + Tq * D, 0.0f);

  // delta_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij: the softmax backward's row term.
  sc.delta.resize(Tq);
  row_dots(dOh, Oh, Tq, D, sc.delta.data());

  for (int64_t i0 = 0; i0 < Tq; i0 += kQTile) {
    const int64_t bq = std::min(kQTile, Tq - i0);
    const int64_t jend = s.causal ? std::min(Tk, last_visible_key(s, i0 + bq - 1) + 1) : Tk;
    const float* Qi = Qh + i0 * D;
    const float* dOi = dOh + i0 * D;
    for (int64_t j0 = 0; j0 < jend; j0 += kKTile) {
      const int64_t bk = std::min(kKTile, jend - j0);
      if (all_masked(mrow, j0, bk)) continue;
      const float* Kj = Kh + j0 * D;
      const float* Vj = Vh + j0 * D;
      float* P = sc.p.data();    // [bq, bk]
      float* dP = sc.dp.data();  // [bq, bk]
      // S = scale Q_i K_j^T, then P = exp(S - lse) on visible entries, 0 elsewhere.
      gemm_call(false, true, bq, bk, D, s.scale, Qi, D, Kj, D, 0.0f, P, bk);
      probs_tile_backward(s, P, bq, bk, i0, j0, tile_mask(mrow, j0, bk), Lh);
      // dV_j [bk, D] += P^T dO_i
      gemm_call(true, false, bk, D, bq, 1.0f, P, bk, dOi, D, 1.0f, dv_dst + j0 * D, D);
      // dP = dO_i V_j^T [bq, bk]; dS = P (dP - delta) in place
      gemm_call(false, true, bq, bk, D, 1.0f, dOi, D, Vj, D, 0.0f, dP, bk);
      dscores_tile(P, dP, bq, bk, sc.delta.data() + i0);
      // dQ_i [bq, D] += scale dS K_j ; dK_j [bk, D] += scale dS^T Q_i
      gemm_call(false, false, bq, D, bk, s.scale, dP, bk, Kj, D, 1.0f, dQh + i0 * D, D);
      gemm_call(true, false, bk, D, bq, s.scale, dP, bk, Qi, D, 1.0f, dk_dst + j0 * D, D);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fast path

void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse) {
  check_attention_shape(s);
  // D == 0 would hand the GEMM an empty inner dimension; the reference is exact and trivial there.
  if (s.D == 0) return attention_forward_reference(s, q, k, v, key_mask, out, lse);
  const int64_t D = s.D, Tq = s.Tq, Tk = s.Tk, group = s.Hq / s.Hkv;
  const int64_t nqt = (Tq + kQTile - 1) / kQTile;
  const int64_t units = s.B * s.Hq * nqt;  // (b, h, query tile): causal rows differ in cost
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    // Per-chunk scratch: one score tile, the running output and softmax state of one query tile.
    std::vector<float> S(kQTile * kKTile), acc(kQTile * D), m(kQTile), l(kQTile);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t qt = u % nqt, bh = u / nqt, b = bh / s.Hq, h = bh % s.Hq, g = h / group;
      const int64_t i0 = qt * kQTile, bq = std::min(kQTile, Tq - i0);
      const float* Qi = q + (bh * Tq + i0) * D;
      const float* Kh = k + (b * s.Hkv + g) * Tk * D;
      const float* Vh = v + (b * s.Hkv + g) * Tk * D;
      const int32_t* mrow = key_mask ? key_mask + b * Tk : nullptr;
      std::fill(m.begin(), m.end(), kNegInf);
      std::fill(l.begin(), l.end(), 0.0f);
      std::fill(acc.begin(), acc.begin() + bq * D, 0.0f);
      // Keys past the last position the tile's bottom row sees are never needed.
      const int64_t jend = s.causal ? std::min(Tk, last_visible_key(s, i0 + bq - 1) + 1) : Tk;
      for (int64_t j0 = 0; j0 < jend; j0 += kKTile) {
        const int64_t bk = std::min(kKTile, jend - j0);
        if (all_masked(mrow, j0, bk)) continue;
        // S [bq, bk] = scale Q_i K_j^T
        gemm_call(false, true, bq, bk, D, s.scale, Qi, D, Kh + j0 * D, D, 0.0f, S.data(), bk);
        // Online softmax: keep the running max m and sum l per row; rescale acc when m grows.
        softmax_tile_forward(s, S.data(), bq, bk, i0, j0, tile_mask(mrow, j0, bk), m.data(), l.data(), acc.data());
        // acc [bq, D] += P [bq, bk] V_j [bk, D]
        gemm_call(false, false, bq, D, bk, 1.0f, S.data(), bk, Vh + j0 * D, D, 1.0f, acc.data(), D);
      }
      float* O = out + (bh * Tq + i0) * D;
      float* L = lse + bh * Tq + i0;
      for (int64_t r = 0; r < bq; ++r) {
        if (l[r] > 0.0f) {
          const float inv = 1.0f / l[r];
          for (int64_t d = 0; d < D; ++d) O[r * D + d] = acc[r * D + d] * inv;
          L[r] = m[r] + std::log(l[r]);
        } else {  // every key masked
          std::fill(O + r * D, O + (r + 1) * D, 0.0f);
          L[r] = kNegInf;
        }
      }
    }
  });
}

void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv) {
  check_attention_shape(s);
  if (s.D == 0) return attention_backward_reference(s, q, k, v, out, lse, dout, key_mask, dq, dk, dv);
  const int64_t group = s.Hq / s.Hkv;
  const int64_t kv_slice = s.Tk * s.D;  // elements of one kv head's [Tk, D]
  auto make_scratch = [] {
    BackwardScratch sc;
    sc.p.resize(kQTile * kKTile);
    sc.dp.resize(kQTile * kKTile);
    return sc;
  };

  // dK/dV sum over the query heads of a group. Three ways to avoid write conflicts:
  //  - no grouping: one unit per (b, h) writes its own kv slice;
  //  - enough (b, g) pairs to fill the threads: one unit per kv head loops over its query heads;
  //  - otherwise: one unit per (b, h) into private partial slices, then a reduction.
  if (group == 1 || s.B * s.Hkv >= 2 * static_cast<int64_t>(num_threads())) {
    parallel_for(s.B * s.Hkv, 1, [&](int64_t u0, int64_t u1) {
      BackwardScratch sc = make_scratch();
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / s.Hkv, g = u % s.Hkv;
        float* dK = dk + u * kv_slice;
        float* dV = dv + u * kv_slice;
        std::fill(dK, dK + kv_slice, 0.0f);
        std::fill(dV, dV + kv_slice, 0.0f);
        for (int64_t h = g * group; h < (g + 1) * group; ++h)
          backward_head(s, b, h, q, k, v, out, lse, dout, key_mask, dq, dK, dV, sc);
      }
    });
    return;
  }
  // Partials [B, Hq, Tk, D] for dK and dV.
  std::vector<float> dkp(s.B * s.Hq * kv_slice), dvp(s.B * s.Hq * kv_slice);
  parallel_for(s.B * s.Hq, 1, [&](int64_t u0, int64_t u1) {
    BackwardScratch sc = make_scratch();
    for (int64_t u = u0; u < u1; ++u) {
      // vectors start zeroed: backward_head only accumulates into them
      backward_head(s, u / s.Hq, u % s.Hq, q, k, v, out, lse, dout, key_mask, dq, dkp.data() + u * kv_slice,
                    dvp.data() + u * kv_slice, sc);
    }
  });
  // dk[b, g] = sum over h in group g of dkp[b, h]
  const int64_t total = s.B * s.Hkv * kv_slice;
  parallel_for(total, 4096, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t bg = e / kv_slice, off = e % kv_slice;
      const int64_t b = bg / s.Hkv, g = bg % s.Hkv;
      float sk = 0.0f, sv = 0.0f;
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        sk += dkp[(b * s.Hq + h) * kv_slice + off];
        sv += dvp[(b * s.Hq + h) * kv_slice + off];
      }
      dk[e] = sk;
      dv[e] = sv;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Reference

void attention_forward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                 const int32_t* key_mask, float* out, float* lse) {
  check_attention_shape(s);
  const int64_t D = s.D, Tq = s.Tq, Tk = s.Tk, group = s.Hq / s.Hkv;
  std::vector<double> sc(Tk);
  std::vector<char> vis(Tk);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h) {
      const int64_t g = h / group;
      const float* K = k + (b * s.Hkv + g) * Tk * D;  // [Tk, D]
      const float* V = v + (b * s.Hkv + g) * Tk * D;  // [Tk, D]
      for (int64_t i = 0; i < Tq; ++i) {
        const float* qi = q + ((b * s.Hq + h) * Tq + i) * D;  // [D]
        float* oi = out + ((b * s.Hq + h) * Tq + i) * D;      // [D]
        double mx = -INFINITY;
        for (int64_t j = 0; j < Tk; ++j) {
          vis[j] = j <= last_visible_key(s, i) && (!key_mask || key_mask[b * Tk + j] != 0);
          if (!vis[j]) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(qi[d]) * K[j * D + d];
          sc[j] = dot * s.scale;
          mx = std::max(mx, sc[j]);
        }
        if (mx == -INFINITY) {  // no visible key
          for (int64_t d = 0; d < D; ++d) oi[d] = 0.0f;
          lse[(b * s.Hq + h) * Tq + i] = kNegInf;
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) sum += vis[j] ? std::exp(sc[j] - mx) : 0.0;
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < Tk; ++j)
            if (vis[j]) acc += std::exp(sc[j] - mx) / sum * V[j * D + d];
          oi[d] = static_cast<float>(acc);
        }
        lse[(b * s.Hq + h) * Tq + i] = static_cast<float>(mx + std::log(sum));
      }
    }
}

void attention_backward_reference(const AttentionShape& s, const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, const float* dout,
                                  const int32_t* key_mask, float* dq, float* dk, float* dv) {
  check_attention_shape(s);
  const int64_t D = s.D, Tq = s.Tq, Tk = s.Tk, group = s.Hq / s.Hkv;
  std::fill(dk, dk + s.B * s.Hkv * Tk * D, 0.0f);
  std::fill(dv, dv + s.B * s.Hkv * Tk * D, 0.0f);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h) {
      const int64_t g = h / group;
      const float* K = k + (b * s.Hkv + g) * Tk * D;
      const float* V = v + (b * s.Hkv + g) * Tk * D;
      float* dK = dk + (b * s.Hkv + g) * Tk * D;
      float* dV = dv + (b * s.Hkv + g) * Tk * D;
      for (int64_t i = 0; i < Tq; ++i) {
        const int64_t row = (b * s.Hq + h) * Tq + i;
        const float* qi = q + row * D;
        const float* oi = out + row * D;
        const float* doi = dout + row * D;
        float* dqi = dq + row * D;
        const double l = lse[row];
        double delta = 0;  // rowsum(dO * O)
        for (int64_t d = 0; d < D; ++d) delta += static_cast<double>(doi[d]) * oi[d];
        std::vector<double> dqacc(D, 0.0);
        for (int64_t j = 0; j < Tk; ++j) {
          const bool vis = j <= last_visible_key(s, i) && (!key_mask || key_mask[b * Tk + j] != 0);
          if (!vis || l == -INFINITY) continue;
          double dot = 0, dpj = 0;
          for (int64_t d = 0; d < D; ++d) {
            dot += static_cast<double>(qi[d]) * K[j * D + d];
            dpj += static_cast<double>(doi[d]) * V[j * D + d];
          }
          const double p = std::exp(dot * s.scale - l);
          const double ds = p * (dpj - delta);
          for (int64_t d = 0; d < D; ++d) {
            dqacc[d] += s.scale * ds * K[j * D + d];
            dK[j * D + d] += static_cast<float>(s.scale * ds * qi[d]);
            dV[j * D + d] += static_cast<float>(p * doi[d]);
          }
        }
        for (int64_t d = 0; d < D; ++d) dqi[d] = static_cast<float>(dqacc[d]);
      }
    }
}

}  // namespace tk::cpu
