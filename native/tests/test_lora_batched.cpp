// Linear with a LoRA adapter per row: the segmented GEMM path against the plain reference, and
// each row against the single-adapter kernel (lora.cpp) run on that row alone, at awkward sizes:
// interleaved and consecutive rows, ranks that differ per slot, a rank-0 slot (an adapter that
// does not target the layer), rows with no adapter, unused slots, one row, no rows.
#include <cmath>
#include <cstdio>
#include <vector>

#include "../core/status.h"
#include "../cpu/lora.h"
#include "../cpu/lora_batched.h"
#include "test_harness.h"

using tk::cpu::LoraBatchedShape;

namespace {

struct Pack {
  std::vector<int32_t> r_off;
  std::vector<float> a, bt, scale;
  int64_t R = 0;
};

// Slots with the given ranks (0 allowed), random A [r, in] and B^T [r, out].
Pack make_pack(const std::vector<int32_t>& ranks, int64_t in, int64_t out, uint64_t seed) {
  Pack p;
  p.r_off.push_back(0);
  for (int32_t r : ranks) p.r_off.push_back(p.r_off.back() + r);
  p.R = p.r_off.back();
  p.a = tk::test::randn(p.R * in, seed, 0.3f);
  p.bt = tk::test::randn(p.R * out, seed + 1, 0.3f);
  for (size_t k = 0; k < ranks.size(); ++k) p.scale.push_back(ranks[k] > 0 ? 8.0f / ranks[k] : 1.0f);
  return p;
}

void check_case(int64_t M, int64_t in, int64_t out, const std::vector<int32_t>& ranks,
                const std::vector<int32_t>& row_slot, bool w_in_out, bool with_bias, uint64_t seed) {
  LoraBatchedShape s;
  s.M = M; s.in = in; s.out = out; s.slots = static_cast<int64_t>(ranks.size()); s.w_in_out = w_in_out;
  Pack p = make_pack(ranks, in, out, seed);
  s.R = p.R;
  auto x = tk::test::randn(M * in, seed + 2);
  auto w = tk::test::randn(out * in, seed + 3, 0.3f);
  auto bias = tk::test::randn(out, seed + 4);
  const float* b = with_bias ? bias.data() : nullptr;
  std::vector<float> fast(M * out, 7.f), ref(M * out, 7.f);
  tk::cpu::lora_batched_linear_forward_f32(s, x.data(), w.data(), b, row_slot.data(), p.a.data(), p.bt.data(),
                                           p.r_off.data(), p.scale.data(), fast.data());
  tk::cpu::lora_batched_linear_forward_reference(s, x.data(), w.data(), b, row_slot.data(), p.a.data(), p.bt.data(),
                                                 p.r_off.data(), p.scale.data(), ref.data());
  const double r_ref = tk::test::worst_ratio(fast.data(), ref.data(), fast.size(), 1e-4, 1e-4);
  TK_EXPECT(r_ref <= 1, "fast vs reference %.3g at M=%lld in=%lld out=%lld slots=%lld inOut=%d bias=%d", r_ref,
            (long long)M, (long long)in, (long long)out, (long long)s.slots, (int)w_in_out, (int)with_bias);
  // Each row alone through the single-adapter kernel: y = x W^T + bias + s (x A^T) B^T.
  for (int64_t i = 0; i < M; ++i) {
    const int32_t a = row_slot[i];
    tk::cpu::LoraShape one;
    one.M = 1; one.in = in; one.out = out; one.w_in_out = w_in_out;
    one.r = a >= 0 ? p.r_off[a + 1] - p.r_off[a] : 0;
    one.scale = a >= 0 ? p.scale[a] : 1.0f;
    std::vector<float> A(one.r * in), B(out * one.r), y(out), xa(one.r);
    for (int64_t k = 0; k < one.r; ++k) {
      for (int64_t c = 0; c < in; ++c) A[k * in + c] = p.a[(p.r_off[a] + k) * in + c];
      for (int64_t o = 0; o < out; ++o) B[o * one.r + k] = p.bt[(p.r_off[a] + k) * out + o];
    }
    tk::cpu::lora_linear_forward_f32(one, x.data() + i * in, x.data() + i * in, w.data(), b, A.data(), B.data(),
                                     y.data(), xa.data());
    const double r_alone = tk::test::worst_ratio(fast.data() + i * out, y.data(), out, 1e-4, 1e-4);
    TK_EXPECT(r_alone <= 1, "row %lld (slot %d) vs alone %.3g at M=%lld in=%lld out=%lld", (long long)i, a, r_alone,
              (long long)M, (long long)in, (long long)out);
  }
}

bool throws(const LoraBatchedShape& s, const std::vector<int32_t>& row_slot, const std::vector<int32_t>& r_off,
            const std::vector<float>& scale) {
  try {
    tk::cpu::check_lora_batched(s, row_slot.data(), r_off.data(), scale.data());
  } catch (const tk::Error&) {
    return true;
  }
  return false;
}

}  // namespace

TK_TEST(lora_batched_matches_reference_and_rows_alone) {
  uint64_t seed = 11;
  for (int inout = 0; inout < 2; ++inout)
    for (int bias = 0; bias < 2; ++bias) {
      // interleaved slots with ranks 4, 1, 7, a rank-0 slot and base rows (-1)
      check_case(9, 33, 65, {4, 1, 7, 0}, {0, 2, -1, 1, 0, 3, 2, -1, 0}, inout, bias, seed++);
      // consecutive runs (one sequence's prompt per slot) and an unused slot
      check_case(12, 64, 48, {8, 16, 2}, {1, 1, 1, 1, 1, 0, 0, 0, 0, -1, -1, -1}, inout, bias, seed++);
      // one row; every row without an adapter; a single slot for all rows
      check_case(1, 17, 5, {3}, {0}, inout, bias, seed++);
      check_case(5, 16, 16, {2, 2}, {-1, -1, -1, -1, -1}, inout, bias, seed++);
      check_case(70, 40, 130, {5}, std::vector<int32_t>(70, 0), inout, bias, seed++);
      // no slots at all, and no rows
      check_case(4, 8, 8, {}, {-1, -1, -1, -1}, inout, bias, seed++);
      check_case(0, 8, 8, {2}, {}, inout, bias, seed++);
    }
}

TK_TEST(lora_batched_validation) {
  LoraBatchedShape s;
  s.M = 2; s.in = 4; s.out = 3; s.slots = 2; s.R = 5;
  const std::vector<float> scale{1.0f, 2.0f};
  TK_EXPECT(!throws(s, {0, 1}, {0, 2, 5}, scale), "a valid table passes");
  TK_EXPECT(throws(s, {0, 2}, {0, 2, 5}, scale), "a slot past the table");
  TK_EXPECT(throws(s, {-2, 0}, {0, 2, 5}, scale), "a slot below -1");
  TK_EXPECT(throws(s, {0, 1}, {1, 2, 5}, scale), "rOff[0] != 0");
  TK_EXPECT(throws(s, {0, 1}, {0, 3, 2}, scale), "rOff decreasing");
  TK_EXPECT(throws(s, {0, 1}, {0, 2, 4}, scale), "rOff[slots] != R");
  TK_EXPECT(throws(s, {0, 1}, {0, 2, 5}, {1.0f, INFINITY}), "a non-finite scale");
  LoraBatchedShape neg = s;
  neg.M = -1;
  TK_EXPECT(throws(neg, {0, 1}, {0, 2, 5}, scale), "a negative size");
}
