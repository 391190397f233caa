// Portable GEMM microkernel (baseline x86-64 / any CPU): plain C++ over a 6 x 8 tile that the
// compiler keeps in SSE registers. Same packing and loop nest as the SIMD paths, so it is also the
// check that the driver is ISA-independent.
#include "gemm_driver.h"

namespace tk::cpu::gemm_detail {
namespace {

inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// 6 x 8: with the baseline's 16 SSE registers that is 12 accumulators (two 4-float halves per
// row), 2 for the B row and 1 broadcast; the j loop below is what the vectoriser turns into them.
constexpr int kMR = 6, kNR = 8;

void kernel_full(int64_t kc, const float* __restrict Ap, const float* __restrict Bp, float* C, int64_t ldc,
                 float alpha, float beta) {
  float acc[kMR][kNR];
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = 0.0f;
  for (int64_t k = 0; k < kc; ++k) {
    float b[kNR];
    for (int j = 0; j < kNR; ++j) b[j] = Bp[j];
#pragma GCC unroll 6
    for (int i = 0; i < kMR; ++i) {
      const float a = Ap[i];
#pragma GCC ivdep
      for (int j = 0; j < kNR; ++j) acc[i][j] += a * b[j];
    }
    Ap += kMR;
    Bp += kNR;
  }
  for (int i = 0; i < kMR; ++i)
    for (int j = 0; j < kNR; ++j) {
      float* c = C + i * ldc + j;
      *c = alpha * acc[i][j] + (beta == 0.0f ? 0.0f : beta * *c);
    }
}

struct TraitsF32 : GenericPacking {
  using InA = float;
  using InB = float;
  using Packed = float;
  static constexpr int MR = kMR, NR = kNR, KU = 1;
  static constexpr int64_t MC = 128, KC = 256, NC = 2048;
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

const IsaGemm& isa_gemm_portable() {
  static const IsaGemm g{"portable", &serial_f32, &serial_bf16, kMR, kNR, nullptr, &serial_bf16_round_a};
  return g;
}

}  // namespace tk::cpu::gemm_detail
