// f32 -> bf16 rounding on the two paths that replaced scalar loops: cast() (a vectorised,
// branch-free loop) against core/dtype.h's f32_to_bf16 for every class of input, and
// gemm_bf16_round_a (A rounded while it is packed) against cast-then-gemm_bf16, bit for bit, on
// every ISA table, both layouts of A, awkward sizes and sizes that cross the cache blocks.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/dtype.h"
#include "../cpu/copy.h"
#include "../cpu/gemm.h"
#include "../cpu/gemm_internal.h"
#include "test_harness.h"

namespace {
using tk::cpu::GemmShape;

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Random bit patterns with the edge cases of rounding mixed in: ties with an even and an odd
// kept part, values one ulp either side of a tie, denormals, zeros, the largest finite value
// (rounds to inf), infinities, quiet and signalling NaNs whose payload would carry into the
// exponent if it were rounded like a number.
std::vector<float> edge_values(size_t n, uint64_t seed) {
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x00008000u, 0x00018000u,
                               0x3f808000u, 0x3f818000u, 0x3f807fffu, 0x3f808001u, 0x7f7fffffu, 0xff7f8000u,
                               0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u, 0x7fbfffffu,
                               0xff80ffffu, 0x7fffffffu, 0x477fe000u, 0xc2aa8000u};
  std::mt19937_64 g(seed);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = g();
    if (r % 4 == 0) v[i] = from_bits(specials[(r >> 8) % (sizeof(specials) / sizeof(specials[0]))]);
    else if (r % 4 == 1) v[i] = from_bits(static_cast<uint32_t>(r >> 32));  // any bits at all
    else v[i] = from_bits((static_cast<uint32_t>(r >> 32) & 0xffff0000u) | 0x8000u);  // an exact tie
  }
  return v;
}

// Finite values for products: normal magnitudes around 1 with the low bits at or near a tie, and
// some denormals (which a vcvtne*ps2bf16 rounding would flush to zero).
std::vector<float> finite_edge_values(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t u;
    const float x = d(g);
    std::memcpy(&u, &x, 4);
    switch (g() % 5) {
      case 0: u = (u & 0xffff0000u) | 0x8000u; break;  // tie
      case 1: u = (u & 0xffff0000u) | 0x7fffu; break;  // just below a tie
      case 2: u = (u & 0x800fffffu); break;            // a denormal
      default: break;
    }
    v[i] = from_bits(u);
  }
  return v;
}

GemmShape shape(int64_t M, int64_t N, int64_t K, bool ta, bool tb, int64_t pad) {
  GemmShape s;
  s.M = M; s.N = N; s.K = K;
  s.transA = ta; s.transB = tb;
  s.lda = (ta ? M : K) + pad; s.ldb = (tb ? K : N) + pad; s.ldc = N + pad;
  return s;
}

}  // namespace

TK_TEST(cast_f32_to_bf16_matches_scalar_rounding) {
  // 200003 elements cross the cast's 65536-element thread grain; odd offsets and lengths leave a
  // vector loop's tail and an unaligned start.
  const auto src = edge_values(200003, 7);
  for (size_t off : {size_t{0}, size_t{1}, size_t{3}}) {
    for (size_t n : {size_t{1}, size_t{15}, size_t{17}, size_t{64}, size_t{1000}, size_t{200000}}) {
      std::vector<uint16_t> out(n + 2, 0xABCD);
      tk::cpu::cast(src.data() + off, tk::DType::F32, out.data(), tk::DType::BF16, static_cast<int64_t>(n));
      size_t bad = 0, first = 0;
      for (size_t i = 0; i < n; ++i)
        if (out[i] != tk::f32_to_bf16(src[off + i]) && bad++ == 0) first = i;
      TK_EXPECT(bad == 0, "off %zu n %zu: %zu mismatches, first at %zu (input 0x%08x -> 0x%04x, expected 0x%04x)", off, n,
                bad, first, [&] { uint32_t u; std::memcpy(&u, &src[off + first], 4); return u; }(), out[first],
                tk::f32_to_bf16(src[off + first]));
      TK_EXPECT(out[n] == 0xABCD && out[n + 1] == 0xABCD, "off %zu n %zu: wrote past the end", off, n);
    }
  }
}

TK_TEST(cast_bf16_to_f32_is_exact_widening) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> out(65536 + 1, 1234.5f);
  tk::cpu::cast(all.data() + 1, tk::DType::BF16, out.data(), tk::DType::F32, 65535);
  size_t bad = 0;
  for (uint32_t i = 0; i < 65535; ++i) {
    uint32_t u;
    std::memcpy(&u, &out[i], 4);
    if (u != (static_cast<uint32_t>(i + 1) << 16)) ++bad;
  }
  TK_EXPECT(bad == 0, "%zu of 65535 bf16 values widened wrongly", bad);
  TK_EXPECT(out[65535] == 1234.5f, "wrote past the end");
}

TK_TEST(gemm_bf16_round_a_is_cast_then_gemm_bf16) {
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  // (name, round-A serial, the bf16 serial it must equal); null = the public entries (dispatch,
  // thread split).
  struct Path { const char* name; SerialBF16RoundA round_a; SerialBF16 bf16; };
  std::vector<Path> paths = {{"dispatch", nullptr, nullptr},
                             {"portable", isa_gemm_portable().bf16_round_a, isa_gemm_portable().bf16}};
  if (f.avx2_fma) paths.push_back({"avx2", isa_gemm_avx2().bf16_round_a, isa_gemm_avx2().bf16});
  if (f.avx512f) paths.push_back({"avx512-via-f32", &gemm_bf16_round_a_avx512_via_f32, &gemm_bf16_avx512_via_f32});
  if (f.avx512_bf16) paths.push_back({"avx512-bf16", isa_gemm_avx512().bf16_round_a, isa_gemm_avx512().bf16});
  // microtile edges (14 x 32, 6 x 16), odd K (a half-filled last pair), K past the bf16 KC (768)
  // and M past MC (168); the dispatch path splits the larger ones over threads
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {14, 32, 2}, {15, 31, 33}, {33, 7, 129}, {29, 70, 31},
                              {170, 190, 801}, {300, 64, 1600}};
  uint64_t seed = 900;
  for (const Path& p : paths) {
    TK_EXPECT(p.name[0] == 'd' || p.round_a != nullptr, "%s: the table has no bf16_round_a entry", p.name);
    if (p.name[0] != 'd' && !p.round_a) continue;
    for (auto& sz : sizes)
      for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
        if (p.name[0] != 'd' && sz[0] * sz[1] * sz[2] > 20'000'000) continue;  // the big ones once, threaded
        GemmShape s = shape(sz[0], sz[1], sz[2], ta, tb, (seed % 2) ? 3 : 0);
        s.alpha = 1.25f; s.beta = (seed % 3 == 0) ? 0.0f : 0.5f;
        const size_t na = static_cast<size_t>((ta ? s.K : s.M) * s.lda), nb = static_cast<size_t>((tb ? s.N : s.K) * s.ldb);
        const auto A = finite_edge_values(na, seed);
        const auto Bf = tk::test::randn(nb, seed + 1);
        std::vector<uint16_t> Ab(na), B(nb);
        // the scalar rounding, not cast(), so that this test does not lean on the other one's path
        for (size_t i = 0; i < na; ++i) Ab[i] = tk::f32_to_bf16(A[i]);
        for (size_t i = 0; i < nb; ++i) B[i] = tk::f32_to_bf16(Bf[i]);
        const auto C0 = tk::test::randn(static_cast<size_t>(s.M * s.ldc), seed + 2);
        auto C1 = C0, C2 = C0;
        if (p.round_a) {
          p.round_a(s, A.data(), B.data(), C1.data(), &thread_workspace);
          p.bf16(s, Ab.data(), B.data(), C2.data(), &thread_workspace);
        } else {
          tk::cpu::gemm_bf16_round_a(s, A.data(), B.data(), C1.data());
          tk::cpu::gemm_bf16(s, Ab.data(), B.data(), C2.data());
        }
        size_t bad = 0;
        for (size_t i = 0; i < C1.size(); ++i) bad += std::memcmp(&C1[i], &C2[i], 4) != 0;
        TK_EXPECT(bad == 0, "%s M=%lld N=%lld K=%lld tA=%d tB=%d: %zu of %zu elements differ from cast + gemm_bf16",
                  p.name, (long long)s.M, (long long)s.N, (long long)s.K, ta, tb, bad, C1.size());
        ++seed;
      }
  }
}

TK_TEST(gemm_bf16_round_a_keeps_nan_and_inf_rows) {
  // A NaN or inf in a row of A reaches that row of C exactly as through cast + gemm_bf16.
  GemmShape s = shape(20, 40, 37, false, true, 0);
  auto A = tk::test::randn(static_cast<size_t>(s.M * s.K), 1);
  A[3 * s.K + 5] = std::numeric_limits<float>::quiet_NaN();
  A[7 * s.K + 36] = from_bits(0x7f800001u);  // signalling NaN
  A[11 * s.K] = std::numeric_limits<float>::infinity();
  A[12 * s.K + 1] = from_bits(0x7f7fffffu);  // rounds to inf
  const auto Bf = tk::test::randn(static_cast<size_t>(s.N * s.K), 2);
  std::vector<uint16_t> Ab(A.size()), B(Bf.size());
  for (size_t i = 0; i < A.size(); ++i) Ab[i] = tk::f32_to_bf16(A[i]);
  for (size_t i = 0; i < B.size(); ++i) B[i] = tk::f32_to_bf16(Bf[i]);
  std::vector<float> C1(static_cast<size_t>(s.M * s.N)), C2(C1.size());
  tk::cpu::gemm_bf16_round_a(s, A.data(), B.data(), C1.data());
  tk::cpu::gemm_bf16(s, Ab.data(), B.data(), C2.data());
  for (int64_t i = 0; i < s.M; ++i)
    for (int64_t j = 0; j < s.N; ++j) {
      const float a = C1[i * s.N + j], b = C2[i * s.N + j];
      TK_EXPECT((std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, 4) == 0, "C[%lld][%lld] %g vs %g",
                (long long)i, (long long)j, a, b);
    }
  TK_EXPECT(std::isnan(C1[3 * s.N]) && std::isnan(C1[7 * s.N]) && !std::isfinite(C1[12 * s.N]), "NaN/inf rows lost");
}
