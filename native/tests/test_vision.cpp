// Convolution, pooling and batch norm: fast vs reference at awkward sizes (groups, dilation,
// padding, strides, batch chunking, one-image and pointwise paths), and every backward against
// central finite differences of a double-precision definition written here.
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../cpu/batchnorm.h"
#include "../cpu/conv2d.h"
#include "../cpu/pool.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::numeric_vjp;
using tk::test::randn;
using tk::test::to_double;
using tk::test::VecD;

namespace {

Conv2dShape conv(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t K, int64_t s, int64_t p, int64_t d, int64_t g,
                 int64_t KW = -1) {
  Conv2dShape c;
  c.N = N; c.C = C; c.H = H; c.W = W; c.O = O; c.KH = K; c.KW = KW < 0 ? K : KW;
  c.sh = s; c.sw = s; c.ph = p; c.pw = p; c.dh = d; c.dw = d; c.groups = g;
  conv2d_check(c);
  return c;
}

// y = conv2d(x, w) + b in double, straight from the definition
VecD conv_double(const Conv2dShape& s, const VecD& x, const VecD& w, const VecD& b) {
  const int64_t Cg = s.C / s.groups, Og = s.O / s.groups;
  VecD y(s.N * s.O * s.Ho * s.Wo);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o)
      for (int64_t i = 0; i < s.Ho; ++i)
        for (int64_t j = 0; j < s.Wo; ++j) {
          double acc = b[o];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t p = 0; p < s.KH; ++p)
              for (int64_t q = 0; q < s.KW; ++q) {
                int64_t ih = i * s.sh - s.ph + p * s.dh, iw = j * s.sw - s.pw + q * s.dw;
                if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                  acc += w[((o * Cg + c) * s.KH + p) * s.KW + q] * x[((n * s.C + (o / Og) * Cg + c) * s.H + ih) * s.W + iw];
              }
          y[((n * s.O + o) * s.Ho + i) * s.Wo + j] = acc;
        }
  return y;
}

}  // namespace

TK_TEST(conv2d_fast_matches_reference) {
  const Conv2dShape shapes[] = {
      conv(1, 1, 1, 1, 1, 1, 1, 0, 1, 1),   conv(2, 3, 7, 5, 4, 3, 1, 1, 1, 1),   conv(3, 6, 9, 11, 9, 3, 2, 1, 1, 3),
      conv(2, 4, 8, 8, 4, 3, 1, 2, 2, 4),   conv(5, 5, 6, 7, 7, 1, 1, 0, 1, 1),   conv(2, 3, 13, 10, 5, 7, 2, 3, 1, 1),
      conv(1, 8, 12, 9, 6, 1, 2, 0, 1, 2),  conv(4, 2, 5, 5, 3, 2, 3, 0, 1, 1, 3), conv(1, 64, 64, 64, 4, 3, 1, 1, 1, 1),
      conv(40, 3, 28, 28, 8, 3, 1, 1, 1, 1)};
  uint64_t seed = 1;
  for (const auto& s : shapes) {
    const int64_t nx = s.N * s.C * s.H * s.W, nw = s.O * (s.C / s.groups) * s.KH * s.KW, ny = s.N * s.O * s.Ho * s.Wo;
    auto x = randn(nx, seed++), w = randn(nw, seed++), b = randn(s.O, seed++), dy = randn(ny, seed++);
    std::vector<float> y1(ny), y2(ny);
    conv2d_forward(s, x.data(), w.data(), b.data(), y1.data());
    conv2d_forward_reference(s, x.data(), w.data(), b.data(), y2.data());
    TK_EXPECT_CLOSE(y1.data(), y2.data(), ny, 1e-4, 1e-4);
    std::vector<float> dx1(nx), dx2(nx), dw1(nw), dw2(nw), db1(s.O), db2(s.O);
    conv2d_backward(s, x.data(), w.data(), dy.data(), dx1.data(), dw1.data(), db1.data());
    conv2d_backward_reference(s, x.data(), w.data(), dy.data(), dx2.data(), dw2.data(), db2.data());
    TK_EXPECT_CLOSE(dx1.data(), dx2.data(), nx, 1e-4, 1e-4);
    TK_EXPECT_CLOSE(dw1.data(), dw2.data(), nw, 1e-3, 1e-4);
    TK_EXPECT_CLOSE(db1.data(), db2.data(), s.O, 1e-3, 1e-5);
    // only dx wanted: the same dx
    std::vector<float> dx3(nx);
    conv2d_backward(s, x.data(), w.data(), dy.data(), dx3.data(), nullptr, nullptr);
    TK_EXPECT(dx3 == dx1, "dx independent of dw/db");
  }
}

TK_TEST(conv2d_backward_matches_finite_differences) {
  const Conv2dShape shapes[] = {conv(2, 4, 5, 6, 6, 3, 2, 1, 1, 2), conv(1, 3, 7, 7, 2, 3, 1, 2, 2, 1), conv(2, 2, 4, 5, 3, 2, 1, 0, 1, 1, 1)};
  uint64_t seed = 100;
  for (const auto& s : shapes) {
    const int64_t nx = s.N * s.C * s.H * s.W, nw = s.O * (s.C / s.groups) * s.KH * s.KW, ny = s.N * s.O * s.Ho * s.Wo;
    auto x = randn(nx, seed++), w = randn(nw, seed++), b = randn(s.O, seed++), dy = randn(ny, seed++);
    std::vector<float> dx(nx), dw(nw), db(s.O);
    conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    const VecD xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
    VecD gx = numeric_vjp([&](const VecD& v) { return conv_double(s, v, wd, bd); }, xd, dyd);
    VecD gw = numeric_vjp([&](const VecD& v) { return conv_double(s, xd, v, bd); }, wd, dyd);
    VecD gb = numeric_vjp([&](const VecD& v) { return conv_double(s, xd, wd, v); }, bd, dyd);
    std::vector<float> fx(gx.begin(), gx.end()), fw(gw.begin(), gw.end()), fb(gb.begin(), gb.end());
    TK_EXPECT_CLOSE(dx.data(), fx.data(), nx, 1e-4, 1e-4);
    TK_EXPECT_CLOSE(dw.data(), fw.data(), nw, 1e-4, 1e-4);
    TK_EXPECT_CLOSE(db.data(), fb.data(), s.O, 1e-4, 1e-4);
  }
}

TK_TEST(conv2d_refuses_bad_sizes) {
  bool threw = false;
  try {
    conv(1, 3, 2, 2, 4, 5, 1, 0, 1, 1);  // image smaller than the kernel
  } catch (const tk::Error& e) {
    threw = e.code() == tk::ErrorCode::Shape;
  }
  TK_EXPECT(threw, "a 5x5 kernel on a 2x2 image is ERR_SHAPE");
  threw = false;
  try {
    conv(1, 3, 8, 8, 4, 3, 1, 0, 1, 2);  // groups do not divide C
  } catch (const tk::Error& e) {
    threw = e.code() == tk::ErrorCode::Shape;
  }
  TK_EXPECT(threw, "groups 2 with 3 channels is ERR_SHAPE");
}

namespace {
Pool2dShape pool(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t s, int64_t p, int64_t d = 1) {
  Pool2dShape q;
  q.N = N; q.C = C; q.H = H; q.W = W; q.KH = K; q.KW = K; q.sh = s; q.sw = s; q.ph = p; q.pw = p; q.dh = d; q.dw = d;
  pool2d_check(q, "test");
  return q;
}

VecD avg_double(const Pool2dShape& s, const VecD& x, bool cip) {
  VecD y(s.N * s.C * s.Ho * s.Wo);
  for (int64_t t = 0; t < s.N * s.C; ++t)
    for (int64_t i = 0; i < s.Ho; ++i)
      for (int64_t j = 0; j < s.Wo; ++j) {
        double acc = 0;
        int in = 0, all = 0;
        for (int64_t p = 0; p < s.KH; ++p)
          for (int64_t q = 0; q < s.KW; ++q) {
            int64_t ih = i * s.sh - s.ph + p, iw = j * s.sw - s.pw + q;
            ++all;
            if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
            ++in;
            acc += x[(t * s.H + ih) * s.W + iw];
          }
        y[(t * s.Ho + i) * s.Wo + j] = acc / (cip ? all : in);
      }
  return y;
}

VecD maxpool_double(const Pool2dShape& s, const VecD& x) {
  VecD y(s.N * s.C * s.Ho * s.Wo, -INFINITY);
  for (int64_t t = 0; t < s.N * s.C; ++t)
    for (int64_t i = 0; i < s.Ho; ++i)
      for (int64_t j = 0; j < s.Wo; ++j)
        for (int64_t p = 0; p < s.KH; ++p)
          for (int64_t q = 0; q < s.KW; ++q) {
            int64_t ih = i * s.sh - s.ph + p * s.dh, iw = j * s.sw - s.pw + q * s.dw;
            if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
              y[(t * s.Ho + i) * s.Wo + j] = std::max(y[(t * s.Ho + i) * s.Wo + j], x[(t * s.H + ih) * s.W + iw]);
          }
  return y;
}
}  // namespace

TK_TEST(pooling_fast_matches_reference_and_finite_differences) {
  const Pool2dShape shapes[] = {pool(1, 1, 1, 1, 1, 1, 0), pool(2, 3, 7, 9, 3, 2, 1), pool(3, 2, 8, 5, 2, 2, 0), pool(2, 5, 11, 6, 3, 1, 1),
                                pool(1, 2, 9, 9, 3, 2, 1, 2), pool(2, 2, 5, 5, 4, 3, 2)};
  uint64_t seed = 300;
  for (const auto& s : shapes) {
    const int64_t nx = s.N * s.C * s.H * s.W, ny = s.N * s.C * s.Ho * s.Wo;
    auto x = randn(nx, seed++), dy = randn(ny, seed++);
    std::vector<float> y1(ny), y2(ny), dx(nx);
    std::vector<int32_t> i1(ny), i2(ny);
    max_pool2d(s, x.data(), y1.data(), i1.data());
    max_pool2d_reference(s, x.data(), y2.data(), i2.data());
    TK_EXPECT(y1 == y2 && i1 == i2, "max pool fast == reference");
    const VecD xd = to_double(x), dyd = to_double(dy);
    max_pool2d_backward(s, dy.data(), i1.data(), dx.data());
    VecD g = numeric_vjp([&](const VecD& v) { return maxpool_double(s, v); }, xd, dyd);
    std::vector<float> gf(g.begin(), g.end());
    TK_EXPECT_CLOSE(dx.data(), gf.data(), nx, 1e-4, 1e-4);
    if (s.dh != 1) continue;
    for (bool cip : {true, false}) {
      avg_pool2d(s, x.data(), y1.data(), cip);
      avg_pool2d_reference(s, x.data(), y2.data(), cip);
      TK_EXPECT_CLOSE(y1.data(), y2.data(), ny, 1e-6, 1e-5);
      VecD yd = avg_double(s, xd, cip);
      std::vector<float> yf(yd.begin(), yd.end());
      TK_EXPECT_CLOSE(y1.data(), yf.data(), ny, 1e-6, 1e-5);
      avg_pool2d_backward(s, dy.data(), dx.data(), cip);
      VecD ga = numeric_vjp([&](const VecD& v) { return avg_double(s, v, cip); }, xd, dyd);
      std::vector<float> gaf(ga.begin(), ga.end());
      TK_EXPECT_CLOSE(dx.data(), gaf.data(), nx, 1e-4, 1e-4);
    }
  }
}

TK_TEST(adaptive_avg_pool_matches_reference_and_finite_differences) {
  const int64_t sizes[][4] = {{5, 7, 1, 1}, {7, 5, 3, 2}, {10, 10, 4, 4}, {3, 4, 5, 7}, {1, 1, 1, 1}, {13, 6, 6, 4}};
  uint64_t seed = 500;
  for (auto& z : sizes) {
    const int64_t NC = 3, H = z[0], W = z[1], Ho = z[2], Wo = z[3];
    auto x = randn(NC * H * W, seed++), dy = randn(NC * Ho * Wo, seed++);
    std::vector<float> y1(NC * Ho * Wo), y2(NC * Ho * Wo), dx(NC * H * W);
    adaptive_avg_pool2d(x.data(), y1.data(), NC, H, W, Ho, Wo);
    adaptive_avg_pool2d_reference(x.data(), y2.data(), NC, H, W, Ho, Wo);
    TK_EXPECT_CLOSE(y1.data(), y2.data(), y1.size(), 1e-6, 1e-5);
    adaptive_avg_pool2d_backward(dy.data(), dx.data(), NC, H, W, Ho, Wo);
    auto f = [&](const VecD& v) {
      std::vector<float> vf(v.begin(), v.end()), out(NC * Ho * Wo);
      // linear in x: the f32 kernel on exactly representable sums is exact enough for h = 1e-5? No:
      // evaluate the definition in double instead
      VecD y(NC * Ho * Wo);
      for (int64_t t = 0; t < NC; ++t)
        for (int64_t i = 0; i < Ho; ++i)
          for (int64_t j = 0; j < Wo; ++j) {
            int64_t h0 = (i * H) / Ho, h1 = ((i + 1) * H + Ho - 1) / Ho, w0 = (j * W) / Wo, w1 = ((j + 1) * W + Wo - 1) / Wo;
            double acc = 0;
            for (int64_t h = h0; h < h1; ++h)
              for (int64_t w = w0; w < w1; ++w) acc += v[(t * H + h) * W + w];
            y[(t * Ho + i) * Wo + j] = acc / ((h1 - h0) * (w1 - w0));
          }
      (void)out;
      return y;
    };
    VecD g = numeric_vjp(f, to_double(x), to_double(dy));
    std::vector<float> gf(g.begin(), g.end());
    TK_EXPECT_CLOSE(dx.data(), gf.data(), dx.size(), 1e-4, 1e-4);
  }
}

namespace {
VecD bn_double(const BatchNormShape& s, const VecD& x, const VecD& w, const VecD& b, double eps) {
  VecD y(x.size());
  const int64_t M = s.N * s.HW;
  for (int64_t c = 0; c < s.C; ++c) {
    double mu = 0, var = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) mu += x[(n * s.C + c) * s.HW + k];
    mu /= M;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) var += std::pow(x[(n * s.C + c) * s.HW + k] - mu, 2);
    var /= M;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) {
        int64_t i = (n * s.C + c) * s.HW + k;
        y[i] = (x[i] - mu) / std::sqrt(var + eps) * w[c] + b[c];
      }
  }
  return y;
}
}  // namespace

TK_TEST(batch_norm_train_eval_and_backward) {
  const BatchNormShape shapes[] = {{2, 3, 5}, {1, 1, 7}, {4, 5, 1}, {3, 7, 13}, {17, 33, 49}};
  uint64_t seed = 700;
  for (const auto& s : shapes) {
    const int64_t n = s.N * s.C * s.HW;
    auto x = randn(n, seed++, 2.0f), w = randn(s.C, seed++), b = randn(s.C, seed++), dy = randn(n, seed++);
    for (auto& v : x) v += 3.0f;
    std::vector<float> y1(n), y2(n), m1(s.C), m2(s.C), r1(s.C), r2(s.C), rm1(s.C, 0.5f), rm2(s.C, 0.5f), rv1(s.C, 2.0f),
        rv2(s.C, 2.0f);
    batch_norm_train(s, x.data(), w.data(), b.data(), y1.data(), m1.data(), r1.data(), rm1.data(), rv1.data(), 1e-5f, 0.1f);
    batch_norm_train_reference(s, x.data(), w.data(), b.data(), y2.data(), m2.data(), r2.data(), rm2.data(), rv2.data(), 1e-5f, 0.1f);
    TK_EXPECT_CLOSE(y1.data(), y2.data(), n, 1e-5, 1e-5);
    TK_EXPECT_CLOSE(rm1.data(), rm2.data(), s.C, 1e-6, 1e-6);
    TK_EXPECT_CLOSE(rv1.data(), rv2.data(), s.C, 1e-6, 1e-6);
    std::vector<float> dx1(n), dx2(n), dw1(s.C), dw2(s.C), db1(s.C), db2(s.C);
    for (bool train : {true, false}) {
      batch_norm_backward(s, x.data(), w.data(), m1.data(), r1.data(), dy.data(), dx1.data(), dw1.data(), db1.data(), train);
      batch_norm_backward_reference(s, x.data(), w.data(), m1.data(), r1.data(), dy.data(), dx2.data(), dw2.data(), db2.data(), train);
      TK_EXPECT_CLOSE(dx1.data(), dx2.data(), n, 1e-5, 1e-4);
      TK_EXPECT_CLOSE(dw1.data(), dw2.data(), s.C, 1e-4, 1e-5);
      TK_EXPECT_CLOSE(db1.data(), db2.data(), s.C, 1e-4, 1e-5);
    }
    if (n > 200) continue;  // finite differences on the small shapes
    batch_norm_backward(s, x.data(), w.data(), m1.data(), r1.data(), dy.data(), dx1.data(), dw1.data(), db1.data(), true);
    const VecD xd = to_double(x), wd = to_double(w), bd = to_double(b), dyd = to_double(dy);
    VecD gx = numeric_vjp([&](const VecD& v) { return bn_double(s, v, wd, bd, 1e-5); }, xd, dyd, 1e-4);
    VecD gw = numeric_vjp([&](const VecD& v) { return bn_double(s, xd, v, bd, 1e-5); }, wd, dyd, 1e-4);
    std::vector<float> fx(gx.begin(), gx.end()), fw(gw.begin(), gw.end());
    TK_EXPECT_CLOSE(dx1.data(), fx.data(), n, 1e-4, 1e-3);
    TK_EXPECT_CLOSE(dw1.data(), fw.data(), s.C, 1e-4, 1e-3);
    // eval mode: y is affine in x with the running statistics
    std::vector<float> ye(n), me(s.C), re(s.C);
    batch_norm_eval(s, x.data(), w.data(), b.data(), rm1.data(), rv1.data(), ye.data(), me.data(), re.data(), 1e-5f);
    for (int64_t c = 0; c < s.C; ++c) {
      double want = (x[c * s.HW] - rm1[c]) / std::sqrt(double(rv1[c]) + 1e-5) * w[c] + b[c];
      TK_EXPECT(std::fabs(ye[c * s.HW] - want) < 1e-4, "eval uses the running statistics (channel %ld)", long(c));
    }
  }
}

TK_TEST(max_pool_ties_and_nan_follow_torch) {
  // one 2x3 plane, one 2x3 window: ties keep the first maximum; NaNs win, the last one's index
  Pool2dShape s = pool(1, 1, 2, 3, 1, 1, 0);
  s.KH = 2; s.KW = 3; s.sh = 2; s.sw = 3;
  pool2d_check(s, "test");
  const float ties[] = {1, 5, 2, 5, 0, 3};
  const float nans[] = {1, NAN, 2, 7, NAN, 3};
  float y[1];
  int32_t idx[1], idx_ref[1];
  float y_ref[1];
  max_pool2d(s, ties, y, idx);
  max_pool2d_reference(s, ties, y_ref, idx_ref);
  TK_EXPECT(y[0] == 5 && idx[0] == 1 && idx_ref[0] == 1, "first maximum: idx %d", idx[0]);
  max_pool2d(s, nans, y, idx);
  max_pool2d_reference(s, nans, y_ref, idx_ref);
  TK_EXPECT(std::isnan(y[0]) && idx[0] == 4 && idx_ref[0] == 4, "last NaN: idx %d", idx[0]);
}

TK_TEST(lora_conv2d_fused_matches_two_convolutions) {
  // y = conv(x, W) + bias + scale * B conv(x, A), against conv2d_forward/backward composed
  const Conv2dShape shapes[] = {conv(3, 4, 9, 7, 5, 3, 2, 1, 1, 1), conv(2, 3, 6, 6, 4, 1, 1, 0, 1, 1), conv(40, 2, 10, 10, 3, 3, 1, 1, 1, 1),
                                conv(1, 6, 12, 11, 7, 5, 1, 2, 1, 1)};
  uint64_t seed = 900;
  for (const auto& s : shapes) {
    const int64_t r = 3, K = s.C * s.KH * s.KW, P = s.Ho * s.Wo, nx = s.N * s.C * s.H * s.W, ny = s.N * s.O * P;
    const float scale = 1.7f;
    auto x = randn(nx, seed++), w = randn(s.O * K, seed++), bias = randn(s.O, seed++), a = randn(r * K, seed++), b = randn(s.O * r, seed++),
         dy = randn(ny, seed++);
    std::vector<float> y(ny), low(s.N * r * P);
    lora_conv2d_forward(s, r, scale, x.data(), w.data(), bias.data(), a.data(), b.data(), y.data(), low.data());
    // composed: base conv, A conv, B 1x1 conv
    Conv2dShape sa = s;
    sa.O = r;
    conv2d_check(sa);
    Conv2dShape sb = conv(s.N, r, s.Ho, s.Wo, s.O, 1, 1, 0, 1, 1);
    std::vector<float> yb(ny), la(s.N * r * P), lb(ny);
    conv2d_forward_reference(s, x.data(), w.data(), bias.data(), yb.data());
    conv2d_forward_reference(sa, x.data(), a.data(), nullptr, la.data());
    conv2d_forward_reference(sb, la.data(), b.data(), nullptr, lb.data());
    for (int64_t i = 0; i < ny; ++i) yb[i] += scale * lb[i];
    TK_EXPECT_CLOSE(y.data(), yb.data(), ny, 1e-4, 1e-4);
    TK_EXPECT_CLOSE(low.data(), la.data(), la.size(), 1e-4, 1e-4);
    std::vector<float> dx(nx), da(r * K), db(s.O * r);
    lora_conv2d_backward(s, r, scale, x.data(), w.data(), a.data(), b.data(), low.data(), dy.data(), dx.data(), da.data(), db.data());
    // composed backward: dy -> (B path) dlb = scale dy -> dla, db; (A path) dx_a, da; (base) dx_w
    std::vector<float> sdy(ny);
    for (int64_t i = 0; i < ny; ++i) sdy[i] = scale * dy[i];
    std::vector<float> dla(s.N * r * P), db2(s.O * r), dxa(nx), da2(r * K), dxw(nx);
    conv2d_backward_reference(sb, la.data(), b.data(), sdy.data(), dla.data(), db2.data(), nullptr);
    conv2d_backward_reference(sa, x.data(), a.data(), dla.data(), dxa.data(), da2.data(), nullptr);
    conv2d_backward_reference(s, x.data(), w.data(), dy.data(), dxw.data(), nullptr, nullptr);
    for (int64_t i = 0; i < nx; ++i) dxw[i] += dxa[i];
    TK_EXPECT_CLOSE(dx.data(), dxw.data(), nx, 1e-3, 1e-4);
    TK_EXPECT_CLOSE(da.data(), da2.data(), da.size(), 1e-3, 1e-4);
    TK_EXPECT_CLOSE(db.data(), db2.data(), db.size(), 1e-3, 1e-4);
  }
}
