// The counter-based hash behind dropout masks, shared by the CPU and CUDA backends so that a
// mask drawn on either is bit-identical for the same (seed, element index).
//
// Element i is kept iff bits(key, i) >= floor(p 2^32), where bits is a 32-bit hash of the stream
// key (from the seed) and the index (murmur3's fmix32 finaliser). See cpu/dropout.h.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define TK_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define TK_HOST_DEVICE inline
#endif

namespace tk {

TK_HOST_DEVICE uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

// The stream key of a seed, and of the 2^32-element block `hi` of a tensor (index bits 32..63):
// each block of 2^32 elements has its own key, so indices never wrap onto each other.
TK_HOST_DEVICE uint32_t dropout_key(uint64_t seed, uint32_t hi) {
  return fmix32(static_cast<uint32_t>(seed) ^ fmix32(static_cast<uint32_t>(seed >> 32) + 0x9E3779B9u * (hi + 1)));
}

// 32 random bits for element lo (index bits 0..31) of the block whose key is `key`
TK_HOST_DEVICE uint32_t dropout_bits(uint32_t key, uint32_t lo) { return fmix32(lo * 0x9E3779B1u ^ key); }

// 32 random bits for element i of stream seed (scalar form, for references and tests)
TK_HOST_DEVICE uint32_t dropout_bits(uint64_t seed, uint64_t i) {
  return dropout_bits(dropout_key(seed, static_cast<uint32_t>(i >> 32)), static_cast<uint32_t>(i));
}

}  // namespace tk
