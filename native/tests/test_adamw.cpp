// AdamW: a hand-computed two-step sequence (PyTorch AdamW), fast vs reference at awkward sizes.
#include <cmath>
#include <vector>

#include "../cpu/adamw.h"
#include "test_harness.h"

using namespace tk::cpu;
using tk::test::randn;

TK_TEST(adamw_two_steps_by_hand) {
  // One parameter p0 = 1, lr 0.1, betas (0.9, 0.999), eps 1e-8, wd 0.1, grads 0.5 then -0.25.
  // step 1: p = 1 * (1 - 0.01) = 0.99; m = 0.05; v = 0.00025
  //         mhat = 0.05 / 0.1 = 0.5; vhat = 0.00025 / 0.001 = 0.25; p = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8)
  double p = 1.0, m = 0, v = 0;
  const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  const double g[2] = {0.5, -0.25};
  for (int t = 1; t <= 2; ++t) {
    p -= lr * wd * p;
    m = b1 * m + (1 - b1) * g[t - 1];
    v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
    double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
  }
  TK_EXPECT(std::fabs(0.99 - 0.1 * 0.5 / (0.5 + 1e-8) - 0.89) < 1e-7, "step-1 arithmetic in the comment");
  std::vector<float> P = {1.0f}, M = {0.0f}, V = {0.0f}, P2 = P, M2 = M, V2 = V;
  for (int t = 1; t <= 2; ++t) {
    AdamWHyper h;
    h.lr = lr; h.beta1 = b1; h.beta2 = b2; h.eps = eps; h.weight_decay = wd; h.step = t;
    float G = static_cast<float>(g[t - 1]);
    adamw(P.data(), &G, M.data(), V.data(), 1, h);
    adamw_reference(P2.data(), &G, M2.data(), V2.data(), 1, h);
  }
  TK_EXPECT(std::fabs(P[0] - p) < 1e-6, "fast p after 2 steps %.9g vs %.9g", P[0], p);
  TK_EXPECT(std::fabs(P2[0] - p) < 1e-6, "reference p after 2 steps %.9g vs %.9g", P2[0], p);
  TK_EXPECT(std::fabs(M[0] - m) < 1e-7 * std::fabs(m) * 10 && std::fabs(V[0] - v) < 1e-6 * v, "moments m %.9g v %.9g",
            M[0], V[0]);
}

TK_TEST(adamw_matches_reference) {
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(33), int64_t(1000), int64_t(100003)}) {
    auto p1 = randn(n, 1), g = randn(n, 2);
    auto m1 = randn(n, 3, 0.1f), v1 = randn(n, 4, 0.1f);
    for (auto& x : v1) x = x * x;
    auto p2 = p1, m2 = m1, v2 = v1;
    AdamWHyper h;
    h.lr = 3e-4; h.weight_decay = 0.05; h.step = 7;
    adamw(p1.data(), g.data(), m1.data(), v1.data(), n, h);
    adamw_reference(p2.data(), g.data(), m2.data(), v2.data(), n, h);
    TK_EXPECT_CLOSE(p1.data(), p2.data(), n, 1e-7, 1e-6);
    TK_EXPECT_CLOSE(m1.data(), m2.data(), n, 1e-7, 1e-6);  // f32 m = b1 m + (1-b1) g may cancel
    TK_EXPECT_CLOSE(v1.data(), v2.data(), n, 1e-10, 1e-6);
  }
}
