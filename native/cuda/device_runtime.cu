// Device runtime: discovery, caching allocator, copies, timing. See device_runtime.h.
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "cuda/common.cuh"

namespace tk::cuda {

void throw_cuda_error(cudaError_t err, const char* what) {
  (void)cudaGetLastError();  // clear the sticky-free error state so later calls start clean
  const char* name = cudaGetErrorName(err);
  const char* text = cudaGetErrorString(err);
  if (err == cudaErrorMemoryAllocation)
    fail(ErrorCode::OOM, "CUDA out of memory in ", what, ": ", name, " (", text, ")");
  fail(ErrorCode::Backend, "CUDA error in ", what, ": ", name, " (", static_cast<int>(err), ", ", text, ")");
}

DeviceInfo device_info() {
  DeviceInfo info;
  info.compiled = true;
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    info.devices = 0;
    info.reason = std::string("no CUDA device: ") + cudaGetErrorString(err) + " (" + cudaGetErrorName(err) +
                  ", error " + std::to_string(static_cast<int>(err)) + ")";
    return info;
  }
  if (count <= 0) {
    info.reason = "no CUDA device: the driver reports 0 devices";
    return info;
  }
  info.devices = count;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    info.name = prop.name;
    info.cc_major = prop.major;
    info.cc_minor = prop.minor;
    info.total_bytes = prop.totalGlobalMem;
  } else {
    (void)cudaGetLastError();
  }
  return info;
}

void require_device(int ordinal) {
  DeviceInfo info = device_info();
  TK_CHECK(info.devices > 0, Device, info.reason);
  TK_CHECK(ordinal >= 0 && ordinal < info.devices, Device, "CUDA device ", ordinal, " does not exist (",
           info.devices, " device(s))");
  cuda_check(cudaSetDevice(ordinal), "cudaSetDevice");
}

namespace {
// the device this thread last selected (cudaSetDevice is per thread), -1 before the first
thread_local int t_current_device = -1;
// devices known to exist (checked once by use_device's first call per ordinal)
std::mutex g_known_mu;
int g_known_devices = -1;
}  // namespace

void use_device(int ordinal) {
  if (ordinal == t_current_device) return;
  {
    std::lock_guard<std::mutex> lock(g_known_mu);
    if (g_known_devices < 0) {
      DeviceInfo info = device_info();
      TK_CHECK(info.devices > 0, Device, info.reason);
      g_known_devices = info.devices;
    }
    TK_CHECK(ordinal >= 0 && ordinal < g_known_devices, Device, "CUDA device ", ordinal, " does not exist (",
             g_known_devices, " device(s): cuda:0..cuda:", g_known_devices - 1, ")");
  }
  cuda_check(cudaSetDevice(ordinal), "cudaSetDevice");
  t_current_device = ordinal;
}

// ---- caching allocator ----------------------------------------------------------------------

namespace {

constexpr size_t kSmallGranule = 256;
constexpr size_t kLargeGranule = size_t(2) << 20;
constexpr size_t kSmallLimit = size_t(1) << 20;

size_t size_class(size_t bytes) {
  if (bytes <= kSmallLimit) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  return (bytes + kLargeGranule - 1) / kLargeGranule * kLargeGranule;
}

// Blocks belong to the device that was current when they were allocated: the free lists are
// per (device, size class), so a block is only ever handed out again on its own device.
struct Block {
  int device;
  size_t cls;
};
struct Allocator {
  std::mutex mu;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_lists;  // (device, size class) -> cached blocks
  std::unordered_map<void*, Block> live;                              // block -> its device and size class
  AllocatorStats stats;

  // cudaFree every cached block of `device` (all devices when -1); the caller's device is restored
  void release_locked(int device) {
    int prev = 0;
    (void)cudaGetDevice(&prev);
    for (auto it = free_lists.begin(); it != free_lists.end();) {
      if (device >= 0 && it->first.first != device) {
        ++it;
        continue;
      }
      (void)cudaSetDevice(it->first.first);
      for (void* p : it->second) {
        cudaFree(p);
        stats.cached_bytes -= it->first.second;
      }
      it = free_lists.erase(it);
    }
    (void)cudaSetDevice(prev);
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed: blocks may be freed during exit
  return *a;
}

}  // namespace

void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t cls = size_class(bytes);
  int device = 0;
  cuda_check(cudaGetDevice(&device), "cudaGetDevice");
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  void* p = nullptr;
  auto it = a.free_lists.find({device, cls});
  if (it != a.free_lists.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    a.stats.cached_bytes -= cls;
    a.stats.cache_hits++;
  } else {
    cudaError_t err = cudaMalloc(&p, cls);
    a.stats.malloc_calls++;
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      cudaDeviceSynchronize();  // cached blocks may still be read by queued kernels
      a.release_locked(device);
      err = cudaMalloc(&p, cls);
      a.stats.malloc_calls++;
    }
    if (err != cudaSuccess) throw_cuda_error(err, "cudaMalloc");
  }
  a.live[p] = Block{device, cls};
  a.stats.allocated_bytes += cls;
  if (a.stats.allocated_bytes > a.stats.peak_allocated_bytes) a.stats.peak_allocated_bytes = a.stats.allocated_bytes;
  return p;
}

void device_free(void* p) {
  if (!p) return;
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.find(p);
  if (it == a.live.end()) return;  // not ours (or freed twice): ignore rather than corrupt the cache
  const Block b = it->second;
  a.live.erase(it);
  a.stats.allocated_bytes -= b.cls;
  a.stats.cached_bytes += b.cls;
  // Kernels already queued on the default stream that use p run before any later kernel that
  // reuses it (same stream), so the block can be cached right away.
  a.free_lists[{b.device, b.cls}].push_back(p);
}

AllocatorStats allocator_stats() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}

void release_cached() {
  Allocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  cudaDeviceSynchronize();  // cached blocks may still be read by queued kernels
  a.release_locked(-1);
}

// ---- copies ----------------------------------------------------------------------------------

void copy_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes) cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
}
void copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device->host");
}
void copy_device(void* dst, const void* src, size_t bytes) {
  if (bytes) cuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0), "cudaMemcpyAsync device->device");
}
void fill_zero(void* dst, size_t bytes) {
  if (bytes) cuda_check(cudaMemsetAsync(dst, 0, bytes, 0), "cudaMemsetAsync");
}
void synchronize() { cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

void check_launch(const char* what) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_cuda_error(err, what);
}

// ---- timing ----------------------------------------------------------------------------------

EventTimer::EventTimer() {
  cudaEvent_t a, b;
  cuda_check(cudaEventCreate(&a), "cudaEventCreate");
  cudaError_t err = cudaEventCreate(&b);
  if (err != cudaSuccess) {
    cudaEventDestroy(a);
    throw_cuda_error(err, "cudaEventCreate");
  }
  start_ = a;
  stop_ = b;
}
EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}
void EventTimer::start() { cuda_check(cudaEventRecord(static_cast<cudaEvent_t>(start_), 0), "cudaEventRecord"); }
float EventTimer::stop_ms() {
  cuda_check(cudaEventRecord(static_cast<cudaEvent_t>(stop_), 0), "cudaEventRecord");
  cuda_check(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)), "cudaEventSynchronize");
  float ms = 0;
  cuda_check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)),
             "cudaEventElapsedTime");
  return ms;
}

}  // namespace tk::cuda
