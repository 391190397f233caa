// LSTM (one direction of one layer): the GEMM path against the plain double reference, both
// directions, with and without biases; the backward against central finite differences of an
// independent double-precision LSTM written here; and PyTorch's gate order checked by hand.
#include <cmath>
#include <cstdio>
#include <vector>

#include "../core/status.h"
#include "../cpu/lstm.h"
#include "finite_diff.h"
#include "test_harness.h"

using tk::cpu::LstmShape;
using tk::test::VecD;

namespace {

LstmShape shape(int64_t B, int64_t T, int64_t in, int64_t H, bool reverse) {
  LstmShape s;
  s.B = B; s.T = T; s.in = in; s.H = H; s.reverse = reverse;
  return s;
}

struct Params {
  std::vector<float> x, wih, whh, bih, bhh, dy;
};

Params make_params(const LstmShape& s, uint64_t seed) {
  Params p;
  p.x = tk::test::randn(s.B * s.T * s.in, seed);
  p.wih = tk::test::randn(4 * s.H * s.in, seed + 1, 0.4f);
  p.whh = tk::test::randn(4 * s.H * s.H, seed + 2, 0.4f);
  p.bih = tk::test::randn(4 * s.H, seed + 3, 0.3f);
  p.bhh = tk::test::randn(4 * s.H, seed + 4, 0.3f);
  p.dy = tk::test::randn(s.B * s.T * s.H, seed + 5);
  return p;
}

// Independent double-precision LSTM: y as a function of (x, w_ih, w_hh, b) packed in one vector.
VecD lstm_double(const LstmShape& s, const VecD& xv, const VecD& wih, const VecD& whh, const VecD& b) {
  const int64_t H = s.H, in = s.in, T = s.T;
  VecD y(static_cast<size_t>(s.B * T * H));
  for (int64_t bb = 0; bb < s.B; ++bb) {
    VecD h(H, 0.0), c(H, 0.0), z(4 * H);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = s.reverse ? T - 1 - k : k;
      for (int64_t r = 0; r < 4 * H; ++r) {
        double acc = b[r];
        for (int64_t q = 0; q < in; ++q) acc += wih[r * in + q] * xv[(bb * T + t) * in + q];
        for (int64_t q = 0; q < H; ++q) acc += whh[r * H + q] * h[q];
        z[r] = acc;
      }
      for (int64_t j = 0; j < H; ++j) {
        auto sg = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
        c[j] = sg(z[H + j]) * c[j] + sg(z[j]) * std::tanh(z[2 * H + j]);
        h[j] = sg(z[3 * H + j]) * std::tanh(c[j]);
        y[(bb * T + t) * H + j] = h[j];
      }
    }
  }
  return y;
}

void check_fast_vs_reference(const LstmShape& s, bool bias, uint64_t seed) {
  Params p = make_params(s, seed);
  const float* bih = bias ? p.bih.data() : nullptr;
  const float* bhh = bias ? p.bhh.data() : nullptr;
  const size_t nY = s.B * s.T * s.H, nG = s.B * s.T * 4 * s.H;
  std::vector<float> y1(nY, 7.f), y2 = y1, g1(nG, 7.f), g2 = g1, c1(nY, 7.f), c2 = c1;
  tk::cpu::lstm_forward_f32(s, p.x.data(), p.wih.data(), p.whh.data(), bih, bhh, y1.data(), g1.data(), c1.data());
  tk::cpu::lstm_forward_reference(s, p.x.data(), p.wih.data(), p.whh.data(), bih, bhh, y2.data(), g2.data(), c2.data());
  TK_EXPECT(tk::test::worst_ratio(y1.data(), y2.data(), nY, 1e-5, 1e-4) <= 1, "y B=%lld T=%lld rev=%d", (long long)s.B, (long long)s.T, s.reverse);
  TK_EXPECT(tk::test::worst_ratio(g1.data(), g2.data(), nG, 1e-5, 1e-4) <= 1, "gates");
  TK_EXPECT(tk::test::worst_ratio(c1.data(), c2.data(), nY, 1e-5, 1e-4) <= 1, "cell");
  const size_t nX = s.B * s.T * s.in;
  std::vector<float> dx1(nX, 7.f), dx2 = dx1, dwi1(4 * s.H * s.in, 7.f), dwi2 = dwi1, dwh1(4 * s.H * s.H, 7.f),
      dwh2 = dwh1, db1(4 * s.H, 7.f), db2 = db1;
  tk::cpu::lstm_backward_f32(s, p.dy.data(), p.x.data(), p.wih.data(), p.whh.data(), y2.data(), g2.data(), c2.data(),
                             dx1.data(), dwi1.data(), dwh1.data(), db1.data());
  tk::cpu::lstm_backward_reference(s, p.dy.data(), p.x.data(), p.wih.data(), p.whh.data(), y2.data(), g2.data(),
                                   c2.data(), dx2.data(), dwi2.data(), dwh2.data(), db2.data());
  TK_EXPECT(tk::test::worst_ratio(dx1.data(), dx2.data(), nX, 1e-4, 1e-4) <= 1, "dx");
  TK_EXPECT(tk::test::worst_ratio(dwi1.data(), dwi2.data(), dwi1.size(), 1e-4, 1e-4) <= 1, "dw_ih");
  TK_EXPECT(tk::test::worst_ratio(dwh1.data(), dwh2.data(), dwh1.size(), 1e-4, 1e-4) <= 1, "dw_hh");
  TK_EXPECT(tk::test::worst_ratio(db1.data(), db2.data(), db1.size(), 1e-4, 1e-4) <= 1, "db");
}

}  // namespace

TK_TEST(lstm_fast_matches_reference) {
  for (bool rev : {false, true}) {
    check_fast_vs_reference(shape(1, 5, 8, 6, rev), true, 11);
    check_fast_vs_reference(shape(3, 4, 5, 7, rev), true, 12);
    check_fast_vs_reference(shape(2, 1, 3, 4, rev), false, 13);
    check_fast_vs_reference(shape(2, 9, 16, 12, rev), true, 14);
  }
}

// The backward (fast and reference) against finite differences of lstm_double, for x, both
// weights and the bias.
TK_TEST(lstm_backward_matches_finite_differences) {
  for (bool rev : {false, true}) {
    const LstmShape s = shape(2, 4, 3, 5, rev);
    Params p = make_params(s, 21 + rev);
    VecD x = tk::test::to_double(p.x), wih = tk::test::to_double(p.wih), whh = tk::test::to_double(p.whh);
    VecD b(4 * s.H);
    for (int64_t r = 0; r < 4 * s.H; ++r) b[r] = static_cast<double>(p.bih[r]) + p.bhh[r];
    VecD dy = tk::test::to_double(p.dy);
    const size_t nY = s.B * s.T * s.H;
    std::vector<float> y(nY), g(nY * 4), c(nY);
    tk::cpu::lstm_forward_f32(s, p.x.data(), p.wih.data(), p.whh.data(), p.bih.data(), p.bhh.data(), y.data(), g.data(), c.data());
    // forward against the independent double LSTM
    VecD yd = lstm_double(s, x, wih, whh, b);
    double worst = 0;
    for (size_t i = 0; i < nY; ++i) worst = std::fmax(worst, std::fabs(yd[i] - y[i]));
    TK_EXPECT(worst < 2e-6, "forward vs double: %g", worst);
    std::vector<float> dx(p.x.size()), dwi(p.wih.size()), dwh(p.whh.size()), db(4 * s.H);
    tk::cpu::lstm_backward_f32(s, p.dy.data(), p.x.data(), p.wih.data(), p.whh.data(), y.data(), g.data(), c.data(),
                               dx.data(), dwi.data(), dwh.data(), db.data());
    auto cmp = [&](const VecD& num, const std::vector<float>& got, const char* what) {
      double w = 0;
      for (size_t i = 0; i < num.size(); ++i) w = std::fmax(w, std::fabs(num[i] - got[i]) / (1e-4 + 1e-3 * std::fabs(num[i])));
      TK_EXPECT(w <= 1, "%s vs finite differences (rev=%d): ratio %g", what, s.reverse, w);
    };
    cmp(tk::test::numeric_vjp([&](const VecD& v) { return lstm_double(s, v, wih, whh, b); }, x, dy), dx, "dx");
    cmp(tk::test::numeric_vjp([&](const VecD& v) { return lstm_double(s, x, v, whh, b); }, wih, dy), dwi, "dw_ih");
    cmp(tk::test::numeric_vjp([&](const VecD& v) { return lstm_double(s, x, wih, v, b); }, whh, dy), dwh, "dw_hh");
    cmp(tk::test::numeric_vjp([&](const VecD& v) { return lstm_double(s, x, wih, whh, v); }, b, dy), db, "db");
  }
}

// Gate order i, f, g, o (PyTorch): with only the g rows of W_ih non-zero and biases opening the
// gates, one step gives h = sigmoid(bo) * tanh(sigmoid(bi) * tanh(x w_g)).
TK_TEST(lstm_gate_order_is_pytorchs) {
  const LstmShape s = shape(1, 1, 1, 1, false);
  float x = 0.5f, wih[4] = {0, 0, 2.0f, 0}, whh[4] = {0, 0, 0, 0}, bih[4] = {1.0f, -3.0f, 0, 0.25f};
  float y = 0, g[4], c = 0;
  tk::cpu::lstm_forward_f32(s, &x, wih, whh, bih, nullptr, &y, g, &c);
  const double si = 1 / (1 + std::exp(-1.0)), so = 1 / (1 + std::exp(-0.25));
  const double want = so * std::tanh(si * std::tanh(1.0));
  TK_EXPECT(std::fabs(y - want) < 1e-6, "got %g want %g", y, want);
}

TK_TEST(lstm_rejects_negative_sizes) {
  bool threw = false;
  try {
    tk::cpu::check_lstm_shape(shape(-1, 2, 2, 2, false));
  } catch (const tk::Error& e) {
    threw = e.code() == tk::ErrorCode::Shape;
  }
  TK_EXPECT(threw, "negative B must throw ERR_SHAPE");
}
