// Inverted dropout with a counter-based mask, f32.
//
// Element i is kept iff bits(key, i) >= p * 2^32, where bits is a 32-bit hash of the stream key
// (from the seed) and the index (murmur3's fmix32 finaliser). The mask depends only on
// (seed, i): the same for any thread count, any chunking, and reproducible from the seed alone.
// Kept elements are scaled by 1 / (1 - p) (PyTorch's nn.Dropout in training).
//
// Why 32-bit arithmetic: the hash is the kernel's whole cost, and 32-bit multiplies vectorize
// (16 lanes under AVX-512, 8 under AVX2) where the 64-bit splitmix finaliser did not: the main
// job's LoRA dropout went from ~2.7 ns to well under 1 ns per element.
#pragma once
#include <cstdint>

namespace tk::cpu {

inline uint32_t fmix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  h ^= h >> 16;
  return h;
}

// The stream key of a seed, and of the 2^32-element block `hi` of a tensor (index bits 32..63):
// each block of 2^32 elements has its own key, so indices never wrap onto each other.
inline uint32_t dropout_key(uint64_t seed, uint32_t hi) {
  return fmix32(static_cast<uint32_t>(seed) ^ fmix32(static_cast<uint32_t>(seed >> 32) + 0x9E3779B9u * (hi + 1)));
}

// 32 random bits for element lo (index bits 0..31) of the block whose key is `key`
inline uint32_t dropout_bits(uint32_t key, uint32_t lo) { return fmix32(lo * 0x9E3779B1u ^ key); }

// 32 random bits for element i of stream seed (scalar form, for references and tests)
inline uint32_t dropout_bits(uint64_t seed, uint64_t i) {
  return dropout_bits(dropout_key(seed, static_cast<uint32_t>(i >> 32)), static_cast<uint32_t>(i));
}

// x (n) -> y (n), mask u8 (n) (1 = kept); 0 <= p < 1; p == 0 copies x exactly.
void dropout_reference(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);

// Elements [begin, begin + count) of the row-major index space of x: y_local[j] receives element
// begin + j of dropout(x) and mask[begin + j] its kept flag, bits as dropout() draws them (so a
// tensor done in pieces equals the whole). Serial: for callers that already run on the pool.
void dropout_range(const float* x, float* y_local, uint8_t* mask, int64_t begin, int64_t count, float p, uint64_t seed);

// dx = dy * mask / (1 - p), or with accumulate dx += dy * mask / (1 - p) (LoRA's adapter-path
// input gradient joins the base path's in the same pass: no temporary, no second pass)
void dropout_backward_reference(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p,
                                bool accumulate = false);
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p, bool accumulate = false);

}  // namespace tk::cpu
