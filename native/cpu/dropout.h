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

#include "core/counter_hash.h"

namespace tk::cpu {

// The hash itself lives in core/counter_hash.h, shared with the CUDA backend (same masks there).
using tk::dropout_bits;
using tk::dropout_key;
using tk::fmix32;

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
