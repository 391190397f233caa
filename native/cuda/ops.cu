// Element-wise ops, softmax, layer/RMS norm, cross-entropy, AdamW and AdaLoRA's sensitivity EMAs
// on the GPU (f32). Formulas follow the CPU fast paths of the same op (native/cpu/*.cpp) so that
// results agree to rounding; row reductions accumulate in double like the CPU's.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

#define TK_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- element-wise ----

struct Dims {
  int ndim;
  int64_t shape[kMaxDims], as[kMaxDims], bs[kMaxDims];
};

__device__ __forceinline__ float binary_op(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return (isnan(a) || isnan(b)) ? NAN : fmaxf(a, b);
    case 5: return (isnan(a) || isnan(b)) ? NAN : fminf(a, b);
  }
  return NAN;
}

__global__ void binary_kernel(int op, const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out,
                              int64_t n, const Dims dims) {
  TK_GRID_LOOP(i, n) {
    int64_t rem = i, ao = 0, bo = 0;
    for (int d = dims.ndim - 1; d >= 0; --d) {
      const int64_t idx = rem % dims.shape[d];
      rem /= dims.shape[d];
      ao += idx * dims.as[d];
      bo += idx * dims.bs[d];
    }
    out[i] = binary_op(op, a[ao], b[bo]);
  }
}

// Same thing for the common case: a contiguous, b a row (broadcast over rows) or contiguous.
__global__ void binary_rows_kernel(int op, const float* __restrict__ a, const float* __restrict__ b,
                                   float* __restrict__ out, int64_t n, int64_t bmod) {
  TK_GRID_LOOP(i, n) out[i] = binary_op(op, a[i], b[bmod ? i % bmod : i]);
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float unary_op(int op, float x, float p) {
  switch (op) {
    case 0: return -x;
    case 1: return expf(x);
    case 2: return logf(x);
    case 3: return sqrtf(x);
    case 4: return 1.0f / sqrtf(x);
    case 5: return fabsf(x);
    case 6: return tanhf(x);
    case 7: return sigmoidf_(x);
    case 8: return (x > 0.0f || x != x) ? x : 0.0f;
    case 9: {
      const float u2 = 2.0f * kSqrt2OverPi * (x + 0.044715f * x * x * x);
      return x * sigmoidf_(u2);
    }
    case 10: return 0.5f * x * erfcf(-x * kInvSqrt2);
    case 11: return x * sigmoidf_(x);
    case 12: return x * x;
    case 13: return x * p;
    case 14: return x + p;
    case 15: return p == 2.0f ? x * x : (p == 1.0f ? x : powf(x, p));
  }
  return NAN;
}

__device__ __forceinline__ float unary_grad(int op, float x, float y, float dy, float p) {
  switch (op) {
    case 0: return -dy;
    case 1: return dy * y;
    case 2: return dy / x;
    case 3: return dy * 0.5f / y;
    case 4: return dy * (-0.5f * y * y * y);
    case 5: return x > 0.0f ? dy : (x < 0.0f ? -dy : 0.0f);
    case 6: return dy * (1.0f - y * y);
    case 7: return dy * (y * (1.0f - y));
    case 8: return x > 0.0f ? dy : 0.0f;
    case 9: {
      const float s = sigmoidf_(2.0f * kSqrt2OverPi * (x + 0.044715f * x * x * x));
      const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * x * x);
      return dy * (s + 2.0f * x * s * (1.0f - s) * du);
    }
    case 10: {
      const float cdf = 0.5f * erfcf(-x * kInvSqrt2);
      const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
      return dy * (cdf + x * pdf);
    }
    case 11: {
      const float s = sigmoidf_(x);
      return dy * (s * (1.0f + x * (1.0f - s)));
    }
    case 12: return dy * 2.0f * x;
    case 13: return dy * p;
    case 14: return dy;
    case 15: return p == 0.0f ? 0.0f : (p == 2.0f ? dy * 2.0f * x : dy * p * powf(x, p - 1.0f));
  }
  return NAN;
}

__global__ void unary_kernel(int op, const float* x, float* y, int64_t n, float p) {
  TK_GRID_LOOP(i, n) y[i] = unary_op(op, x[i], p);
}

__global__ void unary_backward_kernel(int op, const float* __restrict__ x, const float* __restrict__ y,
                                      const float* __restrict__ dy, float* __restrict__ dx, int64_t n, float p) {
  TK_GRID_LOOP(i, n) dx[i] = unary_grad(op, x ? x[i] : 0.0f, y ? y[i] : 0.0f, dy[i], p);
}

// ---- softmax: one CTA per row ----
constexpr int kRowThreads = 256;

__global__ void __launch_bounds__(kRowThreads) softmax_kernel(const float* x, float* y, int64_t cols, bool logmode) {
  __shared__ double dscr[33];
  __shared__ float fscr[33];
  const float* xr = x + blockIdx.x * cols;
  float* yr = y + blockIdx.x * cols;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, xr[c]);
  mx = block_max(mx, fscr);
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += exp(static_cast<double>(xr[c] - mx));
  s = block_sum_d(s, dscr);
  if (logmode) {
    const float lse = static_cast<float>(log(s));
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = (xr[c] - mx) - lse;
  } else {
    const double inv = 1.0 / s;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
      yr[c] = static_cast<float>(exp(static_cast<double>(xr[c] - mx)) * inv);
  }
}

__global__ void __launch_bounds__(kRowThreads) softmax_backward_kernel(const float* y, const float* dy, float* dx,
                                                                       int64_t cols, bool logmode) {
  __shared__ double dscr[33];
  const int64_t off = blockIdx.x * cols;
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    s += logmode ? static_cast<double>(dy[off + c]) : static_cast<double>(dy[off + c]) * y[off + c];
  s = block_sum_d(s, dscr);
  const float sf = static_cast<float>(s);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float yv = y[off + c], g = dy[off + c];
    dx[off + c] = logmode ? g - expf(yv) * sf : yv * (g - sf);
  }
}

// ---- norms ----

__global__ void __launch_bounds__(kRowThreads) layer_norm_kernel(const float* x, const float* w, const float* b, float* y,
                                                                 float* mean, float* rstd, int64_t cols, float eps) {
  __shared__ double dscr[33];
  const int64_t off = blockIdx.x * cols;
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += x[off + c];
  const double mu = block_sum_d(s, dscr) / cols;
  double v = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const double d = x[off + c] - mu;
    v += d * d;
  }
  const double var = block_sum_d(v, dscr) / cols;
  const float muf = static_cast<float>(mu), rs = static_cast<float>(1.0 / sqrt(var + eps));
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    float t = (x[off + c] - muf) * rs;
    if (w) t *= w[c];
    if (b) t += b[c];
    y[off + c] = t;
  }
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = muf;
    rstd[blockIdx.x] = rs;
  }
}

__global__ void __launch_bounds__(kRowThreads) layer_norm_dx_kernel(const float* x, const float* w, const float* mean,
                                                                    const float* rstd, const float* dy, float* dx,
                                                                    int64_t cols) {
  __shared__ double dscr[33];
  const int64_t off = blockIdx.x * cols;
  const float mu = mean[blockIdx.x], rs = rstd[blockIdx.x];
  double sg = 0.0, sgx = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float xh = (x[off + c] - mu) * rs, g = dy[off + c] * (w ? w[c] : 1.0f);
    sg += g;
    sgx += static_cast<double>(g) * xh;
  }
  const float mg = static_cast<float>(block_sum_d(sg, dscr) / cols);
  const float mgx = static_cast<float>(block_sum_d(sgx, dscr) / cols);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float xh = (x[off + c] - mu) * rs, g = dy[off + c] * (w ? w[c] : 1.0f);
    dx[off + c] = rs * (g - mg - xh * mgx);
  }
}

__global__ void __launch_bounds__(kRowThreads) rms_norm_kernel(const float* x, const float* w, float* y, float* rstd,
                                                               int64_t cols, float eps) {
  __shared__ double dscr[33];
  const int64_t off = blockIdx.x * cols;
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += static_cast<double>(x[off + c]) * x[off + c];
  const float rs = static_cast<float>(1.0 / sqrt(block_sum_d(s, dscr) / cols + eps));
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) y[off + c] = x[off + c] * rs * (w ? w[c] : 1.0f);
  if (threadIdx.x == 0) rstd[blockIdx.x] = rs;
}

__global__ void __launch_bounds__(kRowThreads) rms_norm_dx_kernel(const float* x, const float* w, const float* rstd,
                                                                  const float* dy, float* dx, int64_t cols) {
  __shared__ double dscr[33];
  const int64_t off = blockIdx.x * cols;
  const float rs = rstd[blockIdx.x];
  double sgx = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    sgx += static_cast<double>(dy[off + c] * (w ? w[c] : 1.0f)) * (x[off + c] * rs);
  const float mgx = static_cast<float>(block_sum_d(sgx, dscr) / cols);
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
    const float xh = x[off + c] * rs, g = dy[off + c] * (w ? w[c] : 1.0f);
    dx[off + c] = rs * (g - xh * mgx);
  }
}

// dw[c] (+)= sum_r dy[r,c] xhat[r,c], db[c] (+)= sum_r dy[r,c]; block (32 cols, 8 row lanes),
// blockIdx.y = chunk of rows; partial sums atomically added into zeroed dw / db.
// mean == nullptr: RMS norm (xhat = x rstd).
__global__ void norm_param_grad_kernel(const float* x, const float* mean, const float* rstd, const float* dy, float* dw,
                                       float* db, int64_t rows, int64_t cols, int64_t rows_per_chunk) {
  __shared__ float sw[8][33], sb[8][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
  float aw = 0.0f, ab = 0.0f;
  if (c < cols) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      const float g = dy[r * cols + c];
      const float xh = mean ? (x[r * cols + c] - mean[r]) * rstd[r] : x[r * cols + c] * rstd[r];
      aw = fmaf(g, xh, aw);
      ab += g;
    }
  }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float tw = 0.0f, tb = 0.0f;
    for (int i = 0; i < 8; ++i) {
      tw += sw[i][threadIdx.x];
      tb += sb[i][threadIdx.x];
    }
    if (dw) atomicAdd(dw + c, tw);
    if (db) atomicAdd(db + c, tb);
  }
}

void norm_param_grads(const float* x, const float* mean, const float* rstd, const float* dy, float* dw, float* db,
                      int64_t rows, int64_t cols) {
  if (!dw && !db) return;
  if (dw) fill_zero(dw, static_cast<size_t>(cols) * 4);
  if (db) fill_zero(db, static_cast<size_t>(cols) * 4);
  if (rows == 0 || cols == 0) return;
  int64_t chunks = (rows + 255) / 256;
  if (chunks > 1024) chunks = 1024;
  const int64_t per = (rows + chunks - 1) / chunks;
  chunks = (rows + per - 1) / per;
  dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks));
  norm_param_grad_kernel<<<grid, dim3(32, 8)>>>(x, mean, rstd, dy, dw, db, rows, cols, per);
  check_launch("cuda norm parameter gradients");
}

// ---- cross-entropy ----

__global__ void ce_check_kernel(const int32_t* labels, int64_t rows, int64_t classes, int64_t ignore,
                                unsigned long long* bad_row, unsigned long long* count) {
  unsigned long long local = 0;
  TK_GRID_LOOP(r, rows) {
    const int64_t l = labels[r];
    if (l == ignore) continue;
    if (l < 0 || l >= classes) atomicMin(bad_row, static_cast<unsigned long long>(r));
    else ++local;
  }
  if (local) atomicAdd(count, local);
}

__global__ void __launch_bounds__(kRowThreads) ce_kernel(const float* logits, const int32_t* labels, float* loss,
                                                         float* lse, int64_t classes, int64_t ignore) {
  __shared__ double dscr[33];
  __shared__ float fscr[33];
  const int64_t off = blockIdx.x * classes;
  float mx = -INFINITY;
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) mx = fmaxf(mx, logits[off + c]);
  mx = block_max(mx, fscr);
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < classes; c += blockDim.x) s += exp(static_cast<double>(logits[off + c]) - mx);
  s = block_sum_d(s, dscr);
  if (threadIdx.x == 0) {
    const double l = mx + log(s);
    lse[blockIdx.x] = static_cast<float>(l);
    const int64_t lab = labels[blockIdx.x];
    loss[blockIdx.x] = lab == ignore ? 0.0f : static_cast<float>(l - logits[off + lab]);
  }
}

__global__ void ce_backward_kernel(const float* logits, const int32_t* labels, const float* lse, const float* dloss,
                                   float* dlogits, int64_t rows, int64_t classes, int64_t ignore) {
  TK_GRID_LOOP(i, rows * classes) {
    const int64_t r = i / classes, c = i % classes;
    const int64_t lab = labels[r];
    dlogits[i] = lab == ignore ? 0.0f : dloss[r] * (expf(logits[i] - lse[r]) - (c == lab ? 1.0f : 0.0f));
  }
}

// ---- optimizers ----

struct AdamDerived {
  float beta1, beta2, one_b1, one_b2, eps, decay, step_size, bc2_sqrt;
};

__global__ void adamw_kernel(float* p, const float* g, float* m, float* v, int64_t n, const AdamDerived d) {
  TK_GRID_LOOP(i, n) {
    const float gi = g[i];
    const float mi = d.beta1 * m[i] + d.one_b1 * gi;
    const float vi = d.beta2 * v[i] + d.one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / d.bc2_sqrt + d.eps;
    p[i] = p[i] * d.decay - d.step_size * mi / denom;
  }
}

__global__ void adalora_ema_kernel(int64_t n, const float* w, const float* g, float* ibar, float* unc, float b1, float c1,
                                   float b2, float c2) {
  TK_GRID_LOOP(i, n) {
    const float ipt = g ? fabsf(w[i] * g[i]) : 0.0f;
    const float m = b1 * ibar[i] + c1 * ipt;
    ibar[i] = m;
    unc[i] = b2 * unc[i] + c2 * fabsf(ipt - m);
  }
}

void check_rows(const char* fn, int64_t rows, int64_t cols) {
  TK_CHECK(rows >= 0 && cols >= 0, Shape, fn, ": negative size");
  TK_CHECK(rows == 0 || cols > 0, Shape, fn, ": rows of ", cols, " columns (need >= 1)");
  TK_CHECK(rows <= 0x7fffffffLL, Shape, fn, ": too many rows for one launch (", rows, ")");
}

}  // namespace

void binary(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides) {
  TK_CHECK(ndim >= 0 && ndim <= kMaxDims, Shape, "cuda binary: ndim ", ndim, " not in [0, ", kMaxDims, "]");
  TK_CHECK(static_cast<int>(op) >= 0 && static_cast<int>(op) < kNumBinaryOps, Value, "cuda binary: bad op");
  Dims d{};
  d.ndim = ndim;
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) {
    TK_CHECK(shape[i] >= 0 && a_strides[i] >= 0 && b_strides[i] >= 0, Shape, "cuda binary: negative shape/stride");
    d.shape[i] = shape[i];
    d.as[i] = a_strides[i];
    d.bs[i] = b_strides[i];
    n *= shape[i];
  }
  if (n == 0) return;
  // fast path: a contiguous, b contiguous or a broadcast row over the last axis
  bool a_contig = true, b_contig = true, b_row = ndim >= 1 && b_strides[ndim - 1] == 1;
  int64_t expect = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && a_strides[i] != expect) a_contig = false;
    if (shape[i] != 1 && b_strides[i] != expect) b_contig = false;
    if (i < ndim - 1 && shape[i] != 1 && b_strides[i] != 0) b_row = false;
    expect *= shape[i];
  }
  const int opi = static_cast<int>(op);
  if (a_contig && (b_contig || b_row)) {
    binary_rows_kernel<<<grid_1d(n, 256), 256>>>(opi, a, b, out, n, b_contig ? 0 : shape[ndim - 1]);
  } else {
    binary_kernel<<<grid_1d(n, 256), 256>>>(opi, a, b, out, n, d);
  }
  check_launch("cuda binary");
}

void unary(UnaryOp op, const float* x, float* y, int64_t n, float param) {
  TK_CHECK(static_cast<int>(op) >= 0 && static_cast<int>(op) < kNumUnaryOps, Value, "cuda unary: bad op");
  TK_CHECK(n >= 0, Shape, "cuda unary: negative count");
  if (n == 0) return;
  unary_kernel<<<grid_1d(n, 256), 256>>>(static_cast<int>(op), x, y, n, param);
  check_launch("cuda unary");
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n, float param) {
  TK_CHECK(static_cast<int>(op) >= 0 && static_cast<int>(op) < kNumUnaryOps, Value, "cuda unary_backward: bad op");
  TK_CHECK(n >= 0, Shape, "cuda unary_backward: negative count");
  if (n == 0) return;
  unary_backward_kernel<<<grid_1d(n, 256), 256>>>(static_cast<int>(op), x, y, dy, dx, n, param);
  check_launch("cuda unary_backward");
}

void softmax(const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  check_rows("cuda softmax", rows, cols);
  if (rows == 0) return;
  softmax_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, y, cols, log);
  check_launch("cuda softmax");
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols, bool log) {
  check_rows("cuda softmax_backward", rows, cols);
  if (rows == 0) return;
  softmax_backward_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(y, dy, dx, cols, log);
  check_launch("cuda softmax_backward");
}

void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                int64_t cols, float eps) {
  check_rows("cuda layer_norm", rows, cols);
  if (rows == 0) return;
  layer_norm_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, w, b, y, mean, rstd, cols, eps);
  check_launch("cuda layer_norm");
}

void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols) {
  check_rows("cuda layer_norm_backward", rows, cols);
  if (rows > 0) {
    layer_norm_dx_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, w, mean, rstd, dy, dx, cols);
    check_launch("cuda layer_norm_backward");
  }
  norm_param_grads(x, mean, rstd, dy, dw, db, rows, cols);
}

void rms_norm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps) {
  check_rows("cuda rms_norm", rows, cols);
  if (rows == 0) return;
  rms_norm_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, w, y, rstd, cols, eps);
  check_launch("cuda rms_norm");
}

void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols) {
  check_rows("cuda rms_norm_backward", rows, cols);
  if (rows > 0) {
    rms_norm_dx_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(x, w, rstd, dy, dx, cols);
    check_launch("cuda rms_norm_backward");
  }
  norm_param_grads(x, nullptr, rstd, dy, dw, nullptr, rows, cols);
}

int64_t cross_entropy(const float* logits, const int32_t* labels, float* loss, float* lse, int64_t rows,
                      int64_t classes, int64_t ignore_index) {
  check_rows("cuda cross_entropy", rows, classes);
  if (rows == 0) return 0;
  DeviceBuffer flags(16);
  unsigned long long init[2] = {~0ull, 0ull};
  copy_to_device(flags.get(), init, sizeof(init));
  unsigned long long* f = flags.get<unsigned long long>();
  ce_check_kernel<<<grid_1d(rows, 256, 1024), 256>>>(labels, rows, classes, ignore_index, f, f + 1);
  check_launch("cuda cross_entropy (labels)");
  unsigned long long got[2];
  copy_to_host(got, f, sizeof(got));
  if (got[0] != ~0ull) {
    int32_t bad = 0;
    copy_to_host(&bad, labels + got[0], sizeof(bad));
    fail(ErrorCode::Index, "cross_entropy: label ", bad, " at row ", got[0], " is outside [0, ", classes,
         ") and is not ignore_index ", ignore_index);
  }
  ce_kernel<<<static_cast<unsigned>(rows), kRowThreads>>>(logits, labels, loss, lse, classes, ignore_index);
  check_launch("cuda cross_entropy");
  return static_cast<int64_t>(got[1]);
}

void cross_entropy_backward(const float* logits, const int32_t* labels, const float* lse, const float* dloss,
                            float* dlogits, int64_t rows, int64_t classes, int64_t ignore_index) {
  check_rows("cuda cross_entropy_backward", rows, classes);
  if (rows == 0) return;
  ce_backward_kernel<<<grid_1d(rows * classes, 256), 256>>>(logits, labels, lse, dloss, dlogits, rows, classes,
                                                           ignore_index);
  check_launch("cuda cross_entropy_backward");
}

void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h) {
  TK_CHECK(n >= 0, Shape, "cuda adamw: negative count");
  TK_CHECK(h.step >= 1, Value, "cuda adamw: step must be >= 1 but is ", h.step);
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bc2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  AdamDerived d;
  d.beta1 = static_cast<float>(h.beta1);
  d.beta2 = static_cast<float>(h.beta2);
  d.one_b1 = static_cast<float>(1.0 - h.beta1);
  d.one_b2 = static_cast<float>(1.0 - h.beta2);
  d.eps = static_cast<float>(h.eps);
  d.decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  d.step_size = static_cast<float>(h.lr / bc1);
  d.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  adamw_kernel<<<grid_1d(n, 256), 256>>>(param, grad, m, v, n, d);
  check_launch("cuda adamw");
}

void adalora_update_f32(const AdaloraShape& s, const float* a, const float* ga, const float* e, const float* ge,
                        const float* b, const float* gb, const AdaloraState& st, float beta1, float beta2) {
  TK_CHECK(s.r >= 0 && s.in >= 0 && s.out >= 0, Shape, "cuda adalora_update: negative shape");
  TK_CHECK(beta1 > 0.0f && beta1 < 1.0f && beta2 > 0.0f && beta2 < 1.0f, Value,
           "adalora: beta1 and beta2 must lie in (0, 1) but are ", beta1, " and ", beta2);
  const float c1 = static_cast<float>(1.0 - static_cast<double>(beta1));
  const float c2 = static_cast<float>(1.0 - static_cast<double>(beta2));
  auto one = [&](int64_t n, const float* w, const float* g, float* ibar, float* unc) {
    if (n == 0) return;
    adalora_ema_kernel<<<grid_1d(n, 256), 256>>>(n, w, g, ibar, unc, beta1, c1, beta2, c2);
    check_launch("cuda adalora_update");
  };
  one(s.r * s.in, a, ga, st.ibar_a, st.unc_a);
  one(s.r, e, ge, st.ibar_e, st.unc_e);
  one(s.out * s.r, b, gb, st.ibar_b, st.unc_b);
}

}  // namespace tk::cuda
