// Shared by the native/napi/cuda_ops_*.cpp files (builds with TUNEKIT_WITH_CUDA only): the CUDA
// backend's bindings, `native.cuda.<op>(options)`, take the same options object as
// `native.cpu.<op>` (read by the same op_options.h readers, so sizes, hyper-parameters and op
// codes are checked the same way), with every tensor on one CUDA device (Opts with
// Backend::Cuda: a host storage is ERR_DEVICE naming the field) and bounds-checked against its
// storage's byte length before any kernel is launched.
//
// Kernels are queued on the device's default stream and the binding returns without waiting,
// except where a value comes back (crossEntropy's count, sumSquares, countNonFinite) or ids are
// checked first (gatherRows, scatterAddRows): an asynchronous CUDA failure surfaces as
// ERR_BACKEND from the next call that waits (a read, a transfer, one of those ops).
#pragma once
#ifdef TUNEKIT_WITH_CUDA
#include "cuda/device_runtime.h"
#include "cuda/kernels.h"
#include "napi_util.h"
#include "op_options.h"

#include <vector>

namespace tk::napi {

// A copy on the host of n elements of device memory p (waits for the queued work): for the ops
// whose few values are worked on by the CPU kernel (AdaLoRA's allocator, quantization).
template <typename T>
std::vector<T> to_host(const T* p, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  cuda::copy_to_host(h.data(), p, static_cast<size_t>(n) * sizeof(T));
  return h;
}

// Makes the device the call's tensors live on current for this thread (after they were read).
inline void use_call_device(const Opts& o) {
  if (o.device() >= 0) tk::cuda::use_device(o.device());
}

}  // namespace tk::napi
#endif
