// NF4 / FP4 bindings (lib/native.ts "NF4"): blockwise 4-bit quantization in bitsandbytes' layout,
// double quantization of the absmax array, and the fused dequant-GEMMs (native/cpu/nf4.h). Every
// tensor argument is bounds-checked against its storage before any work.
#include <cmath>
#include <limits>

#include "cpu/nf4.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

int blocksize_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const int64_t bs = int_arg(info, i, what);
  TK_CHECK(bs >= 32 && bs <= 4096, Value, what, ": blocksize must be in [32, 4096] (bitsandbytes' range) but is ", bs);
  return static_cast<int>(bs);
}

cpu::Quant4Type type_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const int64_t t = int_arg(info, i, what);
  TK_CHECK(t == 0 || t == 1, Value, what, ": quant type must be 0 (nf4) or 1 (fp4) but is ", t);
  return t == 0 ? cpu::Quant4Type::NF4 : cpu::Quant4Type::FP4;
}

int64_t nblocks_of(int64_t n, int bs) { return (n + bs - 1) / bs; }

Napi::Value floats(Napi::Env env, const float* v, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
  return a;
}

// The weight at info[at..]: packed, pOff, absmax, aOff, N, K, blocksize, quantType.
cpu::Nf4Weight weight_args(const Napi::CallbackInfo& info, size_t at, const char* what) {
  cpu::Nf4Weight w;
  w.N = int_arg(info, at + 4, what);
  w.K = int_arg(info, at + 5, what);
  w.blocksize = blocksize_arg(info, at + 6, what);
  w.type = type_arg(info, at + 7, what);
  TK_CHECK(w.N > 0 && w.K > 0, Shape, what, ": weight sizes must be positive but are [", w.N, ", ", w.K, "]");
  const int64_t n = checked_elems(w.N, w.K, what);
  w.packed = tensor_arg<uint8_t>(info, at, (n + 1) / 2, what);
  w.absmax = tensor_arg<float>(info, at + 2, nblocks_of(n, w.blocksize), what);
  return w;
}

}  // namespace

// nf4Codebook(quantType) -> number[16]; nf4DynamicMap() -> number[256]
TK_EXPORT(nf4Codebook) {
  const cpu::Quant4Type t = type_arg(info, 0, "nf4Codebook");
  return floats(info.Env(), t == cpu::Quant4Type::NF4 ? cpu::nf4_codebook() : cpu::fp4_codebook(), 16);
}

TK_EXPORT(nf4DynamicMap) { return floats(info.Env(), cpu::dynamic_map_signed(), 256); }

// nf4Quantize(w, wOff, n, blocksize, quantType, packed, pOff, absmax, aOff)
TK_EXPORT(nf4Quantize) {
  const int64_t n = int_arg(info, 2, "nf4Quantize n");
  TK_CHECK(n >= 0, Shape, "nf4Quantize: negative length ", n);
  const int bs = blocksize_arg(info, 3, "nf4Quantize");
  const cpu::Quant4Type t = type_arg(info, 4, "nf4Quantize");
  const float* w = tensor_arg<float>(info, 0, n, "nf4Quantize w");
  uint8_t* packed = tensor_arg<uint8_t>(info, 5, (n + 1) / 2, "nf4Quantize packed");
  float* absmax = tensor_arg<float>(info, 7, nblocks_of(n, bs), "nf4Quantize absmax");
  if (t == cpu::Quant4Type::NF4) cpu::nf4_quantize(w, n, bs, packed, absmax);
  else cpu::fp4_quantize(w, n, bs, packed, absmax);
  return info.Env().Undefined();
}

// nf4Dequantize(packed, pOff, absmax, aOff, n, blocksize, quantType, out, oOff)
TK_EXPORT(nf4Dequantize) {
  const int64_t n = int_arg(info, 4, "nf4Dequantize n");
  TK_CHECK(n >= 0, Shape, "nf4Dequantize: negative length ", n);
  const int bs = blocksize_arg(info, 5, "nf4Dequantize");
  const cpu::Quant4Type t = type_arg(info, 6, "nf4Dequantize");
  const uint8_t* packed = tensor_arg<uint8_t>(info, 0, (n + 1) / 2, "nf4Dequantize packed");
  const float* absmax = tensor_arg<float>(info, 2, nblocks_of(n, bs), "nf4Dequantize absmax");
  float* out = tensor_arg<float>(info, 7, n, "nf4Dequantize out");
  if (t == cpu::Quant4Type::NF4) cpu::nf4_dequantize(packed, absmax, n, bs, out);
  else cpu::fp4_dequantize(packed, absmax, n, bs, out);
  return info.Env().Undefined();
}

// nf4DoubleQuantize(absmax, aOff, nblocks, q, qOff, nested, nOff) -> offset
TK_EXPORT(nf4DoubleQuantize) {
  const int64_t nb = int_arg(info, 2, "nf4DoubleQuantize nblocks");
  TK_CHECK(nb >= 0, Shape, "nf4DoubleQuantize: negative length ", nb);
  const float* absmax = tensor_arg<float>(info, 0, nb, "nf4DoubleQuantize absmax");
  uint8_t* q = tensor_arg<uint8_t>(info, 3, nb, "nf4DoubleQuantize q");
  float* nested = tensor_arg<float>(info, 5, (nb + 255) / 256, "nf4DoubleQuantize nested_absmax");
  float offset = 0.0f;
  cpu::nf4_double_quantize_absmax(absmax, nb, q, nested, &offset);
  return Napi::Number::New(info.Env(), offset);
}

// nf4DoubleDequantize(q, qOff, nested, nOff, offset, nblocks, absmax, aOff)
TK_EXPORT(nf4DoubleDequantize) {
  const int64_t nb = int_arg(info, 5, "nf4DoubleDequantize nblocks");
  TK_CHECK(nb >= 0, Shape, "nf4DoubleDequantize: negative length ", nb);
  const double off = num_arg(info, 4, "nf4DoubleDequantize offset");
  TK_CHECK(std::isfinite(off), Value, "nf4DoubleDequantize: offset must be finite but is ", off);
  const uint8_t* q = tensor_arg<uint8_t>(info, 0, nb, "nf4DoubleDequantize q");
  const float* nested = tensor_arg<float>(info, 2, (nb + 255) / 256, "nf4DoubleDequantize nested_absmax");
  float* absmax = tensor_arg<float>(info, 6, nb, "nf4DoubleDequantize absmax");
  cpu::nf4_double_dequantize_absmax(q, nested, static_cast<float>(off), nb, absmax);
  return info.Env().Undefined();
}

// nf4Gemm(x, xOff, M, packed, pOff, absmax, aOff, N, K, blocksize, quantType, y, yOff, beta)
//   y [M, N] = x [M, K] dequant(W [N, K])^T + beta y
TK_EXPORT(nf4Gemm) {
  const int64_t M = int_arg(info, 2, "nf4Gemm M");
  TK_CHECK(M >= 0, Shape, "nf4Gemm: negative M ", M);
  const cpu::Nf4Weight w = weight_args(info, 3, "nf4Gemm weight");
  const double beta = num_arg(info, 13, "nf4Gemm beta");
  const float* x = tensor_arg<float>(info, 0, checked_elems(M, w.K, "nf4Gemm x"), "nf4Gemm x");
  float* y = tensor_arg<float>(info, 11, checked_elems(M, w.N, "nf4Gemm y"), "nf4Gemm y");
  if (M > 0) cpu::nf4_gemm(x, M, w.K, w, y, w.N, static_cast<float>(beta));
  return info.Env().Undefined();
}

// nf4GemmDx(dy, dyOff, M, packed, pOff, absmax, aOff, N, K, blocksize, quantType, dx, dxOff, beta)
//   dx [M, K] = dy [M, N] dequant(W [N, K]) + beta dx
TK_EXPORT(nf4GemmDx) {
  const int64_t M = int_arg(info, 2, "nf4GemmDx M");
  TK_CHECK(M >= 0, Shape, "nf4GemmDx: negative M ", M);
  const cpu::Nf4Weight w = weight_args(info, 3, "nf4GemmDx weight");
  const double beta = num_arg(info, 13, "nf4GemmDx beta");
  const float* dy = tensor_arg<float>(info, 0, checked_elems(M, w.N, "nf4GemmDx dy"), "nf4GemmDx dy");
  float* dx = tensor_arg<float>(info, 11, checked_elems(M, w.K, "nf4GemmDx dx"), "nf4GemmDx dx");
  if (M > 0) cpu::nf4_gemm_dx(dy, M, w.N, w, dx, w.K, static_cast<float>(beta));
  return info.Env().Undefined();
}
