// Device storages and cross-device copies (device_storage.h).
#include "device_storage.h"

#include <cstring>

#include "core/status.h"
#ifdef TUNEKIT_WITH_CUDA
#include "cuda/device_runtime.h"
#endif

namespace tk::napi {

#ifdef TUNEKIT_WITH_CUDA

namespace {
// release() of a device storage: back to the caching allocator (the block remembers its device)
void free_device_block(void* p, int) { cuda::device_free(p); }

// installed once, before the first device storage exists
struct InstallDeviceFree {
  InstallDeviceFree() { set_device_free(free_device_block); }
} g_install;
}  // namespace

Storage* allocate_device_storage(size_t bytes, bool zero, int device) {
  cuda::use_device(device);
  void* p = cuda::device_alloc(bytes);
  if (zero) cuda::fill_zero(p, bytes);
  return Storage::adopt_device(p, bytes, device);
}

void select_device(int device) {
  if (device >= 0) cuda::use_device(device);
}

void copy_between(int dst_device, void* dst, int src_device, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (dst_device < 0 && src_device < 0) {
    std::memmove(dst, src, bytes);
  } else if (src_device < 0) {
    cuda::use_device(dst_device);
    cuda::copy_to_device(dst, src, bytes);
  } else if (dst_device < 0) {
    cuda::use_device(src_device);
    cuda::copy_to_host(dst, src, bytes);
  } else {
    // device to device (same or another device: unified addressing lets cudaMemcpy find both)
    cuda::use_device(dst_device);
    cuda::copy_device(dst, src, bytes);
    cuda::synchronize();
  }
}

#else

namespace {
[[noreturn]] void no_cuda(int device) {
  fail(ErrorCode::Device, "cuda:", device, ": this build of tunekit has no CUDA backend (compiled without nvcc; build it where the CUDA toolkit is installed: npm run build:cuda)");
}
}  // namespace

Storage* allocate_device_storage(size_t, bool, int device) { no_cuda(device); }

void select_device(int device) {
  if (device >= 0) no_cuda(device);
}

void copy_between(int dst_device, void* dst, int src_device, const void* src, size_t bytes) {
  if (dst_device >= 0) no_cuda(dst_device);
  if (src_device >= 0) no_cuda(src_device);
  if (bytes) std::memmove(dst, src, bytes);
}

#endif

}  // namespace tk::napi
