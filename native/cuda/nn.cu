// Dropout, embedding rows, RoPE, reductions and the AdaLoRA triplet scores on the GPU, each with
// the semantics of its native/cpu kernel (dropout.cpp, embedding.cpp, rope.cpp, reduce.cpp,
// elementwise.cpp's sum_squares / count_non_finite, adalora.cpp). Arithmetic whose rounding the
// CPU fixes (dropout's scale, RoPE's rotation) is written with _rn intrinsics so that nvcc does
// not contract it into fmas the host code does not use.
#include <cmath>

#include "core/counter_hash.h"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

#define TK_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- dropout: core/counter_hash.h, element i kept iff bits(key(seed, i >> 32), i) >= floor(p 2^32)

// cpu/dropout.cpp's keep_threshold
uint32_t keep_threshold(float p) {
  const double t = std::floor(static_cast<double>(p) * 4294967296.0);
  return t <= 0 ? 0u : static_cast<uint32_t>(t < 4294967295.0 ? t : 4294967295.0);
}

__global__ void dropout_kernel(const float* __restrict__ x, float* __restrict__ y, uint8_t* __restrict__ mask, int64_t n,
                               uint32_t thr, float scale, uint64_t seed) {
  TK_GRID_LOOP(i, n) {
    // the block key changes every 2^32 elements (as dropout_chunk splits its runs)
    const uint32_t key = dropout_key(seed, static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32));
    const bool keep = dropout_bits(key, static_cast<uint32_t>(i)) >= thr;
    mask[i] = keep ? 1 : 0;
    y[i] = __fmul_rn(x[i], keep ? scale : 0.0f);  // x * (keep * scale), as the CPU: 0 * inf = NaN kept
  }
}

__global__ void dropout_backward_kernel(const float* __restrict__ dy, const uint8_t* __restrict__ mask, float* dx,
                                        int64_t n, float scale, bool accumulate) {
  TK_GRID_LOOP(i, n) {
    const float g = __fmul_rn(dy[i], mask[i] ? scale : 0.0f);
    dx[i] = accumulate ? __fadd_rn(dx[i], g) : g;
  }
}

// ---- embedding rows ----

// first position whose id is outside [0, num_rows): atomicMin over positions
__global__ void check_ids_kernel(const int32_t* __restrict__ idx, int64_t n, int64_t num_rows, unsigned long long* bad) {
  TK_GRID_LOOP(i, n) {
    const int64_t id = idx[i];
    if (id < 0 || id >= num_rows) atomicMin(bad, static_cast<unsigned long long>(i));
  }
}

void check_ids(const int32_t* idx, int64_t n, int64_t num_rows, const char* what) {
  if (n == 0) return;
  DeviceBuffer flag(sizeof(unsigned long long));
  const unsigned long long none = ~0ull;
  copy_to_device(flag.get(), &none, sizeof(none));
  check_ids_kernel<<<grid_1d(n, 256, 1024), 256>>>(idx, n, num_rows, flag.get<unsigned long long>());
  check_launch(what);
  unsigned long long bad = 0;
  copy_to_host(&bad, flag.get(), sizeof(bad));
  if (bad != ~0ull) {
    int32_t id = 0;
    copy_to_host(&id, idx + bad, sizeof(id));
    // cpu/embedding.cpp's check_row_ids message
    fail(ErrorCode::Index, what, ": id ", id, " at position ", bad, " is out of range [0, ", num_rows, ")");
  }
}

__global__ void gather_rows_kernel(const float* __restrict__ table, const int32_t* __restrict__ idx, float* __restrict__ out,
                                   int64_t n, int64_t row) {
  TK_GRID_LOOP(e, n * row) {
    const int64_t i = e / row, j = e % row;
    out[e] = table[static_cast<int64_t>(idx[i]) * row + j];
  }
}

__global__ void scatter_add_rows_kernel(const float* __restrict__ src, const int32_t* __restrict__ idx, float* dst, int64_t n,
                                        int64_t row) {
  TK_GRID_LOOP(e, n * row) {
    const int64_t i = e / row, j = e % row;
    atomicAdd(dst + static_cast<int64_t>(idx[i]) * row + j, src[e]);
  }
}

// ---- RoPE: work item (row, k): k < half rotates the pair (k, k + half); k >= half copies
// column rot + (k - half) when out != x. One item reads both halves before writing, so out == x works.
__global__ void rope_kernel(const float* x, float* out, const int32_t* __restrict__ positions, const float* __restrict__ inv_freq,
                            int64_t rows, int64_t H, int64_t T, int64_t D, int64_t half, int64_t rot, int64_t items,
                            double sign) {
  TK_GRID_LOOP(e, rows * items) {
    const int64_t row = e / items, k = e % items;
    const float* xr = x + row * D;
    float* o = out + row * D;
    if (k < half) {
      const int64_t t = row % T, b = row / (H * T);
      // cpu/rope.cpp's angle_cos_sin: the f32 angle, cos / sin in double, rounded
      const float a = __fmul_rn(static_cast<float>(positions[b * T + t]), inv_freq[k]);
      const float c = static_cast<float>(cos(static_cast<double>(a)));
      const float s = static_cast<float>(sign * sin(static_cast<double>(a)));
      const float x0 = xr[k], x1 = xr[k + half];
      o[k] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      o[k + half] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    } else if (o != xr) {
      const int64_t j = rot + (k - half);
      o[j] = xr[j];
    }
  }
}

// ---- reductions ----

constexpr int kRowThreads = 256;

// NaN-propagating max / min (cpu/reduce.cpp's max_nan / min_nan: NaN wins)
__device__ __forceinline__ float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }
__device__ __forceinline__ float min_nan(float a, float b) { return (a < b || a != a) ? a : b; }

__device__ __forceinline__ float reduce_init(int op) { return op == 2 ? -INFINITY : (op == 3 ? INFINITY : 0.0f); }

// inner == 1: one CTA per output, the row's n values; sums in double
__global__ void __launch_bounds__(kRowThreads) reduce_rows_kernel(int op, const float* __restrict__ x, float* __restrict__ out,
                                                                  int64_t n) {
  __shared__ double dscr[33];
  __shared__ float fscr[33];
  const float* xr = x + int64_t(blockIdx.x) * n;
  if (op <= 1) {  // sum, mean
    double s = 0.0;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) s += xr[k];
    s = block_sum_d(s, dscr);
    if (threadIdx.x == 0) out[blockIdx.x] = op == 1 ? static_cast<float>(n > 0 ? s / static_cast<double>(n) : NAN) : static_cast<float>(s);
    return;
  }
  float m = reduce_init(op);
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) m = op == 2 ? max_nan(xr[k], m) : min_nan(xr[k], m);
  // block reduction with the NaN-winning op
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float t = __shfl_xor_sync(0xffffffffu, m, o);
    m = op == 2 ? max_nan(t, m) : min_nan(t, m);
  }
  if (lane == 0) fscr[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    float r = fscr[0];
    for (int w = 1; w < nw; ++w) r = op == 2 ? max_nan(fscr[w], r) : min_nan(fscr[w], r);
    out[blockIdx.x] = r;
  }
}

// inner > 1: one thread per output (o, i), walking k; consecutive threads read consecutive i
__global__ void reduce_columns_kernel(int op, const float* __restrict__ x, float* __restrict__ out, int64_t outer, int64_t n,
                                      int64_t inner) {
  TK_GRID_LOOP(e, outer * inner) {
    const int64_t o = e / inner, i = e % inner;
    const float* base = x + o * n * inner + i;
    if (op <= 1) {
      double s = 0.0;
      for (int64_t k = 0; k < n; ++k) s += base[k * inner];
      out[e] = op == 1 ? static_cast<float>(n > 0 ? s / static_cast<double>(n) : NAN) : static_cast<float>(s);
    } else {
      float m = reduce_init(op);
      for (int64_t k = 0; k < n; ++k) m = op == 2 ? max_nan(base[k * inner], m) : min_nan(base[k * inner], m);
      out[e] = m;
    }
  }
}

// (value, index) pairs: the first NaN wins, else the larger value, ties to the smaller index
// (cpu/reduce.cpp's argmax_row: the max with NaN winning, then its first position)
__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  if (v != bv) return v > bv;
  return i < bi;
}

__global__ void __launch_bounds__(kRowThreads) argmax_kernel(const float* __restrict__ x, int32_t* __restrict__ out, int64_t cols) {
  __shared__ float sv[kRowThreads];
  __shared__ int64_t si[kRowThreads];
  const float* xr = x + int64_t(blockIdx.x) * cols;
  float bv = -INFINITY;
  int64_t bi = INT64_MAX;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    if (better(xr[j], j, bv, bi)) {
      bv = xr[j];
      bi = j;
    }
  sv[threadIdx.x] = bv;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int s = kRowThreads / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s && better(sv[threadIdx.x + s], si[threadIdx.x + s], sv[threadIdx.x], si[threadIdx.x])) {
      sv[threadIdx.x] = sv[threadIdx.x + s];
      si[threadIdx.x] = si[threadIdx.x + s];
    }
    __syncthreads();
  }
  // a row of -inf only: no element beat the initial (-inf, INT64_MAX) on value, but the first
  // -inf beats it on index, so si[0] is a real position whenever cols > 0
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<int32_t>(si[0]);
}

__global__ void __launch_bounds__(kRowThreads) sum_squares_kernel(const float* __restrict__ x, int64_t n, double* total) {
  __shared__ double dscr[33];
  double s = 0.0;
  TK_GRID_LOOP(i, n) {
    const double v = x[i];
    s += v * v;
  }
  s = block_sum_d(s, dscr);
  if (threadIdx.x == 0) atomicAdd(total, s);
}

__global__ void count_non_finite_kernel(const float* __restrict__ x, int64_t n, unsigned long long* count) {
  unsigned long long c = 0;
  TK_GRID_LOOP(i, n) c += (__float_as_uint(x[i]) & 0x7F800000u) == 0x7F800000u;  // exponent all ones
  if (c) atomicAdd(count, c);
}

// ---- AdaLoRA triplet scores: one CTA per rank i ----
__global__ void __launch_bounds__(kRowThreads) triplet_kernel(int64_t r, int64_t in, int64_t out, const AdaloraState st,
                                                              float* __restrict__ scores) {
  __shared__ double dscr[33];
  const int64_t i = blockIdx.x;
  double sa = 0.0, sb = 0.0;
  // products in f32 then summed in double, as the CPU's fast path
  for (int64_t j = threadIdx.x; j < in; j += blockDim.x) sa += static_cast<double>(__fmul_rn(st.ibar_a[i * in + j], st.unc_a[i * in + j]));
  for (int64_t j = threadIdx.x; j < out; j += blockDim.x) sb += static_cast<double>(__fmul_rn(st.ibar_b[j * r + i], st.unc_b[j * r + i]));
  sa = block_sum_d(sa, dscr);
  sb = block_sum_d(sb, dscr);
  if (threadIdx.x == 0) {
    const float mean_a = in ? static_cast<float>(sa / static_cast<double>(in)) : NAN;
    const float mean_b = out ? static_cast<float>(sb / static_cast<double>(out)) : NAN;
    const float se = __fmul_rn(st.ibar_e[i], st.unc_e[i]);
    scores[i] = __fadd_rn(se, __fadd_rn(mean_a, mean_b));
  }
}

}  // namespace

void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed) {
  TK_CHECK(n >= 0, Shape, "cuda dropout: negative count ", n);
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "cuda dropout: p must be in [0, 1) but is ", p);
  if (n == 0) return;
  dropout_kernel<<<grid_1d(n, 256), 256>>>(x, y, mask, n, keep_threshold(p), 1.0f / (1.0f - p), seed);
  check_launch("cuda dropout");
}

void dropout_backward(const float* dy, const uint8_t* mask, float* dx, int64_t n, float p, bool accumulate) {
  TK_CHECK(n >= 0, Shape, "cuda dropout_backward: negative count ", n);
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "cuda dropout_backward: p must be in [0, 1) but is ", p);
  if (n == 0) return;
  dropout_backward_kernel<<<grid_1d(n, 256), 256>>>(dy, mask, dx, n, 1.0f / (1.0f - p), accumulate);
  check_launch("cuda dropout_backward");
}

void gather_rows(const float* table, const int32_t* idx, float* out, int64_t n, int64_t row_size, int64_t num_rows) {
  TK_CHECK(n >= 0 && row_size >= 0 && num_rows >= 0, Shape, "cuda gatherRows: negative size");
  check_ids(idx, n, num_rows, "gatherRows");
  if (n == 0 || row_size == 0) return;
  gather_rows_kernel<<<grid_1d(n * row_size, 256), 256>>>(table, idx, out, n, row_size);
  check_launch("cuda gatherRows");
}

void scatter_add_rows(const float* src, const int32_t* idx, float* dst, int64_t n, int64_t row_size, int64_t num_rows) {
  TK_CHECK(n >= 0 && row_size >= 0 && num_rows >= 0, Shape, "cuda scatterAddRows: negative size");
  check_ids(idx, n, num_rows, "scatterAddRows");
  if (n == 0 || row_size == 0) return;
  scatter_add_rows_kernel<<<grid_1d(n * row_size, 256), 256>>>(src, idx, dst, n, row_size);
  check_launch("cuda scatterAddRows");
}

void rope(const float* x, float* out, const int32_t* positions, const float* inv_freq, int64_t B, int64_t H, int64_t T,
          int64_t D, int64_t rot_dim, bool inverse) {
  TK_CHECK(B >= 0 && H >= 0 && T >= 0 && D >= 0, Shape, "cuda rope: negative size");
  TK_CHECK(rot_dim >= 0 && rot_dim % 2 == 0 && rot_dim <= D, Shape, "cuda rope: rotDim must be even and <= D (", D,
           ") but is ", rot_dim);
  const int64_t rows = B * H * T, half = rot_dim / 2, items = half + (D - rot_dim);
  if (rows == 0 || items == 0) return;
  rope_kernel<<<grid_1d(rows * items, 256), 256>>>(x, out, positions, inv_freq, rows, H, T, D, half, rot_dim, items,
                                                   inverse ? -1.0 : 1.0);
  check_launch("cuda rope");
}

void reduce(ReduceOp op, const float* x, float* out, int64_t outer, int64_t n, int64_t inner) {
  const int opi = static_cast<int>(op);
  TK_CHECK(opi >= 0 && opi < kNumReduceOps, Value, "cuda reduce: bad op");
  TK_CHECK(outer >= 0 && n >= 0 && inner >= 0, Shape, "cuda reduce: negative size");
  if (outer == 0 || inner == 0) return;
  if (inner == 1) {
    TK_CHECK(outer <= 0x7fffffffLL, Shape, "cuda reduce: too many rows for one launch (", outer, ")");
    reduce_rows_kernel<<<static_cast<unsigned>(outer), kRowThreads>>>(opi, x, out, n);
  } else {
    reduce_columns_kernel<<<grid_1d(outer * inner, 256), 256>>>(opi, x, out, outer, n, inner);
  }
  check_launch("cuda reduce");
}

void argmax(const float* x, int32_t* out, int64_t rows, int64_t cols) {
  TK_CHECK(rows >= 0 && cols >= 0, Shape, "cuda argmax: negative size");
  TK_CHECK(rows == 0 || cols > 0, Shape, "cuda argmax: rows of zero columns have no maximum");
  TK_CHECK(rows <= 0x7fffffffLL, Shape, "cuda argmax: too many rows for one launch (", rows, ")");
  if (rows == 0) return;
  argmax_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, out, cols);
  check_launch("cuda argmax");
}

double sum_squares(const float* x, int64_t n) {
  TK_CHECK(n >= 0, Shape, "cuda sum_squares: negative count ", n);
  if (n == 0) return 0.0;
  DeviceBuffer total(sizeof(double));
  fill_zero(total.get(), sizeof(double));
  sum_squares_kernel<<<grid_1d(n, kRowThreads, 1024), kRowThreads>>>(x, n, total.get<double>());
  check_launch("cuda sum_squares");
  double s = 0.0;
  copy_to_host(&s, total.get(), sizeof(s));
  return s;
}

int64_t count_non_finite(const float* x, int64_t n) {
  TK_CHECK(n >= 0, Shape, "cuda count_non_finite: negative count ", n);
  if (n == 0) return 0;
  DeviceBuffer count(sizeof(unsigned long long));
  fill_zero(count.get(), sizeof(unsigned long long));
  count_non_finite_kernel<<<grid_1d(n, 256, 1024), 256>>>(x, n, count.get<unsigned long long>());
  check_launch("cuda count_non_finite");
  unsigned long long c = 0;
  copy_to_host(&c, count.get(), sizeof(c));
  return static_cast<int64_t>(c);
}

void adalora_triplet_scores_f32(const AdaloraShape& s, const AdaloraState& st, float* scores) {
  TK_CHECK(s.r >= 0 && s.in >= 0 && s.out >= 0, Shape, "cuda adalora_triplet_scores: negative shape");
  TK_CHECK(s.r <= 0x7fffffffLL, Shape, "cuda adalora_triplet_scores: rank ", s.r, " too large");
  if (s.r == 0) return;
  triplet_kernel<<<static_cast<unsigned>(s.r), kRowThreads>>>(s.r, s.in, s.out, st, scores);
  check_launch("cuda adalora_triplet_scores");
}

}  // namespace tk::cuda
