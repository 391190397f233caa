// Reductions and argmax: fast vs reference over (outer, n, inner) at awkward sizes, NaN, empty.
#include <cmath>
#include <limits>
#include <vector>

#include "../cpu/reduce.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;

TK_TEST(reduce_matches_reference) {
  const int64_t shapes[][3] = {{1, 1, 1},  {1, 7, 1},    {7, 33, 1},  {3, 1000, 1}, {1, 100003, 1},
                               {5, 7, 3},  {2, 33, 129}, {1, 3, 1030}, {129, 17, 7}, {4, 257, 600}};
  for (auto& s : shapes)
    for (int op = 0; op < kNumReduceOps; ++op) {
      int64_t outer = s[0], n = s[1], inner = s[2];
      auto x = randn(outer * n * inner, 5 + op, 3.0f);
      std::vector<float> o1(outer * inner), o2(outer * inner);
      reduce(ReduceOp(op), x.data(), o1.data(), outer, n, inner);
      reduce_reference(ReduceOp(op), x.data(), o2.data(), outer, n, inner);
      TK_EXPECT_CLOSE(o1.data(), o2.data(), o1.size(), 1e-6, 1e-6);
    }
}

TK_TEST(reduce_nan_and_empty) {
  std::vector<float> x = {1, NAN, 3, 4, 5, 6};
  float o[2];
  reduce(ReduceOp::Max, x.data(), o, 2, 3, 1);
  TK_EXPECT(std::isnan(o[0]) && o[1] == 6, "max NaN propagation: %g %g", o[0], o[1]);
  reduce(ReduceOp::Min, x.data(), o, 2, 3, 1);
  TK_EXPECT(std::isnan(o[0]) && o[1] == 4, "min NaN propagation");
  reduce(ReduceOp::Sum, x.data(), o, 1, 0, 2);
  TK_EXPECT(o[0] == 0 && o[1] == 0, "sum of empty axis = 0");
  reduce(ReduceOp::Mean, x.data(), o, 1, 0, 2);
  TK_EXPECT(std::isnan(o[0]), "mean of empty axis = NaN (PyTorch)");
  // long sums: accumulation in double keeps 1e-7 relative where f32 would drift
  std::vector<float> ones(1 << 22, 0.1f);
  reduce(ReduceOp::Sum, ones.data(), o, 1, ones.size(), 1);
  double want = 0.1f * static_cast<double>(ones.size());
  TK_EXPECT(std::fabs(o[0] - want) / want < 1e-6, "long sum %.9g vs %.9g", o[0], want);
  reduce(ReduceOp::Mean, ones.data(), o, 1, ones.size(), 1);
  TK_EXPECT(o[0] == 0.1f, "mean %.9g", o[0]);
}

TK_TEST(argmax_matches_reference) {
  for (int64_t cols : {int64_t(1), int64_t(7), int64_t(33), int64_t(1000), int64_t(50257)})
    for (int64_t rows : {int64_t(1), int64_t(5), int64_t(64)}) {
      auto x = randn(rows * cols, rows + cols);
      std::vector<int32_t> a(rows), b(rows);
      argmax(x.data(), a.data(), rows, cols);
      argmax_reference(x.data(), b.data(), rows, cols);
      TK_EXPECT(a == b, "rows %lld cols %lld", (long long)rows, (long long)cols);
    }
  std::vector<float> t = {1, 5, 5, 2, /**/ 0, NAN, 9, NAN, /**/ -1, -1, -1, -1};
  std::vector<int32_t> o(3), r(3);
  argmax(t.data(), o.data(), 3, 4);
  argmax_reference(t.data(), r.data(), 3, 4);
  TK_EXPECT(o[0] == 1 && o[1] == 1 && o[2] == 0, "ties -> first, NaN -> first NaN: %d %d %d", o[0], o[1], o[2]);
  TK_EXPECT(o == r, "reference agrees on edges");
}
