// Refcounted, 64-byte aligned host buffers that back every CPU tensor.
// A JS handle holds one reference; a zero-copy ArrayBuffer view holds another, so memory is
// freed only when both are gone (dispose() cannot leave a dangling typed array).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tk {

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  size_t capacity = 0;  // bytes of the block actually held (its cache size class; >= bytes)
  int device = -1;      // -1: host memory; N >= 0: memory of CUDA device N (see release())
  std::atomic<int32_t> refs{1};

  static Storage* allocate(size_t bytes, bool zero);  // throws ERR_OOM
  // A storage over device memory `p` (bytes long) of CUDA device `device`, freed through the hook
  // set_device_free() installs (the CUDA backend's caching allocator) when the last reference
  // goes. Device bytes are not counted in live_bytes() (host memory).
  static Storage* adopt_device(void* p, size_t bytes, int device);
  void retain() { refs.fetch_add(1, std::memory_order_relaxed); }
  void release();  // frees at zero

  // Process-wide count of live bytes (for tests and memory reports).
  static int64_t live_bytes();
  static int64_t peak_bytes();
  static void reset_peak();
  // Bytes held by the caching allocator's free lists (not live), and releasing them.
  static int64_t cached_bytes();
  static void empty_cache();
};

// How release() frees device memory: installed by the N-API layer of builds with the CUDA backend
// (the core itself does not depend on CUDA).
using DeviceFree = void (*)(void* p, int device);
void set_device_free(DeviceFree fn);

void* aligned_alloc_bytes(size_t bytes);  // 64-byte aligned, throws ERR_OOM; free with aligned_free
void aligned_free(void* p);

}  // namespace tk
