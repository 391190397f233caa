// Data movement: fill, dtype casts, strided gather into contiguous memory, seeded random fill.
#pragma once
#include <cstdint>
#include <vector>

#include "../core/dtype.h"

namespace tk::cpu {

// dst[0..n) = value, converted to dtype d.
void fill(void* dst, DType d, int64_t n, double value);

// dst[i] = (dst dtype) src[i] for i < n. Float -> int truncates toward zero.
void cast(const void* src, DType sd, void* dst, DType dd, int64_t n);

// Gathers a strided view (shape, strides in elements, both length ndim) of elem_size-byte
// elements at src into contiguous row-major dst.
void copy_strided(const void* src, void* dst, int64_t elem_size, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& strides);

// Counter-based random numbers: element i of stream `seed` depends only on (seed, i), so results
// are identical whatever the thread count. normal: mean 0, std 1 (Box-Muller); uniform: [0, 1).
void random_normal_f32(float* dst, int64_t n, uint64_t seed, float mean, float std);
void random_uniform_f32(float* dst, int64_t n, uint64_t seed, float low, float high);

// y[i] = i * step + start (f32 / i32 / i64 by dtype)
void arange(void* dst, DType d, int64_t n, double start, double step);

}  // namespace tk::cpu
