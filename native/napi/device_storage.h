// Storages on CUDA devices for the N-API layer: allocation and copies between any two memories
// (host or device). In builds without the CUDA backend a device is ERR_DEVICE saying so.
#pragma once
#include <cstddef>

#include "core/storage.h"

namespace tk::napi {

// A storage of `bytes` bytes on CUDA device `device` (zero-filled when `zero`), from the CUDA
// caching allocator; freed to it when the last reference goes.
Storage* allocate_device_storage(size_t bytes, bool zero, int device);

// Copies `bytes` bytes from src (on src_device, -1 = host) to dst (on dst_device); waits for the
// copy (and for queued work on the devices involved) before returning.
void copy_between(int dst_device, void* dst, int src_device, const void* src, size_t bytes);

// Makes `device` current for the calling thread (no-op for -1 or without CUDA).
void select_device(int device);

}  // namespace tk::napi
