// Element-wise f32 kernels. See elementwise.h for the conventions.
#include "elementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/thread_pool.h"
#include "elementwise_simd.h"

namespace tk::cpu {

namespace {

// Elements per task: big enough that thread wake-up (~microseconds) is amortised, so tensors
// under ~32K elements run on the calling thread alone.
constexpr int64_t kGrainCheap = 32768;      // add/mul/neg...: memory bound
constexpr int64_t kGrainTranscend = 4096;   // exp/tanh/erf...: ~10-50 ns per element

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2/pi)
constexpr double kInvSqrt2 = 0.7071067811865476;
constexpr double kInvSqrt2Pi = 0.3989422804014327;   // 1/sqrt(2 pi)

bool is_transcendental(UnaryOp op) {
  switch (op) {
    case UnaryOp::Exp: case UnaryOp::Log: case UnaryOp::Tanh: case UnaryOp::Sigmoid:
    case UnaryOp::GeluTanh: case UnaryOp::GeluErf: case UnaryOp::Silu: case UnaryOp::PowScalar:
      return true;
    default:
      return false;
  }
}

// ---- reference (double precision, one element at a time) ----

double binary_ref_one(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Maximum: return (std::isnan(a) || std::isnan(b)) ? NAN : std::max(a, b);
    case BinaryOp::Minimum: return (std::isnan(a) || std::isnan(b)) ? NAN : std::min(a, b);
  }
  return NAN;
}

double unary_ref_one(UnaryOp op, double x, double p) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return 1.0 / std::sqrt(x);
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sigmoid: return 1.0 / (1.0 + std::exp(-x));
    case UnaryOp::Relu: return x > 0 ? x : (std::isnan(x) ? x : 0.0);
    case UnaryOp::GeluTanh: return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
    case UnaryOp::GeluErf: return 0.5 * x * std::erfc(-x * kInvSqrt2);
    case UnaryOp::Silu: return x / (1.0 + std::exp(-x));
    case UnaryOp::Square: return x * x;
    case UnaryOp::MulScalar: return x * p;
    case UnaryOp::AddScalar: return x + p;
    case UnaryOp::PowScalar: return std::pow(x, p);
  }
  return NAN;
}

// d f(x) / dx, given x and y = f(x)
double unary_ref_deriv(UnaryOp op, double x, double y, double p) {
  switch (op) {
    case UnaryOp::Neg: return -1.0;
    case UnaryOp::Exp: return y;
    case UnaryOp::Log: return 1.0 / x;
    case UnaryOp::Sqrt: return 0.5 / y;
    case UnaryOp::Rsqrt: return -0.5 * y * y * y;
    case UnaryOp::Abs: return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);  // PyTorch: sign(0) = 0
    case UnaryOp::Tanh: return 1.0 - y * y;
    case UnaryOp::Sigmoid: return y * (1.0 - y);
    case UnaryOp::Relu: return x > 0 ? 1.0 : 0.0;
    case UnaryOp::GeluTanh: {
      double u = kSqrt2OverPi * (x + 0.044715 * x * x * x);
      double t = std::tanh(u);
      double du = kSqrt2OverPi * (1.0 + 3.0 * 0.044715 * x * x);
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
    }
    case UnaryOp::GeluErf:
      return 0.5 * std::erfc(-x * kInvSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case UnaryOp::Silu: {
      double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 + x * (1.0 - s));
    }
    case UnaryOp::Square: return 2.0 * x;
    case UnaryOp::MulScalar: return p;
    case UnaryOp::AddScalar: return 1.0;
    case UnaryOp::PowScalar: return p == 0.0 ? 0.0 : p * std::pow(x, p - 1.0);  // PyTorch: 0 for p == 0
  }
  return NAN;
}

// ---- fast row kernels ----

// Each op written so that the loop body is branch-free and vectorises.
#define TK_BINARY_SWITCH(op, A, B)                                              \
  switch (op) {                                                                \
    case BinaryOp::Add: for (int64_t i = 0; i < n; ++i) o[i] = (A) + (B); break; \
    case BinaryOp::Sub: for (int64_t i = 0; i < n; ++i) o[i] = (A) - (B); break; \
    case BinaryOp::Mul: for (int64_t i = 0; i < n; ++i) o[i] = (A) * (B); break; \
    case BinaryOp::Div: for (int64_t i = 0; i < n; ++i) o[i] = (A) / (B); break; \
    case BinaryOp::Maximum:                                                    \
      for (int64_t i = 0; i < n; ++i) {                                        \
        float av = (A), bv = (B);                                              \
        o[i] = (av > bv || av != av) ? av : bv; /* NaN in either -> NaN */      \
      }                                                                        \
      break;                                                                   \
    case BinaryOp::Minimum:                                                    \
      for (int64_t i = 0; i < n; ++i) {                                        \
        float av = (A), bv = (B);                                              \
        o[i] = (av < bv || av != av) ? av : bv;                                \
      }                                                                        \
      break;                                                                   \
  }

// o[n] = a[n] op b[n]
TK_SIMD_CLONES void binary_row_vv(BinaryOp op, const float* a, const float* b, float* o, int64_t n) {
  TK_BINARY_SWITCH(op, a[i], b[i])
}
// o[n] = a[n] op b (b broadcast along the row)
TK_SIMD_CLONES void binary_row_vs(BinaryOp op, const float* a, float b, float* o, int64_t n) {
  TK_BINARY_SWITCH(op, a[i], b)
}
// o[n] = a op b[n]
TK_SIMD_CLONES void binary_row_sv(BinaryOp op, float a, const float* b, float* o, int64_t n) {
  TK_BINARY_SWITCH(op, a, b[i])
}
// general strides
void binary_row_strided(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  TK_BINARY_SWITCH(op, a[i * sa], b[i * sb])
}
#undef TK_BINARY_SWITCH

void binary_row(BinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* o, int64_t n) {
  if (sa == 1 && sb == 1) binary_row_vv(op, a, b, o, n);
  else if (sa == 1 && sb == 0) binary_row_vs(op, a, *b, o, n);
  else if (sa == 0 && sb == 1) binary_row_sv(op, *a, b, o, n);
  else binary_row_strided(op, a, sa, b, sb, o, n);
}

TK_SIMD_CLONES void unary_chunk(UnaryOp op, const float* x, float* y, int64_t n, float p) {
  switch (op) {
    case UnaryOp::Neg: for (int64_t i = 0; i < n; ++i) y[i] = -x[i]; break;
    case UnaryOp::Exp: for (int64_t i = 0; i < n; ++i) y[i] = exp_fast(x[i]); break;
    case UnaryOp::Log: for (int64_t i = 0; i < n; ++i) y[i] = std::log(x[i]); break;
    case UnaryOp::Sqrt: for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]); break;
    case UnaryOp::Rsqrt: for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / std::sqrt(x[i]); break;
    case UnaryOp::Abs: for (int64_t i = 0; i < n; ++i) y[i] = std::fabs(x[i]); break;
    case UnaryOp::Tanh: for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]); break;
    case UnaryOp::Sigmoid: for (int64_t i = 0; i < n; ++i) y[i] = sigmoid_fast(x[i]); break;
    case UnaryOp::Relu:
      // x > 0 ? x : 0, but NaN stays NaN as in PyTorch
      for (int64_t i = 0; i < n; ++i) y[i] = (x[i] > 0.0f || x[i] != x[i]) ? x[i] : 0.0f;
      break;
    case UnaryOp::GeluTanh:
      // 0.5 (1 + tanh(u)) == sigmoid(2u): same function, no tanh libcall, no cancellation
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        float u2 = 2.0f * static_cast<float>(kSqrt2OverPi) * (v + 0.044715f * v * v * v);
        y[i] = v * sigmoid_fast(u2);
      }
      break;
    case UnaryOp::GeluErf:
      // 1 + erf(z) == erfc(-z): no cancellation for negative x (PyTorch's f32 1+erf loses it)
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * std::erfc(-x[i] * static_cast<float>(kInvSqrt2));
      break;
    case UnaryOp::Silu: for (int64_t i = 0; i < n; ++i) y[i] = x[i] * sigmoid_fast(x[i]); break;
    case UnaryOp::Square: for (int64_t i = 0; i < n; ++i) y[i] = x[i] * x[i]; break;
    case UnaryOp::MulScalar: for (int64_t i = 0; i < n; ++i) y[i] = x[i] * p; break;
    case UnaryOp::AddScalar: for (int64_t i = 0; i < n; ++i) y[i] = x[i] + p; break;
    case UnaryOp::PowScalar:
      if (p == 2.0f) for (int64_t i = 0; i < n; ++i) y[i] = x[i] * x[i];
      else if (p == 1.0f) for (int64_t i = 0; i < n; ++i) y[i] = x[i];
      else for (int64_t i = 0; i < n; ++i) y[i] = std::pow(x[i], p);
      break;
  }
}

TK_SIMD_CLONES void unary_backward_chunk(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                                         int64_t n, float p) {
  switch (op) {
    case UnaryOp::Neg: for (int64_t i = 0; i < n; ++i) dx[i] = -dy[i]; break;
    case UnaryOp::Exp: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i]; break;
    case UnaryOp::Log: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] / x[i]; break;
    case UnaryOp::Sqrt: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * 0.5f / y[i]; break;
    case UnaryOp::Rsqrt: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (-0.5f * y[i] * y[i] * y[i]); break;
    case UnaryOp::Abs:
      for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : (x[i] < 0.0f ? -dy[i] : 0.0f);
      break;
    case UnaryOp::Tanh: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]); break;
    case UnaryOp::Sigmoid: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (y[i] * (1.0f - y[i])); break;
    case UnaryOp::Relu: for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f; break;
    case UnaryOp::GeluTanh:
      // y = x s(2u): dy/dx = s + x s (1 - s) 2 u'
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        const float c = static_cast<float>(kSqrt2OverPi);
        float s = sigmoid_fast(2.0f * c * (v + 0.044715f * v * v * v));
        float du = c * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] = dy[i] * (s + 2.0f * v * s * (1.0f - s) * du);
      }
      break;
    case UnaryOp::GeluErf:
      for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        float cdf = 0.5f * std::erfc(-v * static_cast<float>(kInvSqrt2));
        float pdf = static_cast<float>(kInvSqrt2Pi) * exp_fast(-0.5f * v * v);
        dx[i] = dy[i] * (cdf + v * pdf);
      }
      break;
    case UnaryOp::Silu:
      for (int64_t i = 0; i < n; ++i) {
        float s = sigmoid_fast(x[i]);
        dx[i] = dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
      }
      break;
    case UnaryOp::Square: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * 2.0f * x[i]; break;
    case UnaryOp::MulScalar: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * p; break;
    case UnaryOp::AddScalar: for (int64_t i = 0; i < n; ++i) dx[i] = dy[i]; break;
    case UnaryOp::PowScalar:
      if (p == 0.0f) for (int64_t i = 0; i < n; ++i) dx[i] = 0.0f;
      else if (p == 2.0f) for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * 2.0f * x[i];
      else for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * p * std::pow(x[i], p - 1.0f);
      break;
  }
}

// Sum of squares of one block, 8 independent double lanes (vectorises without -ffast-math).
TK_SIMD_CLONES double sum_squares_block(const float* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      double v = x[i + l];
      acc[l] += v * v;
    }
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

TK_SIMD_CLONES int64_t count_non_finite_block(const float* x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    c += ((b & 0x7F800000u) == 0x7F800000u);  // exponent all ones: inf or NaN
  }
  return c;
}

}  // namespace

const char* binary_op_name(BinaryOp op) { return op_name(op); }  // core/op_codes.h
const char* unary_op_name(UnaryOp op) { return op_name(op); }

// ---- binary ----

void binary_reference(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
                      const int64_t* a_strides, const int64_t* b_strides) {
  int64_t total = 1;
  for (int k = 0; k < ndim; ++k) total *= shape[k];
  std::vector<int64_t> idx(ndim);
  for (int64_t flat = 0; flat < total; ++flat) {
    // flat -> multi-index, innermost dimension fastest
    int64_t rem = flat, ao = 0, bo = 0;
    for (int k = ndim - 1; k >= 0; --k) {
      int64_t i = rem % shape[k];
      rem /= shape[k];
      ao += i * a_strides[k];
      bo += i * b_strides[k];
    }
    out[flat] = static_cast<float>(binary_ref_one(op, a[ao], b[bo]));
  }
}

void binary(BinaryOp op, const float* a, const float* b, float* out, int ndim, const int64_t* shape,
            const int64_t* a_strides, const int64_t* b_strides) {
  // Collapse the view: drop size-1 dims, merge neighbours that are contiguous in a, b and out,
  // so the common cases become one long row (same shape) or rows x broadcast row (bias add).
  std::vector<int64_t> sh, as, bs;
  for (int k = 0; k < ndim; ++k) {
    if (shape[k] == 0) return;
    if (shape[k] == 1) continue;
    if (!sh.empty() && as.back() == a_strides[k] * shape[k] && bs.back() == b_strides[k] * shape[k]) {
      sh.back() *= shape[k];
      as.back() = a_strides[k];
      bs.back() = b_strides[k];
    } else {
      sh.push_back(shape[k]);
      as.push_back(a_strides[k]);
      bs.push_back(b_strides[k]);
    }
  }
  if (sh.empty()) {  // a single element
    sh.push_back(1);
    as.push_back(0);
    bs.push_back(0);
  }
  const int nd = static_cast<int>(sh.size());
  int64_t total = 1;
  for (int64_t s : sh) total *= s;
  const int64_t L = sh[nd - 1], sa = as[nd - 1], sb = bs[nd - 1];

  // Chunks of the flat output; each walks its rows with an odometer over the outer dims.
  parallel_for(total, kGrainCheap, [&](int64_t begin, int64_t end) {
    int64_t row = begin / L, col = begin % L;
    std::vector<int64_t> idx(nd, 0);
    int64_t ao = 0, bo = 0;
    for (int k = nd - 2; k >= 0; --k) {
      idx[k] = row % sh[k];
      row /= sh[k];
      ao += idx[k] * as[k];
      bo += idx[k] * bs[k];
    }
    int64_t pos = begin;
    while (pos < end) {
      int64_t len = std::min(L - col, end - pos);
      binary_row(op, a + ao + col * sa, sa, b + bo + col * sb, sb, out + pos, len);
      pos += len;
      col = 0;
      for (int k = nd - 2; k >= 0; --k) {  // next row
        ao += as[k];
        bo += bs[k];
        if (++idx[k] < sh[k]) break;
        ao -= as[k] * sh[k];
        bo -= bs[k] * sh[k];
        idx[k] = 0;
      }
    }
  });
}

// ---- unary ----

void unary_reference(UnaryOp op, const float* x, float* y, int64_t n, float param) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(unary_ref_one(op, x[i], param));
}

namespace {
// The ops with an AVX-512 intrinsics form (elementwise_avx512.cpp) on this CPU.
bool has_avx512_form(UnaryOp op) {
  return cpu_features().avx512f && (op == UnaryOp::GeluTanh || op == UnaryOp::Silu);
}
}  // namespace

void unary(UnaryOp op, const float* x, float* y, int64_t n, float param) {
  int64_t grain = is_transcendental(op) ? kGrainTranscend : kGrainCheap;
  if (has_avx512_form(op)) {
    const auto fn = op == UnaryOp::GeluTanh ? &elementwise_detail::gelu_tanh_avx512 : &elementwise_detail::silu_avx512;
    parallel_for(n, grain, [&](int64_t b, int64_t e) { fn(x + b, y + b, e - b); });
    return;
  }
  parallel_for(n, grain, [&](int64_t b, int64_t e) { unary_chunk(op, x + b, y + b, e - b, param); });
}

void unary_backward_reference(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n,
                              float param) {
  for (int64_t i = 0; i < n; ++i) {
    // where the rule needs it, y is recomputed in double from x for the oracle
    double yd = unary_ref_one(op, x[i], param);
    (void)y;
    dx[i] = static_cast<float>(dy[i] * unary_ref_deriv(op, x[i], yd, param));
  }
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx, int64_t n,
                    float param) {
  int64_t grain = is_transcendental(op) ? kGrainTranscend : kGrainCheap;
  if (has_avx512_form(op)) {
    const auto fn = op == UnaryOp::GeluTanh ? &elementwise_detail::gelu_tanh_backward_avx512 : &elementwise_detail::silu_backward_avx512;
    parallel_for(n, grain, [&](int64_t b, int64_t e) { fn(x + b, dy + b, dx + b, e - b); });
    return;
  }
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    unary_backward_chunk(op, x ? x + b : nullptr, y ? y + b : nullptr, dy + b, dx + b, e - b, param);
  });
}

// ---- exp helpers shared with softmax / cross-entropy ----

// A separate (multi-versioned) function: inlined into a caller's outer loop, GCC 12 stops
// vectorising this loop.
TK_SIMD_CLONES void exp_shift(const float* __restrict x, float* __restrict e, int64_t n, float shift) {
  for (int64_t j = 0; j < n; ++j) e[j] = exp_fast(x[j] - shift);
}

// Blocks of 256: exps first, then an 8-lane double sum of the block (GCC will not vectorise
// the two fused).
TK_SIMD_CLONES double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
  double total = 0;
  float buf[256];
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    int64_t w = std::min<int64_t>(256, n - i0);
    float* e = y ? y + i0 : buf;
    exp_shift(x + i0, e, w, shift);
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= w; j += 8)
      for (int l = 0; l < 8; ++l) acc[l] += e[j + l];
    for (; j < w; ++j) total += e[j];
    for (int l = 0; l < 8; ++l) total += acc[l];
  }
  return total;
}

// ---- scans ----

double sum_squares_reference(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}

double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kBlock = 65536;  // fixed blocks: the sum order never depends on threads
  int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<double> part(static_cast<size_t>(nb), 0.0);
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t s = b * kBlock, e = std::min(n, s + kBlock);
      part[b] = sum_squares_block(x + s, e - s);
    }
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

int64_t count_non_finite_reference(const float* x, int64_t n) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += !std::isfinite(x[i]);
  return c;
}

int64_t count_non_finite(const float* x, int64_t n) {
  constexpr int64_t kBlock = 65536;
  int64_t nb = (n + kBlock - 1) / kBlock;
  std::vector<int64_t> part(static_cast<size_t>(nb), 0);
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      int64_t s = b * kBlock, e = std::min(n, s + kBlock);
      part[b] = count_non_finite_block(x + s, e - s);
    }
  });
  int64_t total = 0;
  for (int64_t p : part) total += p;
  return total;
}

}  // namespace tk::cpu
