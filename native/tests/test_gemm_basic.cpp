// GEMM fast paths against the double-accumulating reference: every transpose combination,
// alpha/beta cases, awkward sizes around the microtile (14x32 / 6x16 / 4x16) and cache blocks
// (MC 168, KC 384, NC 3072), padded leading dimensions, batched, bf16, and each ISA table called
// directly so that one machine checks all of them.
#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"
#include "../cpu/gemm.h"
#include "../cpu/gemm_internal.h"
#include "test_harness.h"

namespace {
using tk::cpu::GemmShape;

GemmShape shape(int64_t M, int64_t N, int64_t K, bool ta, bool tb, int64_t pad = 0) {
  GemmShape s;
  s.M = M; s.N = N; s.K = K;
  s.transA = ta; s.transB = tb;
  s.lda = (ta ? M : K) + pad; s.ldb = (tb ? K : N) + pad; s.ldc = N + pad;
  return s;
}
size_t a_size(const GemmShape& s) { return static_cast<size_t>((s.transA ? s.K : s.M) * s.lda); }
size_t b_size(const GemmShape& s) { return static_cast<size_t>((s.transB ? s.N : s.K) * s.ldb); }
size_t c_size(const GemmShape& s) { return static_cast<size_t>(s.M * s.ldc); }

// Tolerance for f32 sums of K products of N(0,1) values: error grows ~ sqrt(K) * eps.
double atol_for(int64_t K) { return 2e-5 * std::sqrt(static_cast<double>(K) + 1) * 4; }

using F32Fn = void (*)(const GemmShape&, const float*, const float*, float*);

// Runs fn and the reference on the same random inputs; checks C (padding columns included, which
// must be left untouched).
void check_f32(const GemmShape& s, F32Fn fn, uint64_t seed, const char* what) {
  auto A = tk::test::randn(a_size(s), seed), B = tk::test::randn(b_size(s), seed + 1);
  auto C0 = tk::test::randn(c_size(s), seed + 2);
  auto C1 = C0, C2 = C0;
  fn(s, A.data(), B.data(), C1.data());
  tk::cpu::gemm_f32_reference(s, A.data(), B.data(), C2.data());
  const double r = tk::test::worst_ratio(C1.data(), C2.data(), C1.size(), atol_for(s.K), 1e-4);
  TK_EXPECT(r <= 1.0, "%s M=%lld N=%lld K=%lld tA=%d tB=%d lda=%lld alpha=%g beta=%g: worst ratio %.3g", what,
            (long long)s.M, (long long)s.N, (long long)s.K, s.transA, s.transB, (long long)s.lda, s.alpha, s.beta, r);
}

// n elements ending exactly at an inaccessible page: any read past the end faults (masked vector
// loads of lanes past the end must be masked off to pass).
template <class T>
struct GuardedArray {
  size_t map_bytes = 0;
  char* base = nullptr;
  T* data = nullptr;
  explicit GuardedArray(size_t n) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t bytes = n * sizeof(T);
    map_bytes = (bytes + page - 1) / page * page + page;
    base = static_cast<char*>(mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    mprotect(base + map_bytes - page, page, PROT_NONE);
    data = reinterpret_cast<T*>(base + map_bytes - page - bytes);
  }
  ~GuardedArray() { munmap(base, map_bytes); }
};

const int64_t kAwkward[] = {1, 7, 13, 14, 15, 31, 33, 129};

}  // namespace

TK_TEST(gemm_f32_matches_reference_all_transposes) {
  using namespace tk::cpu;
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {33, 7, 129}, {129, 65, 17}};
  for (auto& sz : sizes) {
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s;
      s.M = sz[0]; s.N = sz[1]; s.K = sz[2];
      s.transA = ta; s.transB = tb;
      s.lda = ta ? s.M : s.K; s.ldb = tb ? s.K : s.N; s.ldc = s.N;
      s.alpha = 0.5f; s.beta = 0.25f;
      auto A = tk::test::randn(s.M * s.K, 1), B = tk::test::randn(s.K * s.N, 2), C0 = tk::test::randn(s.M * s.N, 3);
      auto C1 = C0, C2 = C0;
      gemm_f32(s, A.data(), B.data(), C1.data());
      gemm_f32_reference(s, A.data(), B.data(), C2.data());
      TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
    }
  }
}

TK_TEST(gemm_f32_awkward_sizes_every_transpose) {
  uint64_t seed = 10;
  for (int64_t M : kAwkward) for (int64_t N : kAwkward) for (int64_t K : {1, 7, 33, 129}) {
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s = shape(M, N, K, ta, tb);
      s.alpha = 1.5f; s.beta = 0.5f;
      check_f32(s, &tk::cpu::gemm_f32, seed++, "awkward");
    }
  }
}

TK_TEST(gemm_f32_crosses_cache_blocks_and_threads) {
  // K > KC (384) twice over, M > MC (168), N > NC (3072) once; the first two are large enough to
  // run on all threads, split by columns (N >= M) and by rows (M > N).
  const int64_t sizes[][3] = {{170, 190, 800}, {400, 45, 390}, {15, 3105, 40}, {1, 700, 300}, {700, 1, 300}};
  uint64_t seed = 100;
  for (auto& sz : sizes)
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s = shape(sz[0], sz[1], sz[2], ta, tb);
      s.alpha = 0.75f; s.beta = (seed & 1) ? 0.0f : -1.0f;
      check_f32(s, &tk::cpu::gemm_f32, seed++, "blocks");
    }
}

TK_TEST(gemm_f32_packs_a_once_across_column_blocks) {
  // N > NC (3072) gives two column blocks, so op(A) is packed once and reused (it is far below
  // 4 MiB); K > KC (384) and M > MC (168) check where each (K block, row block) of it lives. For
  // tB = 0 the AVX-512 table packs each B block in 8-panel runs: N = 3100 splits into column
  // blocks of 1568 and 1532, whose last runs and panels are partial. Each ISA table is called
  // directly (serial), because the threaded front end would split N below NC per thread.
  // Checked against the same table run on two column halves (each below NC: A packed per
  // block, B panel by panel), which sums every element in the same order, so the bits must
  // match; and the LM-head-like case (tA = 1, tB = 0) once against the reference.
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  std::vector<const IsaGemm*> tables = {&isa_gemm_portable()};
  if (f.avx2_fma) tables.push_back(&isa_gemm_avx2());
  if (f.avx512f) tables.push_back(&isa_gemm_avx512());
  uint64_t seed = 150;
  for (const IsaGemm* t : tables)
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s = shape(171, 3100, 390, ta, tb, tb ? 0 : 5);
      s.alpha = 0.75f; s.beta = (seed & 1) ? 0.0f : 1.0f;
      auto A = tk::test::randn(a_size(s), seed), B = tk::test::randn(b_size(s), seed + 1);
      auto C0 = tk::test::randn(c_size(s), seed + 2);
      auto C1 = C0, C2 = C0;
      t->f32(s, A.data(), B.data(), C1.data(), &thread_workspace);
      const int64_t half = 1536;  // a whole number of tiles (32, 16 wide): same edge tiles
      GemmShape left = s, right = s;
      left.N = half;
      right.N = s.N - half;
      t->f32(left, A.data(), B.data(), C2.data(), &thread_workspace);
      t->f32(right, A.data(), tb ? B.data() + half * s.ldb : B.data() + half, C2.data() + half, &thread_workspace);
      TK_EXPECT(std::memcmp(C1.data(), C2.data(), C1.size() * 4) == 0,
                "%s tA=%d tB=%d beta=%g: differs from the two column halves", t->name, ta, tb, s.beta);
      if (t == tables.back() && ta == 1 && tb == 0) {
        auto C3 = C0;
        tk::cpu::gemm_f32_reference(s, A.data(), B.data(), C3.data());
        const double r = tk::test::worst_ratio(C1.data(), C3.data(), C1.size(), atol_for(s.K), 1e-4);
        TK_EXPECT(r <= 1.0, "%s tA=1 tB=0: ratio to the reference %.3g", t->name, r);
      }
      ++seed;
    }
}

TK_TEST(gemm_f32_padded_leading_dimensions) {
  uint64_t seed = 200;
  for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
    GemmShape s = shape(37, 45, 53, ta, tb, /*pad=*/11);
    s.alpha = -1.0f; s.beta = 2.0f;
    check_f32(s, &tk::cpu::gemm_f32, seed++, "padded");
    GemmShape t = shape(150, 160, 420, ta, tb, /*pad=*/3);  // threaded
    check_f32(t, &tk::cpu::gemm_f32, seed++, "padded-threaded");
  }
}

TK_TEST(gemm_f32_single_row_streaming_path) {
  // M == 1 takes the GEMV path (no packing), threaded over N when large enough.
  uint64_t seed = 250;
  for (int64_t N : {1, 17, 130, 3000}) for (int64_t K : {1, 15, 16, 33, 600}) {
    for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
      GemmShape s = shape(1, N, K, ta, tb, (seed % 2) ? 4 : 0);
      s.alpha = 0.5f; s.beta = (seed % 3 == 0) ? 0.0f : 2.0f;
      check_f32(s, &tk::cpu::gemm_f32, seed++, "gemv");
    }
  }
}

TK_TEST(gemm_f32_alpha_beta_cases) {
  // beta == 0 overwrites: NaN in C must not survive.
  for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
    GemmShape s = shape(29, 35, 41, ta, tb);
    auto A = tk::test::randn(a_size(s), 1), B = tk::test::randn(b_size(s), 2);
    std::vector<float> C1(c_size(s), std::numeric_limits<float>::quiet_NaN()), C2(c_size(s), 0.0f);
    tk::cpu::gemm_f32(s, A.data(), B.data(), C1.data());
    tk::cpu::gemm_f32_reference(s, A.data(), B.data(), C2.data());
    TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
  }
  // beta == 1 accumulates; alpha == 0 only scales C; K == 0 only scales C.
  GemmShape s = shape(20, 50, 30, false, true);
  s.beta = 1.0f;
  check_f32(s, &tk::cpu::gemm_f32, 5, "beta1");
  s.alpha = 0.0f; s.beta = 3.0f;
  check_f32(s, &tk::cpu::gemm_f32, 6, "alpha0");
  GemmShape z = shape(5, 6, 0, false, false);
  z.lda = 1; z.beta = 0.5f;
  std::vector<float> C(30, 2.0f);
  tk::cpu::gemm_f32(z, nullptr, nullptr, C.data());
  for (float v : C) TK_EXPECT(v == 1.0f, "K=0 should give beta*C, got %g", v);
}

TK_TEST(gemm_f32_rejects_bad_arguments) {
  auto throws_shape = [](GemmShape s) {
    std::vector<float> buf(4096, 0.0f);
    try {
      tk::cpu::gemm_f32(s, buf.data(), buf.data(), buf.data());
    } catch (const tk::Error& e) {
      return e.code() == tk::ErrorCode::Shape;
    }
    return false;
  };
  GemmShape s = shape(4, 5, 6, false, false);
  GemmShape neg = s; neg.M = -1;
  TK_EXPECT(throws_shape(neg), "negative M accepted");
  GemmShape la = s; la.lda = 5;
  TK_EXPECT(throws_shape(la), "lda < K accepted");
  GemmShape lb = s; lb.transB = true; lb.ldb = 5;
  TK_EXPECT(throws_shape(lb), "ldb < K (transB) accepted");
  GemmShape lc = s; lc.ldc = 4;
  TK_EXPECT(throws_shape(lc), "ldc < N accepted");
}

TK_TEST(gemm_f32_each_isa_table) {
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  std::vector<const IsaGemm*> tables = {&isa_gemm_portable()};
  if (f.avx2_fma) tables.push_back(&isa_gemm_avx2());
  if (f.avx512f) tables.push_back(&isa_gemm_avx512());
  uint64_t seed = 300;
  for (const IsaGemm* t : tables) {
    for (int64_t M : {1, 6, 14, 17, 60}) for (int64_t N : {1, 16, 32, 47, 100}) for (int64_t K : {1, 16, 17, 400}) {
      for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
        GemmShape s = shape(M, N, K, ta, tb, (seed % 3 == 0) ? 5 : 0);
        s.alpha = 0.5f; s.beta = (seed & 1) ? 0.0f : 1.0f;
        auto A = tk::test::randn(a_size(s), seed), B = tk::test::randn(b_size(s), seed + 1);
        auto C0 = tk::test::randn(c_size(s), seed + 2);
        auto C1 = C0, C2 = C0;
        t->f32(s, A.data(), B.data(), C1.data(), &thread_workspace);
        tk::cpu::gemm_f32_reference(s, A.data(), B.data(), C2.data());
        const double r = tk::test::worst_ratio(C1.data(), C2.data(), C1.size(), atol_for(K), 1e-4);
        TK_EXPECT(r <= 1.0, "%s M=%lld N=%lld K=%lld tA=%d tB=%d: ratio %.3g", t->name, (long long)M, (long long)N,
                  (long long)K, ta, tb, r);
        ++seed;
      }
    }
  }
}

TK_TEST(gemm_bf16_matches_reference) {
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  // (name, serial fn) pairs; nullptr = the public gemm_bf16 (dispatch + threads).
  struct Path { const char* name; SerialBF16 fn; };
  std::vector<Path> paths = {{"dispatch", nullptr}, {"portable", isa_gemm_portable().bf16}};
  if (f.avx2_fma) paths.push_back({"avx2", isa_gemm_avx2().bf16});
  if (f.avx512f) paths.push_back({"avx512-via-f32", &gemm_bf16_avx512_via_f32});
  if (f.avx512_bf16) paths.push_back({"avx512-bf16", isa_gemm_avx512().bf16});
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {14, 32, 2}, {33, 7, 129}, {29, 70, 33}, {170, 190, 801}};
  uint64_t seed = 400;
  for (const Path& p : paths)
    for (auto& sz : sizes)
      for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) {
        GemmShape s = shape(sz[0], sz[1], sz[2], ta, tb, (seed % 2) ? 3 : 0);
        s.alpha = 1.25f; s.beta = (seed % 3 == 0) ? 0.0f : 0.5f;
        auto Af = tk::test::randn(a_size(s), seed), Bf = tk::test::randn(b_size(s), seed + 1);
        std::vector<uint16_t> A(Af.size()), B(Bf.size());
        for (size_t i = 0; i < A.size(); ++i) A[i] = tk::f32_to_bf16(Af[i]);
        for (size_t i = 0; i < B.size(); ++i) B[i] = tk::f32_to_bf16(Bf[i]);
        auto C0 = tk::test::randn(c_size(s), seed + 2);
        auto C1 = C0, C2 = C0;
        if (p.fn) p.fn(s, A.data(), B.data(), C1.data(), &thread_workspace);
        else tk::cpu::gemm_bf16(s, A.data(), B.data(), C1.data());
        tk::cpu::gemm_bf16_reference(s, A.data(), B.data(), C2.data());
        // Products of bf16 values are exact in f32; only the f32 accumulation order differs.
        const double r = tk::test::worst_ratio(C1.data(), C2.data(), C1.size(), atol_for(s.K), 1e-4);
        TK_EXPECT(r <= 1.0, "%s M=%lld N=%lld K=%lld tA=%d tB=%d: ratio %.3g", p.name, (long long)s.M,
                  (long long)s.N, (long long)s.K, ta, tb, r);
        ++seed;
      }
}

TK_TEST(gemm_reads_nothing_past_the_operands) {
  // A and B end at a guard page; sizes make the last row/column a partial vector.
  // N = 5 and 13 take the narrow (16x8, 16x16) AVX-512 tiles.
  for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) for (int64_t M : {1, 9, 31}) for (int64_t N : {5, 13, 37}) {
    GemmShape s = shape(M, N, 29, ta, tb);
    auto Af = tk::test::randn(a_size(s), 1), Bf = tk::test::randn(b_size(s), 2);
    GuardedArray<float> A(Af.size()), B(Bf.size());
    GuardedArray<uint16_t> Ah(Af.size()), Bh(Bf.size());
    std::memcpy(A.data, Af.data(), Af.size() * 4);
    std::memcpy(B.data, Bf.data(), Bf.size() * 4);
    for (size_t i = 0; i < Af.size(); ++i) Ah.data[i] = tk::f32_to_bf16(Af[i]);
    for (size_t i = 0; i < Bf.size(); ++i) Bh.data[i] = tk::f32_to_bf16(Bf[i]);
    std::vector<float> C1(c_size(s)), C2(c_size(s));
    tk::cpu::gemm_f32(s, A.data, B.data, C1.data());
    tk::cpu::gemm_f32_reference(s, A.data, B.data, C2.data());
    TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
    tk::cpu::gemm_bf16(s, Ah.data, Bh.data, C1.data());
    tk::cpu::gemm_bf16_reference(s, Ah.data, Bh.data, C2.data());
    TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
  }
}

TK_TEST(gemm_f32_batched_matches_per_item) {
  for (int64_t batch : {1, 2, 5}) {
    for (int shared_b = 0; shared_b < 2; ++shared_b) {
      GemmShape s = shape(19, 23, 37, false, true);
      s.alpha = 2.0f; s.beta = 0.5f;
      const int64_t sa = a_size(s) + 3, sb = shared_b ? 0 : b_size(s) + 1, sc = c_size(s) + 7;
      auto A = tk::test::randn(sa * batch, 1), B = tk::test::randn(shared_b ? b_size(s) : sb * batch, 2);
      auto C0 = tk::test::randn(sc * batch, 3);
      auto C1 = C0, C2 = C0;
      tk::cpu::gemm_f32_batched(s, batch, A.data(), sa, B.data(), sb, C1.data(), sc);
      for (int64_t i = 0; i < batch; ++i)
        tk::cpu::gemm_f32_reference(s, A.data() + i * sa, B.data() + i * sb, C2.data() + i * sc);
      TK_EXPECT_CLOSE(C1.data(), C2.data(), C1.size(), 1e-4, 1e-4);
    }
  }
}

TK_TEST(gemm_f32_single_thread_matches_threaded) {
  // Same result bits whatever the thread count: each C element is summed in the same order.
  GemmShape s = shape(300, 280, 500, true, false);
  auto A = tk::test::randn(a_size(s), 7), B = tk::test::randn(b_size(s), 8);
  std::vector<float> C1(c_size(s)), C2(c_size(s));
  const int nt = tk::num_threads();
  tk::cpu::gemm_f32(s, A.data(), B.data(), C1.data());
  tk::set_num_threads(1);
  tk::cpu::gemm_f32(s, A.data(), B.data(), C2.data());
  tk::set_num_threads(nt);
  TK_EXPECT(std::memcmp(C1.data(), C2.data(), C1.size() * 4) == 0, "threaded result differs from serial");
}

TK_TEST(gemm_kernel_name_is_known) {
  const std::string n = tk::cpu::gemm_kernel_name();
  TK_EXPECT(n == "avx512" || n == "avx2" || n == "portable", "unexpected kernel name %s", n.c_str());
}

// The second, thin product (GemmShape::A2/B2/K2) summed in the same pass: against the reference
// for every ISA table (called directly) and through the threaded front end, every transpose of
// the main product, awkward sizes, K crossing cache blocks (the thin product rides in the last
// block), a broadcast column (lda2 = 0: a bias as a column of ones), alpha and beta.
TK_TEST(gemm_f32_second_thin_product) {
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  std::vector<const IsaGemm*> tables = {&isa_gemm_portable()};
  if (f.avx2_fma) tables.push_back(&isa_gemm_avx2());
  if (f.avx512f) tables.push_back(&isa_gemm_avx512());
  uint64_t seed = 900;
  auto run = [&](const IsaGemm* t, int64_t M, int64_t N, int64_t K, int64_t K2, bool ta, bool tb, bool broadcast) {
    GemmShape s = shape(M, N, K, ta, tb, (seed % 3 == 0) ? 3 : 0);
    s.alpha = (seed & 2) ? 0.5f : 1.0f;
    s.beta = (seed & 1) ? 0.0f : 1.0f;
    auto A = tk::test::randn(a_size(s), seed), B = tk::test::randn(b_size(s), seed + 1);
    const int64_t lda2 = broadcast ? 0 : K2 + (seed % 2);
    auto A2 = tk::test::randn(static_cast<size_t>(broadcast ? K2 : M * lda2), seed + 3);
    auto B2 = tk::test::randn(static_cast<size_t>(K2 * (N + 2)), seed + 4);
    s.A2 = A2.data(); s.B2 = B2.data(); s.K2 = K2; s.lda2 = lda2; s.ldb2 = N + 2;
    auto C0 = tk::test::randn(c_size(s), seed + 2);
    auto C1 = C0, C2 = C0;
    if (t) t->f32(s, A.data(), B.data(), C1.data(), &thread_workspace);
    else tk::cpu::gemm_f32(s, A.data(), B.data(), C1.data());
    tk::cpu::gemm_f32_reference(s, A.data(), B.data(), C2.data());
    const double r = tk::test::worst_ratio(C1.data(), C2.data(), C1.size(), atol_for(K + K2), 1e-4);
    TK_EXPECT(r <= 1.0, "%s M=%lld N=%lld K=%lld K2=%lld tA=%d tB=%d bcast=%d: ratio %.3g", t ? t->name : "front end",
              (long long)M, (long long)N, (long long)K, (long long)K2, ta, tb, (int)broadcast, r);
    ++seed;
  };
  for (const IsaGemm* t : tables)
    for (int64_t M : {1, 14, 17, 60}) for (int64_t N : {1, 8, 33, 100}) for (int64_t K : {1, 17, 400})
      for (int64_t K2 : {1, 8, 9})
        for (int ta = 0; ta < 2; ++ta) for (int tb = 0; tb < 2; ++tb) run(t, M, N, K, K2, ta, tb, K2 == 1);
  // the threaded front end: splits by N and by M, a K crossing blocks, the M == 1 path
  const int nt = tk::num_threads();
  tk::set_num_threads(std::max(2, nt));
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{300, 700, 900}, {900, 200, 300}, {1, 500, 64}, {2048, 256, 256}})
    for (int ta = 0; ta < 2; ++ta) run(nullptr, M, N, K, 9, ta, false, false);
  tk::set_num_threads(nt);
}

// GemmShape::epilogue: called on every element of C exactly once, after its final value, with
// the element's row and column in the caller's C (whatever the blocks and the thread split):
// every ISA table, the threaded front end split by N and by M, C blocks crossing MC/NC/KC, and
// K == 0; for the f32, the bf16 and the round-A bf16 GEMM. The epilogue here is
// C = 2 C + (row * 10000 + column), applied afterwards to the same product without the epilogue
// for the expected bits.
TK_TEST(gemm_epilogue_sees_each_final_element_once) {
  using namespace tk::cpu::gemm_detail;
  const auto& f = tk::cpu_features();
  std::vector<const IsaGemm*> tables = {&isa_gemm_portable()};
  if (f.avx2_fma) tables.push_back(&isa_gemm_avx2());
  if (f.avx512f) tables.push_back(&isa_gemm_avx512());
  struct Visits {
    std::vector<int> count;
    int64_t ldc_seen = 0, N = 0;
  };
  auto epi = [](void* ctx, int64_t i0, int64_t m, int64_t j0, int64_t n, float* Cb, int64_t ldc) {
    auto* v = static_cast<Visits*>(ctx);
    v->ldc_seen = ldc;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        ++v->count[(i0 + i) * v->N + j0 + j];
        Cb[i * ldc + j] = 2.0f * Cb[i * ldc + j] + static_cast<float>((i0 + i) * 10000 + j0 + j);
      }
  };
  uint64_t seed = 1300;
  enum Kind { kF32, kBF16, kBF16RoundA };
  const char* const kind_names[] = {"f32", "bf16", "bf16 round-A"};
  auto run = [&](const IsaGemm* t, int64_t M, int64_t N, int64_t K, Kind kind) {
    GemmShape s = shape(M, N, K, seed & 1, seed & 2, 3);
    s.beta = (seed & 4) ? 0.0f : 1.0f;
    auto A = tk::test::randn(a_size(s), seed), B = tk::test::randn(b_size(s), seed + 1);
    std::vector<uint16_t> Ab(A.size()), Bb(B.size());
    for (size_t i = 0; i < A.size(); ++i) Ab[i] = tk::f32_to_bf16(A[i]);
    for (size_t i = 0; i < B.size(); ++i) Bb[i] = tk::f32_to_bf16(B[i]);
    auto call = [&](const GemmShape& g, float* C) {
      if (kind == kF32) return t ? t->f32(g, A.data(), B.data(), C, &thread_workspace) : tk::cpu::gemm_f32(g, A.data(), B.data(), C);
      if (kind == kBF16) return t ? t->bf16(g, Ab.data(), Bb.data(), C, &thread_workspace) : tk::cpu::gemm_bf16(g, Ab.data(), Bb.data(), C);
      return t ? t->bf16_round_a(g, A.data(), Bb.data(), C, &thread_workspace) : tk::cpu::gemm_bf16_round_a(g, A.data(), Bb.data(), C);
    };
    auto C1 = tk::test::randn(c_size(s), seed + 2);
    auto C2 = C1;
    Visits v;
    v.count.assign(static_cast<size_t>(M * N), 0);
    v.N = N;
    GemmShape se = s;
    se.epilogue = epi;
    se.epilogue_ctx = &v;
    // the expected bits from the same path (M == 1 takes the packed path, not gemv, with an epilogue)
    s.epilogue = [](void*, int64_t, int64_t, int64_t, int64_t, float*, int64_t) {};
    call(se, C1.data());
    call(s, C2.data());
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float& c = C2[i * s.ldc + j];
        c = 2.0f * c + static_cast<float>(i * 10000 + j);
      }
    bool once = true;
    for (int c : v.count) once = once && c == 1;
    TK_EXPECT(once && v.ldc_seen == s.ldc, "%s %s M=%lld N=%lld K=%lld: every element visited once (%d), ldc passed",
              t ? t->name : "front end", kind_names[kind], (long long)M, (long long)N, (long long)K, (int)once);
    TK_EXPECT(std::memcmp(C1.data(), C2.data(), C1.size() * 4) == 0, "%s %s M=%lld N=%lld K=%lld: epilogue on the final C",
              t ? t->name : "front end", kind_names[kind], (long long)M, (long long)N, (long long)K);
    ++seed;
  };
  for (Kind kind : {kF32, kBF16, kBF16RoundA}) {
    // the bf16 entries of the avx512 table need AVX512_BF16 (the front end picks a widening path without it)
    for (const IsaGemm* t : tables)
      if (kind == kF32 || t != &isa_gemm_avx512() || f.avx512_bf16)
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {30, 40, 900}, {200, 3100, 9}}) run(t, M, N, K, kind);
    const int nt = tk::num_threads();
    tk::set_num_threads(std::max(2, nt));
    // {300, 1000, 450}: threads split by columns (round-A rounds A once, then the plain bf16 GEMM)
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{300, 1000, 450}, {1000, 300, 450}, {1, 500, 64}, {7, 9, 0}})
      run(nullptr, M, N, K, kind);
    tk::set_num_threads(nt);
  }
}

// gemm_bf16_round_a with one row (decoding a token): the bf16 weight streamed by the GEMV where
// the ISA has one, x rounded to bf16 first. Its bits are the f32 GEMV's on the rounded x and the
// widened weight (one loop for both types); both B layouts, a strided transposed A, alpha/beta,
// widths that end mid-vector, and threads splitting N. Without a bf16 GEMV: the packed path,
// within f32 summation tolerance.
TK_TEST(gemm_bf16_round_a_one_row_streams_the_bf16_weight) {
  using namespace tk::cpu::gemm_detail;
  const bool has_gemv = isa_gemm_best().gemv_bf16 != nullptr;
  const int nt = tk::num_threads();
  tk::set_num_threads(std::max(2, nt));
  uint64_t seed = 4100;
  for (auto [N, K] : {std::pair<int64_t, int64_t>{1, 1}, {17, 33}, {2304, 768}, {1000, 300}, {50, 4099}})
    for (int tb = 0; tb < 2; ++tb)
      for (int ta = 0; ta < 2; ++ta) {
        GemmShape s = shape(1, N, K, ta, tb, ta ? 3 : 0);
        s.alpha = (seed & 1) ? 1.0f : 0.5f;
        s.beta = (seed & 2) ? 0.25f : 0.0f;
        auto A = tk::test::randn(a_size(s), seed), Bf = tk::test::randn(b_size(s), seed + 1);
        std::vector<uint16_t> Bb(Bf.size());
        std::vector<float> Bw(Bf.size()), Ar(A.size());
        for (size_t i = 0; i < Bf.size(); ++i) Bw[i] = tk::bf16_to_f32(Bb[i] = tk::f32_to_bf16(Bf[i]));
        for (size_t i = 0; i < A.size(); ++i) Ar[i] = tk::bf16_to_f32(tk::f32_to_bf16(A[i]));
        auto C1 = tk::test::randn(c_size(s), seed + 2);
        auto C2 = C1;
        tk::cpu::gemm_bf16_round_a(s, A.data(), Bb.data(), C1.data());
        tk::cpu::gemm_f32(s, Ar.data(), Bw.data(), C2.data());
        if (has_gemv) {
          TK_EXPECT(std::memcmp(C1.data(), C2.data(), C1.size() * 4) == 0, "N=%lld K=%lld tA=%d tB=%d: the f32 GEMV's bits",
                    (long long)N, (long long)K, ta, tb);
        } else {
          double worst = 0;
          for (size_t i = 0; i < C1.size(); ++i) worst = std::max(worst, std::fabs(double(C1[i]) - C2[i]));
          TK_EXPECT(worst <= atol_for(K), "N=%lld K=%lld tA=%d tB=%d: %.3g", (long long)N, (long long)K, ta, tb, worst);
        }
        ++seed;
      }
  tk::set_num_threads(nt);
}
