// native.cuda: data movement within one device (the CUDA twins of storage_ops.cpp's fill, cast,
// copyBytes, copyRows, copyStrided, randomNormal, randomUniform, arange: same options, same
// checks; kernels in native/cuda/data.cu). Copies between devices are `transfer`
// (storage_ops.cpp), which works for every pair of memories. Compiled to nothing without
// TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA

using namespace tk;
using namespace tk::napi;

// fill({ dst, dtype, n, value })
TK_CUDA_OP(fill) {
  Opts o(info, "fill", Backend::Cuda);
  const DType d = o.dtype("dtype");
  const int64_t n = o.count("n");
  void* p = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(d)), "fill"));
  const double value = o.number("value");
  use_call_device(o);
  cuda::fill(p, d, n, value);
  return info.Env().Undefined();
}

// cast({ src, srcDtype, dst, dstDtype, n })
TK_CUDA_OP(cast) {
  Opts o(info, "cast", Backend::Cuda);
  const DType sd = o.dtype("srcDtype"), dd = o.dtype("dstDtype");
  const int64_t n = o.count("n");
  const void* s = o.tensor<uint8_t>("src", checked_elems(n, static_cast<int64_t>(dtype_size(sd)), "cast"));
  void* d = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(dd)), "cast"));
  use_call_device(o);
  cuda::cast(s, sd, d, dd, n);
  return info.Env().Undefined();
}

// copyBytes({ src, dst, bytes }): memmove semantics (they may overlap)
TK_CUDA_OP(copyBytes) {
  Opts o(info, "copyBytes", Backend::Cuda);
  const int64_t n = o.count("bytes");
  const uint8_t* s = o.tensor<uint8_t>("src", n);
  uint8_t* d = o.tensor<uint8_t>("dst", n);
  use_call_device(o);
  cuda::copy_bytes(s, d, n);
  return info.Env().Undefined();
}

// copyRows({ src, dst, rows, rowBytes, srcStride, dstStride })
TK_CUDA_OP(copyRows) {
  Opts o(info, "copyRows", Backend::Cuda);
  const int64_t rows = o.count("rows"), rb = o.count("rowBytes");
  const int64_t ss = o.count("srcStride"), ds = o.count("dstStride");
  const int64_t sext = rows == 0 ? 0 : checked_elems(rows - 1, ss, "copyRows src") + rb;
  const int64_t dext = rows == 0 ? 0 : checked_elems(rows - 1, ds, "copyRows dst") + rb;
  const uint8_t* s = o.tensor<uint8_t>("src", sext);
  uint8_t* d = o.tensor<uint8_t>("dst", dext);
  use_call_device(o);
  cuda::copy_rows(s, d, rows, rb, ss, ds);
  return info.Env().Undefined();
}

// copyStrided({ src, dst, elemSize, shape, strides })
TK_CUDA_OP(copyStrided) {
  Opts o(info, "copyStrided", Backend::Cuda);
  const int64_t es = o.count("elemSize");
  const std::vector<int64_t> shape = o.ints("shape"), strides = o.ints("strides");
  const auto [total, max_index] = strided_extent(shape, strides, "copyStrided");
  const void* s = o.tensor<uint8_t>("src", total == 0 ? 0 : checked_elems(max_index + 1, es, "copyStrided"));
  void* d = o.tensor<uint8_t>("dst", checked_elems(total, es, "copyStrided"));
  use_call_device(o);
  if (total > 0) cuda::copy_strided(s, d, es, static_cast<int>(shape.size()), shape.data(), strides.data());
  return info.Env().Undefined();
}

// randomNormal({ dst, n, seed, mean, std }) / randomUniform({ dst, n, seed, low, high }), f32
TK_CUDA_OP(randomNormal) {
  Opts o(info, "randomNormal", Backend::Cuda);
  const int64_t n = o.count("n");
  float* d = o.tensor<float>("dst", n);
  const uint64_t seed = static_cast<uint64_t>(o.count("seed"));
  const float mean = static_cast<float>(o.number("mean")), std = static_cast<float>(o.number("std"));
  use_call_device(o);
  cuda::random_normal_f32(d, n, seed, mean, std);
  return info.Env().Undefined();
}

TK_CUDA_OP(randomUniform) {
  Opts o(info, "randomUniform", Backend::Cuda);
  const int64_t n = o.count("n");
  float* d = o.tensor<float>("dst", n);
  const uint64_t seed = static_cast<uint64_t>(o.count("seed"));
  const float low = static_cast<float>(o.number("low")), high = static_cast<float>(o.number("high"));
  use_call_device(o);
  cuda::random_uniform_f32(d, n, seed, low, high);
  return info.Env().Undefined();
}

// arange({ dst, dtype, n, start, step })
TK_CUDA_OP(arange) {
  Opts o(info, "arange", Backend::Cuda);
  const DType d = o.dtype("dtype");
  const int64_t n = o.count("n");
  void* p = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(d)), "arange"));
  const double start = o.number("start"), step = o.number("step");
  use_call_device(o);
  cuda::arange(p, d, n, start, step);
  return info.Env().Undefined();
}

#endif  // TUNEKIT_WITH_CUDA
