// AVX2/FMA GEMM microkernel (compiled with -mavx2 -mfma; called only when cpu_features() reports
// them). 6 x 16 tile = 12 ymm accumulators + 2 B loads + 1 broadcast of the 16 registers: the
// classic Haswell-era shape. Partial tiles go through a local tile (edge_via_tile).
#include <immintrin.h>

#include "gemm_driver.h"

namespace tk::cpu::gemm_detail {
namespace {

inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

constexpr int kMR = 6, kNR = 16;

// Full 6 x 16 tile: C = alpha * Ap*Bp + beta * C (beta == 0: C is not read).
void kernel_full(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc,
                 float alpha, float beta) {
  __m256 acc[kMR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(Bp), b1 = _mm256_load_ps(Bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const __m256 a = _mm256_broadcast_ss(Ap + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
    Ap += kMR;
    Bp += kNR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < kMR; ++i) {
    float* c = C + i * ldc;
    __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
    if (beta != 0.0f) {
      r0 = _mm256_fmadd_ps(_mm256_loadu_ps(c), vb, r0);
      r1 = _mm256_fmadd_ps(_mm256_loadu_ps(c + 8), vb, r1);
    }
    _mm256_storeu_ps(c, r0);
    _mm256_storeu_ps(c + 8, r1);
  }
}

// Blocking: A block 144 x 256 f32 = 144 KiB, B block 256 x 2048 f32 = 2 MiB.
struct TraitsF32 : GenericPacking {
  using InA = float;
  using InB = float;
  using Packed = float;
  static constexpr int MR = kMR, NR = kNR, KU = 1;
  static constexpr int64_t MC = 144, KC = 256, NC = 2048;
  static float to_packed(float v) { return v; }
  static void kernel(int mr, int nr, int64_t kcp, const float* Ap, const float* Bp, float* C, int64_t ldc,
                     float alpha, float beta) {
    if (mr == kMR && nr == kNR) {
      kernel_full(kcp, Ap, Bp, C, ldc, alpha, beta);
    } else {
      edge_via_tile<kMR, kNR>(mr, nr, C, ldc, alpha, beta, [&](float* t, int64_t ldt, float a, float b) {
        kernel_full(kcp, Ap, Bp, t, ldt, a, b);
      });
    }
  }
};

struct TraitsBF16ViaF32 : TraitsF32 {
  using InA = uint16_t;
  using InB = uint16_t;
  static float to_packed(uint16_t v) { return bf16_bits_to_f32(v); }
};

// f32 A rounded to bf16 (and widened back) while packing: gemm_bf16_round_a.
struct TraitsBF16RoundAViaF32 : TraitsBF16ViaF32 {
  using InA = float;
  using TraitsBF16ViaF32::to_packed;
  static float to_packed(float v) { return bf16_bits_to_f32(round_to_bf16_bits(v)); }
};

void serial_f32(const GemmShape& s, const float* A, const float* B, float* C, WorkspaceFn ws) {
  gemm_serial<TraitsF32>(s, A, B, C, ws);
}
void serial_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C, WorkspaceFn ws) {
  gemm_serial<TraitsBF16ViaF32>(s, A, B, C, ws);
}
void serial_bf16_round_a(const GemmShape& s, const float* A, const uint16_t* B, float* C, WorkspaceFn ws) {
  gemm_serial<TraitsBF16RoundAViaF32>(s, A, B, C, ws);
}

}  // namespace

const IsaGemm& isa_gemm_avx2() {
  static const IsaGemm g{"avx2", &serial_f32, &serial_bf16, kMR, kNR, nullptr, &serial_bf16_round_a};
  return g;
}

}  // namespace tk::cpu::gemm_detail
