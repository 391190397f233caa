// native.cuda: GEMM, fused linear + LoRA and the NF4 kernels (the CUDA twins of ops_gemm.cpp,
// ops_lora.cpp and ops_nf4.cpp: same options, same checks). Compiled to nothing without
// TUNEKIT_WITH_CUDA.
//
// Precision: an f32 op stays f32 on the GPU. gemm with dtype 'f32' and the LoRA ops run the plain
// f32 GEMM on the CUDA cores (native/cuda/gemm_f32.cu: the CPU's result to rounding, no
// tensor cores); gemm with dtype 'bf16' runs the bf16 tensor-core kernel (gemm.cu). The NF4
// products follow bitsandbytes' compute dtype: nf4Gemm with M <= kNf4GemvMaxRows (generation)
// runs the f32 streaming GEMV; with more rows (training) x, and nf4GemmDx's dy, are rounded to
// bf16 and W is dequantized to bf16 tiles for the tensor-core GEMM (f32 accumulate).
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA

#include "cpu/nf4.h"  // the dynamic map of double quantization (a table, built on the host)

using namespace tk;
using namespace tk::napi;

namespace {
// rows up to which nf4Gemm takes the f32 GEMV (4 tokens a pass: 2 passes over W at most)
constexpr int64_t kNf4GemvMaxRows = 8;
}  // namespace

// gemm({ a, b, c, transA, transB, M, N, K, alpha, beta, batch, dtype })
TK_CUDA_OP(gemm) {
  Opts o(info, "gemm", Backend::Cuda);
  const GemmArgs g = gemm_args(o);
  const GemmShape& s = g.shape;
  const int64_t batch = g.batch, na = g.na, nb = g.nb;
  const DType dt = g.dtype;
  // the CPU op's roundA (an f32 A rounded to bf16 while packed) has no CUDA kernel: lib/ casts first
  TK_CHECK(!o.flag_or("roundA", false), Value, "gemm: roundA (an f32 A with bf16 B) is CPU only; cast A to bf16 first");
  float* C = o.tensor<float>("c", g.nc);
  if (dt == DType::F32) {
    const float* A = o.tensor<float>("a", na);
    const float* B = o.tensor<float>("b", nb);
    use_call_device(o);
    if (batch == 1) cuda::gemm_f32(s, A, B, C);
    else cuda::gemm_f32_batched(s, batch, A, s.M * s.K, B, s.K * s.N, C, s.M * s.N);
  } else if (dt == DType::BF16) {
    const uint16_t* A = o.tensor<uint16_t>("a", na);
    const uint16_t* B = o.tensor<uint16_t>("b", nb);
    use_call_device(o);
    for (int64_t i = 0; i < batch; ++i) cuda::gemm_bf16(s, A + i * s.M * s.K, B + i * s.K * s.N, C + i * s.M * s.N);
  } else {
    fail(ErrorCode::Dtype, "gemm: expected f32 or bf16 inputs but received ", dtype_name(dt));
  }
  return info.Env().Undefined();
}

// loraLinearForward({ x, w, bias | null, a, b, y, xa, mask | null, M, inF, outF, r, scale, wInOut, p, seed })
TK_CUDA_OP(loraLinearForward) {
  Opts o(info, "loraLinearForward", Backend::Cuda);
  const LoraForwardArgs r = lora_forward_args(o);
  TK_CHECK(!r.w_bf16, Dtype, "loraLinearForward: a bf16 base weight (wDtype) is CPU only; pass the f32 weight on CUDA");
  use_call_device(o);
  cuda::lora_linear_forward_dropout_f32(r.s, r.x, r.w, r.bias, r.a, r.b, r.p, r.seed, r.mask, r.y, r.xa);
  return info.Env().Undefined();
}

// loraLinearBackward({ dy, x, mask | null, w, a, b, xa, dx | null, da, db, M, inF, outF, r, scale, wInOut, p })
TK_CUDA_OP(loraLinearBackward) {
  Opts o(info, "loraLinearBackward", Backend::Cuda);
  const LoraBackwardArgs r = lora_backward_args(o);
  TK_CHECK(!r.w_bf16, Dtype, "loraLinearBackward: a bf16 base weight (wDtype) is CPU only; pass the f32 weight on CUDA");
  use_call_device(o);
  cuda::lora_linear_backward_dropout_f32(r.s, r.dy, r.x, r.mask, r.p, r.w, r.a, r.b, r.xa, r.dx, r.da, r.db);
  return info.Env().Undefined();
}

// nf4Dequantize({ packed, absmax, n, blocksize, quantType, out })
TK_CUDA_OP(nf4Dequantize) {
  Opts o(info, "nf4Dequantize", Backend::Cuda);
  const int64_t n = o.count("n");
  const int bs = quant4_blocksize(o);
  const Quant4Type t = quant4_type(o);
  Nf4Weight w;
  w.packed = o.tensor<uint8_t>("packed", (n + 1) / 2);
  w.absmax = o.tensor<float>("absmax", quant4_blocks(n, bs));
  w.N = 1;  // the flat array as one row: the kernel walks elements in order, blocks by index
  w.K = n;
  w.blocksize = bs;
  w.type = t;
  float* out = o.tensor<float>("out", n);
  use_call_device(o);
  cuda::nf4_dequantize(w, out);
  return info.Env().Undefined();
}

// nf4DoubleDequantize({ q, nested, offset, nblocks, absmax }): absmax[i] = map[q[i]] nested[i / 256] + offset
TK_CUDA_OP(nf4DoubleDequantize) {
  Opts o(info, "nf4DoubleDequantize", Backend::Cuda);
  const int64_t nb = o.count("nblocks");
  const float off = o.finite_f32("offset");
  const uint8_t* q = o.tensor<uint8_t>("q", nb);
  const float* nested = o.tensor<float>("nested", (nb + 255) / 256);
  float* absmax = o.tensor<float>("absmax", nb);
  use_call_device(o);
  cuda::nf4_double_dequantize_absmax(q, nested, off, nb, cpu::dynamic_map_signed(), absmax);
  return info.Env().Undefined();
}

// nf4Gemm({ x, M, packed, absmax, N, K, blocksize, quantType, y, beta }): y [M, N] = x dequant(W)^T + beta y
TK_CUDA_OP(nf4Gemm) {
  Opts o(info, "nf4Gemm", Backend::Cuda);
  const int64_t M = o.count("M");
  const Nf4Weight w = nf4_weight(o);
  const float beta = static_cast<float>(o.number("beta"));
  const float* x = o.tensor<float>("x", checked_elems(M, w.K, "nf4Gemm x"));
  float* y = o.tensor<float>("y", checked_elems(M, w.N, "nf4Gemm y"));
  use_call_device(o);
  if (M == 0) return info.Env().Undefined();
  if (M <= kNf4GemvMaxRows) {
    cuda::nf4_gemv(x, M, w.K, w, y, w.N, beta);
  } else {
    cuda::DeviceBuffer xb(static_cast<size_t>(M * w.K) * sizeof(uint16_t));
    cuda::f32_to_bf16(x, xb.get<uint16_t>(), M * w.K);
    cuda::nf4_gemm_bf16(xb.get<uint16_t>(), M, w.K, w, y, w.N, beta);
  }
  return info.Env().Undefined();
}

// nf4GemmDx({ dy, M, packed, absmax, N, K, blocksize, quantType, dx, beta }): dx [M, K] = dy dequant(W) + beta dx
TK_CUDA_OP(nf4GemmDx) {
  Opts o(info, "nf4GemmDx", Backend::Cuda);
  const int64_t M = o.count("M");
  const Nf4Weight w = nf4_weight(o);
  const float beta = static_cast<float>(o.number("beta"));
  const float* dy = o.tensor<float>("dy", checked_elems(M, w.N, "nf4GemmDx dy"));
  float* dx = o.tensor<float>("dx", checked_elems(M, w.K, "nf4GemmDx dx"));
  use_call_device(o);
  if (M == 0) return info.Env().Undefined();
  cuda::DeviceBuffer dyb(static_cast<size_t>(M * w.N) * sizeof(uint16_t));
  cuda::f32_to_bf16(dy, dyb.get<uint16_t>(), M * w.N);
  cuda::nf4_gemm_dx_bf16(dyb.get<uint16_t>(), M, w.N, w, dx, w.K, beta);
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
