// AVX-512 GEMM entry points (compiled with -mavx512f/bw/dq/vl/bf16 -mfma; called only when
// cpu_features() reports them). Kernels, packers and blocking: gemm_avx512_kernels.h.
#include "gemm_avx512_kernels.h"

namespace tk::cpu::gemm_detail {
namespace {

void serial_f32(const GemmShape& s, const float* A, const float* B, float* C, WorkspaceFn ws) {
  if (s.N <= 8) return gemm_serial<TraitsF32X8>(s, A, B, C, ws);
  if (s.N <= kNarrowNR) return gemm_serial<TraitsF32Narrow>(s, A, B, C, ws);
  gemm_serial<TraitsF32>(s, A, B, C, ws);
}
void serial_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C, WorkspaceFn ws) {
  gemm_serial<TraitsBF16>(s, A, B, C, ws);
}
void serial_bf16_round_a(const GemmShape& s, const float* A, const uint16_t* B, float* C, WorkspaceFn ws) {
  gemm_serial<TraitsBF16RoundA>(s, A, B, C, ws);
}

}  // namespace

void gemm_bf16_avx512_via_f32(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C,
                              WorkspaceFn ws) {
  gemm_serial<TraitsBF16ViaF32>(s, A, B, C, ws);
}

void gemm_bf16_round_a_avx512_via_f32(const GemmShape& s, const float* A, const uint16_t* B, float* C,
                                      WorkspaceFn ws) {
  gemm_serial<TraitsBF16RoundAViaF32>(s, A, B, C, ws);
}

const IsaGemm& isa_gemm_avx512() {
  static const IsaGemm g{"avx512", &serial_f32, &serial_bf16, kMR, kNR, &gemv_f32_avx512, &serial_bf16_round_a, &gemv_bf16_avx512};
  return g;
}

}  // namespace tk::cpu::gemm_detail
