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

void* aligned_alloc_bytes(size_t bytes);  // 64-byte aligned, throws ERR_OOM; free with aligned_free
void aligned_free(void* p);

}  // namespace tk
