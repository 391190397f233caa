// Attention on the CPU: a tiled fast path (flash-attention style, its small products in
// attention_tiles.h) and a plain reference.
// See attention.h for shapes and semantics.
#include "attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "attention_tiles.h"

namespace tk::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Tile sizes: a 64 x 128 f32 score tile is 32 KiB, so a query tile, a key/value tile and the
// score tiles stay in L2 while the products work on them. 128 keys a tile: sequences up to 128 (the
// main job's) need one key tile per query tile, so no online rescaling and fewer, larger products.
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

// How many of key tile j0's bk keys query row i (of the head) sees: the causal limit only (the
// padding mask works on the scores).
inline int64_t visible_keys(const AttentionShape& s, int64_t i, int64_t j0, int64_t bk) {
  return std::max<int64_t>(0, std::min(bk, last_visible_key(s, i) - j0 + 1));
}
// How much of a score row of bk entries, `visible` of them before the causal limit, the exp
// passes cover: the visible ones rounded up to whole 16-lane vectors (the masked -inf entries
// past the limit come out exactly 0 either way; a scalar remainder costs as much per element as
// a whole vector does), the rest is filled with zeros.
inline int64_t exp_span(int64_t visible, int64_t bk) {
  return std::min(bk, (std::max<int64_t>(0, visible) + 15) / 16 * 16);
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
    const int64_t v = exp_span(visible, bk);
    exp_shifted(row, v, m_new);
    std::fill(row + v, row + bk, 0.0f);  // past the causal limit: exp(-inf)
    l[r] = l[r] * corr + row_sum(row, v);
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
    const int64_t visible = last_visible_key(s, i0 + r) - j0 + 1, v = exp_span(visible, bk);
    mask_row(row, bk, visible, mtile);
    exp_shifted(row, v, lr);
    std::fill(row + v, row + bk, 0.0f);  // past the causal limit: exp(-inf)
  }
}

// dS = P (dP - delta) in place of dP, one tile; 0 past each row's causal limit, where dP was not
// computed (a row block's products stop at its bottom row's limit, see visible_keys).
TK_TILE_CLONES void dscores_tile(const AttentionShape& s, const float* __restrict P, float* __restrict dP, int64_t bq,
                                 int64_t bk, int64_t i0, int64_t j0, const float* delta) {
  for (int64_t r = 0; r < bq; ++r) {
    const float dl = delta[r];
    const float* p = P + r * bk;
    float* d = dP + r * bk;
    const int64_t v = visible_keys(s, i0 + r, j0, bk);
    for (int64_t c = 0; c < v; ++c) d[c] = p[c] * (d[c] - dl);
    std::fill(d + v, d + bk, 0.0f);
  }
}

// rowsum(dO * O) for Tq rows of D (row strides lda, ldb): the softmax backward's row term, 16 lanes per row
TK_TILE_CLONES void row_dots(const float* __restrict a, int64_t lda, const float* __restrict b, int64_t ldb, int64_t rows,
                             int64_t D, float* out) {
  for (int64_t i = 0; i < rows; ++i) {
    float lanes[16] = {};
    const float* x = a + i * lda;
    const float* y = b + i * ldb;
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

using attention_detail::kRowBlock;

// The first of query tile i0's bq rows that sees key j of the head (bq when none does).
inline int64_t first_query_seeing(const AttentionShape& s, int64_t j, int64_t i0, int64_t bq) {
  return s.causal ? std::max<int64_t>(0, std::min(bq, j - (s.Tk - s.Tq) - i0)) : 0;
}

// C[M, cols] = alpha * A B + beta * C (beta 0 or 1) by blocks of kRowBlock rows, where block r0
// (rows r0 .. r0 + rows) has its own column count cols(r0, rows) and k range krange(r0, rows):
// causal blocks skip the keys none of their rows sees, or the queries that see none of their
// keys. a(i, k) = A[i * a_row + k * a_col] (see attention_tiles.h); B rows of stride ldb.
template <class Cols, class KRange>
void product_by_row_blocks(int64_t M, float alpha, const float* A, int64_t a_row, int64_t a_col, const float* B,
                           int64_t ldb, float beta, float* C, int64_t ldc, Cols cols, KRange krange) {
  const attention_detail::RowBlockProduct product = attention_detail::tile_kernels().product;
  for (int64_t r0 = 0; r0 < M; r0 += kRowBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kRowBlock, M - r0));
    const int64_t n = cols(r0, rows);
    const auto [k0, k1] = krange(r0, rows);
    if (n <= 0 || (beta != 0.0f && k1 <= k0)) continue;  // nothing to write, or C += 0
    product(rows, n, k0, k1, alpha, A + r0 * a_row, a_row, a_col, B, ldb, beta, C + r0 * ldc, ldc);
  }
}
inline auto all_of(int64_t n) {
  return [n](int64_t, int) { return n; };
}
inline auto k_from_zero(int64_t n) {
  return [n](int64_t, int) { return std::pair<int64_t, int64_t>{0, n}; };
}

// One query head's operands as row-major [rows, D] matrices with their own row strides, so the
// same tile loops serve the head-major layout [B, H, T, D] (row stride D) and the token-major rows
// of a packed projection [N, 3C] (row stride 3C; out and dout [N, C], stride C).
//   s    : the head's geometry (Tq, Tk, D, scale, causal; B and H unused)
//   mask : this head's keys' slice of the padding mask [Tk], or null
struct HeadView {
  AttentionShape s;
  const float* q;  // [Tq, D], row stride ldq
  const float* k;  // [Tk, D], row stride ldk
  const float* v;  // [Tk, D], row stride ldv
  int64_t ldq, ldk, ldv;
  const int32_t* mask;
};

// Per-thread scratch of the forward: one score tile, the running output and softmax state of one
// query tile, a key tile transposed.
struct ForwardScratch {
  std::vector<float> S, acc, m, l, kt;
  explicit ForwardScratch(int64_t D)
      : S(kQTile * kKTile), acc(kQTile * D), m(kQTile), l(kQTile), kt(D * kKTile) {}
};

// Forward of one query tile, rows i0 .. i0 + bq of the head: out rows O [bq, D] (row stride ldo)
// and their log-sum-exp L [bq]. Query tiles against key tiles with the tile products and an online
// softmax, so scratch is per tile and never Tq x Tk.
void forward_query_tile(const HeadView& h, int64_t i0, float* O, int64_t ldo, float* L, ForwardScratch& sc) {
  const AttentionShape& s = h.s;
  const int64_t D = s.D, bq = std::min(kQTile, s.Tq - i0);
  const float* Qi = h.q + i0 * h.ldq;
  float *S = sc.S.data(), *acc = sc.acc.data(), *m = sc.m.data(), *l = sc.l.data(), *KT = sc.kt.data();
  const attention_detail::Transpose transpose = attention_detail::tile_kernels().transpose;
  std::fill(m, m + bq, kNegInf);
  std::fill(l, l + bq, 0.0f);
  std::fill(acc, acc + bq * D, 0.0f);
  // Keys past the last position the tile's bottom row sees are never needed.
  const int64_t jend = s.causal ? std::min(s.Tk, last_visible_key(s, i0 + bq - 1) + 1) : s.Tk;
  for (int64_t j0 = 0; j0 < jend; j0 += kKTile) {
    const int64_t bk = std::min(kKTile, jend - j0);
    if (all_masked(h.mask, j0, bk)) continue;
    // A row block's keys: up to the last one its bottom row sees.
    const auto seen = [&](int64_t r0, int rows) { return visible_keys(s, i0 + r0 + rows - 1, j0, bk); };
    // S [bq, bk] = scale Q_i K_j^T, K_j^T [D, bk]; entries past a row block's keys stay unwritten
    // (the softmax masks them)
    transpose(h.k + j0 * h.ldk, bk, D, h.ldk, KT, bk);
    product_by_row_blocks(bq, s.scale, Qi, h.ldq, 1, KT, bk, 0.0f, S, bk, seen, k_from_zero(D));
    // Online softmax: keep the running max m and sum l per row; rescale acc when m grows.
    softmax_tile_forward(s, S, bq, bk, i0, j0, tile_mask(h.mask, j0, bk), m, l, acc);
    // acc [bq, D] += P [bq, bk] V_j [bk, D], over the keys each row block sees (P is 0 past them)
    product_by_row_blocks(bq, 1.0f, S, bk, 1, h.v + j0 * h.ldv, h.ldv, 1.0f, acc, D, all_of(D),
                          [&](int64_t r0, int rows) { return std::pair<int64_t, int64_t>{0, seen(r0, rows)}; });
  }
  for (int64_t r = 0; r < bq; ++r) {
    float* o = O + r * ldo;
    if (l[r] > 0.0f) {
      const float inv = 1.0f / l[r];
      for (int64_t d = 0; d < D; ++d) o[d] = acc[r * D + d] * inv;
      L[r] = m[r] + std::log(l[r]);
    } else {  // every key masked
      std::fill(o, o + D, 0.0f);
      L[r] = kNegInf;
    }
  }
}

// Per-thread scratch of the backward, sized by tiles (and Tq for the row dots): P, dP, and the key
// and value tiles transposed ([D, bk]).
struct BackwardScratch {
  std::vector<float> p, dp, delta, kt, vt;
  explicit BackwardScratch(int64_t D) : p(kQTile * kKTile), dp(kQTile * kKTile), kt(D * kKTile), vt(D * kKTile) {}
};

// Gradients of one query head. dQ [Tq, D] (row stride lddq) is written; dK / dV [Tk, D] (row
// strides lddk, lddv) are accumulated into (the caller zeroes them), so several query heads may
// share one destination. O, dO [Tq, D] have row strides ldo, lddo; L [Tq] is the forward's lse.
void backward_head(const HeadView& h, const float* O, int64_t ldo, const float* L, const float* dO, int64_t lddo,
                   float* dQ, int64_t lddq, float* dK, int64_t lddk, float* dV, int64_t lddv, BackwardScratch& sc) {
  const AttentionShape& s = h.s;
  const int64_t D = s.D, Tq = s.Tq, Tk = s.Tk;
  for (int64_t r = 0; r < Tq; ++r) std::fill(dQ + r * lddq, dQ + r * lddq + D, 0.0f);

  // delta_i = rowsum(dO_i * O_i) = sum_j P_ij dP_ij: the softmax backward's row term.
  sc.delta.resize(Tq);
  row_dots(dO, lddo, O, ldo, Tq, D, sc.delta.data());

  const attention_detail::Transpose transpose = attention_detail::tile_kernels().transpose;
  float* P = sc.p.data();    // [bq, bk]
  float* dP = sc.dp.data();  // [bq, bk]
  float* KT = sc.kt.data();  // [D, bk]
  float* VT = sc.vt.data();  // [D, bk]
  for (int64_t i0 = 0; i0 < Tq; i0 += kQTile) {
    const int64_t bq = std::min(kQTile, Tq - i0);
    const int64_t jend = s.causal ? std::min(Tk, last_visible_key(s, i0 + bq - 1) + 1) : Tk;
    const float* Qi = h.q + i0 * h.ldq;
    const float* dOi = dO + i0 * lddo;
    for (int64_t j0 = 0; j0 < jend; j0 += kKTile) {
      const int64_t bk = std::min(kKTile, jend - j0);
      if (all_masked(h.mask, j0, bk)) continue;
      const float* Kj = h.k + j0 * h.ldk;
      const float* Vj = h.v + j0 * h.ldv;
      // Query row blocks: the keys their bottom row sees. Key row blocks (dK, dV): the queries
      // from the first that sees their first key (P and dS are 0 elsewhere).
      const auto seen = [&](int64_t r0, int rows) { return visible_keys(s, i0 + r0 + rows - 1, j0, bk); };
      const auto keys_seen = [&](int64_t r0, int rows) { return std::pair<int64_t, int64_t>{0, seen(r0, rows)}; };
      const auto seen_by = [&](int64_t r0, int) { return std::pair<int64_t, int64_t>{first_query_seeing(s, j0 + r0, i0, bq), bq}; };
      transpose(Kj, bk, D, h.ldk, KT, bk);
      transpose(Vj, bk, D, h.ldv, VT, bk);
      // S = scale Q_i K_j^T, then P = exp(S - lse) on visible entries, 0 elsewhere (all of P).
      product_by_row_blocks(bq, s.scale, Qi, h.ldq, 1, KT, bk, 0.0f, P, bk, seen, k_from_zero(D));
      probs_tile_backward(s, P, bq, bk, i0, j0, tile_mask(h.mask, j0, bk), L);
      // dV_j [bk, D] += P^T dO_i
      product_by_row_blocks(bk, 1.0f, P, 1, bk, dOi, lddo, 1.0f, dV + j0 * lddv, lddv, all_of(D), seen_by);
      // dP = dO_i V_j^T [bq, bk]; dS = P (dP - delta) in place (0 where dP was not computed)
      product_by_row_blocks(bq, 1.0f, dOi, lddo, 1, VT, bk, 0.0f, dP, bk, seen, k_from_zero(D));
      dscores_tile(s, P, dP, bq, bk, i0, j0, sc.delta.data() + i0);
      // dQ_i [bq, D] += scale dS K_j ; dK_j [bk, D] += scale dS^T Q_i
      product_by_row_blocks(bq, s.scale, dP, bk, 1, Kj, h.ldk, 1.0f, dQ + i0 * lddq, lddq, all_of(D), keys_seen);
      product_by_row_blocks(bk, s.scale, dP, 1, bk, Qi, h.ldq, 1.0f, dK + j0 * lddk, lddk, all_of(D), seen_by);
    }
  }
}

// The view of query head h of batch b in the head-major layout [B, H, T, D].
HeadView head_major_view(const AttentionShape& s, int64_t b, int64_t h, const float* q, const float* k,
                         const float* v, const int32_t* key_mask) {
  const int64_t g = h / (s.Hq / s.Hkv), D = s.D;
  return {s,
          q + (b * s.Hq + h) * s.Tq * D,
          k + (b * s.Hkv + g) * s.Tk * D,
          v + (b * s.Hkv + g) * s.Tk * D,
          D, D, D,
          key_mask ? key_mask + b * s.Tk : nullptr};
}

// Runs fn(u, scratch) for u = 0 .. n-1 on the pool, each unit handed to the next free thread in
// order (an atomic counter), one scratch per thread. Units differ in cost (causal tiles, sequence
// lengths), so this balances where a static split would not; every unit writes only its own
// outputs, so the bits do not depend on the thread count or on which thread ran it.
template <class Scratch, class Make, class Fn>
void for_each_unit(int64_t n, Make make_scratch, Fn fn) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  parallel_run([&](int, int) {
    Scratch sc = make_scratch();
    for (int64_t u = next.fetch_add(1, std::memory_order_relaxed); u < n; u = next.fetch_add(1, std::memory_order_relaxed)) fn(u, sc);
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Fast path, head-major layout

void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse) {
  check_attention_shape(s);
  // D == 0 would hand the products an empty inner dimension; the reference is exact and trivial there.
  if (s.D == 0) return attention_forward_reference(s, q, k, v, key_mask, out, lse);
  const int64_t D = s.D, Tq = s.Tq;
  const int64_t nqt = (Tq + kQTile - 1) / kQTile;
  const int64_t units = s.B * s.Hq * nqt;  // (b, h, query tile): causal rows differ in cost
  parallel_for(units, 1, [&](int64_t u0, int64_t u1) {
    ForwardScratch sc(D);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t qt = u % nqt, bh = u / nqt, i0 = qt * kQTile;
      const HeadView h = head_major_view(s, bh / s.Hq, bh % s.Hq, q, k, v, key_mask);
      forward_query_tile(h, i0, out + (bh * Tq + i0) * D, D, lse + bh * Tq + i0, sc);
    }
  });
}

void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv) {
  check_attention_shape(s);
  if (s.D == 0) return attention_backward_reference(s, q, k, v, out, lse, dout, key_mask, dq, dk, dv);
  const int64_t D = s.D, Tq = s.Tq;
  const int64_t group = s.Hq / s.Hkv;
  const int64_t kv_slice = s.Tk * D;  // elements of one kv head's [Tk, D]
  // Query head (b, h)'s gradients into dK / dV (its kv head's slice, or a private partial).
  auto head = [&](int64_t b, int64_t h, float* dK, float* dV, BackwardScratch& sc) {
    const int64_t bh = b * s.Hq + h;
    backward_head(head_major_view(s, b, h, q, k, v, key_mask), out + bh * Tq * D, D, lse + bh * Tq,
                  dout + bh * Tq * D, D, dq + bh * Tq * D, D, dK, D, dV, D, sc);
  };

  // dK/dV sum over the query heads of a group. Three ways to avoid write conflicts:
  //  - no grouping: one unit per (b, h) writes its own kv slice;
  //  - enough (b, g) pairs to fill the threads: one unit per kv head loops over its query heads;
  //  - otherwise: one unit per (b, h) into private partial slices, then a reduction.
  if (group == 1 || s.B * s.Hkv >= 2 * static_cast<int64_t>(num_threads())) {
    parallel_for(s.B * s.Hkv, 1, [&](int64_t u0, int64_t u1) {
      BackwardScratch sc(D);
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t b = u / s.Hkv, g = u % s.Hkv;
        float* dK = dk + u * kv_slice;
        float* dV = dv + u * kv_slice;
        std::fill(dK, dK + kv_slice, 0.0f);
        std::fill(dV, dV + kv_slice, 0.0f);
        for (int64_t h = g * group; h < (g + 1) * group; ++h) head(b, h, dK, dV, sc);
      }
    });
    return;
  }
  // Partials [B, Hq, Tk, D] for dK and dV.
  std::vector<float> dkp(s.B * s.Hq * kv_slice), dvp(s.B * s.Hq * kv_slice);
  parallel_for(s.B * s.Hq, 1, [&](int64_t u0, int64_t u1) {
    BackwardScratch sc(D);
    // vectors start zeroed: backward_head only accumulates into them
    for (int64_t u = u0; u < u1; ++u) head(u / s.Hq, u % s.Hq, dkp.data() + u * kv_slice, dvp.data() + u * kv_slice, sc);
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
// Fast path, token-major rows of a packed projection

void check_attention_rows_shape(const AttentionRowsShape& s, const int32_t* offsets) {
  TK_CHECK(s.N >= 0 && s.S >= 0 && s.H >= 1 && s.D >= 1, Shape, "attentionRows: expected N >= 0, S >= 0, H >= 1, D >= 1 but got N=",
           s.N, " S=", s.S, " H=", s.H, " D=", s.D);
  TK_CHECK(std::isfinite(s.scale), Value, "attentionRows: scale must be finite, got ", s.scale);
  TK_CHECK(offsets != nullptr, Shape, "attentionRows: sequence offsets are required");
  TK_CHECK(offsets[0] == 0 && offsets[s.S] == s.N, Shape, "attentionRows: sequence offsets must run from 0 to N = ", s.N,
           ", got ", offsets[0], " .. ", offsets[s.S]);
  for (int64_t i = 0; i < s.S; ++i) {
    TK_CHECK(offsets[i + 1] >= offsets[i], Shape, "attentionRows: sequence offsets must not decrease: offset ", i + 1, " is ",
             offsets[i + 1], ", below ", offsets[i]);
    TK_CHECK(!s.last_query_only || offsets[i + 1] > offsets[i], Shape, "attentionRows: sequence ", i,
             " is empty, but with lastQueryOnly every sequence needs a last row");
  }
}

namespace {

// The view of head h of sequence `seq` among the token-major rows (see attention.h): its queries
// are its rows from q0 on (q0 = 0, or its last row with last_query_only), its keys all its rows.
HeadView rows_view(const AttentionRowsShape& s, const float* qkv, const int32_t* offsets, const int32_t* key_mask,
                   int64_t seq, int64_t h) {
  const int64_t C = s.H * s.D, r0 = offsets[seq], len = offsets[seq + 1] - r0;
  const int64_t q0 = s.last_query_only ? len - 1 : 0;
  AttentionShape hs;
  hs.B = hs.Hq = hs.Hkv = 1;
  hs.Tq = len - q0;
  hs.Tk = len;
  hs.D = s.D;
  hs.scale = s.scale;
  hs.causal = s.causal;  // query i sits at position Tk - Tq + i = q0 + i
  const float* row = qkv + r0 * 3 * C + h * s.D;
  return {hs, row + q0 * 3 * C, row + C, row + 2 * C, 3 * C, 3 * C, 3 * C, key_mask ? key_mask + r0 : nullptr};
}

// Where sequence `seq`'s first query row sits in out, dout and each head's lse: its first row, or
// the sequence's own index with last_query_only (one row a sequence).
inline int64_t query_base(const AttentionRowsShape& s, const int32_t* offsets, int64_t seq) {
  return s.last_query_only ? seq : offsets[seq];
}
inline int64_t query_rows(const AttentionRowsShape& s) { return s.last_query_only ? s.S : s.N; }

}  // namespace

namespace {

// A unit of the token-major kernels: heads h0 .. h1 of one sequence. With enough sequences to
// keep every thread busy a unit is a whole sequence, so two threads never work on the same rows
// (neighbouring heads of a row share pages and prefetched cache lines); otherwise one head.
// Costliest first (a causal head costs ~ len^2).
struct RowsUnit {
  int64_t seq, h0, h1, cost;
};

template <class Make, class Fn>
void for_each_rows_unit(const AttentionRowsShape& s, const int32_t* offsets, Make make_scratch, Fn fn) {
  const bool whole = s.S >= 2 * static_cast<int64_t>(num_threads());
  std::vector<RowsUnit> units;
  for (int64_t seq = 0; seq < s.S; ++seq) {
    const int64_t len = offsets[seq + 1] - offsets[seq];
    if (len == 0) continue;
    if (whole) {
      units.push_back({seq, 0, s.H, len * len * s.H});
    } else {
      for (int64_t h = 0; h < s.H; ++h) units.push_back({seq, h, h + 1, len * len});
    }
  }
  std::stable_sort(units.begin(), units.end(), [](const RowsUnit& a, const RowsUnit& b) { return a.cost > b.cost; });
  using Scratch = decltype(make_scratch());
  for_each_unit<Scratch>(static_cast<int64_t>(units.size()), make_scratch, [&](int64_t u, Scratch& sc) { fn(units[u], sc); });
}

}  // namespace

void attention_rows_forward_f32(const AttentionRowsShape& s, const float* qkv, const int32_t* offsets,
                                const int32_t* key_mask, float* out, float* lse) {
  check_attention_rows_shape(s, offsets);
  const int64_t C = s.H * s.D, NQ = query_rows(s);
  for_each_rows_unit(s, offsets, [&] { return ForwardScratch(s.D); }, [&](const RowsUnit& w, ForwardScratch& sc) {
    const int64_t q = query_base(s, offsets, w.seq);
    for (int64_t h = w.h0; h < w.h1; ++h) {
      const HeadView v = rows_view(s, qkv, offsets, key_mask, w.seq, h);
      for (int64_t i0 = 0; i0 < v.s.Tq; i0 += kQTile)
        forward_query_tile(v, i0, out + (q + i0) * C + h * s.D, C, lse + h * NQ + q + i0, sc);
    }
  });
}

void attention_rows_backward_f32(const AttentionRowsShape& s, const float* qkv, const int32_t* offsets,
                                 const int32_t* key_mask, const float* out, const float* lse, const float* dout,
                                 float* dqkv) {
  check_attention_rows_shape(s, offsets);
  const int64_t C = s.H * s.D, NQ = query_rows(s);
  // each unit writes its own columns of its own rows of dqkv
  for_each_rows_unit(s, offsets, [&] { return BackwardScratch(s.D); }, [&](const RowsUnit& w, BackwardScratch& sc) {
    const int64_t r0 = offsets[w.seq], len = offsets[w.seq + 1] - r0, q = query_base(s, offsets, w.seq);
    for (int64_t h = w.h0; h < w.h1; ++h) {
      const HeadView v = rows_view(s, qkv, offsets, key_mask, w.seq, h);
      float* dQ = dqkv + r0 * 3 * C + h * s.D;  // the sequence's first row; its queries from row len - Tq
      float* dK = dQ + C;
      float* dV = dQ + 2 * C;
      for (int64_t r = 0; r < len; ++r) {
        std::fill(dK + r * 3 * C, dK + r * 3 * C + s.D, 0.0f);
        std::fill(dV + r * 3 * C, dV + r * 3 * C + s.D, 0.0f);
        if (r < len - v.s.Tq) std::fill(dQ + r * 3 * C, dQ + r * 3 * C + s.D, 0.0f);  // rows that are not queries
      }
      backward_head(v, out + q * C + h * s.D, C, lse + h * NQ + q, dout + q * C + h * s.D, C,
                    dQ + (len - v.s.Tq) * 3 * C, 3 * C, dK, 3 * C, dV, 3 * C, sc);
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
