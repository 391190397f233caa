// AVX-512 GEMM microkernels, packers and traits (include only from *_avx512.cpp files, compiled
// with -mavx512f/bw/dq/vl/bf16 -mfma; called only when cpu_features() reports them). Shared by
// gemm_avx512.cpp and nf4_avx512.cpp (fused NF4 GEMM), internal linkage in each.
//
// f32: 14 x 32 tile = 28 zmm accumulators. Per k: 2 zmm loads of the packed B row (32 floats),
// 14 broadcasts of packed A, 28 FMAs. On the Zen 4 CPU this was tuned on (512-bit FMA issued at
// 1/cycle, latency 4) every shape from 4x96 to 14x32 reaches the same L1 peak (~116 GFLOP/s per
// core); 14x32 has the fewest loads per FMA and divides the power-of-two N sizes, and partial
// tiles cost nothing extra: rows below 14 use a smaller instantiation, columns use write masks.
//
// bf16: same tile with vdpbf16ps, which multiplies bf16 pairs (k, k+1) and accumulates in f32:
// B is packed as [k/2][32 columns][2], A as [k/2][14 rows][2] so one 32-bit broadcast feeds a row.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "gemm_driver.h"

namespace tk::cpu::gemm_detail {
namespace {

inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

constexpr int kMR = 14, kNV = 2, kNR = 16 * kNV;

// Masks for the NV 16-column parts of a tile that is nr (1..16*NV) columns wide.
template <int NV = kNV>
inline void column_masks(int nr, __mmask16 m[NV]) {
  for (int v = 0; v < NV; ++v) {
    const int n = nr - 16 * v;
    m[v] = n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
  }
}

// C[M, nr] = alpha * acc + beta * C (beta == 0: C is not read).
template <int M, int NV = kNV>
__attribute__((always_inline)) inline void store_tile(__m512 (&acc)[M][NV], int nr, float* C, int64_t ldc,
                                                       float alpha, float beta) {
  __mmask16 m[NV];
  column_masks<NV>(nr, m);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      float* c = C + i * ldc + 16 * v;
      __m512 r = _mm512_mul_ps(acc[i][v], va);
      if (beta != 0.0f) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m[v], c), vb, r);
      _mm512_mask_storeu_ps(c, m[v], r);
    }
  }
}

// Every cache line of one C tile row (16*NV floats from c): NV lines, plus the line holding the
// last element when rows are not 64-byte aligned (ldc = 50257 puts almost every row off).
template <int NV>
__attribute__((always_inline)) inline void prefetch_c_row(const float* c, bool unaligned) {
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + 16 * v), _MM_HINT_T0);
  if (unaligned) _mm_prefetch(reinterpret_cast<const char*>(c + 16 * NV - 1), _MM_HINT_T0);
}

// k steps between the C-row prefetches of kernel_f32_rows_spread (see there).
constexpr int64_t kCRowPrefetchEvery = 4;

// A microkernel's `steps` k steps, step() each, with C's M rows (16*NV floats each) prefetched
// one at a time, row i at step i * kCRowPrefetchEvery (steps >= M * kCRowPrefetchEvery; see
// kernel_f32_rows_spread for why).
template <int M, int NV, class Step>
__attribute__((always_inline)) inline void steps_prefetching_c(int64_t steps, const float* C, int64_t ldc, Step&& step) {
  constexpr int every = static_cast<int>(kCRowPrefetchEvery);
  const bool unaligned = ((reinterpret_cast<uintptr_t>(C) | static_cast<uintptr_t>(ldc) * 4) & 63) != 0;
  const float* c_row = C;
  for (int i = 0; i < M; ++i) {  // steps [0, M * every)
    prefetch_c_row<NV>(c_row, unaligned);
    c_row += ldc;
#pragma GCC unroll 4
    for (int u = 0; u < every; ++u) step();
  }
  for (int64_t k = static_cast<int64_t>(M) * every; k < steps; ++k) step();
}

// One k step of the f32 microkernel: acc[i][v] += A[i] * B[16v .. 16v+15].
template <int M, int NV>
__attribute__((always_inline)) inline void fma_step(__m512 (&acc)[M][NV], const float* __restrict Ap,
                                                    const float* __restrict Bp) {
  __m512 b[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(Bp + 16 * v);
  _mm_prefetch(reinterpret_cast<const char*>(Bp + 8 * 16 * NV), _MM_HINT_T0);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    const __m512 a = _mm512_set1_ps(Ap[i]);
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
  }
}

// M rows (<= MRS, the packed A panel's row count) x 16*NV columns, the k loop too short to
// spread the C prefetches over (kernel_f32_rows): all of C's rows prefetched up front, first
// line of each 16-column half (for K = 8 the whole call is a few hundred cycles, and any extra
// work here measured slower).
template <int M, int MRS, int NV>
__attribute__((noinline)) void kernel_f32_rows_short(int64_t kc, const float* __restrict Ap,
                                                     const float* __restrict Bp, int nr, float* C, int64_t ldc,
                                                     float alpha, float beta) {
  constexpr int NR = 16 * NV;
  __m512 acc[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16 * v), _MM_HINT_T0);
      acc[i][v] = _mm512_setzero_ps();
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    fma_step<M, NV>(acc, Ap, Bp);
    Ap += MRS;
    Bp += NR;
  }
  store_tile<M, NV>(acc, nr, C, ldc, alpha, beta);
}

// Same, kc >= M * kCRowPrefetchEvery: C row i is prefetched at k step i * kCRowPrefetchEvery
// rather than all at the start. When C comes from L3 or DRAM (the 154 MB C of the LM-head
// weight gradient, 768 x 50257) 28 simultaneous prefetches (2 per tile row) fill the L1 miss
// buffers, and the packed-A/B loads queue behind them for a memory latency per tile. Spread out,
// a few are in flight at a time and they still land thousands of cycles before store_tile
// needs them (that shape: ~100 -> ~107 GFLOP/s on one core; the other shapes gained 2-10%).
template <int M, int MRS, int NV>
__attribute__((noinline)) void kernel_f32_rows_spread(int64_t kc, const float* __restrict Ap,
                                                      const float* __restrict Bp, int nr, float* C, int64_t ldc,
                                                      float alpha, float beta) {
  constexpr int NR = 16 * NV;
  __m512 acc[M][NV];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  steps_prefetching_c<M, NV>(kc, C, ldc, [&]() __attribute__((always_inline)) {
    fma_step<M, NV>(acc, Ap, Bp);
    Ap += MRS;
    Bp += NR;
  });
  store_tile<M, NV>(acc, nr, C, ldc, alpha, beta);
}

// M rows (<= MRS, the packed A panel's row count) x 16*NV columns: C[M, nr] = alpha * Ap*Bp +
// beta * C. Two bodies (above) so that each is register-allocated on its own: sharing one
// function cost the short one ~5% at K = 8.
template <int M, int MRS = kMR, int NV = kNV>
void kernel_f32_rows(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, int nr, float* C,
                     int64_t ldc, float alpha, float beta) {
  if (kc < M * kCRowPrefetchEvery) kernel_f32_rows_short<M, MRS, NV>(kc, Ap, Bp, nr, C, ldc, alpha, beta);
  else kernel_f32_rows_spread<M, MRS, NV>(kc, Ap, Bp, nr, C, ldc, alpha, beta);
}

// One k pair of the bf16 microkernel: acc[i][v] += A[i, k..k+1] . B[k..k+1, 16v .. 16v+15]
// (vdpbf16ps sums each pair's two products into the f32 lane).
template <int M>
__attribute__((always_inline)) inline void dpbf16_step(__m512 (&acc)[M][kNV], const uint16_t* __restrict Ap,
                                                       const uint16_t* __restrict Bp) {
  // the B row pair: 32 columns x 2 bf16 = 2 zmm
  const __m512bh b0 = (__m512bh)_mm512_load_si512(Bp);
  const __m512bh b1 = (__m512bh)_mm512_load_si512(Bp + 32);
  _mm_prefetch(reinterpret_cast<const char*>(Bp + 16 * kNR), _MM_HINT_T0);
  const uint32_t* a32 = reinterpret_cast<const uint32_t*>(Ap);
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(a32[i]));
    acc[i][0] = _mm512_dpbf16_ps(acc[i][0], a, b0);
    acc[i][1] = _mm512_dpbf16_ps(acc[i][1], a, b1);
  }
}

// M rows x 32 columns, fewer k pairs than M * kCRowPrefetchEvery: C's rows prefetched up front
// (as kernel_f32_rows_short).
template <int M>
__attribute__((noinline)) void kernel_bf16_rows_short(int64_t kcp, const uint16_t* __restrict Ap,
                                                      const uint16_t* __restrict Bp, int nr, float* C, int64_t ldc,
                                                      float alpha, float beta) {
  __m512 acc[M][kNV];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc + 16), _MM_HINT_T0);
#pragma GCC unroll 2
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  for (int64_t p = 0; p < kcp; p += 2) {
    dpbf16_step<M>(acc, Ap, Bp);
    Ap += 2 * kMR;
    Bp += 2 * kNR;
  }
  store_tile<M>(acc, nr, C, ldc, alpha, beta);
}

// Same, C row i prefetched at k pair i * kCRowPrefetchEvery (as kernel_f32_rows_spread, for the
// same reason: the LM head's logits, 512 x 50257 with unaligned rows, come from DRAM, and 28+
// prefetches at once stall the packed loads behind them).
template <int M>
__attribute__((noinline)) void kernel_bf16_rows_spread(int64_t kcp, const uint16_t* __restrict Ap,
                                                       const uint16_t* __restrict Bp, int nr, float* C,
                                                       int64_t ldc, float alpha, float beta) {
  __m512 acc[M][kNV];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
#pragma GCC unroll 2
    for (int v = 0; v < kNV; ++v) acc[i][v] = _mm512_setzero_ps();
  }
  steps_prefetching_c<M, kNV>(kcp / 2, C, ldc, [&]() __attribute__((always_inline)) {  // one k pair a step
    dpbf16_step<M>(acc, Ap, Bp);
    Ap += 2 * kMR;
    Bp += 2 * kNR;
  });
  store_tile<M>(acc, nr, C, ldc, alpha, beta);
}

// M rows x 32 columns from packed bf16 pairs; kcp (even) k values.
template <int M>
void kernel_bf16_rows(int64_t kcp, const uint16_t* __restrict Ap, const uint16_t* __restrict Bp, int nr,
                      float* C, int64_t ldc, float alpha, float beta) {
  if (kcp < 2 * M * kCRowPrefetchEvery) kernel_bf16_rows_short<M>(kcp, Ap, Bp, nr, C, ldc, alpha, beta);
  else kernel_bf16_rows_spread<M>(kcp, Ap, Bp, nr, C, ldc, alpha, beta);
}

template <class P>
using RowsKernel = void (*)(int64_t, const P*, const P*, int, float*, int64_t, float, float);

template <int M>
struct F32Rows {
  static constexpr RowsKernel<float> fn = &kernel_f32_rows<M>;
};
template <int M>
struct BF16Rows {
  static constexpr RowsKernel<uint16_t> fn = &kernel_bf16_rows<M>;
};

// mr -> kernel for exactly mr rows (index 0 unused).
const RowsKernel<float> kF32ByRows[kMR + 1] = {
    nullptr,           F32Rows<1>::fn,  F32Rows<2>::fn,  F32Rows<3>::fn,  F32Rows<4>::fn,
    F32Rows<5>::fn,    F32Rows<6>::fn,  F32Rows<7>::fn,  F32Rows<8>::fn,  F32Rows<9>::fn,
    F32Rows<10>::fn,   F32Rows<11>::fn, F32Rows<12>::fn, F32Rows<13>::fn, F32Rows<14>::fn};
const RowsKernel<uint16_t> kBF16ByRows[kMR + 1] = {
    nullptr,           BF16Rows<1>::fn,  BF16Rows<2>::fn,  BF16Rows<3>::fn,  BF16Rows<4>::fn,
    BF16Rows<5>::fn,   BF16Rows<6>::fn,  BF16Rows<7>::fn,  BF16Rows<8>::fn,  BF16Rows<9>::fn,
    BF16Rows<10>::fn,  BF16Rows<11>::fn, BF16Rows<12>::fn, BF16Rows<13>::fn, BF16Rows<14>::fn};


// ---- Packing ---------------------------------------------------------------------------------
// The transposing cases (A not transposed, B transposed) are 16 x 16 register transposes of
// 32-bit elements: an f32, or a bf16 pair (k, k+1), which is what the bf16 panels group anyway.
// Loads are masked to the valid rows/columns, so nothing past the matrices is read and padding
// comes out as zeros.

// r[i] holds row i (16 x 32-bit); afterwards r[c] holds column c.
__attribute__((always_inline)) inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // r[4i+q], 128-bit lane L: column 4L+q of rows 4i..4i+3
    r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {  // 4 x 4 transpose of 128-bit lanes
    t[q] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
    t[q + 4] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
    t[q + 8] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
    t[q + 12] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
    r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xDD);
    r[q + 4] = _mm512_shuffle_f32x4(t[q + 4], t[q + 12], 0x88);
    r[q + 12] = _mm512_shuffle_f32x4(t[q + 4], t[q + 12], 0xDD);
  }
}

inline __mmask16 low_mask16(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
inline __mmask32 low_mask32(int n) { return n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1u); }

// Rows 0..rows-1 of a strided 32-bit matrix (row r at base + r*ld elements of E), first `n`
// elements of E each (masked), transposed: r[c] = column c. E is float or uint16_t; for uint16_t
// a 32-bit column is a bf16 pair and n counts uint16 elements (an odd n zero-fills the last pair).
template <class E>
__attribute__((always_inline)) inline void load_transpose(const E* base, int64_t ld, int rows, int n,
                                                          __m512 (&r)[16]) {
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i < rows) {
      // The next chunks of these rows are 64 B further on: 16+ concurrent streams are more than
      // the hardware prefetcher follows, so ask for them 4 chunks ahead.
      _mm_prefetch(reinterpret_cast<const char*>(base + i * ld) + 256, _MM_HINT_T0);
      if constexpr (sizeof(E) == 4) r[i] = _mm512_maskz_loadu_ps(low_mask16(n), base + i * ld);
      else r[i] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(low_mask32(n), base + i * ld));
    } else {
      r[i] = _mm512_setzero_ps();
    }
  }
  transpose16(r);
}

// 16 f32 -> 16 bf16 bits, round to nearest even, a NaN kept and made quiet: round_to_bf16_bits
// lane by lane (integer arithmetic: vcvtne2ps2bf16 would flush denormals, which cast() keeps).
__attribute__((always_inline)) inline __m256i round_to_bf16x16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb);
  r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
  return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

// load_transpose for bf16 pairs read from f32: rows 0..rows-1 of a strided f32 matrix, first n
// (<= 32) values each (masked, the rest zero), rounded to bf16; r[c] = column c of 32-bit pairs.
__attribute__((always_inline)) inline void load_round_transpose(const float* base, int64_t ld, int rows, int n,
                                                                __m512 (&r)[16]) {
  const __mmask16 m0 = low_mask16(std::min(n, 16)), m1 = low_mask16(std::max(0, n - 16));
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i < rows) {
      const float* row = base + i * ld;
      _mm_prefetch(reinterpret_cast<const char*>(row) + 512, _MM_HINT_T0);  // 4 chunks ahead
      const __m256i lo = round_to_bf16x16(_mm512_maskz_loadu_ps(m0, row));
      const __m256i hi = round_to_bf16x16(_mm512_maskz_loadu_ps(m1, row + 16));
      r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
    } else {
      r[i] = _mm512_setzero_ps();
    }
  }
  transpose16(r);
}

// Interleave two rows of uint16 (k and k+1) into 32-bit pairs: lo = columns 0..15, hi = 16..31.
__attribute__((always_inline)) inline void interleave_pairs(__m512i r0, __m512i r1, __m512i& lo, __m512i& hi) {
  alignas(64) static const uint16_t kLo[32] = {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
                                               8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47};
  alignas(64) static const uint16_t kHi[32] = {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
                                               24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63};
  lo = _mm512_permutex2var_epi16(r0, _mm512_load_si512(kLo), r1);
  hi = _mm512_permutex2var_epi16(r0, _mm512_load_si512(kHi), r1);
}

// f32 panels: A [kc][MR_], B [kc][NR_] (MR_ <= 16; NR_ = 8, 16 or 32).
template <int MR_, int NR_>
struct PackF32T {
  // B not transposed, 32-column panels, f32 input: the whole [kc x nc] block, reading each B row
  // across kPanelsPerRun panels (1 KiB contiguous) instead of one panel (128 bytes) at a time.
  // When B comes from DRAM with a long row stride (dY of the LM head: 512 x 50257, 196 KiB per
  // row) a panel at a time reads 128 bytes from each page it opens; packing that B alone went
  // from ~7 to ~11 GB/s (1, 4, 8, 16 and 93 panels per run measured: 8 best, 4-93 within 10%),
  // i.e. from ~4.5% to ~3% of the GEMM. Only for a B larger than the L3 (32 MiB), which must come
  // from DRAM: from cache the panel-by-panel order is faster (~2x on a 6 MiB B), since the run
  // order scatters its stores over kPanelsPerRun panels 128*kc bytes apart. f32 panels have
  // kcp == kc (KU is 1), so there is no k padding to write. InB is a template parameter because
  // traits deriving from these (NF4) have other B types; for them this declines.
  template <class InB>
  static bool fast_pack_b_block(const GemmShape& s, const InB* B, int64_t j0, int64_t nc, int64_t k0, int64_t kc,
                                int64_t kcp, float* dst) {
    if constexpr (!std::is_same_v<InB, float> || NR_ != 32) {
      return false;
    } else {
      constexpr double kMinBBytes = 32.0 * (1 << 20);
      if (s.transB || static_cast<double>(s.K) * static_cast<double>(s.N) * sizeof(float) < kMinBBytes) return false;
      constexpr int64_t kPanelsPerRun = 8;
      for (int64_t jg = 0; jg < nc; jg += kPanelsPerRun * NR_) {
        const int64_t width = std::min<int64_t>(kPanelsPerRun * NR_, nc - jg);
        for (int64_t k = 0; k < kc; ++k) {
          const float* src = B + (k0 + k) * s.ldb + j0 + jg;
          for (int64_t jr = 0; jr < width; jr += NR_) {
            const int nr = static_cast<int>(std::min<int64_t>(NR_, width - jr));
            float* d = dst + (jg + jr) * kcp + k * NR_;
            _mm512_store_ps(d, _mm512_maskz_loadu_ps(low_mask16(nr), src + jr));
            _mm512_store_ps(d + 16, _mm512_maskz_loadu_ps(low_mask16(std::max(0, nr - 16)), src + jr + 16));
          }
        }
      }
      return true;
    }
  }

  static bool fast_pack_a(const GemmShape& s, const float* A, int64_t i0, int mr, int64_t k0, int64_t kc,
                          int64_t kcp, float* dst) {
    const __mmask16 keep = low_mask16(MR_);
    if (s.transA) {  // row k of A^T storage holds the 14 values contiguously
      const __mmask16 m = low_mask16(mr);
      for (int64_t k = 0; k < kc; ++k)
        _mm512_mask_storeu_ps(dst + k * MR_, keep, _mm512_maskz_loadu_ps(m, A + (k0 + k) * s.lda + i0));
    } else {
      __m512 r[16];
      for (int64_t k = 0; k < kc; k += 16) {
        const int n = static_cast<int>(std::min<int64_t>(16, kc - k));
        load_transpose(A + i0 * s.lda + k0 + k, s.lda, mr, n, r);
        for (int kk = 0; kk < n; ++kk) _mm512_mask_storeu_ps(dst + (k + kk) * MR_, keep, r[kk]);
      }
    }
    for (int64_t k = kc; k < kcp; ++k) _mm512_mask_storeu_ps(dst + k * MR_, keep, _mm512_setzero_ps());
    return true;
  }
  static bool fast_pack_b(const GemmShape& s, const float* B, int64_t j0, int nr, int64_t k0, int64_t kc,
                          int64_t kcp, float* dst) {
    if (!s.transB) {
      const __mmask16 m0 = low_mask16(nr), m1 = low_mask16(std::max(0, nr - 16));
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = B + (k0 + k) * s.ldb + j0;
        if constexpr (NR_ == 8) {
          _mm256_store_ps(dst + k * NR_, _mm512_castps512_ps256(_mm512_maskz_loadu_ps(m0, src)));
          continue;
        }
        _mm512_store_ps(dst + k * NR_, _mm512_maskz_loadu_ps(m0, src));
        if constexpr (NR_ == 32) _mm512_store_ps(dst + k * NR_ + 16, _mm512_maskz_loadu_ps(m1, src + 16));
      }
    } else {
      // One 16-row group at a time down the whole kc: 16 sequential read streams (prefetched in
      // load_transpose) rather than 32 interleaved ones, which matters when B comes from DRAM
      // (the 50257 x 768 LM-head weight).
      __m512 r[16];
      constexpr int kGroups = NR_ == 8 ? 1 : NR_ / 16;
      for (int h = 0; h < kGroups; ++h) {
        const int rows = std::max(0, std::min(std::min(16, NR_), nr - 16 * h));
        for (int64_t k = 0; k < kc; k += 16) {
          const int n = static_cast<int>(std::min<int64_t>(16, kc - k));
          if (rows > 0) load_transpose(B + (j0 + 16 * h) * s.ldb + k0 + k, s.ldb, rows, n, r);
          for (int kk = 0; kk < n; ++kk) {
            const __m512 v = rows > 0 ? r[kk] : _mm512_setzero_ps();
            if constexpr (NR_ == 8) _mm256_store_ps(dst + (k + kk) * NR_, _mm512_castps512_ps256(v));
            else _mm512_store_ps(dst + (k + kk) * NR_ + 16 * h, v);
          }
        }
      }
    }
    for (int64_t k = kc; k < kcp; ++k)
      for (int j = 0; j < NR_; j += 8) _mm256_store_ps(dst + k * NR_ + j, _mm256_setzero_ps());
    return true;
  }
};

using PackF32 = PackF32T<kMR, kNR>;

// bf16 pair panels: A [kcp/2][14][2], B [kcp/2][32][2] (uint16).
struct PackBF16 {
  template <class... Args>
  static bool fast_pack_b_block(Args&&...) { return false; }
  static bool fast_pack_a(const GemmShape& s, const uint16_t* A, int64_t i0, int mr, int64_t k0, int64_t kc,
                          int64_t kcp, uint16_t* dst) {
    const int64_t pairs = kcp / 2;
    if (!s.transA) {  // the pair (k, k+1) of a row is contiguous: transpose 32-bit pairs
      __m512 r[16];
      for (int64_t p = 0; p < pairs; p += 16) {
        const int np = static_cast<int>(std::min<int64_t>(16, pairs - p));
        const int n = static_cast<int>(std::min<int64_t>(32, kc - 2 * p));
        load_transpose(A + i0 * s.lda + k0 + 2 * p, s.lda, mr, n, r);
        for (int pp = 0; pp < np; ++pp)
          _mm512_mask_storeu_epi32(dst + (p + pp) * 2 * kMR, low_mask16(kMR), _mm512_castps_si512(r[pp]));
      }
    } else {  // rows k and k+1 of A^T storage hold the 14 values each: interleave them
      const __mmask32 m = low_mask32(mr);
      for (int64_t p = 0; p < pairs; ++p) {
        const int64_t k = 2 * p;
        const __m512i r0 = _mm512_maskz_loadu_epi16(m, A + (k0 + k) * s.lda + i0);
        const __m512i r1 = k + 1 < kc ? _mm512_maskz_loadu_epi16(m, A + (k0 + k + 1) * s.lda + i0)
                                      : _mm512_setzero_si512();
        __m512i lo, hi;
        interleave_pairs(r0, r1, lo, hi);
        _mm512_mask_storeu_epi16(dst + p * 2 * kMR, low_mask32(2 * kMR), lo);
      }
    }
    return true;
  }
  static bool fast_pack_b(const GemmShape& s, const uint16_t* B, int64_t j0, int nr, int64_t k0, int64_t kc,
                          int64_t kcp, uint16_t* dst) {
    const int64_t pairs = kcp / 2;
    if (s.transB) {  // pairs contiguous in each row of B storage
      // One 16-row group at a time down the whole kc, as the f32 packer does: 16 sequential read
      // streams rather than 32 interleaved ones (the LM head's 50257 x 768 weight comes from DRAM)
      __m512 r[16];
      for (int h = 0; h < 2; ++h) {
        const int rows = std::max(0, std::min(16, nr - 16 * h));
        for (int64_t p = 0; p < pairs; p += 16) {
          const int np = static_cast<int>(std::min<int64_t>(16, pairs - p));
          const int n = static_cast<int>(std::min<int64_t>(32, kc - 2 * p));
          if (rows == 0) {
            for (int pp = 0; pp < np; ++pp) _mm512_store_si512(dst + (p + pp) * 2 * kNR + 32 * h, _mm512_setzero_si512());
            continue;
          }
          load_transpose(B + (j0 + 16 * h) * s.ldb + k0 + 2 * p, s.ldb, rows, n, r);
          for (int pp = 0; pp < np; ++pp)
            _mm512_store_si512(dst + (p + pp) * 2 * kNR + 32 * h, _mm512_castps_si512(r[pp]));
        }
      }
    } else {  // rows k and k+1 of B: interleave
      const __mmask32 m = low_mask32(nr);
      for (int64_t p = 0; p < pairs; ++p) {
        const int64_t k = 2 * p;
        const __m512i r0 = _mm512_maskz_loadu_epi16(m, B + (k0 + k) * s.ldb + j0);
        const __m512i r1 = k + 1 < kc ? _mm512_maskz_loadu_epi16(m, B + (k0 + k + 1) * s.ldb + j0)
                                      : _mm512_setzero_si512();
        __m512i lo, hi;
        interleave_pairs(r0, r1, lo, hi);
        _mm512_store_si512(dst + p * 2 * kNR, lo);
        _mm512_store_si512(dst + p * 2 * kNR + 32, hi);
      }
    }
    return true;
  }
};

// Blocking for a 1 MiB-L2 / 32 MiB-L3 core: A block 168 x 384 f32 = 252 KiB (L2), B micro-panel
// 384 x 32 f32 = 48 KiB, B block 384 x 3072 f32 = 4.5 MiB (L3, one per thread).
struct TraitsF32 : PackF32 {
  using InA = float;
  using InB = float;
  using Packed = float;
  static constexpr int MR = kMR, NR = kNR, KU = 1;
  static constexpr int64_t MC = 168, KC = 384, NC = 3072;
  static float to_packed(float v) { return v; }
  static void kernel(int mr, int nr, int64_t kcp, const float* Ap, const float* Bp, float* C, int64_t ldc,
                     float alpha, float beta) {
    if (mr == kMR) kernel_f32_rows<kMR>(kcp, Ap, Bp, nr, C, ldc, alpha, beta);
    else kF32ByRows[mr](kcp, Ap, Bp, nr, C, ldc, alpha, beta);
  }
};

// Narrow C (N <= 16, e.g. LoRA's x A^T with rank 8 or 16): 16 x 16 tiles, so a rank-8 product
// uses half of each vector instead of a quarter of the 14 x 32 tile. 16 accumulators cover the
// FMA latency; 16 broadcasts + 1 load per 16 FMAs is within Zen 4's load bandwidth.
constexpr int kNarrowMR = 16, kNarrowNR = 16;
template <int M>
struct F32NarrowRows {
  static constexpr RowsKernel<float> fn = &kernel_f32_rows<M, kNarrowMR, 1>;
};
const RowsKernel<float> kF32NarrowByRows[kNarrowMR + 1] = {
    nullptr,              F32NarrowRows<1>::fn,  F32NarrowRows<2>::fn,  F32NarrowRows<3>::fn,
    F32NarrowRows<4>::fn, F32NarrowRows<5>::fn,  F32NarrowRows<6>::fn,  F32NarrowRows<7>::fn,
    F32NarrowRows<8>::fn, F32NarrowRows<9>::fn,  F32NarrowRows<10>::fn, F32NarrowRows<11>::fn,
    F32NarrowRows<12>::fn, F32NarrowRows<13>::fn, F32NarrowRows<14>::fn, F32NarrowRows<15>::fn,
    F32NarrowRows<16>::fn};

struct TraitsF32Narrow : PackF32T<kNarrowMR, kNarrowNR> {
  using InA = float;
  using InB = float;
  using Packed = float;
  static constexpr int MR = kNarrowMR, NR = kNarrowNR, KU = 1;
  static constexpr int64_t MC = 192, KC = 384, NC = 3072;
  static float to_packed(float v) { return v; }
  static void kernel(int mr, int nr, int64_t kcp, const float* Ap, const float* Bp, float* C, int64_t ldc,
                     float alpha, float beta) {
    kF32NarrowByRows[mr](kcp, Ap, Bp, nr, C, ldc, alpha, beta);
  }
};

// N <= 8 (LoRA rank 8 and below): 16 x 8 tiles in ymm registers. Zen 4 executes a 512-bit FMA
// as two 256-bit halves, so two ymm FMAs per cycle cost the same as one zmm FMA: 8-wide tiles
// waste nothing where a 16-wide tile would waste half.
template <int M>
void kernel_f32_rows_x8(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, int nr, float* C,
                        int64_t ldc, float alpha, float beta) {
  __m256 acc[M];
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
    acc[i] = _mm256_setzero_ps();
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b = _mm256_load_ps(Bp);
#pragma GCC unroll 16
    for (int i = 0; i < M; ++i) acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(Ap[i]), b, acc[i]);
    Ap += kNarrowMR;
    Bp += 8;
  }
  const __mmask8 m = nr >= 8 ? __mmask8(0xFF) : __mmask8((1u << nr) - 1u);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    __m256 r = _mm256_mul_ps(acc[i], va);
    if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, c), vb, r);
    _mm256_mask_storeu_ps(c, m, r);
  }
}
template <int M>
struct F32X8Rows {
  static constexpr RowsKernel<float> fn = &kernel_f32_rows_x8<M>;
};
const RowsKernel<float> kF32X8ByRows[kNarrowMR + 1] = {
    nullptr,          F32X8Rows<1>::fn,  F32X8Rows<2>::fn,  F32X8Rows<3>::fn,  F32X8Rows<4>::fn,
    F32X8Rows<5>::fn, F32X8Rows<6>::fn,  F32X8Rows<7>::fn,  F32X8Rows<8>::fn,  F32X8Rows<9>::fn,
    F32X8Rows<10>::fn, F32X8Rows<11>::fn, F32X8Rows<12>::fn, F32X8Rows<13>::fn, F32X8Rows<14>::fn,
    F32X8Rows<15>::fn, F32X8Rows<16>::fn};

struct TraitsF32X8 : PackF32T<kNarrowMR, 8> {
  using InA = float;
  using InB = float;
  using Packed = float;
  static constexpr int MR = kNarrowMR, NR = 8, KU = 1;
  static constexpr int64_t MC = 192, KC = 384, NC = 3072;
  static float to_packed(float v) { return v; }
  static void kernel(int mr, int nr, int64_t kcp, const float* Ap, const float* Bp, float* C, int64_t ldc,
                     float alpha, float beta) {
    kF32X8ByRows[mr](kcp, Ap, Bp, nr, C, ldc, alpha, beta);
  }
};

// bf16 inputs widened to f32 while packing (no AVX512_BF16).
struct TraitsBF16ViaF32 : TraitsF32, GenericPacking {
  using GenericPacking::fast_pack_a;
  using GenericPacking::fast_pack_b;
  using GenericPacking::fast_pack_b_block;
  using InA = uint16_t;
  using InB = uint16_t;
  static float to_packed(uint16_t v) { return bf16_bits_to_f32(v); }
};

// bf16 pairs for vdpbf16ps. Packed panels are half the bytes of f32, so KC doubles.
struct TraitsBF16 : PackBF16 {
  using InA = uint16_t;
  using InB = uint16_t;
  using Packed = uint16_t;
  static constexpr int MR = kMR, NR = kNR, KU = 2;
  static constexpr int64_t MC = 168, KC = 768, NC = 3072;
  static uint16_t to_packed(uint16_t v) { return v; }
  static void kernel(int mr, int nr, int64_t kcp, const uint16_t* Ap, const uint16_t* Bp, float* C,
                     int64_t ldc, float alpha, float beta) {
    if (mr == kMR) kernel_bf16_rows<kMR>(kcp, Ap, Bp, nr, C, ldc, alpha, beta);
    else kBF16ByRows[mr](kcp, Ap, Bp, nr, C, ldc, alpha, beta);
  }
};

// bf16 pairs with an f32 A rounded while it is packed (gemm_bf16_round_a): the same panels,
// blocking and kernel as TraitsBF16, so the result is that of cast-then-TraitsBF16 bit for bit.
struct TraitsBF16RoundA : TraitsBF16 {
  using InA = float;
  using TraitsBF16::to_packed;
  static uint16_t to_packed(float v) { return round_to_bf16_bits(v); }
  // A not transposed (activations [M, K]): 16 pairs of each of the mr rows rounded and
  // transposed in registers, as PackBF16 does for bf16 A; transposed A takes the generic packer.
  static bool fast_pack_a(const GemmShape& s, const float* A, int64_t i0, int mr, int64_t k0, int64_t kc,
                          int64_t kcp, uint16_t* dst) {
    if (s.transA) return false;
    const int64_t pairs = kcp / 2;
    __m512 r[16];
    for (int64_t p = 0; p < pairs; p += 16) {
      const int np = static_cast<int>(std::min<int64_t>(16, pairs - p));
      const int n = static_cast<int>(std::min<int64_t>(32, kc - 2 * p));
      load_round_transpose(A + i0 * s.lda + k0 + 2 * p, s.lda, mr, n, r);
      for (int pp = 0; pp < np; ++pp)
        _mm512_mask_storeu_epi32(dst + (p + pp) * 2 * kMR, low_mask16(kMR), _mm512_castps_si512(r[pp]));
    }
    return true;
  }
};

// The same without AVX512_BF16: A rounded to bf16 and widened back to f32 while packing.
struct TraitsBF16RoundAViaF32 : TraitsBF16ViaF32 {
  using InA = float;
  using TraitsBF16ViaF32::to_packed;
  static float to_packed(float v) { return bf16_bits_to_f32(round_to_bf16_bits(v)); }
};

// ---- GEMV (M == 1) ---------------------------------------------------------------------------
// Memory bound: the GEMM path would pack (copy) all of B for a single row of C. Instead stream B
// once. x is contiguous [K]; y[n] for n in [n0, n1).
//   transB: y[n] = alpha * dot(x, B[n, :]) + beta * y[n]   (B is [N, K], rows contiguous)
//   else  : y[n] = alpha * sum_k x[k] B[k, n] + beta * y[n] (B is [K, N])
// B is f32, or bf16 bits widened to f32 as they are loaded (exact): half the bytes streamed, the
// same arithmetic, so a bf16 B gives the bits of an f32 B holding the same values.

// 16 values of B from p (m: the lanes to load, the others 0) as f32.
inline __m512 gemv_load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 gemv_load(__mmask16 m, const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}

template <class TB>
inline void gemv_avx512(const float* x, const TB* B, int64_t ldb, bool transB, int64_t K, int64_t n0, int64_t n1,
                        float* y, float alpha, float beta) {
  auto finish = [&](int64_t n, float dot) { y[n] = alpha * dot + (beta == 0.0f ? 0.0f : beta * y[n]); };
  if (transB) {
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {  // 4 rows share each x load
      const TB* r0 = B + n * ldb;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = low_mask16(static_cast<int>(std::min<int64_t>(16, K - k)));
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
        a0 = _mm512_fmadd_ps(xv, gemv_load(m, r0 + k), a0);
        a1 = _mm512_fmadd_ps(xv, gemv_load(m, r0 + ldb + k), a1);
        a2 = _mm512_fmadd_ps(xv, gemv_load(m, r0 + 2 * ldb + k), a2);
        a3 = _mm512_fmadd_ps(xv, gemv_load(m, r0 + 3 * ldb + k), a3);
      }
      finish(n, _mm512_reduce_add_ps(a0));
      finish(n + 1, _mm512_reduce_add_ps(a1));
      finish(n + 2, _mm512_reduce_add_ps(a2));
      finish(n + 3, _mm512_reduce_add_ps(a3));
    }
    for (; n < n1; ++n) {
      __m512 a0 = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; k += 16) {
        const __mmask16 m = low_mask16(static_cast<int>(std::min<int64_t>(16, K - k)));
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + k), gemv_load(m, B + n * ldb + k), a0);
      }
      finish(n, _mm512_reduce_add_ps(a0));
    }
    return;
  }
  // Rows of B streamed in order, 8 at a time, into a per-thread f32 accumulator row (kept in
  // L1/L2): every B byte is read once, sequentially. Column strips instead would touch a new page
  // per row (4096 rows x 16 KiB stride: one TLB miss per 1 KiB), half the speed from DRAM.
  const int64_t n = n1 - n0;
  // Padded to whole vectors so the accumulator row is read and written without masks.
  float* acc = static_cast<float*>(thread_workspace(static_cast<size_t>((n + 15) / 16 * 16) * sizeof(float)));
  for (int64_t c = 0; c < n; c += 16) _mm512_storeu_ps(acc + c, _mm512_setzero_ps());
  for (int64_t k0 = 0; k0 < K; k0 += 8) {
    const int kb = static_cast<int>(std::min<int64_t>(8, K - k0));
    __m512 xv[8];
    const TB* r[8];
    for (int i = 0; i < kb; ++i) {
      xv[i] = _mm512_set1_ps(x[k0 + i]);
      r[i] = B + (k0 + i) * ldb + n0;
    }
    for (int64_t c = 0; c < n; c += 16) {
      const __mmask16 m = low_mask16(static_cast<int>(std::min<int64_t>(16, n - c)));
      __m512 a = _mm512_loadu_ps(acc + c);
      if (kb == 8) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) a = _mm512_fmadd_ps(xv[i], gemv_load(m, r[i] + c), a);
      } else {
        for (int i = 0; i < kb; ++i) a = _mm512_fmadd_ps(xv[i], gemv_load(m, r[i] + c), a);
      }
      _mm512_storeu_ps(acc + c, a);
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    float* yj = y + n0 + j;
    *yj = alpha * acc[j] + (beta == 0.0f ? 0.0f : beta * *yj);
  }
}

inline void gemv_f32_avx512(const float* x, const float* B, int64_t ldb, bool transB, int64_t K, int64_t n0,
                            int64_t n1, float* y, float alpha, float beta) {
  gemv_avx512(x, B, ldb, transB, K, n0, n1, y, alpha, beta);
}
inline void gemv_bf16_avx512(const float* x, const uint16_t* B, int64_t ldb, bool transB, int64_t K, int64_t n0,
                             int64_t n1, float* y, float alpha, float beta) {
  gemv_avx512(x, B, ldb, transB, K, n0, n1, y, alpha, beta);
}

}  // namespace
}  // namespace tk::cpu::gemm_detail
