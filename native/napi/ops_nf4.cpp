// NF4 / FP4 bindings (lib/native.ts "NF4"): blockwise 4-bit quantization in bitsandbytes' layout,
// double quantization of the absmax array, and the fused dequant-GEMMs (native/cpu/nf4.h). Every
// tensor argument is bounds-checked against its storage before any work.
#include <cmath>
#include <limits>

#include "cpu/nf4.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;

namespace {

Napi::Value floats(Napi::Env env, const float* v, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
  return a;
}

}  // namespace

// nf4Codebook(quantType: 'nf4' | 'fp4') -> number[16]; nf4DynamicMap() -> number[256] (tables, not kernels)
TK_EXPORT(nf4Codebook) {
  if (info.Length() < 1 || !info[0].IsString()) fail(ErrorCode::Value, "nf4Codebook: expected 'nf4' or 'fp4'");
  const std::string t = info[0].As<Napi::String>().Utf8Value();
  TK_CHECK(t == "nf4" || t == "fp4", Value, "nf4Codebook: expected 'nf4' or 'fp4' but received '", t, "'");
  return floats(info.Env(), t == "nf4" ? cpu::nf4_codebook() : cpu::fp4_codebook(), 16);
}

TK_EXPORT(nf4DynamicMap) { return floats(info.Env(), cpu::dynamic_map_signed(), 256); }

// nf4Quantize({ w, n, blocksize, quantType, packed, absmax })
TK_CPU_OP(nf4Quantize) {
  Opts o(info, "nf4Quantize");
  const Quant4QuantizeArgs r = quant4_quantize_args(o);
  if (r.type == Quant4Type::NF4) cpu::nf4_quantize(r.w, r.n, r.blocksize, r.packed, r.absmax);
  else cpu::fp4_quantize(r.w, r.n, r.blocksize, r.packed, r.absmax);
  return info.Env().Undefined();
}

// nf4Dequantize({ packed, absmax, n, blocksize, quantType, out })
TK_CPU_OP(nf4Dequantize) {
  Opts o(info, "nf4Dequantize");
  const int64_t n = o.count("n");
  const int bs = quant4_blocksize(o);
  const Quant4Type t = quant4_type(o);
  const uint8_t* packed = o.tensor<uint8_t>("packed", (n + 1) / 2);
  const float* absmax = o.tensor<float>("absmax", quant4_blocks(n, bs));
  float* out = o.tensor<float>("out", n);
  if (t == Quant4Type::NF4) cpu::nf4_dequantize(packed, absmax, n, bs, out);
  else cpu::fp4_dequantize(packed, absmax, n, bs, out);
  return info.Env().Undefined();
}

// nf4DoubleQuantize({ absmax, nblocks, q, nested }) -> offset
TK_CPU_OP(nf4DoubleQuantize) {
  Opts o(info, "nf4DoubleQuantize");
  const int64_t nb = o.count("nblocks");
  const float* absmax = o.tensor<float>("absmax", nb);
  uint8_t* q = o.tensor<uint8_t>("q", nb);
  float* nested = o.tensor<float>("nested", (nb + 255) / 256);
  float offset = 0.0f;
  cpu::nf4_double_quantize_absmax(absmax, nb, q, nested, &offset);
  return Napi::Number::New(info.Env(), offset);
}

// nf4DoubleDequantize({ q, nested, offset, nblocks, absmax })
TK_CPU_OP(nf4DoubleDequantize) {
  Opts o(info, "nf4DoubleDequantize");
  const int64_t nb = o.count("nblocks");
  const float off = o.finite_f32("offset");
  cpu::nf4_double_dequantize_absmax(o.tensor<uint8_t>("q", nb), o.tensor<float>("nested", (nb + 255) / 256), off, nb,
                                    o.tensor<float>("absmax", nb));
  return info.Env().Undefined();
}

// nf4Gemm({ x, M, packed, absmax, N, K, blocksize, quantType, y, beta }): y [M, N] = x [M, K] dequant(W [N, K])^T + beta y
TK_CPU_OP(nf4Gemm) {
  Opts o(info, "nf4Gemm");
  const int64_t M = o.count("M");
  const Nf4Weight w = nf4_weight(o);
  const float beta = static_cast<float>(o.number("beta"));
  const float* x = o.tensor<float>("x", checked_elems(M, w.K, "nf4Gemm x"));
  float* y = o.tensor<float>("y", checked_elems(M, w.N, "nf4Gemm y"));
  if (M > 0) cpu::nf4_gemm(x, M, w.K, w, y, w.N, beta);
  return info.Env().Undefined();
}

// nf4GemmDx({ dy, M, packed, absmax, N, K, blocksize, quantType, dx, beta }): dx [M, K] = dy [M, N] dequant(W [N, K]) + beta dx
TK_CPU_OP(nf4GemmDx) {
  Opts o(info, "nf4GemmDx");
  const int64_t M = o.count("M");
  const Nf4Weight w = nf4_weight(o);
  const float beta = static_cast<float>(o.number("beta"));
  const float* dy = o.tensor<float>("dy", checked_elems(M, w.N, "nf4GemmDx dy"));
  float* dx = o.tensor<float>("dx", checked_elems(M, w.K, "nf4GemmDx dx"));
  if (M > 0) cpu::nf4_gemm_dx(dy, M, w.N, w, dx, w.K, beta);
  return info.Env().Undefined();
}
