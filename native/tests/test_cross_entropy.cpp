// Cross-entropy: fast vs reference, ignore index -100, all-ignored batches, large / masked
// logits, bad labels, backward vs finite differences in double.
#include <cmath>
#include <limits>
#include <vector>

#include "../core/status.h"
#include "../cpu/cross_entropy.h"
#include "finite_diff.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;
using tk::test::VecD;

namespace {
// per-row losses in double
VecD ce_double(const VecD& x, const std::vector<int32_t>& lab, int64_t rows, int64_t classes, int ignore) {
  VecD loss(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    if (lab[r] == ignore) continue;
    double m = -INFINITY, s = 0;
    for (int64_t c = 0; c < classes; ++c) m = std::max(m, x[r * classes + c]);
    for (int64_t c = 0; c < classes; ++c) s += std::exp(x[r * classes + c] - m);
    loss[r] = m + std::log(s) - x[r * classes + lab[r]];
  }
  return loss;
}
}  // namespace

TK_TEST(cross_entropy_matches_reference) {
  const int64_t shapes[][2] = {{1, 1}, {7, 2}, {33, 17}, {5, 1000}, {64, 50257}, {129, 129}};
  for (auto& s : shapes) {
    int64_t rows = s[0], classes = s[1];
    auto x = randn(rows * classes, rows + classes, 5.0f);
    std::vector<int32_t> lab(rows);
    for (int64_t r = 0; r < rows; ++r) lab[r] = r % 4 == 3 ? -100 : static_cast<int32_t>((r * 131) % classes);
    std::vector<float> l1(rows), l2(rows), e1(rows), e2(rows);
    int64_t c1 = cross_entropy(x.data(), lab.data(), l1.data(), e1.data(), rows, classes, -100);
    int64_t c2 = cross_entropy_reference(x.data(), lab.data(), l2.data(), e2.data(), rows, classes, -100);
    TK_EXPECT(c1 == c2 && c1 == rows - rows / 4, "counted %lld vs %lld", (long long)c1, (long long)c2);
    TK_EXPECT_CLOSE(l1.data(), l2.data(), rows, 1e-5, 1e-5);
    TK_EXPECT_CLOSE(e1.data(), e2.data(), rows, 1e-5, 1e-6);
    auto dl = randn(rows, 9);
    std::vector<float> d1(x.size()), d2(x.size());
    cross_entropy_backward(x.data(), lab.data(), e2.data(), dl.data(), d1.data(), rows, classes, -100);
    cross_entropy_backward_reference(x.data(), lab.data(), e2.data(), dl.data(), d2.data(), rows, classes, -100);
    TK_EXPECT_CLOSE(d1.data(), d2.data(), d1.size(), 1e-7, 1e-5);
    for (int64_t r = 3; r < rows; r += 4)
      for (int64_t c = 0; c < classes; ++c) TK_EXPECT(d1[r * classes + c] == 0.0f, "ignored row gradient is 0");
  }
}

TK_TEST(cross_entropy_all_ignored_and_edges) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1, 2, 3, /**/ 4, 5, 6};
  std::vector<int32_t> lab = {-100, -100};
  std::vector<float> loss(2, 9), lse(2), d(6, 9), dl = {1, 1};
  TK_EXPECT(cross_entropy(x.data(), lab.data(), loss.data(), lse.data(), 2, 3, -100) == 0, "no counted rows");
  TK_EXPECT(loss[0] == 0 && loss[1] == 0, "ignored losses are 0");
  cross_entropy_backward(x.data(), lab.data(), lse.data(), dl.data(), d.data(), 2, 3, -100);
  for (float v : d) TK_EXPECT(v == 0, "all-ignored gradient is 0");
  // huge and masked logits
  std::vector<float> y = {1e4f, -inf, 1e4f - 2, /**/ -inf, 0, -inf};
  std::vector<int32_t> lab2 = {2, 1};
  cross_entropy(y.data(), lab2.data(), loss.data(), lse.data(), 2, 3, -100);
  double want0 = std::log(1 + std::exp(2.0));  // = lse - x_label with shifted logits {2, 0}
  TK_EXPECT(std::fabs(loss[0] - want0) < 2e-3, "huge logits loss %g vs %g", loss[0], want0);  // f32 spacing at 1e4 ~ 1e-3
  TK_EXPECT(loss[1] == 0, "one live class: loss 0, got %g", loss[1]);
  cross_entropy_backward(y.data(), lab2.data(), lse.data(), dl.data(), d.data(), 2, 3, -100);
  TK_EXPECT(d[1] == 0 && d[3] == 0 && d[5] == 0 && d[4] == 0, "masked classes get 0 gradient");
  // bad labels
  for (int32_t bad : {3, -1, -99}) {
    std::vector<int32_t> l3 = {0, bad};
    bool threw = false;
    try {
      cross_entropy(x.data(), l3.data(), loss.data(), lse.data(), 2, 3, -100);
    } catch (const tk::Error& e) {
      threw = e.code() == tk::ErrorCode::Index && std::string(e.what()).find("row 1") != std::string::npos;
    }
    TK_EXPECT(threw, "label %d throws ERR_INDEX naming row 1", bad);
  }
}

TK_TEST(cross_entropy_backward_matches_finite_differences) {
  const int64_t rows = 4, classes = 5;
  auto x = randn(rows * classes, 3, 2.0f);
  std::vector<int32_t> lab = {1, -100, 4, 0};
  auto dl = randn(rows, 4);
  std::vector<float> loss(rows), lse(rows), d(x.size());
  cross_entropy(x.data(), lab.data(), loss.data(), lse.data(), rows, classes, -100);
  auto want = tk::test::to_float(ce_double(tk::test::to_double(x), lab, rows, classes, -100));
  TK_EXPECT_CLOSE(loss.data(), want.data(), rows, 1e-6, 1e-5);
  cross_entropy_backward(x.data(), lab.data(), lse.data(), dl.data(), d.data(), rows, classes, -100);
  auto g = tk::test::to_float(tk::test::numeric_vjp([&](const VecD& v) { return ce_double(v, lab, rows, classes, -100); },
                                                   tk::test::to_double(x), tk::test::to_double(dl)));
  TK_EXPECT_CLOSE(d.data(), g.data(), g.size(), 1e-5, 1e-4);
}
