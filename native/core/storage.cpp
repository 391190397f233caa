#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
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

// Caching allocator for Storage blocks. A training step allocates and frees the same sizes every
// step (activations, gradients, logits); from the system allocator each large block is a fresh
// mmap whose pages fault in again on first touch (~10% of a GPT-2 step). Freed blocks are kept in
// per-size-class free lists and handed out again. Size classes are quarter powers of two
// (<= 25% rounding; 64-byte multiples below 4 KiB). The cache holds at most kMaxCachedBytes
// (env TUNEKIT_ALLOC_CACHE_MB; 0 disables it); an allocation that fails empties the cache and
// retries. live/peak bytes count the bytes asked for by live storages, as before (cached blocks
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

  // true when the block was kept
  bool give(void* p, size_t cls) {
    if (max_bytes_ == 0) return false;
    std::lock_guard<std::mutex> lock(mu_);
    if (cached_ + cls > max_bytes_) return false;
    free_[cls].push_back(p);
    cached_ += cls;
    return true;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [cls, v] : free_) {
      for (void* p : v) std::free(p);
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
    p = std::aligned_alloc(64, cls);
    if (!p) {
      cache().clear();
      p = std::aligned_alloc(64, cls);
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
    if (!cache().give(data, BlockCache::size_class(bytes))) std::free(data);
    g_live.fetch_sub(static_cast<int64_t>(bytes));
    delete this;
  }
}

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() { g_peak.store(g_live.load()); }
int64_t Storage::cached_bytes() { return static_cast<int64_t>(cache().cached()); }
void Storage::empty_cache() { cache().clear(); }

}  // namespace tk
