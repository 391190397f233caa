// AVX-512 NF4/FP4 matmul kernels (compiled with -mavx512f/bw/dq/vl -mfma; called only when
// cpu_features().avx512f). Two paths:
//
// 1. Fused GEMM (M > 4): the dense GEMM's loop nest and 14x32 f32 microkernel (gemm_avx512_kernels.h)
//    with a B packer that dequantizes 4-bit codes straight into the packed f32 panel, so W is
//    never expanded in memory: the panel is KC x 32 floats (48 KiB) at a time.
//    Dequantizing 16 values: load the 8-9 bytes that hold them, widen to 32-bit lanes, pick each
//    lane's byte and nibble (even element = high nibble), look the code up in a 16-float
//    codebook register (vpermps), multiply by the block's absmax (one fp32 multiply, exactly as
//    the scalar nf4_dequantize does, so fused == dequantize-then-gemm_f32 bit for bit).
//
// 2. Streaming GEMV (M <= 4): memory bound, so each weight byte is read once and decoded with as
//    few instructions as possible. When blocks are whole multiples of 32 within a row (every
//    real model: K % blocksize == 0, blocksize % 32 == 0), 16 bytes = 32 codes decode into even-element and odd-element vectors that meet x
//    de-interleaved the same way; sum(x * code) per block is scaled by absmax once per block.
//    Other shapes use the general 16-value decoder.
#include "gemm_avx512_kernels.h"
#include "nf4.h"

namespace tk::cpu::nf4_detail {
namespace {

using gemm_detail::kMR;
using gemm_detail::kNR;
using gemm_detail::low_mask16;
using gemm_detail::transpose16;

// Where B's values come from: W with a row/column offset for this thread's slice.
struct Nf4Slice {
  const Nf4Weight* w;
  int64_t row0, col0;
  const float* book;
};

// Lane l of the 16 values starting at flat index e: byte (l + (e&1)) / 2 of the loaded bytes,
// high nibble when (e + l) is even.
alignas(64) const int32_t kByteIdx[2][16] = {{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7},
                                             {0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8}};
alignas(64) const int32_t kShift[2][16] = {{4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0},
                                           {0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4}};

// cnt (1..16) dequantized values of flattened W starting at element e; lanes >= cnt are 0.
__attribute__((always_inline)) inline __m512 dequant16(const Nf4Weight& w, __m512 book, int64_t e, int cnt) {
  const int odd = static_cast<int>(e & 1);
  const int64_t byte0 = e >> 1;
  const int64_t total_bytes = (w.N * w.K + 1) / 2;
  const int need = (odd + cnt + 1) / 2;
  const int avail = static_cast<int>(std::min<int64_t>(need, total_bytes - byte0));
  const __m128i bytes = _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << avail) - 1u), w.packed + byte0);
  __m512i v = _mm512_cvtepu8_epi32(bytes);
  v = _mm512_permutexvar_epi32(_mm512_load_si512(kByteIdx[odd]), v);
  v = _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_load_si512(kShift[odd])), _mm512_set1_epi32(0xF));
  const __m512 code = _mm512_permutexvar_ps(v, book);
  const int64_t bs = w.blocksize, blk = e / bs, in_blk = e - blk * bs;
  __m512 scale = _mm512_set1_ps(w.absmax[blk]);
  if (in_blk + cnt > bs) {  // the 16 values straddle two blocks (bs >= 16 assumed below)
    const int first = static_cast<int>(bs - in_blk);
    scale = _mm512_mask_blend_ps(static_cast<__mmask16>(~((1u << first) - 1u)), scale,
                                 _mm512_set1_ps(w.absmax[blk + 1]));
  }
  return _mm512_maskz_mul_ps(low_mask16(cnt), code, scale);
}

// Scalar dequantization of one element (blocksizes below 16, where a 16-lane group may span
// more than two blocks).
inline float dequant1(const Nf4Weight& w, const float* book, int64_t e) {
  const uint8_t byte = w.packed[e >> 1];
  const int c = (e & 1) ? (byte & 0xF) : (byte >> 4);
  return book[c] * w.absmax[e / w.blocksize];
}

inline __m512 dequant_any(const Nf4Slice& sl, __m512 book, int64_t e, int cnt) {
  if (sl.w->blocksize >= 16) return dequant16(*sl.w, book, e, cnt);
  alignas(64) float t[16] = {};
  for (int l = 0; l < cnt; ++l) t[l] = dequant1(*sl.w, sl.book, e + l);
  return _mm512_load_ps(t);
}

// Fused GEMM traits: A as the f32 GEMM packs it; B dequantized from NF4.
//   forward: op(B)(k, j) = W[row0 + j, col0 + k]   (transposed: W rows are C columns)
//   dx:      op(B)(k, j) = W[row0 + k, col0 + j]
template <bool kDx>
struct TraitsNf4 : gemm_detail::TraitsF32 {
  using InB = Nf4Slice;
  using gemm_detail::TraitsF32::to_packed;
  static float to_packed(const Nf4Slice&) { return 0.0f; }  // generic packer never used for B
  static bool fast_pack_b(const GemmShape& s, const Nf4Slice* B, int64_t j0, int nr, int64_t k0, int64_t kc,
                          int64_t kcp, float* dst) {
    (void)s;
    const Nf4Slice& sl = *B;
    const Nf4Weight& w = *sl.w;
    const __m512 book = _mm512_loadu_ps(sl.book);
    if (kDx) {  // row k of the panel = 32 consecutive values of W row (row0 + k0 + k)
      for (int64_t k = 0; k < kc; ++k) {
        const int64_t e = (sl.row0 + k0 + k) * w.K + sl.col0 + j0;
        _mm512_store_ps(dst + k * kNR, dequant_any(sl, book, e, std::min(nr, 16)));
        _mm512_store_ps(dst + k * kNR + 16, nr > 16 ? dequant_any(sl, book, e + 16, nr - 16) : _mm512_setzero_ps());
      }
    } else {  // 16 W rows x 16 k dequantized, then transposed into the panel
      __m512 r[16];
      for (int64_t k = 0; k < kc; k += 16) {
        const int n = static_cast<int>(std::min<int64_t>(16, kc - k));
        for (int h = 0; h < 2; ++h) {
          const int rows = std::max(0, std::min(16, nr - 16 * h));
          for (int i = 0; i < 16; ++i) {
            r[i] = i < rows ? dequant_any(sl, book, (sl.row0 + j0 + 16 * h + i) * w.K + sl.col0 + k0 + k, n)
                            : _mm512_setzero_ps();
          }
          transpose16(r);
          for (int kk = 0; kk < n; ++kk) _mm512_store_ps(dst + (k + kk) * kNR + 16 * h, r[kk]);
        }
      }
    }
    for (int64_t k = kc; k < kcp; ++k) {
      _mm512_store_ps(dst + k * kNR, _mm512_setzero_ps());
      _mm512_store_ps(dst + k * kNR + 16, _mm512_setzero_ps());
    }
    return true;
  }
};

const float* codebook_of(const Nf4Weight& w) {
  return w.type == Quant4Type::NF4 ? nf4_codebook() : fp4_codebook();
}

// GEMV, general shapes: 16 values at a time through dequant_any.
void gemv_general(const float* X, int64_t M, int64_t ldx, const Nf4Weight& w, int64_t n0, int64_t n1, float* Y,
                  int64_t ldy, float beta) {
  const Nf4Slice sl{&w, 0, 0, codebook_of(w)};
  const __m512 book = _mm512_loadu_ps(sl.book);
  for (int64_t n = n0; n < n1; ++n) {
    __m512 acc[kGemvMaxRows];
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_ps();
    for (int64_t k = 0; k < w.K; k += 16) {
      const int cnt = static_cast<int>(std::min<int64_t>(16, w.K - k));
      const __m512 v = dequant_any(sl, book, n * w.K + k, cnt);
      for (int m = 0; m < M; ++m)
        acc[m] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(low_mask16(cnt), X + m * ldx + k), v, acc[m]);
    }
    for (int m = 0; m < M; ++m) {
      float* y = Y + m * ldy + n;
      const float d = _mm512_reduce_add_ps(acc[m]);
      *y = d + (beta == 0.0f ? 0.0f : beta * *y);
    }
  }
}

// GEMV, K % blocksize == 0 and blocksize % 32 == 0 (blocks never straddle rows): 32 codes per
// 16-byte load, absmax applied once per block. xe/xo: X de-interleaved (even / odd k), [M][K/2]
// each. G weight rows are decoded together so each x load feeds G*M FMAs (for M = 1 the x
// stream would otherwise cost as much as the weight stream).
template <int M, int G>
void gemv_rows(const float* xe, const float* xo, int64_t half_k, const Nf4Weight& w, int64_t n, float* Y,
               int64_t ldy, float beta, __m512 book) {
  const __m512i low4 = _mm512_set1_epi32(0xF);
  const int64_t K = w.K, bs = w.blocksize, chunks_per_block = bs / 32;
  const uint8_t* p[G];
  const float* amax[G];
  for (int g = 0; g < G; ++g) {
    p[g] = w.packed + (n + g) * K / 2;
    amax[g] = w.absmax + (n + g) * K / bs;
  }
  __m512 acc[G][M];
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < M; ++m) acc[g][m] = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < K / 32; c0 += chunks_per_block) {
    __m512 blk[G][M];
    for (int g = 0; g < G; ++g)
      for (int m = 0; m < M; ++m) blk[g][m] = _mm512_setzero_ps();
    for (int64_t c = c0; c < c0 + chunks_per_block; ++c) {
      __m512 xev[M], xov[M];
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        xev[m] = _mm512_loadu_ps(xe + m * half_k + 16 * c);
        xov[m] = _mm512_loadu_ps(xo + m * half_k + 16 * c);
      }
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p[g] + 16 * c)));
        const __m512 even = _mm512_permutexvar_ps(_mm512_srli_epi32(bytes, 4), book);
        const __m512 odd = _mm512_permutexvar_ps(_mm512_and_si512(bytes, low4), book);
#pragma GCC unroll 4
        for (int m = 0; m < M; ++m) {
          blk[g][m] = _mm512_fmadd_ps(even, xev[m], blk[g][m]);
          blk[g][m] = _mm512_fmadd_ps(odd, xov[m], blk[g][m]);
        }
      }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) {
      const __m512 a = _mm512_set1_ps(amax[g][c0 / chunks_per_block]);
      for (int m = 0; m < M; ++m) acc[g][m] = _mm512_fmadd_ps(blk[g][m], a, acc[g][m]);
    }
  }
  for (int g = 0; g < G; ++g)
    for (int m = 0; m < M; ++m) {
      float* y = Y + m * ldy + n + g;
      const float d = _mm512_reduce_add_ps(acc[g][m]);
      *y = d + (beta == 0.0f ? 0.0f : beta * *y);
    }
}

template <int M>
void gemv_fast(const float* xe, const float* xo, int64_t half_k, const Nf4Weight& w, int64_t n0, int64_t n1, float* Y,
               int64_t ldy, float beta) {
  const __m512 book = _mm512_loadu_ps(codebook_of(w));
  constexpr int G = M == 1 ? 4 : M == 2 ? 2 : 1;
  int64_t n = n0;
  for (; n + G <= n1; n += G) gemv_rows<M, G>(xe, xo, half_k, w, n, Y, ldy, beta, book);
  for (; n < n1; ++n) gemv_rows<M, 1>(xe, xo, half_k, w, n, Y, ldy, beta, book);
}

}  // namespace

void nf4_gemm_avx512(const GemmShape& s, const float* A, const Nf4Weight& W, int64_t row0, int64_t col0, bool dx,
                     float* C, void* (*workspace)(size_t)) {
  const Nf4Slice sl{&W, row0, col0, codebook_of(W)};
  if (dx) gemm_detail::gemm_serial<TraitsNf4<true>>(s, A, &sl, C, workspace);
  else gemm_detail::gemm_serial<TraitsNf4<false>>(s, A, &sl, C, workspace);
}

void nf4_gemv_avx512(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, int64_t n0, int64_t n1, float* Y,
                     int64_t ldy, float beta) {
  if (W.K % 32 != 0 || W.blocksize % 32 != 0 || W.K % W.blocksize != 0 || M > kGemvMaxRows) {
    return gemv_general(X, M, ldx, W, n0, n1, Y, ldy, beta);
  }
  // De-interleave X into a stack/heap buffer: [M][K/2] even, then odd. K/2 * 4 rows * 2 floats.
  const int64_t half_k = W.K / 2;
  float* buf = static_cast<float*>(gemm_detail::thread_workspace(static_cast<size_t>(2 * M * half_k) * sizeof(float)));
  float* xe = buf;
  float* xo = buf + M * half_k;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t i = 0; i < half_k; ++i) {
      xe[m * half_k + i] = X[m * ldx + 2 * i];
      xo[m * half_k + i] = X[m * ldx + 2 * i + 1];
    }
  switch (M) {
    case 1: return gemv_fast<1>(xe, xo, half_k, W, n0, n1, Y, ldy, beta);
    case 2: return gemv_fast<2>(xe, xo, half_k, W, n0, n1, Y, ldy, beta);
    case 3: return gemv_fast<3>(xe, xo, half_k, W, n0, n1, Y, ldy, beta);
    default: return gemv_fast<4>(xe, xo, half_k, W, n0, n1, Y, ldy, beta);
  }
}

}  // namespace tk::cpu::nf4_detail
