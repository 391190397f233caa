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

namespace {

// Rows of the adapter path handled together: a block of xd [kRows, in], its slice of y and of dy
// stay in L2 while the thin products run on them.
constexpr int64_t kRows = 64;
// The backward's row blocks are grouped in at most this many chunks, each with its own dA and dB^T
// partials (r (in + out) floats): enough to keep the cores busy, few enough that summing the
// partials stays small next to the products.
constexpr int64_t kMaxChunks = 16;

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
    thin_dropped(x + i0 * in, mask + i0 * in, keep_scale, n * in, scratch);
    return scratch;
  }
};

// The frozen base weight W: f32, or its bf16 copy (bf16 compute: the activation is rounded to
// bf16 while the GEMM packs it, gemm_bf16_round_a). Exactly one of the two is set.
struct BaseWeight {
  const float* f32 = nullptr;
  const uint16_t* bf16 = nullptr;
};

// C (+)= op(A) op(W) through the GEMM W's dtype asks for (g's epilogue included).
void base_gemm(const GemmShape& g, const float* A, const BaseWeight& w, float* C) {
  if (w.bf16) gemm_bf16_round_a(g, A, w.bf16, C);
  else gemm_f32(g, A, w.f32, C);
}

// GemmShape::epilogue of the forward's GEMM when the adapter cannot ride in its last K block
// (a bf16 base product: the appended operands are f32): y[i, j0..] += [xa | 1] [s B^T ; bias] on
// each finished block of y, while it is in L2.
struct AdapterUpdate {
  const float* xa;    // [M, r]
  const float* sbt;   // s B^T [r, out]
  const float* bias;  // [out] or null
  int64_t r, out;
  static void add(void* ctx, int64_t i0, int64_t m, int64_t j0, int64_t n, float* yb, int64_t ldy) {
    const auto* e = static_cast<const AdapterUpdate*>(ctx);
    thin_rowaxpy(e->xa + i0 * e->r, e->r, e->sbt + j0, e->out, m, e->r, n, 1.0f, e->bias ? e->bias + j0 : nullptr,
                 nullptr, 0.0f, yb, ldy, true);
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

// A grow-only buffer of the calling thread (reused across calls: a fresh vector of a few hundred
// KiB per call came from mmap and faulted its pages in every step). Pointers into it are taken
// before any parallel section: on a pool thread the name would denote that thread's own buffer.
float* caller_buffer(int which, int64_t n) {
  thread_local std::vector<float> buf[3];
  if (static_cast<int64_t>(buf[which].size()) < n) buf[which].resize(static_cast<size_t>(n));
  return buf[which].data();
}

// y [M, out] = x W + s xd A^T B^T + bias, xa [M, r] = xd A^T.
//
// The adapter's down-projection xa runs first, over blocks of rows (the block's dropped input
// made in scratch); then ONE GEMM writes y, with [s xa | 1] [B^T ; bias] appended to the base
// product's last K block (GemmShape::A2/B2): the rank-r update and the bias cost no second pass
// over y.
void forward_impl(const LoraShape& s, const float* x, const AdapterInput& xin, const BaseWeight& w, const float* bias,
                  const float* a, const float* b, float* y, float* xa, float p, uint64_t seed, uint8_t* mask_out) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  if (M == 0 || out == 0) return;
  // the appended operands: A2 [M, r (+1)] = [xa | 1], B2 [r (+1), out] = [s B^T ; bias]
  const int64_t k2 = r + (bias ? 1 : 0);
  const int64_t lda2 = bias && r > 0 ? r + 1 : r;
  float* a2 = nullptr;
  std::vector<float> b2(static_cast<size_t>(k2 * out));
  for (int64_t o = 0; o < out; ++o)
    for (int64_t k = 0; k < r; ++k) b2[k * out + o] = s.scale * b[o * r + k];
  if (bias) std::copy(bias, bias + out, b2.begin() + r * out);
  static const float kOne = 1.0f;
  // a bf16 base product takes the adapter (and the bias) in its epilogue instead: xa as it is
  const bool append = !w.bf16;
  if (r > 0) {
    a2 = bias && append ? caller_buffer(1, M * lda2) : xa;
    const int64_t blocks = (M + kRows - 1) / kRows;
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * kRows, n = std::min(kRows, M - i0);
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
        if (bias && append)  // [xa | 1], the ones carrying the bias row of B2
          for (int64_t i = 0; i < n; ++i) {
            std::copy(xa + (i0 + i) * r, xa + (i0 + i + 1) * r, a2 + (i0 + i) * lda2);
            a2[(i0 + i) * lda2 + r] = 1.0f;
          }
      }
    });
  }
  GemmShape g;
  g.M = M;
  g.N = out;
  g.K = in;
  g.transB = !s.w_in_out;  // y = x W^T (W [out, in])  or  x W (W [in, out])
  g.lda = in;
  g.ldb = s.w_in_out ? out : in;
  g.ldc = out;
  g.beta = 0.0f;
  if (in == 0) {  // an empty base product: y = s xa B^T + bias alone (reference path, tiny)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t o = 0; o < out; ++o) {
        float v = bias ? bias[o] : 0.0f;
        for (int64_t k = 0; k < r; ++k) v += xa[i * r + k] * b2[k * out + o];
        y[i * out + o] = v;
      }
    return;
  }
  AdapterUpdate update{xa, b2.data(), bias, r, out};
  if (k2 > 0 && append) {
    g.A2 = r > 0 ? a2 : &kOne;  // bias alone: a broadcast column of ones (lda2 = 0)
    g.lda2 = r > 0 ? lda2 : 0;
    g.B2 = b2.data();
    g.K2 = k2;
    g.ldb2 = out;
  } else if (k2 > 0) {
    g.epilogue = &AdapterUpdate::add;
    g.epilogue_ctx = &update;
  }
  base_gemm(g, x, w, y);
}

// GemmShape::epilogue of the dx GEMM under a dropout mask: dx[i, j] += mask[i, j] keep s (t A)[i, j]
// on the finished block rows i0.., columns j0.. (dx and the mask share the row stride `in`).
struct MaskedAdapterGrad {
  const float* t;        // [M, r]
  const float* a;        // A [r, in]
  const uint8_t* mask;   // [M, in], or null (no mask: out == 0)
  int64_t r, in;
  float scale, keep;
  static void add(void* ctx, int64_t i0, int64_t m, int64_t j0, int64_t n, float* cb, int64_t ldc) {
    const auto* e = static_cast<const MaskedAdapterGrad*>(ctx);
    thin_rowaxpy(e->t + i0 * e->r, e->r, e->a + j0, e->in, m, e->r, n, e->scale, nullptr,
                 e->mask ? e->mask + i0 * e->in + j0 : nullptr, e->keep, cb, ldc, true);
  }
};

// dx, dA, dB of the fused layer; dxd (legacy, may be null) receives the adapter path's input
// gradient instead of adding it into dx.
//
// t = dy B runs first over blocks of rows, with the partials of dB^T (xa^T dy) and dA (t^T xd,
// the block's xd rebuilt from x and the mask) while the block's dy is in cache; then dx = dy W with the adapter path's s t A appended to the
// GEMM's last K block (one pass over dx) when no dropout mask sits between them; with a mask
// the product goes through it in the GEMM's epilogue on each finished block of dx.
//
// dx may be null (the layer's input needs no gradient: its GEMM, the backward's largest product,
// is skipped). A bf16 base weight takes the adapter path's input gradient in the epilogue.
void backward_impl(const LoraShape& s, const float* dy, const AdapterInput& xin, const BaseWeight& w, const float* a,
                   const float* b, const float* xa, float* dx, float* dxd, float* da, float* db) {
  check_lora_shape(s);
  const int64_t M = s.M, in = s.in, out = s.out, r = s.r;
  GemmShape g;  // dx [M, in] = dy [M, out] W [out, in]   or   dy W^T with W [in, out]
  g.M = M;
  g.N = in;
  g.K = out;
  g.transB = s.w_in_out;
  g.lda = std::max<int64_t>(out, 1);  // (at least 1 for the GEMM's check when out == 0: nothing read then)
  g.ldb = std::max<int64_t>(s.w_in_out ? out : in, 1);
  g.ldc = in;
  g.beta = 0.0f;
  if (r == 0) {
    if (dx) base_gemm(g, dy, w, dx);
    if (dxd) std::fill(dxd, dxd + M * in, 0.0f);
    return;
  }
  if (M == 0) {
    std::fill(da, da + r * in, 0.0f);
    std::fill(db, db + out * r, 0.0f);
    return;
  }
  const std::vector<float> bt = transposed_b(b, out, r);
  const int64_t blocks = (M + kRows - 1) / kRows;
  // Row blocks go in fixed chunks of consecutive blocks (their number depends on M only): one
  // thread runs a chunk's blocks in order, accumulating the chunk's dA and dB^T partials, and the
  // partials are summed in chunk order. Same bits for any thread count.
  const int64_t chunk_blocks = (blocks + kMaxChunks - 1) / kMaxChunks;
  const int64_t chunks = (blocks + chunk_blocks - 1) / chunk_blocks;
  const int64_t part = r * (in + out);  // a chunk's partials: dA [r, in], then dB^T [r, out]
  float* const t_all = caller_buffer(2, M * r);  // t [M, r]
  float* const parts = caller_buffer(0, chunks * part);
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      float* const da_part = parts + ch * part;
      float* const dbt_part = da_part + r * in;
      const int64_t blk1 = std::min(blocks, (ch + 1) * chunk_blocks);
      for (int64_t blk = ch * chunk_blocks; blk < blk1; ++blk) {
        const int64_t i0 = blk * kRows, n = std::min(kRows, M - i0);
        const bool first = blk == ch * chunk_blocks;
        const float* dyb = dy + i0 * out;
        // t [n, r] = dy [n, out] B [out, r]: the gradient at the adapter's bottleneck (before s)
        float* t = t_all + i0 * r;
        thin_rowdot(dyb, out, bt.data(), n, r, out, 1.0f, t, r);
        // dB^T partial [r, out] += s xa^T dy over this block's rows, while dy's block is in cache
        // (dB as its own GEMM over all rows read dy from memory once more)
        thin_outer(xa + i0 * r, r, dyb, out, n, r, out, s.scale, dbt_part, !first);
        // dA partial [r, in] += s t^T xd over this block's rows
        const float* xdb = xin.rows(i0, n, scratch(0, n * in));
        thin_outer(t, r, xdb, in, n, r, in, s.scale, da_part, !first);
      }
    }
  });
  // The adapter path's input gradient s t A [M, in]: without a mask, appended to the dx GEMM's
  // last K block (dx = [dy | t] [W^T ; s A], one pass over dx); with the dropout mask, added
  // through it by an epilogue on each finished block of dx while the block is in L2 (a separate
  // pass read and wrote all of dx from memory once more); into dxd (legacy API) in its own pass.
  const bool append = !dxd && !xin.mask && out > 0 && !w.bf16;
  std::vector<float> sa;
  MaskedAdapterGrad masked{t_all, a, xin.mask, r, in, s.scale, xin.keep_scale};
  if (!dx) {
    // no input gradient: nothing to append to
  } else if (append) {
    sa.assign(a, a + r * in);
    for (float& v : sa) v *= s.scale;
    g.A2 = t_all;
    g.lda2 = r;
    g.B2 = sa.data();
    g.ldb2 = in;
    g.K2 = r;
  } else if (!dxd) {
    g.epilogue = &MaskedAdapterGrad::add;
    g.epilogue_ctx = &masked;
  }
  if (dx) base_gemm(g, dy, w, dx);  // K = out = 0: dx = 0 (then the epilogue)
  if (dxd) {
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * kRows, n = std::min(kRows, M - i0);
        thin_rowaxpy(t_all + i0 * r, r, a, in, n, r, in, s.scale, nullptr, nullptr, 0.0f, dxd + i0 * in, in, false);
      }
    });
  }
  // dA, dB = the chunk partials summed in chunk order (fixed: the same bits for any thread count);
  // dB^T's sums are transposed into dB [out, r]
  parallel_for(r * (in + out), 2048, [&](int64_t e0, int64_t e1) {
    constexpr int64_t kSpan = 512;  // a span of partial sums kept on the stack between chunks
    float acc[kSpan];
    for (int64_t s0 = e0; s0 < e1; s0 += kSpan) {
      const int64_t ns = std::min(kSpan, e1 - s0);
      std::copy(parts + s0, parts + s0 + ns, acc);
      for (int64_t ch = 1; ch < chunks; ++ch) {
        const float* pp = parts + ch * part + s0;
        for (int64_t e = 0; e < ns; ++e) acc[e] += pp[e];
      }
      for (int64_t e = 0; e < ns; ++e) {
        const int64_t ge = s0 + e;
        if (ge < r * in) {
          da[ge] = acc[e];
        } else {  // dB^T[k, o] -> dB[o, k]
          const int64_t k = (ge - r * in) / out, o = (ge - r * in) % out;
          db[o * r + k] = acc[e];
        }
      }
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
  forward_impl(s, x, xin, BaseWeight{w, nullptr}, bias, a, b, y, xa, 0.0f, 0, nullptr);
}

void lora_linear_backward_f32(const LoraShape& s, const float* dy, const float* xd, const float* w,
                              const float* a, const float* b, const float* xa, float* dx, float* dxd, float* da,
                              float* db, bool merge_dx) {
  TK_CHECK(merge_dx || dxd != nullptr || s.M * s.in == 0, Value,
           "loraLinearBackward: dxd is required when mergeDx is false");
  AdapterInput xin;
  xin.xd = xd;
  xin.in = s.in;
  TK_CHECK(dx != nullptr || s.M * s.in == 0, Value, "loraLinearBackward: dx is required");
  backward_impl(s, dy, xin, BaseWeight{w, nullptr}, a, b, xa, dx, merge_dx ? nullptr : dxd, da, db);
}

namespace {

void forward_dropout(const LoraShape& s, const float* x, const BaseWeight& w, const float* bias, const float* a,
                     const float* b, float p, uint64_t seed, uint8_t* mask, float* y, float* xa) {
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

void backward_dropout(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask, float p,
                      const BaseWeight& w, const float* a, const float* b, const float* xa, float* dx, float* da,
                      float* db) {
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

}  // namespace

void lora_linear_forward_dropout_f32(const LoraShape& s, const float* x, const float* w, const float* bias,
                                     const float* a, const float* b, float p, uint64_t seed, uint8_t* mask, float* y,
                                     float* xa) {
  forward_dropout(s, x, BaseWeight{w, nullptr}, bias, a, b, p, seed, mask, y, xa);
}

void lora_linear_backward_dropout_f32(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                      float p, const float* w, const float* a, const float* b, const float* xa,
                                      float* dx, float* da, float* db) {
  backward_dropout(s, dy, x, mask, p, BaseWeight{w, nullptr}, a, b, xa, dx, da, db);
}

void lora_linear_forward_dropout_bf16w(const LoraShape& s, const float* x, const uint16_t* w, const float* bias,
                                       const float* a, const float* b, float p, uint64_t seed, uint8_t* mask,
                                       float* y, float* xa) {
  forward_dropout(s, x, BaseWeight{nullptr, w}, bias, a, b, p, seed, mask, y, xa);
}

void lora_linear_backward_dropout_bf16w(const LoraShape& s, const float* dy, const float* x, const uint8_t* mask,
                                        float p, const uint16_t* w, const float* a, const float* b, const float* xa,
                                        float* dx, float* da, float* db) {
  backward_dropout(s, dy, x, mask, p, BaseWeight{nullptr, w}, a, b, xa, dx, da, db);
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
