// Linear + LoRA: the GEMM path against the plain reference (both weight layouts, with and
// without bias, merged or separate dropout gradient), the forward against the merged weight
// W + s B A, and the backward against central finite differences in double.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"
#include "../cpu/dropout.h"
#include "../cpu/lora.h"
#include <tuple>
#include "test_harness.h"

using tk::cpu::LoraShape;

namespace {

struct Inputs {
  std::vector<float> x, xd, w, bias, a, b, dy;
};

// xd differs from x (as after dropout) unless `tied`.
Inputs make_inputs(const LoraShape& s, bool tied, uint64_t seed) {
  Inputs in;
  in.x = tk::test::randn(s.M * s.in, seed);
  in.xd = tied ? in.x : tk::test::randn(s.M * s.in, seed + 1);
  in.w = tk::test::randn(s.out * s.in, seed + 2, 0.3f);
  in.bias = tk::test::randn(s.out, seed + 3);
  in.a = tk::test::randn(s.r * s.in, seed + 4, 0.3f);
  in.b = tk::test::randn(s.out * s.r, seed + 5, 0.3f);
  in.dy = tk::test::randn(s.M * s.out, seed + 6);
  return in;
}

LoraShape shape(int64_t M, int64_t in, int64_t out, int64_t r, bool w_in_out) {
  LoraShape s;
  s.M = M; s.in = in; s.out = out; s.r = r; s.w_in_out = w_in_out;
  s.scale = r > 0 ? 16.0f / static_cast<float>(r) : 1.0f;
  return s;
}

void check_fast_vs_reference(const LoraShape& s, bool with_bias, bool merge_dx, uint64_t seed) {
  Inputs in = make_inputs(s, merge_dx, seed);
  const float* bias = with_bias ? in.bias.data() : nullptr;
  std::vector<float> y1(s.M * s.out, 7.f), y2(s.M * s.out, 7.f), xa1(s.M * s.r, 7.f), xa2(s.M * s.r, 7.f);
  tk::cpu::lora_linear_forward_f32(s, in.x.data(), in.xd.data(), in.w.data(), bias, in.a.data(), in.b.data(),
                                   y1.data(), xa1.data());
  tk::cpu::lora_linear_forward_reference(s, in.x.data(), in.xd.data(), in.w.data(), bias, in.a.data(), in.b.data(),
                                         y2.data(), xa2.data());
  double ry = tk::test::worst_ratio(y1.data(), y2.data(), y1.size(), 1e-4, 1e-4);
  double rxa = tk::test::worst_ratio(xa1.data(), xa2.data(), xa1.size(), 1e-4, 1e-4);
  std::vector<float> dx1(s.M * s.in, 7.f), dx2 = dx1, dxd1 = dx1, dxd2 = dx1;
  std::vector<float> da1(s.r * s.in, 7.f), da2 = da1, db1(s.out * s.r, 7.f), db2 = db1;
  tk::cpu::lora_linear_backward_f32(s, in.dy.data(), in.xd.data(), in.w.data(), in.a.data(), in.b.data(), xa2.data(),
                                    dx1.data(), merge_dx ? nullptr : dxd1.data(), da1.data(), db1.data(), merge_dx);
  tk::cpu::lora_linear_backward_reference(s, in.dy.data(), in.xd.data(), in.w.data(), in.a.data(), in.b.data(),
                                          xa2.data(), dx2.data(), merge_dx ? nullptr : dxd2.data(), da2.data(),
                                          db2.data(), merge_dx);
  double rdx = tk::test::worst_ratio(dx1.data(), dx2.data(), dx1.size(), 1e-4, 1e-4);
  double rdxd = merge_dx ? 0 : tk::test::worst_ratio(dxd1.data(), dxd2.data(), dxd1.size(), 1e-4, 1e-4);
  double rda = tk::test::worst_ratio(da1.data(), da2.data(), da1.size(), 1e-4, 1e-4);
  double rdb = tk::test::worst_ratio(db1.data(), db2.data(), db1.size(), 1e-4, 1e-4);
  TK_EXPECT(ry <= 1 && rxa <= 1 && rdx <= 1 && rdxd <= 1 && rda <= 1 && rdb <= 1,
            "y %.3g xa %.3g dx %.3g dxd %.3g dA %.3g dB %.3g at M=%lld in=%lld out=%lld r=%lld inOut=%d bias=%d "
            "merge=%d", ry, rxa, rdx, rdxd, rda, rdb, (long long)s.M, (long long)s.in, (long long)s.out,
            (long long)s.r, (int)s.w_in_out, (int)with_bias, (int)merge_dx);
}

// W(o, c) in either layout
inline double wval(const LoraShape& s, const std::vector<double>& w, int64_t o, int64_t c) {
  return s.w_in_out ? w[c * s.out + o] : w[o * s.in + c];
}

// loss = sum(y * G) in double, written from the math: y = x W^T + bias + s (xd A^T) B^T.
double loss_double(const LoraShape& s, const std::vector<double>& x, const std::vector<double>& xd,
                   const std::vector<double>& w, const std::vector<double>& bias, const std::vector<double>& a,
                   const std::vector<double>& b, const std::vector<float>& G) {
  double loss = 0;
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t o = 0; o < s.out; ++o) {
      double y = bias.empty() ? 0.0 : bias[o];
      for (int64_t c = 0; c < s.in; ++c) y += x[i * s.in + c] * wval(s, w, o, c);
      for (int64_t k = 0; k < s.r; ++k) {
        double xa = 0;
        for (int64_t c = 0; c < s.in; ++c) xa += xd[i * s.in + c] * a[k * s.in + c];
        y += s.scale * xa * b[o * s.r + k];
      }
      loss += y * G[i * s.out + o];
    }
  return loss;
}

std::vector<double> to_d(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

void check_against_finite_differences(const LoraShape& s, bool with_bias, bool merge_dx, uint64_t seed) {
  Inputs in = make_inputs(s, merge_dx, seed);
  auto x = to_d(in.x), xd = to_d(in.xd), w = to_d(in.w), a = to_d(in.a), b = to_d(in.b);
  auto bias = with_bias ? to_d(in.bias) : std::vector<double>();
  const double eps = 1e-5;
  // With merge_dx, xd is x: perturb both together (the input feeds both paths).
  auto grad = [&](std::vector<double>& p, std::vector<double>* tied) {
    std::vector<float> g(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
      const double keep = p[i];
      p[i] = keep + eps;
      if (tied) (*tied)[i] = p[i];
      const double lp = loss_double(s, x, xd, w, bias, a, b, in.dy);
      p[i] = keep - eps;
      if (tied) (*tied)[i] = p[i];
      const double lm = loss_double(s, x, xd, w, bias, a, b, in.dy);
      p[i] = keep;
      if (tied) (*tied)[i] = keep;
      g[i] = static_cast<float>((lp - lm) / (2 * eps));
    }
    return g;
  };
  auto gx = grad(x, merge_dx ? &xd : nullptr);
  auto gxd = merge_dx ? std::vector<float>() : grad(xd, nullptr);
  auto ga = grad(a, nullptr), gb = grad(b, nullptr);
  for (int fast = 0; fast < 2; ++fast) {
    std::vector<float> y(s.M * s.out), xa(s.M * s.r), dx(s.M * s.in, 7.f), dxd(s.M * s.in, 7.f);
    std::vector<float> da(s.r * s.in, 7.f), db(s.out * s.r, 7.f);
    auto fwd = fast ? tk::cpu::lora_linear_forward_f32 : tk::cpu::lora_linear_forward_reference;
    auto bwd = fast ? tk::cpu::lora_linear_backward_f32 : tk::cpu::lora_linear_backward_reference;
    fwd(s, in.x.data(), in.xd.data(), in.w.data(), with_bias ? in.bias.data() : nullptr, in.a.data(), in.b.data(),
        y.data(), xa.data());
    bwd(s, in.dy.data(), in.xd.data(), in.w.data(), in.a.data(), in.b.data(), xa.data(), dx.data(),
        merge_dx ? nullptr : dxd.data(), da.data(), db.data(), merge_dx);
    double rx = tk::test::worst_ratio(dx.data(), gx.data(), gx.size(), 1e-4, 1e-4);
    double rxd = merge_dx ? 0 : tk::test::worst_ratio(dxd.data(), gxd.data(), gxd.size(), 1e-4, 1e-4);
    double ra = tk::test::worst_ratio(da.data(), ga.data(), ga.size(), 1e-4, 1e-4);
    double rb = tk::test::worst_ratio(db.data(), gb.data(), gb.size(), 1e-4, 1e-4);
    TK_EXPECT(rx <= 1 && rxd <= 1 && ra <= 1 && rb <= 1,
              "%s vs finite differences: dx %.3g dxd %.3g dA %.3g dB %.3g (inOut=%d bias=%d merge=%d)",
              fast ? "fast" : "reference", rx, rxd, ra, rb, (int)s.w_in_out, (int)with_bias, (int)merge_dx);
  }
}

}  // namespace

TK_TEST(lora_fast_matches_reference) {
  const int64_t sizes[][4] = {{1, 8, 7, 1}, {7, 65, 64, 4}, {33, 64, 129, 16}, {129, 33, 8, 8}, {5, 1, 1, 3}};
  uint64_t seed = 1;
  for (auto& z : sizes)
    for (int inout = 0; inout < 2; ++inout)
      for (int bias = 0; bias < 2; ++bias)
        for (int merge = 0; merge < 2; ++merge)
          check_fast_vs_reference(shape(z[0], z[1], z[2], z[3], inout), bias, merge, seed++);
}

TK_TEST(lora_forward_equals_merged_weight) {
  // PEFT's invariant: y with the adapter equals y with W + s B A (transposed for Conv1D layout).
  for (int inout = 0; inout < 2; ++inout) {
    LoraShape s = shape(9, 20, 12, 4, inout);
    Inputs in = make_inputs(s, true, 42);
    std::vector<float> merged = in.w;
    for (int64_t o = 0; o < s.out; ++o)
      for (int64_t c = 0; c < s.in; ++c) {
        double ba = 0;
        for (int64_t k = 0; k < s.r; ++k) ba += static_cast<double>(in.b[o * s.r + k]) * in.a[k * s.in + c];
        (inout ? merged[c * s.out + o] : merged[o * s.in + c]) += static_cast<float>(s.scale * ba);
      }
    LoraShape base = s;
    base.r = 0;
    std::vector<float> y1(s.M * s.out), y2(s.M * s.out), xa(s.M * s.r);
    tk::cpu::lora_linear_forward_f32(s, in.x.data(), in.x.data(), in.w.data(), in.bias.data(), in.a.data(),
                                     in.b.data(), y1.data(), xa.data());
    tk::cpu::lora_linear_forward_f32(base, in.x.data(), in.x.data(), merged.data(), in.bias.data(), nullptr, nullptr,
                                     y2.data(), nullptr);
    TK_EXPECT_CLOSE(y1.data(), y2.data(), y1.size(), 1e-4, 1e-4);
  }
}

TK_TEST(lora_backward_matches_finite_differences) {
  uint64_t seed = 300;
  for (int inout = 0; inout < 2; ++inout)
    for (int bias = 0; bias < 2; ++bias)
      for (int merge = 0; merge < 2; ++merge)
        check_against_finite_differences(shape(3, 5, 4, 2, inout), bias, merge, seed++);
}

TK_TEST(lora_rank_zero_and_validation) {
  // r = 0: a plain linear layer; dA, dB are empty and dxd is zero.
  LoraShape s = shape(4, 6, 5, 0, false);
  Inputs in = make_inputs(s, false, 9);
  std::vector<float> y(20, 7.f), dx(24, 7.f), dxd(24, 7.f);
  tk::cpu::lora_linear_forward_f32(s, in.x.data(), in.xd.data(), in.w.data(), nullptr, nullptr, nullptr, y.data(),
                                   nullptr);
  tk::cpu::lora_linear_backward_f32(s, in.dy.data(), in.xd.data(), in.w.data(), nullptr, nullptr, nullptr, dx.data(),
                                    dxd.data(), nullptr, nullptr, false);
  bool zero = true;
  for (float v : dxd) zero = zero && v == 0.0f;
  TK_EXPECT(zero, "dxd is zero at r = 0");
  double y00 = 0;
  for (int c = 0; c < 6; ++c) y00 += static_cast<double>(in.x[c]) * in.w[c];
  TK_EXPECT(std::fabs(y[0] - y00) < 1e-5, "y[0,0] %g vs %g", y[0], y00);

  auto throws = [](const LoraShape& bad) {
    try {
      tk::cpu::check_lora_shape(bad);
    } catch (const tk::Error&) {
      return true;
    }
    return false;
  };
  TK_EXPECT(throws(shape(-1, 4, 4, 2, false)), "negative M");
  LoraShape nan = shape(1, 4, 4, 2, false);
  nan.scale = NAN;
  TK_EXPECT(throws(nan), "NaN scale");
  bool threw = false;
  try {
    LoraShape t = shape(2, 3, 3, 1, false);
    Inputs i2 = make_inputs(t, false, 3);
    std::vector<float> dx2(6), da(3), db(3), xa(2);
    tk::cpu::lora_linear_backward_f32(t, i2.dy.data(), i2.xd.data(), i2.w.data(), i2.a.data(), i2.b.data(),
                                      xa.data(), dx2.data(), nullptr, da.data(), db.data(), false);
  } catch (const tk::Error&) {
    threw = true;
  }
  TK_EXPECT(threw, "missing dxd without mergeDx is an error");
}

// The dropout-fused kernels against the reference run on xd = dropout(x) made by the dropout
// kernel itself: the same mask (drawn by element index, whatever the row blocks), the same y
// and xa, dx = dy W + mask s (dy B) A / (1 - p), dA and dB; and dA's bits do not depend on the
// thread count (fixed blocks, fixed summation order).
TK_TEST(lora_dropout_fused_matches_reference_on_dropped_input) {
  for (auto [M, in, out, r, inOut, p] : {std::tuple{1, 1, 1, 1, false, 0.5f}, {65, 33, 17, 3, true, 0.1f},
                                         {130, 70, 45, 8, false, 0.05f}, {200, 64, 96, 4, true, 0.0f},
                                         {129, 40, 30, 0, false, 0.2f}, {1100, 19, 21, 3, true, 0.3f},
                                         {1037, 33, 70, 1, false, 0.0f}}) {
    LoraShape s = shape(M, in, out, r, inOut);
    Inputs inp = make_inputs(s, true, 100 + M);
    const int64_t nx = s.M * s.in;
    // reference inputs: the dropped x and its mask from the plain dropout kernel
    std::vector<float> xd(nx);
    std::vector<uint8_t> mask_ref(nx);
    tk::cpu::dropout(inp.x.data(), xd.data(), mask_ref.data(), nx, p, 77);
    std::vector<float> y1(s.M * s.out, 7.f), y2 = y1, xa1(s.M * s.r, 7.f), xa2 = xa1;
    std::vector<uint8_t> mask(nx, 9);
    tk::cpu::lora_linear_forward_dropout_f32(s, inp.x.data(), inp.w.data(), inp.bias.data(), inp.a.data(), inp.b.data(), p,
                                             77, p > 0 ? mask.data() : nullptr, y1.data(), xa1.data());
    tk::cpu::lora_linear_forward_reference(s, inp.x.data(), xd.data(), inp.w.data(), inp.bias.data(), inp.a.data(),
                                           inp.b.data(), y2.data(), xa2.data());
    if (p > 0) TK_EXPECT(mask == mask_ref, "mask of the fused forward == the dropout kernel's (M=%lld)", (long long)M);
    std::vector<float> dx1(nx, 7.f), dx2 = dx1, dxd2 = dx1, da1(s.r * s.in, 7.f), da2 = da1, db1(s.out * s.r, 7.f), db2 = db1;
    tk::cpu::lora_linear_backward_dropout_f32(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, inp.w.data(),
                                              inp.a.data(), inp.b.data(), xa1.data(), dx1.data(), da1.data(), db1.data());
    tk::cpu::lora_linear_backward_reference(s, inp.dy.data(), xd.data(), inp.w.data(), inp.a.data(), inp.b.data(),
                                            xa2.data(), dx2.data(), dxd2.data(), da2.data(), db2.data(), false);
    // the reference's separate dx and dxd, joined through the mask
    for (int64_t e = 0; e < nx; ++e) dx2[e] += (mask_ref[e] ? dxd2[e] / (1 - p) : 0.0f);
    const double ry = tk::test::worst_ratio(y1.data(), y2.data(), y1.size(), 1e-4, 1e-4);
    const double rxa = tk::test::worst_ratio(xa1.data(), xa2.data(), xa1.size(), 1e-4, 1e-4);
    const double rdx = tk::test::worst_ratio(dx1.data(), dx2.data(), dx1.size(), 1e-4, 1e-4);
    // dA and dB sum M terms of size ~30 in f32: an element that cancels to near zero keeps an
    // absolute error that grows with M (at M = 1037 about 5e-4 against sums of ~2e3)
    const double atol_sum = std::max(1e-4, 2e-6 * static_cast<double>(M));
    const double rda = tk::test::worst_ratio(da1.data(), da2.data(), da1.size(), atol_sum, 1e-4);
    const double rdb = tk::test::worst_ratio(db1.data(), db2.data(), db1.size(), atol_sum, 1e-4);
    TK_EXPECT(ry <= 1 && rxa <= 1 && rdx <= 1 && rda <= 1 && rdb <= 1, "y %.3g xa %.3g dx %.3g dA %.3g dB %.3g at M=%lld in=%lld out=%lld r=%lld p=%.2f",
              ry, rxa, rdx, rda, rdb, (long long)M, (long long)in, (long long)out, (long long)r, p);
    // thread-count independence of dA (and everything else)
    const int nt = tk::num_threads();
    tk::set_num_threads(1);
    std::vector<float> dx3(nx), da3(s.r * s.in), db3(s.out * s.r);
    tk::cpu::lora_linear_backward_dropout_f32(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, inp.w.data(),
                                              inp.a.data(), inp.b.data(), xa1.data(), dx3.data(), da3.data(), db3.data());
    tk::set_num_threads(std::max(3, nt));
    std::vector<float> dx4(nx), da4(s.r * s.in), db4(s.out * s.r);
    tk::cpu::lora_linear_backward_dropout_f32(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, inp.w.data(),
                                              inp.a.data(), inp.b.data(), xa1.data(), dx4.data(), da4.data(), db4.data());
    tk::set_num_threads(nt);
    TK_EXPECT(da3 == da4 && db3 == db4 && dx3 == dx4, "dA %d dB %d dx %d: bits the same on 1 and %d threads (M=%lld)",
              (int)(da3 == da4), (int)(db3 == db4), (int)(dx3 == dx4), std::max(3, nt), (long long)M);
  }
}

// The bf16-weight variant (bf16 compute): the base products round x and dy to bf16 and read W's
// bf16 copy; the adapter path stays f32. Checked against the double reference run on the same
// rounded operands: y's base on round(x) round(W) with the adapter on the unrounded dropped x; dx's
// base on round(dy) round(W) with the adapter's t = dy B unrounded. Shapes cover both weight
// layouts, dropout, rank 0, no bias, and a product the threads split by columns (round-A's
// round-once path). Then a null dx: dA and dB keep their bits, for bf16 and f32 weights.
TK_TEST(lora_bf16_weight_matches_reference_on_rounded_operands) {
  auto round_vec = [](const std::vector<float>& v) {
    std::vector<float> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = tk::bf16_to_f32(tk::f32_to_bf16(v[i]));
    return r;
  };
  const int nt = tk::num_threads();
  tk::set_num_threads(std::max(2, nt));
  for (auto [M, in, out, r, inOut, p, with_bias] : {std::tuple{1, 1, 1, 1, false, 0.5f, true}, {65, 33, 17, 3, true, 0.1f, true},
                                                    {130, 70, 45, 8, false, 0.0f, false}, {129, 40, 30, 0, true, 0.2f, true},
                                                    {96, 256, 768, 8, true, 0.05f, true}, {300, 96, 64, 4, false, 0.0f, true}}) {
    LoraShape s = shape(M, in, out, r, inOut);
    Inputs inp = make_inputs(s, true, 300 + M);
    const float* bias = with_bias ? inp.bias.data() : nullptr;
    const int64_t nx = s.M * s.in;
    std::vector<uint16_t> wb(inp.w.size());
    for (size_t i = 0; i < wb.size(); ++i) wb[i] = tk::f32_to_bf16(inp.w[i]);
    const std::vector<float> xr = round_vec(inp.x), wr = round_vec(inp.w), dyr = round_vec(inp.dy);
    std::vector<float> xd(nx);
    std::vector<uint8_t> mask_ref(nx);
    tk::cpu::dropout(inp.x.data(), xd.data(), mask_ref.data(), nx, p, 91);
    std::vector<float> y1(s.M * s.out, 7.f), y2 = y1, xa1(s.M * s.r, 7.f), xa2 = xa1;
    std::vector<uint8_t> mask(nx, 9);
    tk::cpu::lora_linear_forward_dropout_bf16w(s, inp.x.data(), wb.data(), bias, inp.a.data(), inp.b.data(), p, 91,
                                               p > 0 ? mask.data() : nullptr, y1.data(), xa1.data());
    tk::cpu::lora_linear_forward_reference(s, xr.data(), xd.data(), wr.data(), bias, inp.a.data(), inp.b.data(), y2.data(),
                                           xa2.data());
    if (p > 0) TK_EXPECT(mask == mask_ref, "bf16 weight: mask == the dropout kernel's (M=%lld)", (long long)M);
    std::vector<float> dx1(nx, 7.f), dxb(nx), dxd(nx), scratch(nx), da1(s.r * s.in, 7.f), da2 = da1, db1(s.out * s.r, 7.f), db2 = db1;
    tk::cpu::lora_linear_backward_dropout_bf16w(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, wb.data(),
                                                inp.a.data(), inp.b.data(), xa1.data(), dx1.data(), da1.data(), db1.data());
    std::vector<float> da_unused(s.r * s.in), db_unused(s.out * s.r);
    // the base part from the rounded dy, the adapter's parts from dy itself
    tk::cpu::lora_linear_backward_reference(s, dyr.data(), xd.data(), wr.data(), inp.a.data(), inp.b.data(), xa2.data(),
                                            dxb.data(), scratch.data(), da_unused.data(), db_unused.data(), false);
    tk::cpu::lora_linear_backward_reference(s, inp.dy.data(), xd.data(), wr.data(), inp.a.data(), inp.b.data(), xa2.data(),
                                            scratch.data(), dxd.data(), da2.data(), db2.data(), false);
    for (int64_t e = 0; e < nx; ++e) dxb[e] += (mask_ref[e] ? dxd[e] / (1 - p) : 0.0f);
    const double atol_sum = std::max(1e-4, 2e-6 * static_cast<double>(M));
    const double ry = tk::test::worst_ratio(y1.data(), y2.data(), y1.size(), 1e-4, 1e-4);
    const double rxa = tk::test::worst_ratio(xa1.data(), xa2.data(), xa1.size(), 1e-4, 1e-4);
    const double rdx = tk::test::worst_ratio(dx1.data(), dxb.data(), dx1.size(), 1e-4, 1e-4);
    const double rda = tk::test::worst_ratio(da1.data(), da2.data(), da1.size(), atol_sum, 1e-4);
    const double rdb = tk::test::worst_ratio(db1.data(), db2.data(), db1.size(), atol_sum, 1e-4);
    TK_EXPECT(ry <= 1 && rxa <= 1 && rdx <= 1 && rda <= 1 && rdb <= 1,
              "bf16 weight: y %.3g xa %.3g dx %.3g dA %.3g dB %.3g at M=%lld in=%lld out=%lld r=%lld p=%.2f", ry, rxa, rdx, rda,
              rdb, (long long)M, (long long)in, (long long)out, (long long)r, p);
    // no dx: the same dA and dB bits, bf16 and f32 weights
    std::vector<float> da3(s.r * s.in), db3(s.out * s.r);
    tk::cpu::lora_linear_backward_dropout_bf16w(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, wb.data(),
                                                inp.a.data(), inp.b.data(), xa1.data(), nullptr, da3.data(), db3.data());
    TK_EXPECT(da3 == da1 && db3 == db1, "bf16 weight, no dx: dA %d dB %d bits kept (M=%lld)", (int)(da3 == da1), (int)(db3 == db1), (long long)M);
    std::vector<float> dx4(nx), da4(s.r * s.in), db4(s.out * s.r), da5 = da4, db5 = db4;
    tk::cpu::lora_linear_backward_dropout_f32(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, inp.w.data(),
                                              inp.a.data(), inp.b.data(), xa1.data(), dx4.data(), da4.data(), db4.data());
    tk::cpu::lora_linear_backward_dropout_f32(s, inp.dy.data(), inp.x.data(), p > 0 ? mask.data() : nullptr, p, inp.w.data(),
                                              inp.a.data(), inp.b.data(), xa1.data(), nullptr, da5.data(), db5.data());
    TK_EXPECT(da5 == da4 && db5 == db4, "f32 weight, no dx: dA %d dB %d bits kept (M=%lld)", (int)(da5 == da4), (int)(db5 == db4), (long long)M);
  }
  tk::set_num_threads(nt);
}
