// Linear + LoRA on the CPU: a sequence of GEMM calls (each multi-threaded by gemm_f32) and a
// plain reference. See lora.h for shapes and semantics.
#include "lora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "dropout.h"
#include "gemm.h"
#include "lora_thin.h"

namespace tk::cpu {

namespace {

// C [M, N] = alpha op(A) op(B) + beta C, contiguous operands with the given leading dims.
inline void gemm_call(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: C = beta C, without asking the GEMM about an empty inner dimension
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  gemm_f32(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

void check_lora_shape(const LoraShape& s) {
  TK_CHECK(s.M >= 0 && s.in >= 0 && s.out >= 0 && s.r >= 0, Shape, "loraLinear: negative size M=", s.M,
           " in=", s.in, " out=", s.out, " r=", s.r);
  TK_CHECK(std::isfinite(s.scale), Value, "loraLinear: scale must be finite but is ", s.scale);
}

namespace {

// Rows of the adapter path handled together: a block of xd [kRows, in], its slice of y and of dy
// stay in L2 while the thin products run on them.
constexpr int64_t kRows = 64;

// The adapter's input xd [M, in]: an explicit buffer, x itself, or x * mask / (1 - p).
struct AdapterInput {
  const float* x = nullptr;       // [M, in]
  const float* xd = nullptr;      // explicit xd (legacy API), or null
  const uint8_t* mask = nullptr;  // dropout mask (xd = x * mask * keep_scale), or null
  float keep_scale = 1.0f;  // 1 / (1 - p)
  float p = 0.0f;
  int64_t in = 0;

  // Rows [i0, i0 + n) of xd: a pointer into xd or x, or the dropped rows built in `scratch`.
  const float* rows(int64_t i0, int64_t n, float* scratch) const {
    if (xd) return xd + i0 * in;
    if (!mask) return x + i0 * in;
    const float* xs = x + i0 * in;
    const uint8_t* ms = mask + i0 * in;
    const int64_t count = n * in;
    for (int64_t e = 0; e < count; ++e) scratch[e] = xs[e] * (static_cast<float>(static_cast<int32_t>(ms[e])) * keep_scale);
    return scratch;
  }
};

// B^T [r, out] from B [out, r]: the thin row loops read the adapter's up-projection by rows.
std::vector<float> transposed_b(const float* b, int64_t out, int64_t r) {
  std::vector<float> bt(static_cast<size_t>(r * out));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < r; ++k) bt[k * out + o] = b[o * r + k];
  return bt;
}

// Per-thread scratch for the row blocks (grown as needed, reused across calls).
std::vector<float>& scratch_buffer(int which) {
  thread_local std::vector<float> buf[3];
  return buf[which];
}
float* scratch(int which, int64_t n) {
  auto& v = scratch_buffer(which);
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// y [M, out] = x W (+ s xd A^T B^T + bias), xa [M, r] = xd A^T.
void forward_impl(const LoraShape& s, const float* x, const AdapterInput& xin, const float* w, const float* bias,
                  const float* a, const float* b, float* y, float* xa, float p, uint64_t seed, uint8_t* mask_out) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  // the base product, all rows, all threads: y [M, out] = x [M, in] W^T  (W [out, in])  or  x W  (W [in, out])
  if (s.w_in_out) gemm_call(false, false, M, out, in, 1.0f, x, in, w, out, 0.0f, y, out);
  else gemm_call(false, true, M, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
  if (M == 0) return;
  const std::vector<float> bt = transposed_b(b, out, r);
  const int64_t blocks = (M + kRows - 1) / kRows;
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t i0 = blk * kRows, n = std::min(kRows, M - i0);
      float* yb = y + i0 * out;
      if (r > 0) {
        const float* xdb;
        if (mask_out) {
          // dropout of this block's rows into scratch, the kept flags into the mask
          float* sc = scratch(0, n * in);
          dropout_range(x, sc, mask_out, i0 * in, n * in, p, seed);
          xdb = sc;
        } else {
          xdb = xin.rows(i0, n, scratch(0, n * in));
        }
        // xa [n, r] = xd [n, in] A^T  (A [r, in])
        thin_rowdot(xdb, in, a, n, r, in, 1.0f, xa + i0 * r, r);
      }
      // y [n, out] += s xa [n, r] B^T + bias: one visit of the block of y
      if (r > 0 || bias) thin_rowaxpy(xa + i0 * r, r, bt.data(), n, r, out, s.scale, bias, nullptr, 0.0f, yb, out, true);
    }
  });
}

// dx, dA, dB of the fused layer; dxd (legacy, may be null) receives the adapter path's input
// gradient instead of adding it into dx.
void backward_impl(const LoraShape& s, const float* dy, const AdapterInput& xin, const float* w, const float* a,
                   const float* b, const float* xa, float* dx, float* dxd, float* da, float* db) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  // dx [M, in] = dy [M, out] W [out, in]   or   dy W^T with W [in, out]
  if (s.w_in_out) gemm_call(false, true, M, in, out, 1.0f, dy, out, w, out, 0.0f, dx, in);
  else gemm_call(false, false, M, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
  if (r == 0) {
    if (dxd) std::fill(dxd, dxd + M * in, 0.0f);
    return;
  }
  // dB [out, r] = s dy^T xa: one product over all rows (all threads)
  gemm_call(true, false, out, r, M, s.scale, dy, out, xa, r, 0.0f, db, r);
  if (M == 0) {
    std::fill(da, da + r * in, 0.0f);
    return;
  }
  // per block: t = dy B, the input gradient s t A (through the mask), and dA's block partial
  const std::vector<float> bt = transposed_b(b, out, r);
  const int64_t blocks = (M + kRows - 1) / kRows;
  // the block partials live in the calling thread's grow-only buffer: a fresh 1 MiB vector per
  // call came from mmap and faulted its pages in every step
  // (a pointer, not the thread_local itself, goes into the lambdas: on a pool thread the name
  // would denote that thread's own, empty, buffer)
  thread_local std::vector<float> da_part_buf;
  if (da_part_buf.size() < static_cast<size_t>(blocks * r * in)) da_part_buf.resize(static_cast<size_t>(blocks * r * in));
  float* const da_part = da_part_buf.data();
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t i0 = blk * kRows, n = std::min(kRows, M - i0);
      const float* dyb = dy + i0 * out;
      // t [n, r] = dy [n, out] B [out, r]: the gradient at the adapter's bottleneck (before s)
      float* t = scratch(1, n * r);
      thin_rowdot(dyb, out, bt.data(), n, r, out, 1.0f, t, r);
      // the adapter path's input gradient s t A [n, in]: into dxd, or added into dx (through the
      // dropout mask when there is one)
      if (dxd) thin_rowaxpy(t, r, a, n, r, in, s.scale, nullptr, nullptr, 0.0f, dxd + i0 * in, in, false);
      else thin_rowaxpy(t, r, a, n, r, in, s.scale, nullptr, xin.mask ? xin.mask + i0 * in : nullptr, xin.keep_scale, dx + i0 * in, in, true);
      // dA partial [r, in] = s t^T xd over this block's rows
      const float* xdb = xin.rows(i0, n, scratch(0, n * in));
      thin_outer(t, r, xdb, in, n, r, in, s.scale, da_part + blk * r * in, false);
    }
  });
  // dA = the block partials summed in block order (fixed: the same bits for any thread count)
  parallel_for(r * in, 4096, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) da[e] = da_part[e];
    for (int64_t blk = 1; blk < blocks; ++blk) {
      const float* part = da_part + blk * r * in;
      for (int64_t e = e0; e < e1; ++e) da[e] += part[e];
    }
  });
}

}  // namespace

void lora_linear_forward_f32(const LoraShape& s, const float* x, const float* xd, const float* w,
                             const float* bias, const float* a, const float* b, float* y, float* xa) {
  AdapterInput xin;
  xin.x = x;
  xin.xd = xd == x ? nullptr : xd;
  xin.in = s.in;
  forward_impl(s, x, xin, w, bias, a, b, y, xa, 0.0f, 0, nullptr);
}

void lora_linear_backward_f32(const LoraShape& s, const float* dy, const float* xd, const float* w,
                              const float* a, const float* b, const float* xa, float* dx, float* dxd, float* da,
                              float* db, bool merge_dx) {
  TK_CHECK(merge_dx || dxd != nullptr || s.M * s.in == 0, Value,
           "loraLinearBackward: dxd is required when mergeDx is false");
  AdapterInput xin;
  xin.xd = xd;
  xin.in = s.in;
  backward_impl(s, dy, xin, w, a, b, xa, dx, merge_dx ? nullptr : dxd, da, db);
}

void lora_linear_forward_dropout_f32(const LoraShape& s, const float* x, const float* w, const float* bias,
                                     const float* a, const float* b, float p, uint64_t seed, uint8_t* mask, float* y,
                                     float* xa) {
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "loraLinear: dropout p must be in [0, 1) but is ", p);
  TK_CHECK(p == 0.0f || mask != nullptr || s.M * s.in == 0, Value, "loraLinear: a dropout mask buffer is required when p > 0");
  AdapterInput xin;
  xin.x = x;
  xin.in = s.in;
  forward_impl(s, x, xin, w, bias, a, b, y, xa, p, seed, p > 0.0f && s.r > 0 ? mask : nullptr);
  // r == 0 has no adapter path, but the mask's contract (the kept flags) still holds
  if (p > 0.0f && s.r == 0 && mask) {
    std::vector<float> sink(static_cast<size_t>(std::min<int64_t>(s.M * s.in, 1 << 16)));
    for (int64_t e0 = 0; e0 < s.M * s.in; e0 += static_cast<int64_t>(sink.size()))
      dropout_range(x, sink.data(), mask, e0, std::min<int64_t>(static_cast<int64_t>(sink.size()), s.M * s.in - e0), p, seed);
  }
}

void lora_linear_backward_dropout_f32(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                      float p, const float* w, const float* a, const float* b, const float* xa,
                                      float* dx, float* da, float* db) {
  TK_CHECK(p >= 0.0f && p < 1.0f, Value, "loraLinearBackward: dropout p must be in [0, 1) but is ", p);
  TK_CHECK(p == 0.0f || mask != nullptr || s.M * s.in == 0, Value, "loraLinearBackward: the forward's dropout mask is required when p > 0");
  AdapterInput xin;
  xin.x = x;
  xin.in = s.in;
  if (p > 0.0f) {
    xin.mask = mask;
    xin.p = p;
    xin.keep_scale = 1.0f / (1.0f - p);
  }
  backward_impl(s, dy, xin, w, a, b, xa, dx, nullptr, da, db);
}

// ---------------------------------------------------------------------------------------------
// Reference

void lora_linear_forward_reference(const LoraShape& s, const float* x, const float* xd, const float* w,
                                   const float* bias, const float* a, const float* b, float* y, float* xa) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  for (int64_t i = 0; i < M; ++i) {
    // xa[i, k] = sum_c xd[i, c] A[k, c]
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t c = 0; c < in; ++c) acc += static_cast<double>(xd[i * in + c]) * a[k * in + c];
      xa[i * r + k] = static_cast<float>(acc);
    }
    // y[i, o] = sum_c x[i, c] W(o, c) + bias[o] + s sum_k xa[i, k] B[o, k]
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t c = 0; c < in; ++c)
        acc += static_cast<double>(x[i * in + c]) * (s.w_in_out ? w[c * out + o] : w[o * in + c]);
      double lora = 0;
      for (int64_t k = 0; k < r; ++k) lora += static_cast<double>(xa[i * r + k]) * b[o * r + k];
      y[i * out + o] = static_cast<float>(acc + s.scale * lora);
    }
  }
}

void lora_linear_backward_reference(const LoraShape& s, const float* dy, const float* xd, const float* w,
                                    const float* a, const float* b, const float* xa, float* dx, float* dxd,
                                    float* da, float* db, bool merge_dx) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  std::vector<double> t(static_cast<size_t>(M * r));  // dy B [M, r]
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t o = 0; o < out; ++o) acc += static_cast<double>(dy[i * out + o]) * b[o * r + k];
      t[i * r + k] = acc;
    }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t c = 0; c < in; ++c) {
      double base = 0, lora = 0;
      for (int64_t o = 0; o < out; ++o)
        base += static_cast<double>(dy[i * out + o]) * (s.w_in_out ? w[c * out + o] : w[o * in + c]);
      for (int64_t k = 0; k < r; ++k) lora += t[i * r + k] * a[k * in + c];
      lora *= s.scale;
      if (merge_dx) {
        dx[i * in + c] = static_cast<float>(base + lora);
      } else {
        dx[i * in + c] = static_cast<float>(base);
        dxd[i * in + c] = static_cast<float>(lora);
      }
    }
  for (int64_t k = 0; k < r; ++k)  // dA[k, c] = s sum_i t[i, k] xd[i, c]
    for (int64_t c = 0; c < in; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < M; ++i) acc += t[i * r + k] * xd[i * in + c];
      da[k * in + c] = static_cast<float>(s.scale * acc);
    }
  for (int64_t o = 0; o < out; ++o)  // dB[o, k] = s sum_i dy[i, o] xa[i, k]
    for (int64_t k = 0; k < r; ++k) {
      double acc = 0;
      for (int64_t i = 0; i < M; ++i) acc += static_cast<double>(dy[i * out + o]) * xa[i * r + k];
      db[o * r + k] = static_cast<float>(s.scale * acc);
    }
}

}  // namespace tk::cpu
