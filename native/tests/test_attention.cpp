// Attention: the tiled fast path against the plain reference at awkward sizes (tile edges,
// grouped-query, causal with a KV-cache offset, key padding, fully masked rows), and both
// backwards against central finite differences of an independent double-precision forward.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "../cpu/attention.h"
#include "test_harness.h"

using tk::cpu::AttentionShape;

namespace {

struct Inputs {
  std::vector<float> q, k, v, dout;
  std::vector<int32_t> mask;  // empty = no mask
};

// Random inputs; the mask drops about a third of the keys, and for b = 1 every key when
// `mask_all_b1` (rows with nothing to attend to).
Inputs make_inputs(const AttentionShape& s, bool with_mask, bool mask_all_b1, uint64_t seed) {
  Inputs in;
  in.q = tk::test::randn(s.B * s.Hq * s.Tq * s.D, seed);
  in.k = tk::test::randn(s.B * s.Hkv * s.Tk * s.D, seed + 1);
  in.v = tk::test::randn(s.B * s.Hkv * s.Tk * s.D, seed + 2);
  in.dout = tk::test::randn(s.B * s.Hq * s.Tq * s.D, seed + 3);
  if (with_mask) {
    auto r = tk::test::randn(s.B * s.Tk, seed + 4);
    in.mask.resize(s.B * s.Tk);
    for (int64_t i = 0; i < s.B * s.Tk; ++i) in.mask[i] = r[i] > -0.43f ? 1 : 0;
    if (mask_all_b1 && s.B > 1)
      for (int64_t j = 0; j < s.Tk; ++j) in.mask[s.Tk + j] = 0;
  }
  return in;
}

const int32_t* mask_ptr(const Inputs& in) { return in.mask.empty() ? nullptr : in.mask.data(); }

bool all_finite(const std::vector<float>& x) {
  for (float f : x)
    if (!std::isfinite(f)) return false;
  return true;
}

// lse may hold -inf (fully masked rows): both must agree on which rows, the rest be close.
bool lse_close(const std::vector<float>& a, const std::vector<float>& b, double tol) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isinf(a[i]) || std::isinf(b[i])) {
      if (a[i] != b[i]) return false;
    } else if (std::fabs(a[i] - b[i]) > tol * (1 + std::fabs(b[i]))) {
      return false;
    }
  }
  return true;
}

void check_fast_vs_reference(const AttentionShape& s, bool with_mask, uint64_t seed) {
  const int before = tk::test::failures();
  Inputs in = make_inputs(s, with_mask, true, seed);
  const size_t nq = s.B * s.Hq * s.Tq * s.D, nk = s.B * s.Hkv * s.Tk * s.D, nl = s.B * s.Hq * s.Tq;
  std::vector<float> o1(nq, 7.f), o2(nq, 7.f), l1(nl, 7.f), l2(nl, 7.f);
  tk::cpu::attention_forward_f32(s, in.q.data(), in.k.data(), in.v.data(), mask_ptr(in), o1.data(), l1.data());
  tk::cpu::attention_forward_reference(s, in.q.data(), in.k.data(), in.v.data(), mask_ptr(in), o2.data(), l2.data());
  const char* what = "B=%lld Hq=%lld Hkv=%lld Tq=%lld Tk=%lld D=%lld causal=%d mask=%d";
#define TK_ATTN_ARGS (long long)s.B, (long long)s.Hq, (long long)s.Hkv, (long long)s.Tq, (long long)s.Tk, \
                     (long long)s.D, (int)s.causal, (int)with_mask
  TK_EXPECT(all_finite(o1), "fast forward output not finite: ");
  TK_EXPECT(tk::test::worst_ratio(o1.data(), o2.data(), nq, 1e-5, 1e-4) <= 1.0, "forward out: ");
  TK_EXPECT(lse_close(l1, l2, 1e-5), "forward lse: ");
  std::vector<float> dq1(nq, 7.f), dk1(nk, 7.f), dv1(nk, 7.f), dq2(nq, 7.f), dk2(nk, 7.f), dv2(nk, 7.f);
  tk::cpu::attention_backward_f32(s, in.q.data(), in.k.data(), in.v.data(), o2.data(), l2.data(), in.dout.data(),
                                  mask_ptr(in), dq1.data(), dk1.data(), dv1.data());
  tk::cpu::attention_backward_reference(s, in.q.data(), in.k.data(), in.v.data(), o2.data(), l2.data(),
                                        in.dout.data(), mask_ptr(in), dq2.data(), dk2.data(), dv2.data());
  TK_EXPECT(all_finite(dq1) && all_finite(dk1) && all_finite(dv1), "fast backward not finite: ");
  double rq = tk::test::worst_ratio(dq1.data(), dq2.data(), nq, 1e-4, 1e-3);
  double rk = tk::test::worst_ratio(dk1.data(), dk2.data(), nk, 1e-4, 1e-3);
  double rv = tk::test::worst_ratio(dv1.data(), dv2.data(), nk, 1e-4, 1e-3);
  TK_EXPECT(rq <= 1.0 && rk <= 1.0 && rv <= 1.0, "backward ratios dq %.3g dk %.3g dv %.3g ", rq, rk, rv);
  if (tk::test::failures() > before) {
    std::fprintf(stderr, "    at ");
    std::fprintf(stderr, what, TK_ATTN_ARGS);
    std::fprintf(stderr, "\n");
  }
#undef TK_ATTN_ARGS
}

// Independent double forward: loss = sum(out * G). Same semantics, written from the math.
double loss_double(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k,
                   const std::vector<double>& v, const std::vector<int32_t>& mask, const std::vector<float>& G) {
  const int64_t D = s.D, group = s.Hq / s.Hkv;
  double loss = 0;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.Hq; ++h)
      for (int64_t i = 0; i < s.Tq; ++i) {
        const int64_t row = (b * s.Hq + h) * s.Tq + i;
        const int64_t kvb = (b * s.Hkv + h / group) * s.Tk;
        std::vector<double> sc;
        std::vector<int64_t> idx;
        for (int64_t j = 0; j < s.Tk; ++j) {
          if (s.causal && j > s.Tk - s.Tq + i) continue;
          if (!mask.empty() && mask[b * s.Tk + j] == 0) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += q[row * D + d] * k[(kvb + j) * D + d];
          sc.push_back(dot * s.scale);
          idx.push_back(j);
        }
        if (sc.empty()) continue;  // output row is 0
        double mx = sc[0];
        for (double x : sc) mx = std::max(mx, x);
        double sum = 0;
        for (double x : sc) sum += std::exp(x - mx);
        for (int64_t d = 0; d < D; ++d) {
          double o = 0;
          for (size_t t = 0; t < sc.size(); ++t) o += std::exp(sc[t] - mx) / sum * v[(kvb + idx[t]) * D + d];
          loss += o * G[row * D + d];
        }
      }
  return loss;
}

// Central differences of loss_double with respect to every element of x (one of q, k, v).
std::vector<double> numeric_grad(const AttentionShape& s, std::vector<double>& q, std::vector<double>& k,
                                 std::vector<double>& v, std::vector<double>& x, const std::vector<int32_t>& mask,
                                 const std::vector<float>& G) {
  const double eps = 1e-5;
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + eps;
    const double lp = loss_double(s, q, k, v, mask, G);
    x[i] = keep - eps;
    const double lm = loss_double(s, q, k, v, mask, G);
    x[i] = keep;
    g[i] = (lp - lm) / (2 * eps);
  }
  return g;
}

void check_against_finite_differences(const AttentionShape& s, bool with_mask, uint64_t seed) {
  Inputs in = make_inputs(s, with_mask, true, seed);
  std::vector<double> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end()), v(in.v.begin(), in.v.end());
  auto gq = numeric_grad(s, q, k, v, q, in.mask, in.dout);
  auto gk = numeric_grad(s, q, k, v, k, in.mask, in.dout);
  auto gv = numeric_grad(s, q, k, v, v, in.mask, in.dout);
  std::vector<float> fq(gq.begin(), gq.end()), fk(gk.begin(), gk.end()), fv(gv.begin(), gv.end());
  const size_t nq = q.size(), nk = k.size(), nl = s.B * s.Hq * s.Tq;
  for (int fast = 0; fast < 2; ++fast) {
    std::vector<float> o(nq), l(nl), dq(nq, 7.f), dk(nk, 7.f), dv(nk, 7.f);
    auto fwd = fast ? tk::cpu::attention_forward_f32 : tk::cpu::attention_forward_reference;
    auto bwd = fast ? tk::cpu::attention_backward_f32 : tk::cpu::attention_backward_reference;
    fwd(s, in.q.data(), in.k.data(), in.v.data(), mask_ptr(in), o.data(), l.data());
    bwd(s, in.q.data(), in.k.data(), in.v.data(), o.data(), l.data(), in.dout.data(), mask_ptr(in), dq.data(),
        dk.data(), dv.data());
    double rq = tk::test::worst_ratio(dq.data(), fq.data(), nq, 1e-4, 1e-3);
    double rk = tk::test::worst_ratio(dk.data(), fk.data(), nk, 1e-4, 1e-3);
    double rv = tk::test::worst_ratio(dv.data(), fv.data(), nk, 1e-4, 1e-3);
    TK_EXPECT(rq <= 1.0 && rk <= 1.0 && rv <= 1.0, "%s vs finite differences: dq %.3g dk %.3g dv %.3g (Hkv=%lld "
              "Tq=%lld Tk=%lld causal=%d mask=%d)", fast ? "fast" : "reference", rq, rk, rv, (long long)s.Hkv,
              (long long)s.Tq, (long long)s.Tk, (int)s.causal, (int)with_mask);
  }
}

AttentionShape shape(int64_t B, int64_t Hq, int64_t Hkv, int64_t Tq, int64_t Tk, int64_t D, bool causal) {
  AttentionShape s;
  s.B = B; s.Hq = Hq; s.Hkv = Hkv; s.Tq = Tq; s.Tk = Tk; s.D = D;
  s.scale = 1.0f / std::sqrt(static_cast<float>(D > 0 ? D : 1));
  s.causal = causal;
  return s;
}

}  // namespace

TK_TEST(attention_fast_matches_reference) {
  // (Tq, Tk): square at tile edges, then query blocks shorter than the keys (KV cache / prefix)
  const int64_t T[][2] = {{1, 1}, {7, 7}, {33, 33}, {129, 129}, {1, 33}, {7, 129}, {33, 130}, {65, 129}};
  uint64_t seed = 100;
  for (auto& t : T)
    for (int64_t D : {8, 64})
      for (int64_t Hkv : {2, 1})
        for (int causal = 0; causal < 2; ++causal)
          for (int m = 0; m < 2; ++m) check_fast_vs_reference(shape(2, 4, Hkv, t[0], t[1], D, causal), m, seed++);
  // non-causal queries may outnumber keys
  check_fast_vs_reference(shape(2, 4, 2, 33, 7, 8, false), true, seed++);
  check_fast_vs_reference(shape(2, 4, 4, 129, 1, 64, false), false, seed++);
  // head sizes that end mid-vector past the first 16 lanes (the tiles' transposes and products)
  check_fast_vs_reference(shape(1, 2, 1, 70, 130, 24, true), true, seed++);
  check_fast_vs_reference(shape(1, 2, 2, 41, 41, 80, false), false, seed++);
}

TK_TEST(attention_fast_matches_reference_across_thread_counts) {
  // The backward picks per-kv-head units or per-query-head partials by thread count: cover both.
  const int keep = tk::num_threads();
  for (int th : {1, 3, 8}) {
    tk::set_num_threads(th);
    check_fast_vs_reference(shape(2, 4, 2, 70, 70, 16, true), true, 900 + th);
    check_fast_vs_reference(shape(1, 8, 2, 40, 100, 16, true), false, 910 + th);
    check_fast_vs_reference(shape(3, 6, 3, 5, 130, 8, false), true, 920 + th);
  }
  tk::set_num_threads(keep);
}

TK_TEST(attention_backward_matches_finite_differences) {
  uint64_t seed = 500;
  for (int64_t Hkv : {2, 1})
    for (int causal = 0; causal < 2; ++causal)
      for (int m = 0; m < 2; ++m) check_against_finite_differences(shape(2, 4, Hkv, 3, 5, 4, causal), m, seed++);
  check_against_finite_differences(shape(1, 2, 1, 4, 2, 3, false), true, seed++);  // Tq > Tk
  check_against_finite_differences(shape(1, 2, 2, 1, 1, 5, true), false, seed++);  // one token
}

TK_TEST(attention_fully_masked_rows_are_zero_without_nan) {
  AttentionShape s = shape(2, 2, 1, 3, 4, 8, true);
  Inputs in = make_inputs(s, true, true, 77);  // b = 1 masks every key
  for (int j = 0; j < 4; ++j) in.mask[j] = j == 3;  // b = 0: only the last key; causal hides it from rows 0..1
  const size_t nq = s.B * s.Hq * s.Tq * s.D, nk = s.B * s.Hkv * s.Tk * s.D;
  for (int fast = 0; fast < 2; ++fast) {
    std::vector<float> o(nq, 7.f), l(s.B * s.Hq * s.Tq, 7.f), dq(nq, 7.f), dk(nk, 7.f), dv(nk, 7.f);
    auto fwd = fast ? tk::cpu::attention_forward_f32 : tk::cpu::attention_forward_reference;
    auto bwd = fast ? tk::cpu::attention_backward_f32 : tk::cpu::attention_backward_reference;
    fwd(s, in.q.data(), in.k.data(), in.v.data(), in.mask.data(), o.data(), l.data());
    bwd(s, in.q.data(), in.k.data(), in.v.data(), o.data(), l.data(), in.dout.data(), in.mask.data(), dq.data(),
        dk.data(), dv.data());
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t i = 0; i < 3; ++i) {
          const int64_t row = (b * 2 + h) * 3 + i;
          const bool empty = b == 1 || i < 2;
          if (empty) {
            TK_EXPECT(std::isinf(l[row]) && l[row] < 0, "lse of an empty row is %g", l[row]);
            for (int64_t d = 0; d < 8; ++d) TK_EXPECT(o[row * 8 + d] == 0.0f && dq[row * 8 + d] == 0.0f, "row %lld", (long long)row);
          } else {
            // one visible key: lse = its score, out = its value
            TK_EXPECT(std::isfinite(l[row]), "lse %g", l[row]);
            for (int64_t d = 0; d < 8; ++d)
              TK_EXPECT(std::fabs(o[row * 8 + d] - in.v[3 * 8 + d]) < 1e-6, "out = v of the only key");
          }
        }
    TK_EXPECT(all_finite(dq) && all_finite(dk) && all_finite(dv), "gradients finite (fast=%d)", fast);
    for (int64_t e = 4 * 8; e < 8 * 8; ++e) TK_EXPECT(dk[e] == 0.0f && dv[e] == 0.0f, "b = 1 gradients are 0");
  }
}

TK_TEST(attention_rejects_bad_shapes) {
  auto throws = [](AttentionShape s) {
    try {
      tk::cpu::check_attention_shape(s);
    } catch (const tk::Error& e) {
      return e.code() == tk::ErrorCode::Shape || e.code() == tk::ErrorCode::Value;
    }
    return false;
  };
  TK_EXPECT(throws(shape(1, 3, 2, 4, 4, 8, false)), "Hq %% Hkv");
  TK_EXPECT(throws(shape(1, 2, 0, 4, 4, 8, false)), "Hkv = 0");
  TK_EXPECT(throws(shape(1, 2, 2, 5, 4, 8, true)), "causal with Tq > Tk");
  TK_EXPECT(throws(shape(-1, 2, 2, 4, 4, 8, false)), "negative B");
  AttentionShape bad = shape(1, 2, 2, 4, 4, 8, false);
  bad.scale = NAN;
  TK_EXPECT(throws(bad), "NaN scale");
  TK_EXPECT(!throws(shape(1, 2, 2, 5, 4, 8, false)), "non-causal Tq > Tk is fine");
}

// ---------------------------------------------------------------------------------------------
// Token-major rows (attention_rows_*): each sequence against the head-major reference run on that
// sequence alone, so the packing (offsets, strides, merged heads) is checked as well as the math.

namespace {

using tk::cpu::AttentionRowsShape;

struct RowsCase {
  std::vector<int32_t> offsets;
  std::vector<float> qkv, dout;
  std::vector<int32_t> mask;  // [N] or empty
};

RowsCase make_rows_case(const std::vector<int32_t>& lens, int64_t H, int64_t D, bool with_mask, uint64_t seed) {
  RowsCase c;
  c.offsets.push_back(0);
  for (int32_t n : lens) c.offsets.push_back(c.offsets.back() + n);
  const int64_t N = c.offsets.back(), C = H * D;
  c.qkv = tk::test::randn(N * 3 * C, seed);
  c.dout = tk::test::randn(N * C, seed + 1);
  if (with_mask) {
    auto r = tk::test::randn(N, seed + 2);
    for (int64_t i = 0; i < N; ++i) c.mask.push_back(r[i] > -0.43f ? 1 : 0);
  }
  return c;
}

// Checks the rows forward and backward on every sequence of `c` against the head-major reference
// (with `last`: last_query_only, the reference's queries being each sequence's last row).
void check_rows_vs_reference(const RowsCase& c, int64_t H, int64_t D, bool causal, const char* what, bool last = false) {
  const int before = tk::test::failures();
  AttentionRowsShape s;
  s.S = static_cast<int64_t>(c.offsets.size()) - 1;
  s.N = c.offsets.back();
  s.H = H;
  s.D = D;
  s.scale = 1.0f / std::sqrt(static_cast<float>(D));
  s.causal = causal;
  s.last_query_only = last;
  const int64_t N = s.N, C = H * D, NQ = last ? s.S : N;
  const int32_t* mask = c.mask.empty() ? nullptr : c.mask.data();
  std::vector<float> out(NQ * C, 7.f), lse(H * NQ, 7.f), dqkv(N * 3 * C, 7.f);
  tk::cpu::attention_rows_forward_f32(s, c.qkv.data(), c.offsets.data(), mask, out.data(), lse.data());
  tk::cpu::attention_rows_backward_f32(s, c.qkv.data(), c.offsets.data(), mask, out.data(), lse.data(), c.dout.data(), dqkv.data());
  for (int64_t seq = 0; seq < s.S; ++seq) {
    const int64_t r0 = c.offsets[seq], T = c.offsets[seq + 1] - r0;
    if (T == 0) continue;
    const int64_t TQ = last ? 1 : T, q0 = T - TQ;  // the sequence's query rows: q0 .. T
    const int64_t qb = last ? seq : r0;             // their first row in out / dout / lse
    AttentionShape hs = shape(1, H, H, TQ, T, D, causal);
    hs.scale = s.scale;
    // this sequence in the head-major layout [1, H, T(Q), D]
    const size_t n = H * T * D, nq = H * TQ * D;
    std::vector<float> q(nq), k(n), v(n), dout(nq), o(nq), l(H * TQ), dq(nq), dk(n), dv(n);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t d = 0; d < D; ++d) {
          const float* row = c.qkv.data() + (r0 + t) * 3 * C + h * D + d;
          if (t >= q0) {
            q[(h * TQ + t - q0) * D + d] = row[0];
            dout[(h * TQ + t - q0) * D + d] = c.dout[(qb + t - q0) * C + h * D + d];
          }
          k[(h * T + t) * D + d] = row[C];
          v[(h * T + t) * D + d] = row[2 * C];
        }
    const int32_t* m = mask ? mask + r0 : nullptr;
    tk::cpu::attention_forward_reference(hs, q.data(), k.data(), v.data(), m, o.data(), l.data());
    tk::cpu::attention_backward_reference(hs, q.data(), k.data(), v.data(), o.data(), l.data(), dout.data(), m, dq.data(),
                                          dk.data(), dv.data());
    // gather ours into the same layout
    std::vector<float> o2(nq), l2(H * TQ), dq2(nq), dk2(n), dv2(n);
    bool other_dq_zero = true;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) {
        if (t >= q0) l2[h * TQ + t - q0] = lse[h * NQ + qb + t - q0];
        for (int64_t d = 0; d < D; ++d) {
          const float* g = dqkv.data() + (r0 + t) * 3 * C + h * D + d;
          if (t >= q0) {
            o2[(h * TQ + t - q0) * D + d] = out[(qb + t - q0) * C + h * D + d];
            dq2[(h * TQ + t - q0) * D + d] = g[0];
          } else {
            other_dq_zero = other_dq_zero && g[0] == 0.0f;
          }
          dk2[(h * T + t) * D + d] = g[C];
          dv2[(h * T + t) * D + d] = g[2 * C];
        }
      }
    TK_EXPECT(tk::test::worst_ratio(o2.data(), o.data(), nq, 1e-5, 1e-4) <= 1.0, "rows forward out");
    TK_EXPECT(lse_close(l2, l, 1e-5), "rows forward lse");
    const double rq = tk::test::worst_ratio(dq2.data(), dq.data(), nq, 1e-4, 1e-3);
    const double rk = tk::test::worst_ratio(dk2.data(), dk.data(), n, 1e-4, 1e-3);
    const double rv = tk::test::worst_ratio(dv2.data(), dv.data(), n, 1e-4, 1e-3);
    TK_EXPECT(rq <= 1.0 && rk <= 1.0 && rv <= 1.0, "rows backward dq %.3g dk %.3g dv %.3g", rq, rk, rv);
    TK_EXPECT(all_finite(dq2) && all_finite(dk2) && all_finite(dv2), "rows backward finite");
    TK_EXPECT(other_dq_zero, "dq is zero at rows that are not queries");
    if (tk::test::failures() > before) {
      std::fprintf(stderr, "    at %s: sequence %lld of %lld rows, H=%lld D=%lld causal=%d mask=%d last=%d\n", what, (long long)seq,
                   (long long)T, (long long)H, (long long)D, (int)causal, (int)(mask != nullptr), (int)last);
      return;
    }
  }
}

}  // namespace

TK_TEST(attention_rows_match_reference_per_sequence) {
  // lengths at and across the 64-query / 128-key tile edges, an empty sequence, one token
  const std::vector<int32_t> lens = {5, 0, 64, 1, 65, 130, 33, 128, 200};
  uint64_t seed = 1300;
  for (int64_t D : {8, 20, 64})
    for (int causal = 0; causal < 2; ++causal)
      for (int m = 0; m < 2; ++m) {
        const int64_t H = D == 64 ? 2 : 3;
        check_rows_vs_reference(make_rows_case(lens, H, D, m, seed++), H, D, causal, "mixed lengths");
      }
  check_rows_vs_reference(make_rows_case({256, 256, 17}, 4, 16, false, seed++), 4, 16, true, "two full blocks");
}

TK_TEST(attention_rows_last_query_only_match_reference) {
  // each sequence's last row alone queries all its rows (sequence classification's last layer)
  const std::vector<int32_t> lens = {5, 64, 1, 65, 130, 33, 200};
  uint64_t seed = 1500;
  for (int64_t D : {8, 20, 64})
    for (int causal = 0; causal < 2; ++causal)
      for (int m = 0; m < 2; ++m) {
        const int64_t H = D == 64 ? 2 : 3;
        check_rows_vs_reference(make_rows_case(lens, H, D, m, seed++), H, D, causal, "last query only", true);
      }
}

TK_TEST(attention_rows_bits_do_not_depend_on_thread_count) {
  const RowsCase c = make_rows_case({70, 3, 129, 64, 200, 1}, 3, 16, true, 1400);
  AttentionRowsShape s;
  s.S = 6;
  s.N = c.offsets.back();
  s.H = 3;
  s.D = 16;
  s.scale = 0.25f;
  s.causal = true;
  const int64_t C = 48;
  const int keep = tk::num_threads();
  std::vector<float> out0, lse0, d0;
  for (int th : {1, 2, 3, 8}) {
    tk::set_num_threads(th);
    std::vector<float> out(s.N * C), lse(s.H * s.N), d(s.N * 3 * C);
    tk::cpu::attention_rows_forward_f32(s, c.qkv.data(), c.offsets.data(), c.mask.data(), out.data(), lse.data());
    tk::cpu::attention_rows_backward_f32(s, c.qkv.data(), c.offsets.data(), c.mask.data(), out.data(), lse.data(), c.dout.data(), d.data());
    if (out0.empty()) {
      out0 = out; lse0 = lse; d0 = d;
    } else {
      TK_EXPECT(std::memcmp(out.data(), out0.data(), out.size() * 4) == 0 && std::memcmp(d.data(), d0.data(), d.size() * 4) == 0 &&
                std::memcmp(lse.data(), lse0.data(), lse.size() * 4) == 0, "%d threads differ from 1", th);
    }
  }
  tk::set_num_threads(keep);
}

TK_TEST(attention_rows_rejects_bad_offsets) {
  auto throws = [](std::vector<int32_t> off, int64_t N) {
    AttentionRowsShape s;
    s.S = static_cast<int64_t>(off.size()) - 1;
    s.N = N;
    s.H = 1;
    s.D = 4;
    try {
      tk::cpu::check_attention_rows_shape(s, off.data());
    } catch (const tk::Error& e) {
      return e.code() == tk::ErrorCode::Shape;
    }
    return false;
  };
  TK_EXPECT(throws({0, 5, 3, 8}, 8), "decreasing offsets");
  TK_EXPECT(throws({1, 5, 8}, 8), "first offset not 0");
  TK_EXPECT(throws({0, 5, 7}, 8), "last offset not N");
  TK_EXPECT(!throws({0, 5, 5, 8}, 8), "an empty sequence is fine");
  AttentionRowsShape last;
  last.S = 2;
  last.N = 5;
  last.H = 1;
  last.D = 4;
  last.last_query_only = true;
  const int32_t empty_second[] = {0, 5, 5};
  bool threw = false;
  try {
    tk::cpu::check_attention_rows_shape(last, empty_second);
  } catch (const tk::Error& e) {
    threw = e.code() == tk::ErrorCode::Shape && std::string(e.what()).find("lastQueryOnly") != std::string::npos;
  }
  TK_EXPECT(threw, "an empty sequence has no last row to query");
}
