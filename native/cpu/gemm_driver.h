// The GotoBLAS/BLIS loop nest shared by every ISA, as templates over a kernel-traits struct.
// Included only by the per-ISA .cpp files so that packing and the loop nest are compiled with
// that file's instruction set. Everything here has internal linkage (anonymous namespace): see
// gemm_internal.h for why no inline code may be shared between ISA translation units.
//
// Loop nest (row-major C[M,N] += op(A)[M,K] op(B)[K,N]):
//   jc over N in NC columns      B block  [KC x NC] packed once per (jc,pc)  -> L3
//    pc over K in KC             beta applies on the first pc block only
//     ic over M in MC rows       A block  [MC x KC] packed                   -> L2
//      jr over NC in NR          B micro-panel [KC x NR] reused by every ir  -> L1/L2
//       ir over MC in MR         microkernel: MR x NR tile of C in registers
//
// Traits provide:
//   InA, InB, Packed          element types of the inputs and of the packed panels (InB may be
//                             a descriptor struct when fast_pack_b does all the B packing)
//   MR, NR                    microtile; KU = k values per packed group (1 for f32 FMA, 2 for
//                             bf16 dot-product pairs)
//   MC, KC, NC                default cache blocking (elements)
//   to_packed(In) -> Packed   element conversion used while packing
//   fast_pack_a/fast_pack_b   same arguments as pack_a/pack_b below; return false to fall back
//                             to the generic packers (ISA files vectorise the common cases)
//   fast_pack_b_block(s, B, j0, nc, k0, kc, kcp, dst)
//                             packs the whole [kc x nc] block (micro-panel jr at dst + jr*kcp)
//                             in one pass, or returns false to pack it panel by panel
//   kernel(mr, nr, kcp, Ap, Bp, C, ldc, alpha, beta)
//                             C[mr,nr] = alpha * Ap*Bp + beta*C (beta == 0 overwrites), any
//                             mr <= MR, nr <= NR; kcp is a multiple of KU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "gemm_internal.h"

namespace tk::cpu::gemm_detail {
namespace {

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// f32 -> bf16 bits, round to nearest even, a NaN kept and made quiet: core/dtype.h's
// f32_to_bf16, repeated here because no inline code may be shared with the ISA files (see
// gemm_internal.h); gemm_bf16_round_a must match cast() bit for bit (test_gemm_basic.cpp).
inline uint16_t round_to_bf16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// Largest packed op(A) that gemm_serial packs once for all NC blocks (see there): 4 MiB stays
// in this CPU's 32 MiB L3 next to the packed B block (4.5 MiB) even with both cores doing it.
constexpr size_t kPackAOnceBytes = size_t{4} << 20;

// Optional override for tuning runs: TUNEKIT_GEMM_BLOCKING="MC,KC,NC" (elements). Not a user
// setting; the bench uses it to sweep block sizes on a new CPU.
struct Blocking {
  int64_t mc, kc, nc;
};
inline Blocking blocking_override() {
  Blocking b{0, 0, 0};
  if (const char* e = std::getenv("TUNEKIT_GEMM_BLOCKING")) {
    long long mc = 0, kc = 0, nc = 0;
    if (std::sscanf(e, "%lld,%lld,%lld", &mc, &kc, &nc) == 3 && mc > 0 && kc > 0 && nc > 0) b = {mc, kc, nc};
  }
  return b;
}

// Packed A panel for rows [i0, i0+mr) and k in [k0, k0+kc): element (i,k) of the panel lives at
// dst[(k/KU)*(MR*KU) + i*KU + k%KU]; rows mr..MR-1 and k kc..kcp-1 are zero so the microkernel
// can always run full MR x kcp.
template <class T>
void pack_a(const GemmShape& s, const typename T::InA* A, int64_t i0, int mr, int64_t k0, int64_t kc,
            int64_t kcp, typename T::Packed* dst) {
  using P = typename T::Packed;
  constexpr int MR = T::MR, KU = T::KU;
  if constexpr (KU == 1) {
    if (s.transA) {  // op(A)(i,k) = A[k*lda + i]: each k is a contiguous run of mr values
      for (int64_t k = 0; k < kc; ++k) {
        const auto* src = A + (k0 + k) * s.lda + i0;
        P* d = dst + k * MR;
        for (int i = 0; i < mr; ++i) d[i] = T::to_packed(src[i]);
        for (int i = mr; i < MR; ++i) d[i] = P(0);
      }
    } else {  // op(A)(i,k) = A[i*lda + k]: a transpose; walk 8 k at a time for locality
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        P* d = dst + k * MR;
        for (int i = 0; i < mr; ++i) {
          const auto* src = A + (i0 + i) * s.lda + k0 + k;
#pragma GCC unroll 8
          for (int kk = 0; kk < 8; ++kk) d[kk * MR + i] = T::to_packed(src[kk]);
        }
        for (int i = mr; i < MR; ++i)
          for (int kk = 0; kk < 8; ++kk) d[kk * MR + i] = P(0);
      }
      for (; k < kc; ++k) {
        P* d = dst + k * MR;
        for (int i = 0; i < mr; ++i) d[i] = T::to_packed(A[(i0 + i) * s.lda + k0 + k]);
        for (int i = mr; i < MR; ++i) d[i] = P(0);
      }
    }
    for (int64_t k = kc; k < kcp; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = P(0);
  } else {
    for (int64_t k = 0; k < kcp; ++k) {
      P* d = dst + (k / KU) * (MR * KU) + k % KU;
      if (k < kc) {
        for (int i = 0; i < mr; ++i) {
          const int64_t gi = i0 + i, gk = k0 + k;
          d[i * KU] = T::to_packed(s.transA ? A[gk * s.lda + gi] : A[gi * s.lda + gk]);
        }
        for (int i = mr; i < MR; ++i) d[i * KU] = P(0);
      } else {
        for (int i = 0; i < MR; ++i) d[i * KU] = P(0);
      }
    }
  }
}

// Packed B panel for columns [j0, j0+nr): element (k,j) at dst[(k/KU)*(NR*KU) + j*KU + k%KU].
template <class T>
void pack_b(const GemmShape& s, const typename T::InB* B, int64_t j0, int nr, int64_t k0, int64_t kc,
            int64_t kcp, typename T::Packed* dst) {
  using P = typename T::Packed;
  constexpr int NR = T::NR, KU = T::KU;
  if constexpr (KU == 1) {
    if (!s.transB) {  // op(B)(k,j) = B[k*ldb + j]: contiguous runs
      for (int64_t k = 0; k < kc; ++k) {
        const auto* src = B + (k0 + k) * s.ldb + j0;
        P* d = dst + k * NR;
        if (nr == NR) {
#pragma GCC unroll 4
          for (int j = 0; j < NR; ++j) d[j] = T::to_packed(src[j]);
        } else {
          for (int j = 0; j < nr; ++j) d[j] = T::to_packed(src[j]);
          for (int j = nr; j < NR; ++j) d[j] = P(0);
        }
      }
    } else {  // op(B)(k,j) = B[j*ldb + k]: a transpose, 8 k at a time
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        P* d = dst + k * NR;
        for (int j = 0; j < nr; ++j) {
          const auto* src = B + (j0 + j) * s.ldb + k0 + k;
#pragma GCC unroll 8
          for (int kk = 0; kk < 8; ++kk) d[kk * NR + j] = T::to_packed(src[kk]);
        }
        for (int j = nr; j < NR; ++j)
          for (int kk = 0; kk < 8; ++kk) d[kk * NR + j] = P(0);
      }
      for (; k < kc; ++k) {
        P* d = dst + k * NR;
        for (int j = 0; j < nr; ++j) d[j] = T::to_packed(B[(j0 + j) * s.ldb + k0 + k]);
        for (int j = nr; j < NR; ++j) d[j] = P(0);
      }
    }
    for (int64_t k = kc; k < kcp; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = P(0);
  } else {
    for (int64_t k = 0; k < kcp; ++k) {
      P* d = dst + (k / KU) * (NR * KU) + k % KU;
      if (k < kc) {
        const int64_t gk = k0 + k;
        if (!s.transB) {
          const auto* src = B + gk * s.ldb + j0;
          for (int j = 0; j < nr; ++j) d[j * KU] = T::to_packed(src[j]);
        } else {
          for (int j = 0; j < nr; ++j) d[j * KU] = T::to_packed(B[(j0 + j) * s.ldb + gk]);
        }
        for (int j = nr; j < NR; ++j) d[j * KU] = P(0);
      } else {
        for (int j = 0; j < NR; ++j) d[j * KU] = P(0);
      }
    }
  }
}

// The serial loop nest over one thread's share of the problem.
template <class T>
void gemm_serial(const GemmShape& s, const typename T::InA* A, const typename T::InB* B, float* C,
                 WorkspaceFn ws) {
  using P = typename T::Packed;
  constexpr int MR = T::MR, NR = T::NR, KU = T::KU;
  static const Blocking ov = blocking_override();
  int64_t MC = ov.mc ? round_up(ov.mc, MR) : T::MC;
  int64_t KC = ov.kc ? round_up(ov.kc, KU) : T::KC;
  int64_t NC = ov.nc ? round_up(ov.nc, NR) : T::NC;

  // Balance the blocks so the last one is not a sliver (K=520 with KC=512 -> 2 x 260).
  const int64_t nk = ceil_div(s.K, KC);
  const int64_t kc_blk = round_up(ceil_div(s.K, nk), KU);
  const int64_t nm = ceil_div(s.M, MC);
  const int64_t mc_blk = round_up(ceil_div(s.M, nm), MR);
  const int64_t nn = ceil_div(s.N, NC);
  const int64_t nc_blk = round_up(ceil_div(s.N, nn), NR);

  // The second, thin product (GemmShape::A2/B2) rides in the last K block: its K2 columns of A
  // and rows of B are packed right after that block's own, so the microkernel sums both before
  // C is written. f32 traits only (the packed layout is then plain k-major: element k of a panel
  // at k*MR or k*NR).
  constexpr bool kCanAppend = std::is_same_v<typename T::InA, float> && std::is_same_v<typename T::InB, float> && KU == 1;
  const int64_t K2 = kCanAppend ? s.K2 : 0;
  GemmShape s2;  // A2, B2 as row-major operands for the packers
  s2.lda = s.lda2;
  s2.ldb = s.ldb2;

  // With several NC blocks every (pc, ic) block of A would be packed again for each jc. When all
  // of op(A) packed is small it is packed once, on the first jc pass, and then read from L2/L3:
  // e.g. the LM-head weight gradient (M 768, K 512, N 50257: 17 NC blocks) packs 1.5 MiB once
  // instead of 17 times (~1% of its time). Packed A of row panel r (a multiple of MR) in K
  // block p lives at p * (m_pad * kc_blk) + r * kcp.
  const int64_t m_pad = round_up(s.M, MR);
  const bool a_once = K2 == 0 && nn > 1 && static_cast<size_t>(m_pad * kc_blk * nk) * sizeof(P) <= kPackAOnceBytes;
  const size_t a_elems = static_cast<size_t>(a_once ? m_pad * kc_blk * nk : mc_blk * (kc_blk + K2));
  const size_t b_elems = static_cast<size_t>(nc_blk * (kc_blk + K2));
  auto* base = static_cast<char*>(ws((a_elems + b_elems) * sizeof(P) + 128));
  P* Apack = reinterpret_cast<P*>(base);
  P* Bp = reinterpret_cast<P*>(base + round_up(static_cast<int64_t>(a_elems * sizeof(P)), 64));

  for (int64_t jc = 0; jc < s.N; jc += nc_blk) {
    const int64_t nc = std::min(nc_blk, s.N - jc);
    for (int64_t pc = 0; pc < s.K; pc += kc_blk) {
      const int64_t kc = std::min(kc_blk, s.K - pc);
      // the last K block also carries the second product's K2 (then kc == kcp: KU is 1)
      const int64_t ext = pc + kc >= s.K ? K2 : 0;
      const int64_t kcp = round_up(kc + ext, KU);
      if (ext > 0 || !T::fast_pack_b_block(s, B, jc, nc, pc, kc, kcp, Bp)) {
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          if (!T::fast_pack_b(s, B, jc + jr, nr, pc, kc, kc + (ext ? 0 : kcp - kc), Bp + jr * kcp))
            pack_b<T>(s, B, jc + jr, nr, pc, kc, kc + (ext ? 0 : kcp - kc), Bp + jr * kcp);
          if constexpr (kCanAppend) {
            if (ext > 0) pack_b<T>(s2, reinterpret_cast<const typename T::InB*>(s.B2), jc + jr, nr, 0, ext, ext, Bp + jr * kcp + kc * NR);
          }
        }
      }
      const float beta = pc == 0 ? s.beta : 1.0f;
      for (int64_t ic = 0; ic < s.M; ic += mc_blk) {
        const int64_t mc = std::min(mc_blk, s.M - ic);
        P* Ap = a_once ? Apack + (pc / kc_blk) * (m_pad * kc_blk) + ic * kcp : Apack;
        const bool pack_a_now = !a_once || jc == 0;
        for (int64_t ir = 0; pack_a_now && ir < mc; ir += MR) {
          const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
          if (!T::fast_pack_a(s, A, ic + ir, mr, pc, kc, kc + (ext ? 0 : kcp - kc), Ap + ir * kcp))
            pack_a<T>(s, A, ic + ir, mr, pc, kc, kc + (ext ? 0 : kcp - kc), Ap + ir * kcp);
          if constexpr (kCanAppend) {
            if (ext > 0) pack_a<T>(s2, reinterpret_cast<const typename T::InA*>(s.A2), ic + ir, mr, 0, ext, ext, Ap + ir * kcp + kc * MR);
          }
        }
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
          const P* bp = Bp + jr * kcp;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            float* c = C + (ic + ir) * s.ldc + jc + jr;
            T::kernel(mr, nr, kcp, Ap + ir * kcp, bp, c, s.ldc, s.alpha, beta);
          }
        }
        // the block [mc, nc] of C is final after the last K block (GemmShape::epilogue); per
        // [mc, NR] panel (still in L1) measured slower: the epilogue's rows get too short
        if (s.epilogue && pc + kc >= s.K)
          s.epilogue(s.epilogue_ctx, s.epilogue_i0 + ic, mc, s.epilogue_j0 + jc, nc, C + ic * s.ldc + jc, s.ldc);
      }
    }
  }
}

// Traits without vectorised packers inherit these.
struct GenericPacking {
  template <class... Args>
  static bool fast_pack_a(Args&&...) { return false; }
  template <class... Args>
  static bool fast_pack_b(Args&&...) { return false; }
  template <class... Args>
  static bool fast_pack_b_block(Args&&...) { return false; }
};

// For kernels that only do full tiles: run into a local tile, then merge the valid part.
template <int MR, int NR, class Full>
inline void edge_via_tile(int mr, int nr, float* C, int64_t ldc, float alpha, float beta, Full full) {
  alignas(64) float tile[MR * NR];
  full(tile, static_cast<int64_t>(NR), 1.0f, 0.0f);
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float* c = C + i * ldc + j;
      *c = alpha * tile[i * NR + j] + (beta == 0.0f ? 0.0f : beta * *c);
    }
}

}  // namespace
}  // namespace tk::cpu::gemm_detail
