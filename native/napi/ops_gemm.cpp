// GEMM bindings.
#include "cpu/gemm.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {
cpu::GemmShape shape_args(const Napi::CallbackInfo& info, size_t at) {
  cpu::GemmShape s;
  s.transA = bool_arg(info, at, "transA");
  s.transB = bool_arg(info, at + 1, "transB");
  s.M = int_arg(info, at + 2, "M");
  s.N = int_arg(info, at + 3, "N");
  s.K = int_arg(info, at + 4, "K");
  s.alpha = static_cast<float>(num_arg(info, at + 5, "alpha"));
  s.beta = static_cast<float>(num_arg(info, at + 6, "beta"));
  TK_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, Shape, "gemm: negative size M=", s.M, " N=", s.N, " K=", s.K);
  s.lda = s.transA ? s.M : s.K;
  s.ldb = s.transB ? s.K : s.N;
  s.ldc = s.N;
  return s;
}
}  // namespace

// gemm(A, offA, B, offB, C, offC, transA, transB, M, N, K, alpha, beta, batch, dtype)
// Contiguous operands; batch >= 1 with matrices packed back to back (dtype 0 = f32, 1 = bf16 in).
TK_EXPORT(gemm) {
  cpu::GemmShape s = shape_args(info, 6);
  int64_t batch = int_arg(info, 13, "batch");
  DType dt = dtype_arg(info, 14, "gemm dtype");
  TK_CHECK(batch >= 1, Shape, "gemm: batch must be >= 1 but is ", batch);
  float* C = tensor_arg<float>(info, 4, batch * s.M * s.N, "gemm C");
  if (dt == DType::F32) {
    const float* A = tensor_arg<float>(info, 0, batch * s.M * s.K, "gemm A");
    const float* B = tensor_arg<float>(info, 2, batch * s.K * s.N, "gemm B");
    if (batch == 1) cpu::gemm_f32(s, A, B, C);
    else cpu::gemm_f32_batched(s, batch, A, s.M * s.K, B, s.K * s.N, C, s.M * s.N);
  } else if (dt == DType::BF16) {
    const uint16_t* A = tensor_arg<uint16_t>(info, 0, batch * s.M * s.K, "gemm A");
    const uint16_t* B = tensor_arg<uint16_t>(info, 2, batch * s.K * s.N, "gemm B");
    for (int64_t i = 0; i < batch; ++i) cpu::gemm_bf16(s, A + i * s.M * s.K, B + i * s.K * s.N, C + i * s.M * s.N);
  } else {
    fail(ErrorCode::Dtype, "gemm: expected f32 or bf16 inputs but received ", dtype_name(dt));
  }
  return info.Env().Undefined();
}


TK_EXPORT(gemmKernelName) { return Napi::String::New(info.Env(), cpu::gemm_kernel_name()); }
