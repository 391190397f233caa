// Inverted dropout with a counter-based mask, f32.
//
// Element i is kept iff bits(seed, i) >= p * 2^32, where bits is a 32-bit hash of (seed, i)
// (splitmix64 finaliser). The mask depends only on (seed, i): the same for any thread count,
// any chunking, and reproducible from the seed alone (the backward may use the saved mask or
// recompute it). Kept elements are scaled by 1 / (1 - p) (PyTorch's nn.Dropout in training).
#pragma once
#include <cstdint>

namespace tk::cpu {

// 32 random bits for element i of stream seed
inline uint32_t dropout_bits(uint64_t seed, uint64_t i) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + (i + 1) * 0xD1B54A32D192ED03ull;
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9ull;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

// x (n) -> y (n), mask u8 (n) (1 = kept); 0 <= p < 1; p == 0 copies x exactly.
void dropout_reference(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);

// dx = dy * mask / (1 - p)
void dropout_backward_reference(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p);
void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p);

}  // namespace tk::cpu
