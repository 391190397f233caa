#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

#include "status.h"

namespace tk {

namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};

void note_alloc(int64_t n) {
  int64_t now = g_live.fetch_add(n) + n;
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
  }
}

// Blocks of 256 KiB and more are mapped directly, so that freeing one (eviction below) returns its
// pages to the system instead of leaving them resident in the malloc heap.
constexpr size_t kMapMin = size_t{256} << 10;
void* raw_alloc(size_t cls) {
  if (cls < kMapMin) return std::aligned_alloc(64, cls);
  void* p = mmap(nullptr, cls, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void raw_free(void* p, size_t cls) {
  if (cls < kMapMin) std::free(p);
  else munmap(p, cls);
}

// Caching allocator for Storage blocks. A training step allocates and frees the same sizes every
// step (activations, gradients, logits); from the system allocator each large block is a fresh
// mmap whose pages fault in again on first touch (~10% of a GPT-2 step). Freed blocks are kept in
// per-size-class free lists and handed out again. Size classes are quarter powers of two
// (<= 25% rounding; 64-byte multiples below 4 KiB). The cache holds at most kMaxCachedBytes
// (env TUNEKIT_ALLOC_CACHE_MB; 0 disables it). It never lets live + cached bytes exceed the peak
// of live bytes seen so far: a freed block is kept only within that bound, and a size that misses
// first evicts cached blocks (largest first) to stay within it, so the cache does not raise the
// resident peak. An allocation that fails empties the cache and retries. live/peak bytes count the bytes asked for by live storages, as before (cached blocks
// are not live).
class BlockCache {
 public:
  BlockCache() {
    const char* env = std::getenv("TUNEKIT_ALLOC_CACHE_MB");
    if (env && *env) max_bytes_ = static_cast<size_t>(std::strtoull(env, nullptr, 10)) << 20;
  }
  ~BlockCache() { clear(); }

  static size_t size_class(size_t bytes) {
    if (bytes <= 4096) return bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    int top = 63 - __builtin_clzll(bytes - 1);  // 2^top < bytes <= 2^(top+1)
    size_t quarter = size_t{1} << (top - 2);
    return (bytes + quarter - 1) / quarter * quarter;
  }

  void* take(size_t cls) {
    if (max_bytes_ == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_ -= cls;
    return p;
  }

  // true when the block was kept; live = live bytes after this block's release
  bool give(void* p, size_t cls, int64_t live, int64_t peak) {
    if (max_bytes_ == 0) return false;
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + cls > max_bytes_ || live + static_cast<int64_t>(cached_ + cls) > peak) return false;
    free_[cls].push_back(p);
    cached_ += cls;
    return true;
  }

  // Before a fresh allocation of cls bytes: evict cached blocks, largest first, until
  // live + cached + cls fits under the live peak (or the cache is empty).
  void make_room(size_t cls, int64_t live, int64_t peak) {
    if (max_bytes_ == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    while (cached_ > 0 && live + static_cast<int64_t>(cached_ + cls) > peak) {
      auto big = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (!it->second.empty() && (big == free_.end() || it->first > big->first)) big = it;
      if (big == free_.end()) break;
      raw_free(big->second.back(), big->first);
      big->second.pop_back();
      cached_ -= big->first;
    }
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [cls, v] : free_) {
      for (void* p : v) raw_free(p, cls);
    }
    free_.clear();
    cached_ = 0;
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
  size_t max_bytes_ = size_t{4} << 30;
};

BlockCache& cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: storages may be released at exit
  return *c;
}
}  // namespace

void* aligned_alloc_bytes(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) fail(ErrorCode::OOM, "out of host memory allocating ", bytes, " bytes");
  return p;
}

void aligned_free(void* p) { std::free(p); }

Storage* Storage::allocate(size_t bytes, bool zero) {
  auto* s = new Storage();
  const size_t cls = BlockCache::size_class(bytes);
  void* p = cache().take(cls);
  if (!p) {
    cache().make_room(cls, g_live.load(), g_peak.load());
    p = raw_alloc(cls);
    if (!p) {
      cache().clear();
      p = raw_alloc(cls);
    }
    if (!p) {
      delete s;
      fail(ErrorCode::OOM, "out of host memory allocating ", bytes, " bytes");
    }
  }
  s->data = p;
  s->bytes = bytes;
  if (zero) std::memset(s->data, 0, bytes);
  note_alloc(static_cast<int64_t>(bytes));
  return s;
}

void Storage::release() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    const size_t cls = BlockCache::size_class(bytes);
    const int64_t live = g_live.fetch_sub(static_cast<int64_t>(bytes)) - static_cast<int64_t>(bytes);
    if (!cache().give(data, cls, live, g_peak.load())) raw_free(data, cls);
    delete this;
  }
}

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() { g_peak.store(g_live.load()); }
int64_t Storage::cached_bytes() { return static_cast<int64_t>(cache().cached()); }
void Storage::empty_cache() { cache().clear(); }

}  // namespace tk
