// Data movement on one device (cpu/copy.h semantics): fill, dtype casts, strided gathers into
// contiguous memory, row and byte copies, counter-based random fills, arange. What
// storage_ops.cpp's kernels do on the host, for storages on a CUDA device.
#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

#define TK_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- conversions: the bit code of core/dtype.h, on the device ----

__device__ __forceinline__ uint16_t d_f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__device__ __forceinline__ float d_f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400u) == 0) {
        man <<= 1;
        exp--;
      }
      man &= 0x3ffu;
      u = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  return __uint_as_float(u);
}

__device__ __forceinline__ uint16_t d_f32_to_f16(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t sign = (u >> 16) & 0x8000u;
  const uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (absu >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absu < 0x38800000u) {  // subnormal or zero: scale so the unit 2^-24 is 1, round to nearest even
    const float scaled = __fmul_rn(__uint_as_float(absu), 16777216.0f);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(rintf(scaled)));
  }
  const uint32_t rounded = absu + 0xfffu + ((absu >> 13) & 1u);
  return static_cast<uint16_t>(sign | ((rounded - (112u << 23)) >> 13));
}

// cpu/copy.cpp's load / store through double
__device__ __forceinline__ double d_load(const void* p, int d, int64_t i) {
  switch (d) {
    case 0: return static_cast<const float*>(p)[i];
    case 1: return __uint_as_float(static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16);
    case 2: return d_f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case 3: return static_cast<const int32_t*>(p)[i];
    case 4: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
    case 5: return static_cast<const uint8_t*>(p)[i];
    case 6: return static_cast<const double*>(p)[i];
  }
  return 0;
}

__device__ __forceinline__ void d_store(void* p, int d, int64_t i, double v) {
  switch (d) {
    case 0: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case 1: static_cast<uint16_t*>(p)[i] = d_f32_to_bf16(static_cast<float>(v)); break;
    case 2: static_cast<uint16_t*>(p)[i] = d_f32_to_f16(static_cast<float>(v)); break;
    case 3: static_cast<int32_t*>(p)[i] = static_cast<int32_t>(v); break;
    case 4: static_cast<int64_t*>(p)[i] = static_cast<int64_t>(v); break;
    case 5: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(v); break;
    case 6: static_cast<double*>(p)[i] = v; break;
  }
}

// the host's conversion of one value to a dtype's bytes (cpu::fill's store)
void host_store(void* p, DType d, double v) {
  switch (d) {
    case DType::F32: *static_cast<float*>(p) = static_cast<float>(v); break;
    case DType::BF16: *static_cast<uint16_t*>(p) = tk::f32_to_bf16(static_cast<float>(v)); break;
    case DType::F16: *static_cast<uint16_t*>(p) = tk::f32_to_f16(static_cast<float>(v)); break;
    case DType::I32: *static_cast<int32_t*>(p) = static_cast<int32_t>(v); break;
    case DType::I64: *static_cast<int64_t*>(p) = static_cast<int64_t>(v); break;
    case DType::U8: *static_cast<uint8_t*>(p) = static_cast<uint8_t>(v); break;
    case DType::F64: *static_cast<double*>(p) = v; break;
  }
}

template <typename T>
__global__ void fill_kernel(T* __restrict__ dst, int64_t n, T v) {
  TK_GRID_LOOP(i, n) dst[i] = v;
}

__global__ void cast_kernel(const void* __restrict__ src, int sd, void* __restrict__ dst, int dd, int64_t n) {
  TK_GRID_LOOP(i, n) d_store(dst, dd, i, d_load(src, sd, i));
}
__global__ void f32_to_bf16_kernel(const float* __restrict__ src, uint16_t* __restrict__ dst, int64_t n) {
  TK_GRID_LOOP(i, n) dst[i] = d_f32_to_bf16(src[i]);
}
__global__ void bf16_to_f32_kernel(const uint16_t* __restrict__ src, float* __restrict__ dst, int64_t n) {
  TK_GRID_LOOP(i, n) dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

struct StridedView {
  int ndim;
  int64_t shape[kMaxDims], strides[kMaxDims];
};

// dst[i] (contiguous) = src[offset of the i-th element of the view], T of the element's size
template <typename T>
__global__ void copy_strided_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t n, const StridedView v) {
  TK_GRID_LOOP(i, n) {
    int64_t rem = i, off = 0;
    for (int d = v.ndim - 1; d >= 0; --d) {
      const int64_t idx = rem % v.shape[d];
      rem /= v.shape[d];
      off += idx * v.strides[d];
    }
    dst[i] = src[off];
  }
}

// elements of any size: one byte per thread
__global__ void copy_strided_bytes_kernel(const uint8_t* __restrict__ src, uint8_t* __restrict__ dst, int64_t n,
                                          int64_t es, const StridedView v) {
  TK_GRID_LOOP(b, n * es) {
    const int64_t i = b / es, byte = b % es;
    int64_t rem = i, off = 0;
    for (int d = v.ndim - 1; d >= 0; --d) {
      const int64_t idx = rem % v.shape[d];
      rem /= v.shape[d];
      off += idx * v.strides[d];
    }
    dst[b] = src[off * es + byte];
  }
}

// rows x row_units units of T (T = u32 when every size and pointer is 4-byte aligned, else u8)
template <typename T>
__global__ void copy_rows_kernel(const T* __restrict__ src, T* __restrict__ dst, int64_t rows, int64_t units,
                                 int64_t src_stride, int64_t dst_stride) {
  TK_GRID_LOOP(i, rows * units) {
    const int64_t r = i / units, c = i % units;
    dst[r * dst_stride + c] = src[r * src_stride + c];
  }
}

// ---- random: cpu/copy.cpp's splitmix64 counters ----

__device__ __forceinline__ uint64_t d_splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t host_splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
// uniform in (0, 1]: 24 random bits, never 0 (exact in f32)
__device__ __forceinline__ float d_unit(uint64_t bits) {
  return __fmul_rn(static_cast<float>(bits >> 40) + 1.0f, 1.0f / 16777216.0f);
}

// Box-Muller on pairs, as the CPU: element 2p and 2p+1 from counters key + 2p, key + 2p + 1.
// The arithmetic is spelled with _rn intrinsics so nvcc does not contract it into fmas the
// host's code does not use.
__global__ void random_normal_kernel(float* __restrict__ dst, int64_t n, uint64_t key, float mean, float stdv) {
  TK_GRID_LOOP(p, (n + 1) / 2) {
    const float u1 = d_unit(d_splitmix64(key + 2 * p)), u2 = d_unit(d_splitmix64(key + 2 * p + 1));
    const float rad = sqrtf(__fmul_rn(-2.0f, logf(u1)));
    const float th = __fmul_rn(6.283185307179586f, u2);
    dst[2 * p] = __fadd_rn(mean, __fmul_rn(__fmul_rn(stdv, rad), cosf(th)));
    if (2 * p + 1 < n) dst[2 * p + 1] = __fadd_rn(mean, __fmul_rn(__fmul_rn(stdv, rad), sinf(th)));
  }
}

__global__ void random_uniform_kernel(float* __restrict__ dst, int64_t n, uint64_t key, float low, float high) {
  TK_GRID_LOOP(i, n) {
    const float u = __fsub_rn(d_unit(d_splitmix64(key + i)), 1.0f / 16777216.0f);  // [0, 1)
    dst[i] = __fadd_rn(low, __fmul_rn(__fsub_rn(high, low), u));
  }
}

__global__ void arange_kernel(void* __restrict__ dst, int d, int64_t n, double start, double step) {
  TK_GRID_LOOP(i, n) d_store(dst, d, i, __dadd_rn(start, __dmul_rn(step, static_cast<double>(i))));
}

int dcode(DType d) {
  const int c = static_cast<int>(d);
  TK_CHECK(c >= 0 && c <= 6, Dtype, "cuda: unknown dtype code ", c);
  return c;
}

// the device faults on a misaligned typed access (the host does not): say so instead
void check_aligned(const void* p, DType d, const char* what) {
  TK_CHECK(reinterpret_cast<uintptr_t>(p) % dtype_size(d) == 0, Value, what, ": the ", dtype_name(d),
           " data is not aligned to its ", dtype_size(d), "-byte elements (byte offset not a multiple of the element size)");
}

}  // namespace

void fill(void* dst, DType d, int64_t n, double value) {
  TK_CHECK(n >= 0, Shape, "cuda fill: negative count ", n);
  if (n == 0) return;
  check_aligned(dst, d, "cuda fill");
  unsigned char bytes[8];
  host_store(bytes, d, value);
  switch (dtype_size(d)) {
    case 1: fill_kernel<uint8_t><<<grid_1d(n, 256), 256>>>(static_cast<uint8_t*>(dst), n, bytes[0]); break;
    case 2: {
      uint16_t v;
      std::memcpy(&v, bytes, 2);
      fill_kernel<uint16_t><<<grid_1d(n, 256), 256>>>(static_cast<uint16_t*>(dst), n, v);
      break;
    }
    case 4: {
      uint32_t v;
      std::memcpy(&v, bytes, 4);
      fill_kernel<uint32_t><<<grid_1d(n, 256), 256>>>(static_cast<uint32_t*>(dst), n, v);
      break;
    }
    default: {
      uint64_t v;
      std::memcpy(&v, bytes, 8);
      fill_kernel<uint64_t><<<grid_1d(n, 256), 256>>>(static_cast<uint64_t*>(dst), n, v);
    }
  }
  check_launch("cuda fill");
}

void cast(const void* src, DType sd, void* dst, DType dd, int64_t n) {
  TK_CHECK(n >= 0, Shape, "cuda cast: negative count ", n);
  const int s = dcode(sd), d = dcode(dd);
  if (n == 0) return;
  if (s == d) {
    copy_bytes(src, dst, n * static_cast<int64_t>(dtype_size(sd)));
    return;
  }
  check_aligned(src, sd, "cuda cast (source)");
  check_aligned(dst, dd, "cuda cast (destination)");
  // the two casts of mixed precision, without the double round trip (same bits: f32 -> double
  // -> f32 is exact)
  if (sd == DType::F32 && dd == DType::BF16)
    f32_to_bf16_kernel<<<grid_1d(n, 256), 256>>>(static_cast<const float*>(src), static_cast<uint16_t*>(dst), n);
  else if (sd == DType::BF16 && dd == DType::F32)
    bf16_to_f32_kernel<<<grid_1d(n, 256), 256>>>(static_cast<const uint16_t*>(src), static_cast<float*>(dst), n);
  else
    cast_kernel<<<grid_1d(n, 256), 256>>>(src, s, dst, d, n);
  check_launch("cuda cast");
}

void copy_strided(const void* src, void* dst, int64_t elem_size, int ndim, const int64_t* shape, const int64_t* strides) {
  TK_CHECK(elem_size > 0, Value, "cuda copy_strided: element size must be positive but is ", elem_size);
  TK_CHECK(ndim >= 0, Shape, "cuda copy_strided: negative ndim");
  int64_t total = 1;
  for (int k = 0; k < ndim; ++k) {
    TK_CHECK(shape[k] >= 0 && strides[k] >= 0, Shape, "cuda copy_strided: negative shape or stride at axis ", k);
    total *= shape[k];
  }
  if (total == 0) return;
  // Merge dimensions: size-1 axes dropped, then an axis folded into the next inner one when
  // stride[k] == stride[k+1] * shape[k+1] (the pair walks memory as one axis). The element order
  // of the view is unchanged.
  std::vector<int64_t> sh, st;
  for (int k = 0; k < ndim; ++k) {
    if (shape[k] == 1) continue;
    sh.push_back(shape[k]);
    st.push_back(strides[k]);
  }
  std::vector<int64_t> msh, mst;
  for (size_t k = 0; k < sh.size(); ++k) {
    if (!msh.empty() && mst.back() == st[k] * sh[k]) {
      msh.back() *= sh[k];
      mst.back() = st[k];
    } else {
      msh.push_back(sh[k]);
      mst.push_back(st[k]);
    }
  }
  // a contiguous view: one byte copy
  if (msh.empty() || (msh.size() == 1 && mst[0] == 1)) {
    copy_bytes(src, dst, total * elem_size);
    return;
  }
  TK_CHECK(static_cast<int>(msh.size()) <= kMaxDims, Shape, "cuda copy_strided: the view has ", msh.size(),
           " dimensions that do not merge (at most ", kMaxDims, " on the GPU)");
  StridedView v{};
  v.ndim = static_cast<int>(msh.size());
  for (int k = 0; k < v.ndim; ++k) {
    v.shape[k] = msh[k];
    v.strides[k] = mst[k];
  }
  const uintptr_t align = reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst);
  switch (elem_size) {
    case 1: copy_strided_kernel<uint8_t><<<grid_1d(total, 256), 256>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), total, v); break;
    case 2:
      if (align % 2 == 0) {
        copy_strided_kernel<uint16_t><<<grid_1d(total, 256), 256>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), total, v);
        break;
      }
      [[fallthrough]];
    case 4:
      if (elem_size == 4 && align % 4 == 0) {
        copy_strided_kernel<uint32_t><<<grid_1d(total, 256), 256>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), total, v);
        break;
      }
      [[fallthrough]];
    case 8:
      if (elem_size == 8 && align % 8 == 0) {
        copy_strided_kernel<uint64_t><<<grid_1d(total, 256), 256>>>(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), total, v);
        break;
      }
      [[fallthrough]];
    default:
      copy_strided_bytes_kernel<<<grid_1d(total * elem_size, 256), 256>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), total,
                                                                          elem_size, v);
  }
  check_launch("cuda copy_strided");
}

void copy_rows(const void* src, void* dst, int64_t rows, int64_t row_bytes, int64_t src_stride, int64_t dst_stride) {
  TK_CHECK(rows >= 0 && row_bytes >= 0 && src_stride >= 0 && dst_stride >= 0, Shape, "cuda copy_rows: negative size or stride");
  if (rows == 0 || row_bytes == 0) return;
  const uintptr_t align = reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst);
  if (align % 4 == 0 && row_bytes % 4 == 0 && src_stride % 4 == 0 && dst_stride % 4 == 0) {
    const int64_t units = row_bytes / 4;
    copy_rows_kernel<uint32_t><<<grid_1d(rows * units, 256), 256>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), rows,
                                                                    units, src_stride / 4, dst_stride / 4);
  } else {
    copy_rows_kernel<uint8_t><<<grid_1d(rows * row_bytes, 256), 256>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), rows,
                                                                      row_bytes, src_stride, dst_stride);
  }
  check_launch("cuda copy_rows");
}

void copy_bytes(const void* src, void* dst, int64_t bytes) {
  TK_CHECK(bytes >= 0, Shape, "cuda copy_bytes: negative byte count ", bytes);
  if (bytes == 0 || src == dst) return;
  const uintptr_t s = reinterpret_cast<uintptr_t>(src), d = reinterpret_cast<uintptr_t>(dst);
  const bool overlap = s < d + static_cast<uintptr_t>(bytes) && d < s + static_cast<uintptr_t>(bytes);
  if (!overlap) {
    copy_device(dst, src, static_cast<size_t>(bytes));
    return;
  }
  // cudaMemcpy does not define overlapping copies: through a temporary (memmove's result)
  DeviceBuffer tmp(static_cast<size_t>(bytes));
  copy_device(tmp.get(), src, static_cast<size_t>(bytes));
  copy_device(dst, tmp.get(), static_cast<size_t>(bytes));
}

void random_normal_f32(float* dst, int64_t n, uint64_t seed, float mean, float std) {
  TK_CHECK(n >= 0, Shape, "cuda random_normal: negative count ", n);
  if (n == 0) return;
  random_normal_kernel<<<grid_1d((n + 1) / 2, 256), 256>>>(dst, n, host_splitmix64(seed ^ 0x5eedull), mean, std);
  check_launch("cuda random_normal");
}

void random_uniform_f32(float* dst, int64_t n, uint64_t seed, float low, float high) {
  TK_CHECK(n >= 0, Shape, "cuda random_uniform: negative count ", n);
  if (n == 0) return;
  random_uniform_kernel<<<grid_1d(n, 256), 256>>>(dst, n, host_splitmix64(seed ^ 0xa11ull), low, high);
  check_launch("cuda random_uniform");
}

void arange(void* dst, DType d, int64_t n, double start, double step) {
  TK_CHECK(n >= 0, Shape, "cuda arange: negative count ", n);
  const int c = dcode(d);
  if (n == 0) return;
  check_aligned(dst, d, "cuda arange");
  arange_kernel<<<grid_1d(n, 256), 256>>>(dst, c, n, start, step);
  check_launch("cuda arange");
}

}  // namespace tk::cuda
