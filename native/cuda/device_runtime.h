// CUDA device runtime of the native core: device discovery, a caching device allocator,
// host <-> device copies, event timing. Plain C++ header (no CUDA headers), so .cpp files
// (the N-API layer, the Node-free GPU check) can include it; the implementation lives in
// device_runtime.cu and exists only when the core is built with TUNEKIT_WITH_CUDA.
//
// Errors: every CUDA failure becomes a tk::Error - ERR_OOM for cudaErrorMemoryAllocation,
// ERR_BACKEND for anything else - whose message names the call and CUDA's own error string.
// Nothing here aborts the process; with no usable driver/device, device_info() says why.
//
// All work is issued on the legacy default stream; the kernels' host wrappers are asynchronous
// except where they must return a value computed on the device (documented per op).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace tk::cuda {

struct DeviceInfo {
  bool compiled = false;  // the core was built with the CUDA backend
  int devices = 0;        // usable CUDA devices (0 when the driver or device is missing)
  std::string reason;     // why devices == 0 ("no CUDA device: <cuda error>"), else ""
  std::string name;       // name of device 0 when devices > 0
  int cc_major = 0, cc_minor = 0;
  size_t total_bytes = 0;
};

// Never throws: failures of cudaGetDeviceCount (error 35 "driver insufficient", 100 "no
// device", ...) are reported in `reason`.
DeviceInfo device_info();

// Throws tk::Error(ERR_DEVICE) with device_info().reason unless a device is usable; selects
// device `ordinal` for the calling thread.
void require_device(int ordinal = 0);
// The same for every op call: device discovery runs once, and cudaSetDevice only when the
// calling thread's current device differs (ERR_DEVICE naming the devices there are otherwise).
void use_device(int ordinal);

// ---- caching allocator ----------------------------------------------------------------------
// Requests are rounded up to a size class (256 B granules below 1 MiB, 2 MiB granules above);
// freed blocks go to the free list of their (device, class) and are reused by the next request
// of that class on that device (allocation is on the calling thread's current device). When cudaMalloc fails, the cache is released and the allocation retried once before
// ERR_OOM is thrown. Thread-safe.
struct AllocatorStats {
  size_t allocated_bytes = 0;  // bytes handed out and not yet freed (class-rounded)
  size_t cached_bytes = 0;     // bytes held in free lists
  size_t peak_allocated_bytes = 0;
  uint64_t malloc_calls = 0;   // cudaMalloc calls made
  uint64_t cache_hits = 0;     // requests served from a free list
};

void* device_alloc(size_t bytes);  // nullptr for 0 bytes
void device_free(void* p);         // p from device_alloc; nullptr ignored
AllocatorStats allocator_stats();
void release_cached();  // cudaFree every cached block (allocated blocks are untouched)

// RAII device buffer from the caching allocator.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : p_(device_alloc(bytes)), bytes_(bytes) {}
  ~DeviceBuffer() { device_free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; o.bytes_ = 0; }
  template <typename T = void>
  T* get() const { return static_cast<T*>(p_); }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// ---- copies and sync -------------------------------------------------------------------------
void copy_to_device(void* dst, const void* src, size_t bytes);  // synchronous w.r.t. the host
void copy_to_host(void* dst, const void* src, size_t bytes);    // waits for prior device work
void copy_device(void* dst, const void* src, size_t bytes);     // async on the default stream
void fill_zero(void* dst, size_t bytes);                        // async
void synchronize();  // waits for all device work; throws the first asynchronous error

// Throws ERR_BACKEND if the last kernel launch failed (used after every launch).
void check_launch(const char* what);

// Elapsed time between two points on the default stream, cudaEvent based.
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start();
  float stop_ms();  // records the stop event, waits for it, returns milliseconds

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

}  // namespace tk::cuda
