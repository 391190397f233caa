// 2-D pooling, NCHW (see pool.h).
#include "pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/status.h"
#include "../core/thread_pool.h"

namespace tk::cpu {

void pool2d_check(Pool2dShape& s, const char* fn) {
  TK_CHECK(s.N >= 0 && s.C > 0 && s.H > 0 && s.W > 0, Shape, fn, ": expected input (N, C, H, W) with C, H, W >= 1 but received (",
           s.N, ", ", s.C, ", ", s.H, ", ", s.W, ")");
  TK_CHECK(s.KH > 0 && s.KW > 0 && s.sh > 0 && s.sw > 0 && s.dh > 0 && s.dw > 0, Value, fn, ": kernel ", s.KH, "x", s.KW,
           ", stride (", s.sh, ", ", s.sw, ") and dilation (", s.dh, ", ", s.dw, ") must be >= 1");
  TK_CHECK(s.ph >= 0 && s.pw >= 0 && 2 * s.ph <= s.KH && 2 * s.pw <= s.KW, Value, fn, ": padding (", s.ph, ", ", s.pw,
           ") must be >= 0 and at most half the kernel ", s.KH, "x", s.KW);
  const int64_t spanH = s.dh * (s.KH - 1) + 1, spanW = s.dw * (s.KW - 1) + 1;
  TK_CHECK(s.H + 2 * s.ph >= spanH && s.W + 2 * s.pw >= spanW, Shape, fn, ": input ", s.H, "x", s.W, " (padding ", s.ph,
           ", ", s.pw, ") is smaller than the window ", spanH, "x", spanW);
  s.Ho = (s.H + 2 * s.ph - spanH) / s.sh + 1;
  s.Wo = (s.W + 2 * s.pw - spanW) / s.sw + 1;
}

namespace {

// one plane of max pooling: x (H, W) -> y (Ho, Wo), idx (Ho, Wo). The window's rows and columns
// inside the image are found once per output row / column (no bounds test per element); torch's
// rule `v > best || isnan(v)` picks the first maximum, and the last NaN when there are NaNs.
void max_plane(const Pool2dShape& s, const float* x, float* y, int32_t* idx) {
  auto range = [](int64_t o, int64_t stride, int64_t pad, int64_t dil, int64_t k, int64_t n, int64_t& lo, int64_t& hi) {
    const int64_t start = o * stride - pad;  // tap t reads start + t dil
    lo = start >= 0 ? 0 : (-start + dil - 1) / dil;
    hi = start + (k - 1) * dil < n ? k : (n - 1 - start) / dil + 1;
  };
  for (int64_t i = 0; i < s.Ho; ++i) {
    int64_t p0, p1;
    range(i, s.sh, s.ph, s.dh, s.KH, s.H, p0, p1);
    const int64_t h0 = i * s.sh - s.ph;
    for (int64_t j = 0; j < s.Wo; ++j) {
      int64_t q0, q1;
      range(j, s.sw, s.pw, s.dw, s.KW, s.W, q0, q1);
      const int64_t w0 = j * s.sw - s.pw;
      float best = -std::numeric_limits<float>::infinity();
      int64_t at = (h0 + p0 * s.dh) * s.W + w0 + q0 * s.dw;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t row = (h0 + p * s.dh) * s.W;
        for (int64_t q = q0; q < q1; ++q) {
          const float v = x[row + w0 + q * s.dw];
          if (v > best || std::isnan(v)) {
            best = v;
            at = row + w0 + q * s.dw;
          }
        }
      }
      y[i * s.Wo + j] = best;
      idx[i * s.Wo + j] = static_cast<int32_t>(at);
    }
  }
}

// window of output (i, j) clipped to the image, and its divisor
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double divisor;
};
inline AvgWindow avg_window(const Pool2dShape& s, int64_t i, int64_t j, bool count_include_pad) {
  int64_t h0 = i * s.sh - s.ph, w0 = j * s.sw - s.pw;
  int64_t h1 = std::min(h0 + s.KH, s.H + s.ph), w1 = std::min(w0 + s.KW, s.W + s.pw);
  const int64_t pool = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, s.H);
  w1 = std::min(w1, s.W);
  return {h0, h1, w0, w1, double(count_include_pad ? pool : (h1 - h0) * (w1 - w0))};
}

void avg_plane(const Pool2dShape& s, const float* x, float* y, bool cip) {
  for (int64_t i = 0; i < s.Ho; ++i)
    for (int64_t j = 0; j < s.Wo; ++j) {
      const AvgWindow a = avg_window(s, i, j, cip);
      double acc = 0;
      for (int64_t h = a.h0; h < a.h1; ++h)
        for (int64_t w = a.w0; w < a.w1; ++w) acc += x[h * s.W + w];
      y[i * s.Wo + j] = a.divisor > 0 ? float(acc / a.divisor) : 0.0f;
    }
}

inline int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

void adaptive_plane(const float* x, float* y, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  for (int64_t i = 0; i < Ho; ++i) {
    const int64_t h0 = adaptive_start(i, H, Ho), h1 = adaptive_end(i, H, Ho);
    for (int64_t j = 0; j < Wo; ++j) {
      const int64_t w0 = adaptive_start(j, W, Wo), w1 = adaptive_end(j, W, Wo);
      double acc = 0;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) acc += x[h * W + w];
      y[i * Wo + j] = float(acc / double((h1 - h0) * (w1 - w0)));
    }
  }
}

template <typename F>
void over_planes(int64_t planes, int64_t plane_work, F&& f) {
  parallel_for(planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, plane_work)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) f(t);
  });
}

}  // namespace

void max_pool2d_reference(const Pool2dShape& s, const float* x, float* y, int32_t* idx) {
  // the plain definition, written out separately from the plane kernel
  for (int64_t t = 0; t < s.N * s.C; ++t)
    for (int64_t i = 0; i < s.Ho; ++i)
      for (int64_t j = 0; j < s.Wo; ++j) {
        float best = -std::numeric_limits<float>::infinity();
        int64_t at = -1;
        for (int64_t p = 0; p < s.KH; ++p)
          for (int64_t q = 0; q < s.KW; ++q) {
            const int64_t ih = i * s.sh - s.ph + p * s.dh, iw = j * s.sw - s.pw + q * s.dw;
            if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
            const float v = x[t * s.H * s.W + ih * s.W + iw];
            if (at < 0) at = ih * s.W + iw;  // torch starts at the window's first pixel
            if (v > best || std::isnan(v)) {
              best = v;
              at = ih * s.W + iw;
            }
          }
        y[(t * s.Ho + i) * s.Wo + j] = best;
        idx[(t * s.Ho + i) * s.Wo + j] = static_cast<int32_t>(at);
      }
}

void max_pool2d(const Pool2dShape& s, const float* x, float* y, int32_t* idx) {
  const int64_t HW = s.H * s.W, P = s.Ho * s.Wo;
  over_planes(s.N * s.C, P * s.KH * s.KW, [&](int64_t t) { max_plane(s, x + t * HW, y + t * P, idx + t * P); });
}

void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* idx, float* dx) {
  const int64_t HW = s.H * s.W, P = s.Ho * s.Wo;
  over_planes(s.N * s.C, P, [&](int64_t t) {
    float* d = dx + t * HW;
    std::memset(d, 0, sizeof(float) * HW);
    for (int64_t k = 0; k < P; ++k) {
      const int32_t at = idx[t * P + k];
      TK_CHECK(at >= 0 && at < HW, Index, "max_pool2d_backward: saved index ", at, " outside a ", s.H, "x", s.W, " plane");
      d[at] += dy[t * P + k];
    }
  });
}

void avg_pool2d_reference(const Pool2dShape& s, const float* x, float* y, bool cip) {
  for (int64_t t = 0; t < s.N * s.C; ++t)
    for (int64_t i = 0; i < s.Ho; ++i)
      for (int64_t j = 0; j < s.Wo; ++j) {
        // window in padded coordinates, then the pixels inside the image
        double acc = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t p = 0; p < s.KH; ++p)
          for (int64_t q = 0; q < s.KW; ++q) {
            const int64_t ih = i * s.sh - s.ph + p, iw = j * s.sw - s.pw + q;
            if (ih >= s.H + s.ph || iw >= s.W + s.pw) continue;
            ++padded;
            if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
            ++inside;
            acc += x[t * s.H * s.W + ih * s.W + iw];
          }
        const int64_t div = cip ? padded : inside;
        y[(t * s.Ho + i) * s.Wo + j] = div > 0 ? float(acc / div) : 0.0f;
      }
}

void avg_pool2d(const Pool2dShape& s, const float* x, float* y, bool cip) {
  TK_CHECK(s.dh == 1 && s.dw == 1, Value, "avg_pool2d: dilation is not defined for average pooling");
  const int64_t HW = s.H * s.W, P = s.Ho * s.Wo;
  over_planes(s.N * s.C, P * s.KH * s.KW, [&](int64_t t) { avg_plane(s, x + t * HW, y + t * P, cip); });
}

void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx, bool cip) {
  const int64_t HW = s.H * s.W, P = s.Ho * s.Wo;
  over_planes(s.N * s.C, P * s.KH * s.KW, [&](int64_t t) {
    float* d = dx + t * HW;
    std::memset(d, 0, sizeof(float) * HW);
    for (int64_t i = 0; i < s.Ho; ++i)
      for (int64_t j = 0; j < s.Wo; ++j) {
        const AvgWindow a = avg_window(s, i, j, cip);
        if (a.divisor <= 0) continue;
        const float g = float(dy[t * P + i * s.Wo + j] / a.divisor);
        for (int64_t h = a.h0; h < a.h1; ++h)
          for (int64_t w = a.w0; w < a.w1; ++w) d[h * s.W + w] += g;
      }
  });
}

void adaptive_avg_pool2d_reference(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  for (int64_t t = 0; t < NC; ++t)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        // floor / ceil of the real-valued bounds i H / Ho, (i + 1) H / Ho
        const int64_t h0 = int64_t(std::floor(double(i) * H / Ho)), h1 = int64_t(std::ceil(double(i + 1) * H / Ho));
        const int64_t w0 = int64_t(std::floor(double(j) * W / Wo)), w1 = int64_t(std::ceil(double(j + 1) * W / Wo));
        double acc = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) acc += x[(t * H + h) * W + w];
        y[(t * Ho + i) * Wo + j] = float(acc / double((h1 - h0) * (w1 - w0)));
      }
}

void adaptive_avg_pool2d(const float* x, float* y, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  TK_CHECK(H > 0 && W > 0 && Ho > 0 && Wo > 0, Shape, "adaptive_avg_pool2d: expected positive sizes but received input ", H, "x", W,
           ", output ", Ho, "x", Wo);
  over_planes(NC, H * W, [&](int64_t t) { adaptive_plane(x + t * H * W, y + t * Ho * Wo, H, W, Ho, Wo); });
}

void adaptive_avg_pool2d_backward(const float* dy, float* dx, int64_t NC, int64_t H, int64_t W, int64_t Ho, int64_t Wo) {
  over_planes(NC, H * W, [&](int64_t t) {
    float* d = dx + t * H * W;
    std::memset(d, 0, sizeof(float) * H * W);
    for (int64_t i = 0; i < Ho; ++i) {
      const int64_t h0 = adaptive_start(i, H, Ho), h1 = adaptive_end(i, H, Ho);
      for (int64_t j = 0; j < Wo; ++j) {
        const int64_t w0 = adaptive_start(j, W, Wo), w1 = adaptive_end(j, W, Wo);
        const float g = float(dy[t * Ho * Wo + i * Wo + j] / double((h1 - h0) * (w1 - w0)));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) d[h * W + w] += g;
      }
    }
  });
}

}  // namespace tk::cpu
