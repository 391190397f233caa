// NF4 / FP4 quantization against vectors computed here from the codebook and thresholds of
// REFERENCE.md (ties at midpoints, all-zero blocks, odd lengths, partial last blocks, blocksizes
// 32..4096), the dynamic map against torch's output, double quantization, and the fused NF4
// matmuls against dequantize-then-gemm_f32.
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/cpu_features.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../cpu/gemm.h"
#include "../cpu/nf4.h"
#include "test_harness.h"

namespace {
using namespace tk::cpu;

// Oracle for one NF4 code: the number of fp32 midpoints of adjacent codebook values strictly
// below x (REFERENCE.md), computed independently of nf4.cpp.
uint8_t oracle_nf4(float x) {
  const float* c = nf4_codebook();
  uint8_t code = 0;
  for (int i = 0; i < 15; ++i) {
    const float mid = (c[i] + c[i + 1]) / 2.0f;
    if (x > mid) ++code;
  }
  return code;
}

// Oracle quantizer: absmax per block, x = v * (1/absmax), codes packed high nibble first,
// all-zero block -> code 7, odd tail nibble 0.
void oracle_quantize(const std::vector<float>& w, int bs, std::vector<uint8_t>& packed, std::vector<float>& absmax) {
  const int64_t n = static_cast<int64_t>(w.size());
  packed.assign((n + 1) / 2, 0);
  absmax.assign((n + bs - 1) / bs, 0.0f);
  for (int64_t b = 0; b * bs < n; ++b) {
    float a = 0.0f;
    for (int64_t e = b * bs; e < std::min<int64_t>(n, (b + 1) * bs); ++e) a = std::max(a, std::fabs(w[e]));
    absmax[b] = a;
    for (int64_t e = b * bs; e < std::min<int64_t>(n, (b + 1) * bs); ++e) {
      const uint8_t c = a == 0.0f ? 7 : oracle_nf4(w[e] * (1.0f / a));
      packed[e / 2] |= (e % 2 == 0) ? static_cast<uint8_t>(c << 4) : c;
    }
  }
  // odd n: the last low nibble holds the code of 0.0 (7), as bitsandbytes pads (nf4.h)
  if (n % 2 == 1) packed[n / 2] |= 7;
}

// Values that land exactly on, just below and just above every midpoint (absmax forced to 1 by
// a 1.0 at the start of each block), plus zeros and random values.
std::vector<float> tricky_values(int64_t n, uint64_t seed) {
  auto v = tk::test::randn(n, seed);
  const float* c = nf4_codebook();
  int64_t i = 0;
  for (int64_t e = 0; e < n; ++e) {
    if (e % 64 == 0) { v[e] = 1.0f; continue; }
    const int m = static_cast<int>(i++ % 45);
    const float mid = (c[m / 3] + c[m / 3 + 1]) / 2.0f;
    v[e] = m % 3 == 0 ? mid : m % 3 == 1 ? std::nextafter(mid, 2.0f) : std::nextafter(mid, -2.0f);
    if (i % 7 == 0) v[e] = 0.0f;
  }
  return v;
}

}  // namespace

TK_TEST(nf4_codes_match_thresholds_exactly) {
  // Ties go down: a value exactly on a midpoint takes the lower code.
  const float* c = nf4_codebook();
  for (int i = 0; i < 15; ++i) {
    const float mid = (c[i] + c[i + 1]) / 2.0f;
    std::vector<float> w = {1.0f, mid, std::nextafter(mid, 2.0f), c[i]};
    std::vector<uint8_t> p(2);
    float amax;
    nf4_quantize(w.data(), 4, 64, p.data(), &amax);
    TK_EXPECT(amax == 1.0f, "absmax %g", amax);
    TK_EXPECT(p[0] == (15 << 4 | i), "midpoint %d: byte 0x%02x", i, p[0]);
    TK_EXPECT(p[1] == ((i + 1) << 4 | i), "just above midpoint %d / codebook value: byte 0x%02x", i, p[1]);
  }
  // Even element in the high nibble; an odd count pads the last low nibble with the code of 0.0 (7).
  std::vector<float> w = {-1.0f, 1.0f, 0.0f};
  std::vector<uint8_t> p(2);
  float amax;
  nf4_quantize(w.data(), 3, 64, p.data(), &amax);
  TK_EXPECT(p[0] == 0x0F && p[1] == 0x77, "packing order: %02x %02x", p[0], p[1]);
}

TK_TEST(nf4_quantize_matches_oracle_all_blocksizes) {
  uint64_t seed = 1;
  for (int bs : {32, 64, 128, 256, 512, 1024, 2048, 4096}) {
    for (int64_t n : {1, 2, 31, 63, 64, 65, 127, 1000, 4097, 10001}) {
      auto w = tricky_values(n, seed++);
      // One all-zero block in the middle when there is room.
      if (n >= 3 * bs) std::fill(w.begin() + bs, w.begin() + 2 * bs, 0.0f);
      std::vector<uint8_t> p_ref, p((n + 1) / 2, 0xAA);
      std::vector<float> a_ref, a((n + bs - 1) / bs, -1.0f);
      oracle_quantize(w, bs, p_ref, a_ref);
      nf4_quantize(w.data(), n, bs, p.data(), a.data());
      TK_EXPECT(p == p_ref, "codes differ (bs %d n %lld)", bs, (long long)n);
      TK_EXPECT(a == a_ref, "absmax differs (bs %d n %lld)", bs, (long long)n);
      if (n >= 3 * bs) {
        bool all77 = true;
        for (int64_t j = bs / 2; j < bs; ++j) all77 &= p[j] == 0x77;
        TK_EXPECT(all77 && a[1] == 0.0f, "all-zero block should be 0x77 with absmax 0");
      }
      // Dequantize: codebook[code] * absmax, one fp32 multiply; bf16 rounds that.
      std::vector<float> d(n);
      std::vector<uint16_t> h(n);
      nf4_dequantize(p.data(), a.data(), n, bs, d.data());
      nf4_dequantize_bf16(p.data(), a.data(), n, bs, h.data());
      bool exact = true;
      for (int64_t e = 0; e < n; ++e) {
        const uint8_t code = (e % 2 == 0) ? p[e / 2] >> 4 : p[e / 2] & 0xF;
        const float want = nf4_codebook()[code] * a[e / bs];
        exact &= d[e] == want && h[e] == tk::f32_to_bf16(want);
      }
      TK_EXPECT(exact, "dequantize not codebook*absmax (bs %d n %lld)", bs, (long long)n);
    }
  }
}

TK_TEST(fp4_quantize_roundtrip_and_codes) {
  const float* c = fp4_codebook();
  // Every codebook value (times absmax 1) maps back to its own code (-0 maps to +0).
  std::vector<float> w(16);
  for (int i = 0; i < 16; ++i) w[i] = c[i];
  w[0] = 1.0f;  // keep absmax 1: code 3 is +12/12 = 1
  std::vector<uint8_t> p(8);
  float amax;
  fp4_quantize(w.data(), 16, 64, p.data(), &amax);
  for (int i = 1; i < 16; ++i) {
    const uint8_t code = (i % 2 == 0) ? p[i / 2] >> 4 : p[i / 2] & 0xF;
    const uint8_t want = i == 8 ? 0 : static_cast<uint8_t>(i);
    TK_EXPECT(code == want, "fp4 value %g -> code %d, want %d", c[i], code, want);
  }
  // Random data: dequantized error within half the largest gap (2/12 of absmax at the top).
  auto r = tk::test::randn(1001, 5);
  std::vector<uint8_t> q(501);
  std::vector<float> a(16), d(1001);
  fp4_quantize(r.data(), 1001, 64, q.data(), a.data());
  fp4_dequantize(q.data(), a.data(), 1001, 64, d.data());
  double worst = 0;
  for (int e = 0; e < 1001; ++e) worst = std::max(worst, static_cast<double>(std::fabs(d[e] - r[e]) / a[e / 64]));
  TK_EXPECT(worst <= 2.0 / 12 + 1e-6, "fp4 roundtrip error %g of absmax", worst);
}

TK_TEST(nf4_dynamic_map_matches_bitsandbytes) {
  // create_dynamic_map(signed=True) as bitsandbytes computes it, run on torch 2.13 (CPU):
  //   data = []
  //   for i in range(7):
  //       b = torch.linspace(0.1, 1, 2**i + 1); m = (b[:-1] + b[1:]) / 2.0
  //       data += (10**(-6 + i) * m).tolist() + (-(10**(-6 + i)) * m).tolist()
  //   data += [0, 1.0]; data.sort(); torch.tensor(data, dtype=torch.float32)
  // printed as fp32 bit patterns.
  static const uint32_t kTorch[256] = {
    0xbf7e3333, 0xbf7a999a, 0xbf770000, 0xbf736666, 0xbf6fcccd, 0xbf6c3333, 0xbf68999a, 0xbf650000,
    0xbf616666, 0xbf5dcccd, 0xbf5a3333, 0xbf56999a, 0xbf530000, 0xbf4f6666, 0xbf4bcccd, 0xbf483333,
    0xbf44999a, 0xbf410000, 0xbf3d6666, 0xbf39cccd, 0xbf363334, 0xbf32999a, 0xbf2f0000, 0xbf2b6666,
    0xbf27cccd, 0xbf243334, 0xbf20999a, 0xbf1d0000, 0xbf196666, 0xbf15cccd, 0xbf123334, 0xbf0e999a,
    0xbf0b0000, 0xbf076666, 0xbf03cccc, 0xbf003333, 0xbef93332, 0xbef20000, 0xbeeacccc, 0xbee3999a,
    0xbedc6666, 0xbed53333, 0xbece0000, 0xbec6cccc, 0xbebf999a, 0xbeb86666, 0xbeb13333, 0xbeaa0000,
    0xbea2cccc, 0xbe9b999a, 0xbe946666, 0xbe8d3334, 0xbe860000, 0xbe7d9999, 0xbe6f3333, 0xbe60cccd,
    0xbe526666, 0xbe440000, 0xbe35999a, 0xbe273333, 0xbe18cccd, 0xbe0a6666, 0xbdf80000, 0xbddb3334,
    0xbdc9eb85, 0xbdc428f7, 0xbdbe6667, 0xbdb8a3d7, 0xbdb2e148, 0xbdad1eb8, 0xbda75c2a, 0xbda1999a,
    0xbd9bd70a, 0xbd96147b, 0xbd9051eb, 0xbd8a8f5d, 0xbd84cccd, 0xbd7e147b, 0xbd728f5d, 0xbd670a3d,
    0xbd5b851f, 0xbd500000, 0xbd447ae1, 0xbd38f5c3, 0xbd2d70a3, 0xbd21eb85, 0xbd166667, 0xbd0ae148,
    0xbcfeb852, 0xbce7ae15, 0xbcd0a3d7, 0xbcb9999a, 0xbca28f5d, 0xbc8b851f, 0xbc68f5c3, 0xbc3ae148,
    0xbc1f3b64, 0xbc160418, 0xbc0ccccd, 0xbc039581, 0xbbf4bc6a, 0xbbe24dd3, 0xbbcfdf3b, 0xbbbd70a4,
    0xbbab020d, 0xbb989374, 0xbb8624dd, 0xbb676c8a, 0xbb428f5c, 0xbb1db22d, 0xbaf1a9fc, 0xbaa7ef9d,
    0xba7765ff, 0xba59e83e, 0xba3c6a80, 0xba1eecc1, 0xba016f01, 0xb9c7e283, 0xb98ce705, 0xb923d70b,
    0xb8ba1f4b, 0xb88aefb3, 0xb8378034, 0xb7b24206, 0xb70205ff, 0xb65a1a94, 0xb513a3b7, 0x00000000,
    0x3513a3b7, 0x365a1a94, 0x370205ff, 0x37b24206, 0x38378034, 0x388aefb3, 0x38ba1f4b, 0x3923d70b,
    0x398ce705, 0x39c7e283, 0x3a016f01, 0x3a1eecc1, 0x3a3c6a80, 0x3a59e83e, 0x3a7765ff, 0x3aa7ef9d,
    0x3af1a9fc, 0x3b1db22d, 0x3b428f5c, 0x3b676c8a, 0x3b8624dd, 0x3b989374, 0x3bab020d, 0x3bbd70a4,
    0x3bcfdf3b, 0x3be24dd3, 0x3bf4bc6a, 0x3c039581, 0x3c0ccccd, 0x3c160418, 0x3c1f3b64, 0x3c3ae148,
    0x3c68f5c3, 0x3c8b851f, 0x3ca28f5d, 0x3cb9999a, 0x3cd0a3d7, 0x3ce7ae15, 0x3cfeb852, 0x3d0ae148,
    0x3d166667, 0x3d21eb85, 0x3d2d70a3, 0x3d38f5c3, 0x3d447ae1, 0x3d500000, 0x3d5b851f, 0x3d670a3d,
    0x3d728f5d, 0x3d7e147b, 0x3d84cccd, 0x3d8a8f5d, 0x3d9051eb, 0x3d96147b, 0x3d9bd70a, 0x3da1999a,
    0x3da75c2a, 0x3dad1eb8, 0x3db2e148, 0x3db8a3d7, 0x3dbe6667, 0x3dc428f7, 0x3dc9eb85, 0x3ddb3334,
    0x3df80000, 0x3e0a6666, 0x3e18cccd, 0x3e273333, 0x3e35999a, 0x3e440000, 0x3e526666, 0x3e60cccd,
    0x3e6f3333, 0x3e7d9999, 0x3e860000, 0x3e8d3334, 0x3e946666, 0x3e9b999a, 0x3ea2cccc, 0x3eaa0000,
    0x3eb13333, 0x3eb86666, 0x3ebf999a, 0x3ec6cccc, 0x3ece0000, 0x3ed53333, 0x3edc6666, 0x3ee3999a,
    0x3eeacccc, 0x3ef20000, 0x3ef93332, 0x3f003333, 0x3f03cccc, 0x3f076666, 0x3f0b0000, 0x3f0e999a,
    0x3f123334, 0x3f15cccd, 0x3f196666, 0x3f1d0000, 0x3f20999a, 0x3f243334, 0x3f27cccd, 0x3f2b6666,
    0x3f2f0000, 0x3f32999a, 0x3f363334, 0x3f39cccd, 0x3f3d6666, 0x3f410000, 0x3f44999a, 0x3f483333,
    0x3f4bcccd, 0x3f4f6666, 0x3f530000, 0x3f56999a, 0x3f5a3333, 0x3f5dcccd, 0x3f616666, 0x3f650000,
    0x3f68999a, 0x3f6c3333, 0x3f6fcccd, 0x3f736666, 0x3f770000, 0x3f7a999a, 0x3f7e3333, 0x3f800000,
  };
  const float* m = dynamic_map_signed();
  int diffs = 0;
  for (int i = 0; i < 256; ++i) {
    uint32_t u;
    std::memcpy(&u, &m[i], 4);
    if (u != kTorch[i]) {
      if (diffs < 5) std::fprintf(stderr, "  map[%d] = %08x, torch %08x\n", i, u, kTorch[i]);
      ++diffs;
    }
  }
  TK_EXPECT(diffs == 0, "%d dynamic map values differ from torch", diffs);
  TK_EXPECT(m[0] == -0.992968738f && m[127] == 0.0f && m[255] == 1.0f, "map ends %g %g %g", m[0], m[127], m[255]);
}

TK_TEST(nf4_double_quantization_roundtrip) {
  for (int64_t nb : {1, 5, 256, 257, 1000}) {
    std::vector<float> absmax(nb);
    auto r = tk::test::randn(nb, 9);
    for (int64_t i = 0; i < nb; ++i) absmax[i] = 0.5f + 0.25f * std::fabs(r[i]);
    std::vector<uint8_t> q(nb);
    std::vector<float> nested((nb + 255) / 256), back(nb);
    float offset = -1;
    nf4_double_quantize_absmax(absmax.data(), nb, q.data(), nested.data(), &offset);
    double mean = 0;
    for (float v : absmax) mean += v;
    mean /= nb;
    TK_EXPECT(std::fabs(offset - mean) <= 1e-6, "offset %g mean %g", offset, mean);
    nf4_double_dequantize_absmax(q.data(), nested.data(), offset, nb, back.data());
    const float* code = dynamic_map_signed();
    for (int64_t i = 0; i < nb; ++i) {
      // q[i] is the nearest map value to the normalised input (ties to the lower code).
      const float amax = nested[i / 256];
      const float x = amax == 0.0f ? 0.0f : (absmax[i] - offset) / amax;
      int best = 0;
      for (int j = 1; j < 256; ++j)
        if (std::fabs(x - code[j]) < std::fabs(x - code[best])) best = j;
      TK_EXPECT(q[i] == best, "nb %lld i %lld: code %d, nearest %d", (long long)nb, (long long)i, q[i], best);
      const float want = code[q[i]] * amax + offset;
      TK_EXPECT(back[i] == want, "dequantized absmax %g, want %g", back[i], want);
      if (q[i] != best || back[i] != want) break;
    }
  }
}

TK_TEST(nf4_rejects_bad_arguments) {
  float w[4] = {1, 2, 3, 4}, a[1];
  uint8_t p[2];
  auto throws = [](auto fn) {
    try {
      fn();
    } catch (const tk::Error&) {
      return true;
    }
    return false;
  };
  TK_EXPECT(throws([&] { nf4_quantize(w, -1, 64, p, a); }), "negative n accepted");
  TK_EXPECT(throws([&] { nf4_quantize(w, 4, 0, p, a); }), "blocksize 0 accepted");
  Nf4Weight W{p, a, 2, 2, 64};
  float x[4] = {}, y[4] = {};
  TK_EXPECT(throws([&] { nf4_gemm(x, 2, 1, W, y, 2); }), "ldx < K accepted");
  TK_EXPECT(throws([&] { nf4_gemm_dx(x, 2, 2, W, y, 1); }), "ldx < K (dx) accepted");
}

namespace {
// Fused NF4 matmuls against nf4_dequantize + gemm_f32 (the definition).
void check_fused(int64_t M, int64_t N, int64_t K, int bs, float beta, int64_t pad, uint64_t seed, Quant4Type type) {
  const int64_t n = N * K;
  auto w = tk::test::randn(n, seed);
  std::vector<uint8_t> packed((n + 1) / 2);
  std::vector<float> absmax((n + bs - 1) / bs), wd(n);
  if (type == Quant4Type::NF4) {
    nf4_quantize(w.data(), n, bs, packed.data(), absmax.data());
    nf4_dequantize(packed.data(), absmax.data(), n, bs, wd.data());
  } else {
    fp4_quantize(w.data(), n, bs, packed.data(), absmax.data());
    fp4_dequantize(packed.data(), absmax.data(), n, bs, wd.data());
  }
  Nf4Weight W{packed.data(), absmax.data(), N, K, bs, type};
  const double atol = 2e-5 * std::sqrt(static_cast<double>(std::max(N, K))) * 8;
  {  // forward Y[M,N] = X W^T
    const int64_t ldx = K + pad, ldy = N + pad;
    auto X = tk::test::randn(M * ldx, seed + 1);
    auto Y0 = tk::test::randn(M * ldy, seed + 2);
    auto Y1 = Y0, Y2 = Y0;
    nf4_gemm(X.data(), M, ldx, W, Y1.data(), ldy, beta);
    GemmShape s;
    s.M = M; s.N = N; s.K = K; s.transB = true; s.lda = ldx; s.ldb = K; s.ldc = ldy; s.beta = beta;
    gemm_f32(s, X.data(), wd.data(), Y2.data());
    const double r = tk::test::worst_ratio(Y1.data(), Y2.data(), Y1.size(), atol, 1e-4);
    TK_EXPECT(r <= 1.0, "forward M=%lld N=%lld K=%lld bs=%d beta=%g: ratio %.3g", (long long)M, (long long)N,
              (long long)K, bs, beta, r);
  }
  {  // dX[M,K] = dY W
    const int64_t ldy = N + pad, ldx = K + pad;
    auto dY = tk::test::randn(M * ldy, seed + 3);
    auto dX0 = tk::test::randn(M * ldx, seed + 4);
    auto dX1 = dX0, dX2 = dX0;
    nf4_gemm_dx(dY.data(), M, ldy, W, dX1.data(), ldx, beta);
    GemmShape s;
    s.M = M; s.N = K; s.K = N; s.lda = ldy; s.ldb = K; s.ldc = ldx; s.beta = beta;
    gemm_f32(s, dY.data(), wd.data(), dX2.data());
    const double r = tk::test::worst_ratio(dX1.data(), dX2.data(), dX1.size(), atol, 1e-4);
    TK_EXPECT(r <= 1.0, "dx M=%lld N=%lld K=%lld bs=%d beta=%g: ratio %.3g", (long long)M, (long long)N,
              (long long)K, bs, beta, r);
  }
}
}  // namespace

TK_TEST(nf4_fused_gemm_matches_dequantize_then_gemm) {
  uint64_t seed = 100;
  for (int64_t M : {1, 2, 3, 4, 5, 17, 64})
    for (int64_t N : {1, 33, 100})
      for (int64_t K : {32, 64, 96, 100, 33})
        for (int bs : {32, 64, 4096}) {
          check_fused(M, N, K, bs, (seed % 2) ? 0.0f : 0.5f, (seed % 3 == 0) ? 5 : 0, seed, Quant4Type::NF4);
          ++seed;
        }
  // FP4, larger (threaded, several KC blocks), and a block size below 16.
  check_fused(70, 300, 800, 64, 0.0f, 0, 7, Quant4Type::FP4);
  check_fused(3, 300, 800, 64, 1.0f, 0, 8, Quant4Type::FP4);
  check_fused(150, 520, 450, 64, 0.5f, 3, 9, Quant4Type::NF4);
  check_fused(9, 40, 50, 4, 0.0f, 0, 10, Quant4Type::NF4);
  // Streaming GEMV fast path (K % blocksize == 0), threaded over rows, with row-group tails.
  check_fused(1, 1001, 1024, 64, 0.0f, 0, 12, Quant4Type::NF4);
  check_fused(2, 37, 4096, 4096, 0.5f, 1, 13, Quant4Type::NF4);
  check_fused(4, 515, 256, 128, 0.0f, 0, 14, Quant4Type::FP4);
  check_fused(2, 40, 50, 6, 0.0f, 0, 11, Quant4Type::NF4);
}
