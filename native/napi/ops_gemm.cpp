// GEMM bindings.
#include "cpu/gemm.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

// gemm({ a, b, c, transA, transB, M, N, K, alpha, beta, batch, dtype }):
// C[i] = alpha op(A[i]) op(B[i]) + beta C[i] for i < batch, contiguous operands packed back to back;
// dtype 'f32', or 'bf16' inputs with an f32 C; with dtype 'bf16' and roundA, A is f32 and is
// rounded to bf16 while packed (cpu::gemm_bf16_round_a: bit for bit a cast, without its pass).
TK_CPU_OP(gemm) {
  Opts o(info, "gemm");
  const GemmArgs g = gemm_args(o);
  cpu::GemmShape s;
  static_cast<tk::GemmShape&>(s) = g.shape;  // no second product, no epilogue
  const int64_t batch = g.batch, na = g.na, nb = g.nb;
  const DType dt = g.dtype;
  float* C = o.tensor<float>("c", g.nc);
  if (dt == DType::F32) {
    const float* A = o.tensor<float>("a", na);
    const float* B = o.tensor<float>("b", nb);
    if (batch == 1) cpu::gemm_f32(s, A, B, C);
    else cpu::gemm_f32_batched(s, batch, A, s.M * s.K, B, s.K * s.N, C, s.M * s.N);
  } else if (dt == DType::BF16 && o.flag_or("roundA", false)) {
    const float* A = o.tensor<float>("a", na);
    const uint16_t* B = o.tensor<uint16_t>("b", nb);
    for (int64_t i = 0; i < batch; ++i) cpu::gemm_bf16_round_a(s, A + i * s.M * s.K, B + i * s.K * s.N, C + i * s.M * s.N);
  } else if (dt == DType::BF16) {
    const uint16_t* A = o.tensor<uint16_t>("a", na);
    const uint16_t* B = o.tensor<uint16_t>("b", nb);
    for (int64_t i = 0; i < batch; ++i) cpu::gemm_bf16(s, A + i * s.M * s.K, B + i * s.K * s.N, C + i * s.M * s.N);
  } else {
    fail(ErrorCode::Dtype, "gemm: expected f32 or bf16 inputs but received ", dtype_name(dt));
  }
  return info.Env().Undefined();
}

TK_EXPORT(gemmKernelName) { return Napi::String::New(info.Env(), cpu::gemm_kernel_name()); }
