// 2-D convolution, NCHW (see conv2d.h): the plain reference and im2col + GEMM.
#include "conv2d.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"

namespace tk::cpu {

namespace {

// im2col columns held at once (floats): 4 Mi floats = 16 MiB, so that a batch of small images
// becomes one wide GEMM while a large image still runs one at a time.
constexpr int64_t kColBudget = int64_t(1) << 22;

inline int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = d * (k - 1) + 1;
  return in + 2 * p < span ? 0 : (in + 2 * p - span) / s + 1;
}

// col (K = Cg KH KW, nb P) for images n0..n0+nb and group g; row k = (c, p, q), column (n, i, j)
void im2col(const Conv2dShape& s, const float* x, int64_t n0, int64_t nb, int64_t g, float* col) {
  const int64_t Cg = s.C / s.groups, K = Cg * s.KH * s.KW, P = s.Ho * s.Wo, HW = s.H * s.W;
  parallel_for(K, 1, [&](int64_t kb, int64_t ke) {
    for (int64_t k = kb; k < ke; ++k) {
      const int64_t c = k / (s.KH * s.KW), p = (k / s.KW) % s.KH, q = k % s.KW;
      float* row = col + k * nb * P;
      // columns j with 0 <= j sw - pw + q dw < W form one range [jlo, jhi) (it depends on q only):
      // zero the ends, copy the middle (a memcpy for stride 1)
      const int64_t off = q * s.dw - s.pw;
      const int64_t jlo = std::min(s.Wo, off >= 0 ? 0 : (-off + s.sw - 1) / s.sw);
      const int64_t jhi = std::max(jlo, std::min(s.Wo, s.W - 1 - off < 0 ? 0 : (s.W - 1 - off) / s.sw + 1));
      for (int64_t n = 0; n < nb; ++n) {
        const float* plane = x + ((n0 + n) * s.C + g * Cg + c) * HW;
        float* out = row + n * P;
        for (int64_t i = 0; i < s.Ho; ++i) {
          const int64_t ih = i * s.sh - s.ph + p * s.dh;
          float* o = out + i * s.Wo;
          if (ih < 0 || ih >= s.H) {
            for (int64_t j = 0; j < s.Wo; ++j) o[j] = 0.0f;
            continue;
          }
          const float* src = plane + ih * s.W;
          // plain loops: rows of small images are a few floats, where a libc call costs more
          for (int64_t j = 0; j < jlo; ++j) o[j] = 0.0f;
          if (s.sw == 1) {
            const float* sp = src + off;
            for (int64_t j = jlo; j < jhi; ++j) o[j] = sp[j];
          } else {
            for (int64_t j = jlo; j < jhi; ++j) o[j] = src[j * s.sw + off];
          }
          for (int64_t j = jhi; j < s.Wo; ++j) o[j] = 0.0f;
        }
      }
    }
  });
}

// dx[n0 + n, g Cg + c] += col2im(dcol); one task per (n, c) plane, so writes never collide. The
// valid column range of each kernel column q is computed once.
void col2im_add(const Conv2dShape& s, const float* dcol, int64_t n0, int64_t nb, int64_t g, float* dx) {
  const int64_t Cg = s.C / s.groups, P = s.Ho * s.Wo, HW = s.H * s.W;
  std::vector<int64_t> offs(s.KW), jlos(s.KW), jhis(s.KW);
  for (int64_t q = 0; q < s.KW; ++q) {
    const int64_t off = q * s.dw - s.pw;
    offs[q] = off;
    jlos[q] = std::min(s.Wo, off >= 0 ? 0 : (-off + s.sw - 1) / s.sw);
    jhis[q] = std::max(jlos[q], std::min(s.Wo, s.W - 1 - off < 0 ? 0 : (s.W - 1 - off) / s.sw + 1));
  }
  parallel_for(nb * Cg, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t n = t / Cg, c = t % Cg;
      float* plane = dx + ((n0 + n) * s.C + g * Cg + c) * HW;
      for (int64_t p = 0; p < s.KH; ++p) {
        for (int64_t i = 0; i < s.Ho; ++i) {
          const int64_t ih = i * s.sh - s.ph + p * s.dh;
          if (ih < 0 || ih >= s.H) continue;
          float* dst = plane + ih * s.W;
          for (int64_t q = 0; q < s.KW; ++q) {
            const float* src = dcol + ((c * s.KH + p) * s.KW + q) * nb * P + n * P + i * s.Wo;
            const int64_t off = offs[q], jhi = jhis[q];
            if (s.sw == 1) {
              float* d = dst + off;
              for (int64_t j = jlos[q]; j < jhi; ++j) d[j] += src[j];
            } else {
              for (int64_t j = jlos[q]; j < jhi; ++j) dst[j * s.sw + off] += src[j];
            }
          }
        }
      }
    }
  });
}

// Scratch buffers (im2col columns, GEMM outputs) kept per thread between calls and never
// zero-filled: a fresh std::vector per call zero-filled and page-faulted ~8 MB for each layer of
// a small-image batch, more time than the GEMMs themselves.
class Scratch {
 public:
  float* get(size_t n) {
    if (n > cap_) {
      buf_.reset(new float[n]);
      cap_ = n;
    }
    return buf_.get();
  }

 private:
  std::unique_ptr<float[]> buf_;
  size_t cap_ = 0;
};
struct ConvScratch {
  Scratch col, out, dy, low, dlow;
};
ConvScratch& scratch() {
  thread_local ConvScratch s;
  return s;
}

// images per chunk: as many as fit kColBudget (at least one)
int64_t chunk_images(const Conv2dShape& s) {
  const int64_t K = (s.C / s.groups) * s.KH * s.KW, P = s.Ho * s.Wo;
  return std::max<int64_t>(1, std::min<int64_t>(s.N, kColBudget / std::max<int64_t>(1, K * P)));
}

// a 1x1 kernel, stride 1, no padding: the input plane is already the col matrix of one image
bool is_pointwise(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && s.sh == 1 && s.sw == 1 && s.ph == 0 && s.pw == 0;
}

}  // namespace

void conv2d_check(Conv2dShape& s) {
  TK_CHECK(s.N >= 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.O > 0, Shape, "conv2d: expected input (N, C, H, W) with C, H, W >= 1 and O >= 1 but received N ",
           s.N, ", C ", s.C, ", H ", s.H, ", W ", s.W, ", O ", s.O);
  TK_CHECK(s.KH > 0 && s.KW > 0, Shape, "conv2d: kernel ", s.KH, "x", s.KW, " must be at least 1x1");
  TK_CHECK(s.sh > 0 && s.sw > 0 && s.dh > 0 && s.dw > 0, Value, "conv2d: stride (", s.sh, ", ", s.sw,
           ") and dilation (", s.dh, ", ", s.dw, ") must be >= 1");
  TK_CHECK(s.ph >= 0 && s.pw >= 0, Value, "conv2d: padding (", s.ph, ", ", s.pw, ") must be >= 0");
  TK_CHECK(s.groups > 0 && s.C % s.groups == 0 && s.O % s.groups == 0, Shape, "conv2d: groups ", s.groups,
           " must divide in_channels ", s.C, " and out_channels ", s.O);
  s.Ho = out_size(s.H, s.KH, s.sh, s.ph, s.dh);
  s.Wo = out_size(s.W, s.KW, s.sw, s.pw, s.dw);
  TK_CHECK(s.Ho > 0 && s.Wo > 0, Shape, "conv2d: input ", s.H, "x", s.W, " (padding ", s.ph, ", ", s.pw,
           ") is smaller than the dilated kernel ", s.dh * (s.KH - 1) + 1, "x", s.dw * (s.KW - 1) + 1);
}

// ---------------------------------------------------------------- reference

void conv2d_forward_reference(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o) {
      const int64_t g = o / Og;
      for (int64_t i = 0; i < s.Ho; ++i)
        for (int64_t j = 0; j < s.Wo; ++j) {
          double acc = b ? b[o] : 0.0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t p = 0; p < s.KH; ++p)
              for (int64_t q = 0; q < s.KW; ++q) {
                const int64_t ih = i * s.sh - s.ph + p * s.dh, iw = j * s.sw - s.pw + q * s.dw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                acc += double(w[((o * Cg + c) * s.KH + p) * s.KW + q]) *
                       x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw];
              }
          y[((n * s.O + o) * s.Ho + i) * s.Wo + j] = float(acc);
        }
    }
}

void conv2d_backward_reference(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                               float* dw, float* db) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups;
  std::vector<double> gx(dx ? s.N * s.C * s.H * s.W : 0), gw(dw ? s.O * Cg * s.KH * s.KW : 0), gb(db ? s.O : 0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o) {
      const int64_t g = o / Og;
      for (int64_t i = 0; i < s.Ho; ++i)
        for (int64_t j = 0; j < s.Wo; ++j) {
          const double d = dy[((n * s.O + o) * s.Ho + i) * s.Wo + j];
          if (db) gb[o] += d;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t p = 0; p < s.KH; ++p)
              for (int64_t q = 0; q < s.KW; ++q) {
                const int64_t ih = i * s.sh - s.ph + p * s.dh, iw = j * s.sw - s.pw + q * s.dw;
                if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
                const int64_t xi = ((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw;
                const int64_t wi = ((o * Cg + c) * s.KH + p) * s.KW + q;
                if (dx) gx[xi] += d * w[wi];
                if (dw) gw[wi] += d * x[xi];
              }
        }
    }
  for (size_t k = 0; k < gx.size(); ++k) dx[k] = float(gx[k]);
  for (size_t k = 0; k < gw.size(); ++k) dw[k] = float(gw[k]);
  for (size_t k = 0; k < gb.size(); ++k) db[k] = float(gb[k]);
}

// ---------------------------------------------------------------- im2col + GEMM

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * s.KH * s.KW, P = s.Ho * s.Wo;
  const int64_t HW = s.H * s.W;
  if (s.N == 0) return;
  const int64_t nb_max = chunk_images(s);
  const bool pointwise = is_pointwise(s);
  ConvScratch& sc = scratch();
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0);
    for (int64_t g = 0; g < s.groups; ++g) {
      const float* wg = w + g * Og * K;
      if (nb == 1) {
        // one image: the GEMM writes the output planes (Og, P) in place
        float* yg = y + (n0 * s.O + g * Og) * P;
        const float* src;
        if (pointwise) {
          src = x + (n0 * s.C + g * Cg) * HW;
        } else {
          float* col = sc.col.get(K * P);
          im2col(s, x, n0, 1, g, col);
          src = col;
        }
        gemm_f32(false, false, Og, P, K, 1.0f, wg, K, src, P, 0.0f, yg, P);
        if (b) {
          parallel_for(Og, 1, [&](int64_t ob, int64_t oe) {
            for (int64_t o = ob; o < oe; ++o) {
              const float bo = b[g * Og + o];
              float* row = yg + o * P;
              for (int64_t k = 0; k < P; ++k) row[k] += bo;
            }
          });
        }
        continue;
      }
      float* col = sc.col.get(K * nb * P);
      float* tmp = sc.out.get(Og * nb * P);
      im2col(s, x, n0, nb, g, col);
      gemm_f32(false, false, Og, nb * P, K, 1.0f, wg, K, col, nb * P, 0.0f, tmp, nb * P);
      // tmp (Og, nb, P) -> y (nb, O, P) with the bias
      parallel_for(Og * nb, 1, [&](int64_t tb, int64_t te) {
        for (int64_t t = tb; t < te; ++t) {
          const int64_t o = t / nb, n = t % nb;
          const float bo = b ? b[g * Og + o] : 0.0f;
          const float* src = tmp + (o * nb + n) * P;
          float* dst = y + ((n0 + n) * s.O + g * Og + o) * P;
          for (int64_t k = 0; k < P; ++k) dst[k] = src[k] + bo;
        }
      });
    }
  }
}

void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups, K = Cg * s.KH * s.KW, P = s.Ho * s.Wo;
  if (dx) std::memset(dx, 0, sizeof(float) * s.N * s.C * s.H * s.W);
  if (dw) std::memset(dw, 0, sizeof(float) * s.O * K);
  if (db) {
    parallel_for(s.O, 1, [&](int64_t ob, int64_t oe) {
      for (int64_t o = ob; o < oe; ++o) {
        double acc = 0;
        for (int64_t n = 0; n < s.N; ++n) {
          const float* row = dy + (n * s.O + o) * P;
          for (int64_t k = 0; k < P; ++k) acc += row[k];
        }
        db[o] = float(acc);
      }
    });
  }
  if ((!dx && !dw) || s.N == 0) return;
  const int64_t nb_max = chunk_images(s);
  ConvScratch& sc = scratch();
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0);
    for (int64_t g = 0; g < s.groups; ++g) {
      // dy of this group and chunk as (Og, nb P)
      const float* dyp;
      if (nb == 1) {
        dyp = dy + (n0 * s.O + g * Og) * P;
      } else {
        float* dyg = sc.dy.get(Og * nb * P);
        parallel_for(Og * nb, 1, [&](int64_t tb, int64_t te) {
          for (int64_t t = tb; t < te; ++t) {
            const int64_t o = t / nb, n = t % nb;
            std::memcpy(dyg + (o * nb + n) * P, dy + ((n0 + n) * s.O + g * Og + o) * P, sizeof(float) * P);
          }
        });
        dyp = dyg;
      }
      if (dw) {
        float* col = sc.col.get(K * nb * P);
        im2col(s, x, n0, nb, g, col);
        // dW_g (Og, K) += dy_g (Og, nbP) col^T
        gemm_f32(false, true, Og, K, nb * P, 1.0f, dyp, nb * P, col, nb * P, 1.0f, dw + g * Og * K, K);
      }
      if (dx) {
        // dcol (K, nbP) = W_g^T (K, Og) dy_g
        // the columns' buffer is free again (dW is done): dcol reuses it
        float* dcol = sc.col.get(K * nb * P);
        gemm_f32(true, false, K, nb * P, Og, 1.0f, w + g * Og * K, K, dyp, nb * P, 0.0f, dcol, nb * P);
        col2im_add(s, dcol, n0, nb, g, dx);
      }
    }
  }
}

// ---------------------------------------------------------------- fused LoRA convolution

namespace {
// (rows, nb P) <-> (nb, channels, P) planes: out[(n * C + c0 + o) P + k] = src[(o nb + n) P + k]
void scatter_planes(const float* src, int64_t rows, int64_t nb, int64_t P, float* dst, int64_t n0, int64_t C, int64_t c0,
                    const float* bias) {
  parallel_for(rows * nb, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t o = t / nb, n = t % nb;
      const float bo = bias ? bias[o] : 0.0f;
      const float* sp = src + (o * nb + n) * P;
      float* dp = dst + ((n0 + n) * C + c0 + o) * P;
      for (int64_t k = 0; k < P; ++k) dp[k] = sp[k] + bo;
    }
  });
}
void gather_planes(const float* src, int64_t n0, int64_t C, int64_t c0, int64_t rows, int64_t nb, int64_t P, float* dst) {
  parallel_for(rows * nb, 1, [&](int64_t tb, int64_t te) {
    for (int64_t t = tb; t < te; ++t) {
      const int64_t o = t / nb, n = t % nb;
      std::memcpy(dst + (o * nb + n) * P, src + ((n0 + n) * C + c0 + o) * P, sizeof(float) * P);
    }
  });
}
}  // namespace

void lora_conv2d_forward(const Conv2dShape& s, int64_t r, float scale, const float* x, const float* w, const float* bias,
                         const float* a, const float* b, float* y, float* low) {
  TK_CHECK(s.groups == 1, Value, "lora_conv2d: groups must be 1");
  TK_CHECK(r > 0, Value, "lora_conv2d: rank must be >= 1");
  const int64_t K = s.C * s.KH * s.KW, P = s.Ho * s.Wo;
  if (s.N == 0) return;
  const int64_t nb_max = chunk_images(s);
  ConvScratch& sc = scratch();
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0), M = nb * P;
    const float* src;
    if (nb == 1 && is_pointwise(s)) {
      src = x + n0 * s.C * P;
    } else {
      float* col = sc.col.get(K * M);
      im2col(s, x, n0, nb, 0, col);
      src = col;
    }
    float* ty = sc.out.get(s.O * M);
    float* tl = sc.low.get(r * M);
    gemm_f32(false, false, s.O, M, K, 1.0f, w, K, src, M, 0.0f, ty, M);
    gemm_f32(false, false, r, M, K, 1.0f, a, K, src, M, 0.0f, tl, M);
    gemm_f32(false, false, s.O, M, r, scale, b, r, tl, M, 1.0f, ty, M);
    scatter_planes(ty, s.O, nb, P, y, n0, s.O, 0, bias);
    scatter_planes(tl, r, nb, P, low, n0, r, 0, nullptr);
  }
}

void lora_conv2d_backward(const Conv2dShape& s, int64_t r, float scale, const float* x, const float* w, const float* a,
                          const float* b, const float* low, const float* dy, float* dx, float* da, float* db) {
  TK_CHECK(s.groups == 1, Value, "lora_conv2d: groups must be 1");
  const int64_t K = s.C * s.KH * s.KW, P = s.Ho * s.Wo;
  if (dx) std::memset(dx, 0, sizeof(float) * s.N * s.C * s.H * s.W);
  if (da) std::memset(da, 0, sizeof(float) * r * K);
  if (db) std::memset(db, 0, sizeof(float) * s.O * r);
  if (s.N == 0 || (!dx && !da && !db)) return;
  const int64_t nb_max = chunk_images(s);
  ConvScratch& sc = scratch();
  for (int64_t n0 = 0; n0 < s.N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, s.N - n0), M = nb * P;
    float* dyg = sc.dy.get(s.O * M);
    gather_planes(dy, n0, s.O, 0, s.O, nb, P, dyg);
    if (db) {
      float* lowg = sc.low.get(r * M);
      gather_planes(low, n0, r, 0, r, nb, P, lowg);
      // dB (O, r) += scale dy low^T
      gemm_f32(false, true, s.O, r, M, scale, dyg, M, lowg, M, 1.0f, db, r);
    }
    if (!dx && !da) continue;
    // dlow (r, M) = scale B^T dy
    float* dlow = sc.dlow.get(r * M);
    gemm_f32(true, false, r, M, s.O, scale, b, r, dyg, M, 0.0f, dlow, M);
    if (da) {
      float* col = sc.col.get(K * M);
      im2col(s, x, n0, nb, 0, col);
      gemm_f32(false, true, r, K, M, 1.0f, dlow, M, col, M, 1.0f, da, K);
    }
    if (dx) {
      float* dcol = sc.col.get(K * M);  // the columns are consumed: dcol reuses their buffer
      gemm_f32(true, false, K, M, s.O, 1.0f, w, K, dyg, M, 0.0f, dcol, M);
      gemm_f32(true, false, K, M, r, 1.0f, a, K, dlow, M, 1.0f, dcol, M);
      col2im_add(s, dcol, n0, nb, 0, dx);
    }
  }
}

}  // namespace tk::cpu
