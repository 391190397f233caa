// LayerNorm / RMSNorm kernels. See norm.h.
#include "norm.h"

#include <algorithm>
#include <cmath>

#include "../core/thread_pool.h"
#include "elementwise.h"  // TK_SIMD_CLONES

namespace tk::cpu {

namespace {

constexpr int64_t kGrainElems = 16384;  // elements per task
constexpr int64_t kColBlock = 64;       // columns per weight-gradient task (one cache-line pair)

int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, cols)); }

// sum x[i] (sq: x[i]^2, or (x[i] - shift)^2) in double, 8 lanes
TK_SIMD_CLONES double row_sum(const float* x, int64_t n, bool sq, double shift) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  double s = 0;
  if (!sq) {
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
    for (; i < n; ++i) s += x[i];
  } else {
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) {
        double d = x[i + l] - shift;
        acc[l] += d * d;
      }
    for (; i < n; ++i) s += (x[i] - shift) * (x[i] - shift);
  }
  for (int l = 0; l < 8; ++l) s += acc[l];
  return s;
}

// sum g[i] and sum g[i] * xhat[i] for one row, g = dy w (w may be null: 1), xhat = (x - mu) rs,
// in double. Blocks of 256: g and xhat into buffers (plain vectorisable loops), then 8-lane sums.
TK_SIMD_CLONES void row_grad_sums(const float* x, const float* w, const float* dy, int64_t n, float mu, float rs,
                                  double* sum_g, double* sum_gx) {
  float gb[256], xb[256];
  double sa = 0, sc = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 256) {
    int64_t bw = std::min<int64_t>(256, n - i0);
    if (w)
      for (int64_t j = 0; j < bw; ++j) gb[j] = dy[i0 + j] * w[i0 + j];
    else
      for (int64_t j = 0; j < bw; ++j) gb[j] = dy[i0 + j];
    for (int64_t j = 0; j < bw; ++j) xb[j] = (x[i0 + j] - mu) * rs;
    double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= bw; j += 8)
      for (int l = 0; l < 8; ++l) {
        a[l] += gb[j + l];
        c[l] += static_cast<double>(gb[j + l]) * xb[j + l];
      }
    for (; j < bw; ++j) {
      sa += gb[j];
      sc += static_cast<double>(gb[j]) * xb[j];
    }
    for (int l = 0; l < 8; ++l) {
      sa += a[l];
      sc += c[l];
    }
  }
  *sum_g = sa;
  *sum_gx = sc;
}

// y = (x - mu) rs w + b for one row (mu = 0 for RMSNorm)
TK_SIMD_CLONES void row_normalize(const float* x, const float* w, const float* b, float* y, int64_t n, float mu,
                                  float rs) {
  if (w && b)
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * rs * w[i] + b[i];
  else if (w)
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * rs * w[i];
  else if (b)
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * rs + b[i];
  else
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mu) * rs;
}

// dx = rs (g - a - xhat c) for one row; a = mean(g) (0 for RMSNorm), c = mean(g xhat)
TK_SIMD_CLONES void row_dx(const float* x, const float* w, const float* dy, float* dx, int64_t n, float mu, float rs,
                           float a, float c) {
  if (w)
    for (int64_t i = 0; i < n; ++i) dx[i] = rs * (dy[i] * w[i] - a - (x[i] - mu) * rs * c);
  else
    for (int64_t i = 0; i < n; ++i) dx[i] = rs * (dy[i] - a - (x[i] - mu) * rs * c);
}

// dw[j] = sum_r dy[r, j] xhat[r, j], db[j] = sum_r dy[r, j], j in one column block of width bw.
// Parallel over column blocks: each output has one owner (no atomics, no per-thread copies) and
// the sum order is fixed, so results do not depend on the thread count.
TK_SIMD_CLONES void weight_grad_block(const float* x, const float* mean, const float* rstd, const float* dy,
                                      float* dw, float* db, int64_t rows, int64_t cols, int64_t bw) {
  double aw[kColBlock], ab[kColBlock];
  for (int64_t j = 0; j < bw; ++j) aw[j] = ab[j] = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    float mu = mean ? mean[r] : 0.0f, rs = rstd[r];
    for (int64_t j = 0; j < bw; ++j) {
      aw[j] += static_cast<double>(gr[j]) * ((xr[j] - mu) * rs);
      ab[j] += gr[j];
    }
  }
  if (dw)
    for (int64_t j = 0; j < bw; ++j) dw[j] = static_cast<float>(aw[j]);
  if (db)
    for (int64_t j = 0; j < bw; ++j) db[j] = static_cast<float>(ab[j]);
}

void weight_grads(const float* x, const float* mean, const float* rstd, const float* dy, float* dw, float* db,
                  int64_t rows, int64_t cols) {
  if (!dw && !db) return;
  int64_t nblk = (cols + kColBlock - 1) / kColBlock;
  int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, rows * kColBlock));
  parallel_for(nblk, grain, [&](int64_t b, int64_t e) {
    for (int64_t k = b; k < e; ++k) {
      int64_t j0 = k * kColBlock, bw = std::min(kColBlock, cols - j0);
      weight_grad_block(x + j0, mean, rstd, dy + j0, dw ? dw + j0 : nullptr, db ? db + j0 : nullptr, rows, cols, bw);
    }
  });
}

}  // namespace

// ---- LayerNorm ----

void layer_norm_reference(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                          int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double mu = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mu += xr[j];
    mu /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) var += (xr[j] - mu) * (xr[j] - mu);
    var /= static_cast<double>(cols);  // biased, as nn.LayerNorm
    double rs = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < cols; ++j)
      y[r * cols + j] = static_cast<float>((xr[j] - mu) * rs * (w ? w[j] : 1.0) + (b ? b[j] : 0.0));
    if (mean) mean[r] = static_cast<float>(mu);
    if (rstd) rstd[r] = static_cast<float>(rs);
  }
}

void layer_norm(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                int64_t cols, float eps) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * cols;
      double mu = row_sum(xr, cols, false, 0.0) / static_cast<double>(cols);
      double var = row_sum(xr, cols, true, mu) / static_cast<double>(cols);  // two-pass: no cancellation
      float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
      row_normalize(xr, w, b, y + r * cols, cols, static_cast<float>(mu), rs);
      if (mean) mean[r] = static_cast<float>(mu);
      if (rstd) rstd[r] = rs;
    }
  });
}

void layer_norm_backward_reference(const float* x, const float* w, const float* mean, const float* rstd,
                                   const float* dy, float* dx, float* dw, float* db, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    double mu = mean[r], rs = rstd[r], a = 0, c = 0;
    for (int64_t j = 0; j < cols; ++j) {
      double g = gr[j] * (w ? w[j] : 1.0);
      a += g;
      c += g * (xr[j] - mu) * rs;
    }
    a /= static_cast<double>(cols);
    c /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j) {
      double g = gr[j] * (w ? w[j] : 1.0);
      dx[r * cols + j] = static_cast<float>(rs * (g - a - (xr[j] - mu) * rs * c));
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    double sw = 0, sb = 0;
    for (int64_t r = 0; r < rows; ++r) {
      double g = dy[r * cols + j];
      sw += g * (x[r * cols + j] - static_cast<double>(mean[r])) * rstd[r];
      sb += g;
    }
    if (dw) dw[j] = static_cast<float>(sw);
    if (db) db[j] = static_cast<float>(sb);
  }
}

void layer_norm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                         float* dx, float* dw, float* db, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * cols;
      const float* gr = dy + r * cols;
      double sg, sgx;
      row_grad_sums(xr, w, gr, cols, mean[r], rstd[r], &sg, &sgx);
      row_dx(xr, w, gr, dx + r * cols, cols, mean[r], rstd[r], static_cast<float>(sg / cols),
             static_cast<float>(sgx / cols));
    }
  });
  weight_grads(x, mean, rstd, dy, dw, db, rows, cols);
}

// ---- RMSNorm ----

void rms_norm_reference(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double ms = 0;
    for (int64_t j = 0; j < cols; ++j) ms += static_cast<double>(xr[j]) * xr[j];
    ms /= static_cast<double>(cols);
    double rs = 1.0 / std::sqrt(ms + eps);
    for (int64_t j = 0; j < cols; ++j) y[r * cols + j] = static_cast<float>(xr[j] * rs * (w ? w[j] : 1.0));
    if (rstd) rstd[r] = static_cast<float>(rs);
  }
}

void rms_norm(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t cols, float eps) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * cols;
      double ms = row_sum(xr, cols, true, 0.0) / static_cast<double>(cols);
      float rs = static_cast<float>(1.0 / std::sqrt(ms + eps));
      row_normalize(xr, w, nullptr, y + r * cols, cols, 0.0f, rs);
      if (rstd) rstd[r] = rs;
    }
  });
}

void rms_norm_backward_reference(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                                 float* dw, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    double rs = rstd[r], c = 0;
    for (int64_t j = 0; j < cols; ++j) c += gr[j] * (w ? w[j] : 1.0) * xr[j] * rs;
    c /= static_cast<double>(cols);
    for (int64_t j = 0; j < cols; ++j)
      dx[r * cols + j] = static_cast<float>(rs * (gr[j] * (w ? w[j] : 1.0) - xr[j] * rs * c));
  }
  if (dw)
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += static_cast<double>(dy[r * cols + j]) * x[r * cols + j] * rstd[r];
      dw[j] = static_cast<float>(s);
    }
}

void rms_norm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                       int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  parallel_for(rows, row_grain(cols), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const float* xr = x + r * cols;
      const float* gr = dy + r * cols;
      double sg, sgx;
      row_grad_sums(xr, w, gr, cols, 0.0f, rstd[r], &sg, &sgx);
      row_dx(xr, w, gr, dx + r * cols, cols, 0.0f, rstd[r], 0.0f, static_cast<float>(sgx / cols));
    }
  });
  weight_grads(x, nullptr, rstd, dy, dw, nullptr, rows, cols);
}

}  // namespace tk::cpu
