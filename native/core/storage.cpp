#include "storage.h"

#include <cstdlib>
#include <cstring>

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
  try {
    s->data = aligned_alloc_bytes(bytes);
  } catch (...) {
    delete s;
    throw;
  }
  s->bytes = bytes;
  if (zero) std::memset(s->data, 0, bytes);
  note_alloc(static_cast<int64_t>(bytes));
  return s;
}

void Storage::release() {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    aligned_free(data);
    g_live.fetch_sub(static_cast<int64_t>(bytes));
    delete this;
  }
}

int64_t Storage::live_bytes() { return g_live.load(); }
int64_t Storage::peak_bytes() { return g_peak.load(); }
void Storage::reset_peak() { g_peak.store(g_live.load()); }

}  // namespace tk
