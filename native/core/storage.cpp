#include "storage.h"

#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

#include "status.h"

namespace tk {

namespace {
std::atomic<int64_t> g_live{0};
std::atomic<int64_t> g_peak{0};
// The same in block bytes (size classes): the cache's bound. Measured in requested bytes, a
// freed block (its class up to 25% larger) counts for more once cached than it did live, and
// freeing a step's activations evicted the blocks freed earlier in the step (the GPT-2 LM
// head's 103 MB logits gradient, mapped afresh every step: 25k page faults).
std::atomic<int64_t> g_live_blocks{0};
std::atomic<int64_t> g_peak_blocks{0};

void raise_peak(std::atomic<int64_t>& peak_var, int64_t now) {
  int64_t peak = peak_var.load();
  while (now > peak && !peak_var.compare_exchange_weak(peak, now)) {
  }
}

void note_alloc(int64_t n, int64_t block) {
  raise_peak(g_peak, g_live.fetch_add(n) + n);
  raise_peak(g_peak_blocks, g_live_blocks.fetch_add(block) + block);
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
// (<= 25% rounding; 64-byte multiples below 4 KiB). The cache holds at most max_bytes_ (env
// TUNEKIT_ALLOC_CACHE_MB; 0 disables it) and never lets live + cached block bytes exceed the
// peak of live block bytes seen so far by more than an eighth, so it raises the resident peak
// by at most that. Within those bounds the least
// recently freed blocks make way: a freed block is always kept (older cached blocks of any size
// are evicted for it), and a size that misses first evicts the oldest blocks. (Before, a freed
// block that did not fit was returned to the system while stale blocks of sizes no longer used
// kept the room: in the main job's step most 6-8 MiB blocks missed every step.) An allocation
// that fails empties the cache and retries. live/peak bytes count the bytes asked for by live
// storages (cached blocks are not live).
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
    auto it = by_class_.find(cls);
    if (it == by_class_.end() || it->second.empty()) return nullptr;
    auto entry = it->second.back();  // the most recently freed block of this size
    it->second.pop_back();
    void* p = entry->p;
    lru_.erase(entry);
    cached_ -= cls;
    return p;
  }

  // true when the block was kept; live = live bytes after this block's release
  bool give(void* p, size_t cls, int64_t live, int64_t peak) {
    if (max_bytes_ == 0 || cls > max_bytes_) return false;
    std::lock_guard<std::mutex> lock(mu_);
    // the block just freed is the likeliest to be asked for again: older blocks make way for it
    while (!lru_.empty() && !fits(cls, live, peak)) evict_oldest();
    if (!fits(cls, live, peak)) return false;
    lru_.push_front({cls, p});
    by_class_[cls].push_back(lru_.begin());
    cached_ += cls;
    return true;
  }

  // On a miss: the smallest cached block of a class in (cls, max_cls], or null. A block up to
  // twice the size asked for is a better answer than a fresh mapping, whose pages fault in again
  // (the main job's backward asked for 8 MiB blocks while 6 MiB and 12 MiB ones sat cached).
  void* take_larger(size_t cls, size_t max_cls, size_t* got) {
    if (max_bytes_ == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    auto best = by_class_.end();
    for (auto it = by_class_.begin(); it != by_class_.end(); ++it)
      if (it->first > cls && it->first <= max_cls && !it->second.empty() && (best == by_class_.end() || it->first < best->first)) best = it;
    if (best == by_class_.end()) return nullptr;
    auto entry = best->second.back();
    best->second.pop_back();
    void* p = entry->p;
    *got = best->first;
    lru_.erase(entry);
    cached_ -= best->first;
    return p;
  }

  // Before a fresh allocation of cls bytes: evict the oldest cached blocks until
  // live + cached + cls fits under the live peak (or the cache is empty).
  void make_room(size_t cls, int64_t live, int64_t peak) {
    if (max_bytes_ == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    while (!lru_.empty() && live + static_cast<int64_t>(cached_ + cls) > bound(peak)) evict_oldest();
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& e : lru_) raw_free(e.p, e.cls);
    lru_.clear();
    by_class_.clear();
    cached_ = 0;
  }

  size_t cached() {
    std::lock_guard<std::mutex> lock(mu_);
    return cached_;
  }

 private:
  struct Entry {
    size_t cls;
    void* p;
  };

  // The live peak plus an eighth: with the bound at the peak itself, a step that needs two large
  // blocks at once (GPT-2's logits and their gradient) kept only one from step to step, because
  // every small miss evicted the oldest block to stay under it.
  static int64_t bound(int64_t peak) { return peak + peak / 8; }

  bool fits(size_t cls, int64_t live, int64_t peak) const {
    return cached_ + cls <= max_bytes_ && live + static_cast<int64_t>(cached_ + cls) <= bound(peak);
  }

  // the least recently freed block (the back of the list); within its class it is the oldest,
  // so it sits at the front of that class's vector
  void evict_oldest() {
    const Entry e = lru_.back();
    auto& v = by_class_[e.cls];
    v.erase(v.begin());
    lru_.pop_back();
    raw_free(e.p, e.cls);
    cached_ -= e.cls;
  }

  std::mutex mu_;
  std::list<Entry> lru_;  // front: most recently freed
  std::unordered_map<size_t, std::vector<std::list<Entry>::iterator>> by_class_;  // oldest first
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
  size_t cls = BlockCache::size_class(bytes);
  void* p = cache().take(cls);
  if (!p && cls >= (size_t{256} << 10)) p = cache().take_larger(cls, 2 * cls, &cls);
  if (!p) {
    cache().make_room(cls, g_live_blocks.load(), g_peak_blocks.load());
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
  s->capacity = cls;
  if (zero) std::memset(s->data, 0, bytes);
  note_alloc(static_cast<int64_t>(bytes), static_cast<int64_t>(cls));
  return s;
}

namespace {
std::atomic<DeviceFree> g_device_free{nullptr};
}  // namespace

void set_device_free(DeviceFree fn) { g_device_free.store(fn); }

Storage* Storage::adopt_device(void* p, size_t bytes, int device) {
  auto* s = new Storage();
  s->data = p;
  s->bytes = bytes;
  s->capacity = bytes;
  s->device = device;
  return s;
}

void Storage::release() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (device >= 0) {
      if (DeviceFree f = g_device_free.load()) f(data, device);
      delete this;
      return;
    }
    const size_t cls = capacity;
    g_live.fetch_sub(static_cast<int64_t>(bytes));
    const int64_t live = g_live_blocks.fetch_sub(static_cast<int64_t>(cls)) - static_cast<int64_t>(cls);
    if (!cache().give(data, cls, live, g_peak_blocks.load())) raw_free(data, cls);
    delete this;
  }
}

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() {
  g_peak.store(g_live.load());
  g_peak_blocks.store(g_live_blocks.load());
}
int64_t Storage::cached_bytes() { return static_cast<int64_t>(cache().cached()); }
void Storage::empty_cache() { cache().clear(); }

}  // namespace tk
