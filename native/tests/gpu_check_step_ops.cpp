// The GPU check of the training step's remaining ops (tunekit_gpu_check calls check_step_ops()):
// f32 GEMM, f32 linear + LoRA with dropout, dropout, embedding rows, RoPE, reductions, data
// movement, random fills, AdaLoRA's triplet scores, NF4 double dequantization and the LSTM, each
// against its CPU kernel at awkward sizes. Masks, casts, copies, fills and arange must be
// bit-identical; arithmetic within the tolerance printed beside each case (scaled_err:
// max |cuda - cpu| / max(1, max |cpu|)).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "cpu/adalora.h"
#include "cpu/copy.h"
#include "cpu/dropout.h"
#include "cpu/elementwise.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/lora.h"
#include "cpu/lstm.h"
#include "cpu/nf4.h"
#include "cpu/reduce.h"
#include "cpu/rope.h"
#include "cuda/device_runtime.h"
#include "cuda/kernels.h"
#include "gpu_check_util.h"

using namespace tk;
using namespace tk::gpu_check;

namespace {

using U8 = std::vector<uint8_t>;
using I32 = std::vector<int32_t>;

// number of positions where two byte arrays differ (0 = bit-identical)
template <typename T>
double mismatches(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return INFINITY;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  return static_cast<double>(bad);
}

I32 rand_ids(size_t n, int32_t num) {
  std::uniform_int_distribution<int32_t> d(0, num - 1);
  I32 v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Runs fn and reports whether it threw a tk::Error with `code` (ERR_INDEX for a bad id, ...).
void expect_error(const std::string& name, ErrorCode code, const std::function<void()>& fn) {
  double err = 1;
  try {
    fn();
  } catch (const Error& e) {
    err = e.code() == code ? 0 : 1;
  }
  report(name, err, 0);
}

void check_gemm_f32() {
  std::printf("f32 GEMM (CUDA cores), all transpose combinations, batched\n");
  struct Case { int64_t M, N, K; float alpha, beta; };
  const Case cases[] = {{1, 1, 1, 1, 0}, {7, 33, 129, 1, 0}, {129, 7, 33, 1.5f, 0.5f}, {65, 63, 17, 1, 1},
                        {257, 300, 1031, 1, 0}, {1, 1000, 768, 1, 0}, {3, 5, 0, 1, 0.5f}};
  for (const Case& c : cases)
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 2, tb = t & 1;
      const std::string name = std::string("gemm_f32 ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " " + dims({c.M, c.N, c.K}) +
                               (c.beta != 0 ? " beta" : "");
      guarded(name, [&] {
        tk::GemmShape s;
        s.transA = ta;
        s.transB = tb;
        s.M = c.M;
        s.N = c.N;
        s.K = c.K;
        s.lda = ta ? c.M : c.K;
        s.ldb = tb ? c.K : c.N;
        s.ldc = c.N;
        s.alpha = c.alpha;
        s.beta = c.beta;
        const F A = randf(c.M * c.K), B = randf(c.K * c.N), C0 = randf(c.M * c.N);
        F ref = C0;
        cpu::gemm_f32_reference(cpu_shape(s), A.data(), B.data(), ref.data());
        Dev<float> dA(A), dB(B), dC(C0);
        cu::gemm_f32(s, dA.p(), dB.p(), dC.p());
        check(name, dC.host(), ref, 2e-6 * std::sqrt(static_cast<double>(c.K) + 1) + 1e-6);
      });
    }
  guarded("gemm_f32_batched NT 5x 33x65x40", [&] {
    const int64_t batch = 5, M = 33, N = 65, K = 40;
    tk::GemmShape s;
    s.transB = true;
    s.M = M;
    s.N = N;
    s.K = K;
    s.lda = K;
    s.ldb = K;
    s.ldc = N;
    const F A = randf(batch * M * K), B = randf(batch * N * K);
    F ref(batch * M * N);
    cpu::gemm_f32_batched(cpu_shape(s), batch, A.data(), M * K, B.data(), N * K, ref.data(), M * N);
    Dev<float> dA(A), dB(B), dC(batch * M * N);
    cu::gemm_f32_batched(s, batch, dA.p(), M * K, dB.p(), N * K, dC.p(), M * N);
    check("gemm_f32_batched NT 5x 33x65x40", dC.host(), ref, 2e-5);
  });
}

void check_lora_f32() {
  std::printf("f32 linear + LoRA with dropout (composed from the f32 GEMM)\n");
  struct Case { int64_t M, in, out, r; bool w_in_out, bias; float p; };
  const Case cases[] = {{1, 1, 1, 1, false, true, 0.0f},   {37, 65, 129, 8, false, true, 0.1f},
                        {130, 96, 288, 4, true, true, 0.0f}, {130, 96, 288, 4, true, false, 0.05f},
                        {5, 33, 7, 0, false, true, 0.3f},    {64, 768, 2304, 8, true, true, 0.1f}};
  for (const Case& c : cases) {
    const std::string name = "lora f32 " + dims({c.M, c.in, c.out, c.r}) + (c.w_in_out ? " Conv1D" : "") +
                             (c.bias ? "" : " nobias") + " p=" + std::to_string(c.p).substr(0, 4);
    guarded(name, [&] {
      LoraShape s;
      s.M = c.M;
      s.in = c.in;
      s.out = c.out;
      s.r = c.r;
      s.scale = 2.0f;
      s.w_in_out = c.w_in_out;
      const uint64_t seed = 0x1234abcdull;
      const F x = randf(c.M * c.in), w = randf(c.out * c.in, -0.1f, 0.1f), bias = randf(c.out), a = randf(c.r * c.in),
              b = randf(c.out * c.r), dy = randf(c.M * c.out);
      F y(c.M * c.out), xa(c.M * c.r), dx(c.M * c.in), da(c.r * c.in), db(c.out * c.r);
      U8 mask(c.M * c.in);
      cpu::lora_linear_forward_dropout_f32(s, x.data(), w.data(), c.bias ? bias.data() : nullptr, a.data(), b.data(), c.p,
                                           seed, mask.data(), y.data(), xa.data());
      cpu::lora_linear_backward_dropout_f32(s, dy.data(), x.data(), c.p > 0 ? mask.data() : nullptr, c.p, w.data(), a.data(),
                                            b.data(), xa.data(), dx.data(), da.data(), db.data());
      Dev<float> gx(x), gw(w), gbias(bias), ga(a), gb(b), gdy(dy), gy(y.size()), gxa(xa.size()), gdx(dx.size()),
          gda(da.size()), gdb(db.size());
      Dev<uint8_t> gmask(mask.size());
      cu::lora_linear_forward_dropout_f32(s, gx.p(), gw.p(), c.bias ? gbias.p() : nullptr, ga.p(), gb.p(), c.p, seed,
                                          c.p > 0 ? gmask.p() : nullptr, gy.p(), gxa.p());
      cu::lora_linear_backward_dropout_f32(s, gdy.p(), gx.p(), c.p > 0 ? gmask.p() : nullptr, c.p, gw.p(), ga.p(), gb.p(),
                                           gxa.p(), gdx.p(), gda.p(), gdb.p());
      const double tol = 2e-6 * std::sqrt(static_cast<double>(std::max({c.in, c.out, c.M})) + 1) + 1e-6;
      if (c.p > 0) report(name + " mask (mismatches)", mismatches(gmask.host(), mask), 0);
      check(name + " y", gy.host(), y, tol);
      check(name + " xa", gxa.host(), xa, tol);
      check(name + " dx", gdx.host(), dx, tol);
      check(name + " dA", gda.host(), da, tol * 4);
      check(name + " dB", gdb.host(), db, tol * 4);
    });
  }
}

void check_dropout() {
  std::printf("dropout (core/counter_hash.h: masks bit-identical to the CPU's)\n");
  for (const float p : {0.0f, 0.1f, 0.5f, 0.9f})
    for (const int64_t n : {int64_t(1), int64_t(1000003)}) {
      const std::string name = "dropout n=" + std::to_string(n) + " p=" + std::to_string(p).substr(0, 3);
      guarded(name, [&] {
        F x = randf(n);
        if (n > 4) {
          x[1] = INFINITY;
          x[2] = NAN;
        }
        const uint64_t seed = 0xfeedfacecafebeefull;
        F y(n), dx(n), dx_acc = randf(n);
        U8 mask(n);
        cpu::dropout(x.data(), y.data(), mask.data(), n, p, seed);
        const F dy = randf(n);
        cpu::dropout_backward(dy.data(), mask.data(), dx.data(), n, p, false);
        F dx_acc_ref = dx_acc;
        cpu::dropout_backward_reference(dy.data(), mask.data(), dx_acc_ref.data(), n, p, true);
        Dev<float> gx(x), gy(n), gdy(dy), gdx(n), gacc(dx_acc);
        Dev<uint8_t> gm(n);
        cu::dropout(gx.p(), gy.p(), gm.p(), n, p, seed);
        cu::dropout_backward(gdy.p(), gm.p(), gdx.p(), n, p, false);
        cu::dropout_backward(gdy.p(), gm.p(), gacc.p(), n, p, true);
        report(name + " mask (mismatches)", mismatches(gm.host(), mask), 0);
        // exact (NaN payloads of inf * 0 and NaN * scale differ between x86 and the GPU: NaN == NaN here)
        check(name + " y", gy.host(), y, 0);
        check(name + " backward", gdx.host(), dx, 0);
        check(name + " backward accumulate", gacc.host(), dx_acc_ref, 1e-7);
      });
    }
}

void check_embedding() {
  std::printf("embedding rows: gather, scatter-add, bad ids\n");
  for (const int64_t row : {int64_t(1), int64_t(7), int64_t(768)}) {
    const std::string name = "gather/scatter rows row=" + std::to_string(row);
    guarded(name, [&] {
      const int64_t num = 1000, n = 517;
      const F table = randf(num * row), src = randf(n * row);
      I32 idx = rand_ids(n, num);
      idx[3] = idx[4] = idx[5];  // repeated ids: scatter sums them
      F out(n * row), acc = randf(num * row);
      cpu::gather_rows_reference(table.data(), idx.data(), out.data(), n, row, num);
      F acc_ref = acc;
      cpu::scatter_add_rows_reference(src.data(), idx.data(), acc_ref.data(), n, row, num);
      Dev<float> gt(table), gsrc(src), gout(n * row), gacc(acc);
      Dev<int32_t> gidx(idx);
      cu::gather_rows(gt.p(), gidx.p(), gout.p(), n, row, num);
      cu::scatter_add_rows(gsrc.p(), gidx.p(), gacc.p(), n, row, num);
      check(name + " gather", gout.host(), out, 0);
      check(name + " scatter-add", gacc.host(), acc_ref, 1e-6);
    });
  }
  guarded("gather rows: bad id", [&] {
    I32 idx = {0, 5, 10, -1, 3};
    Dev<int32_t> gidx(idx);
    Dev<float> gt(randf(10 * 4)), gout(5 * 4);
    const F before = gout.host();
    expect_error("gather rows: id 10 of 10 rows -> ERR_INDEX", ErrorCode::Index,
                 [&] { cu::gather_rows(gt.p(), gidx.p(), gout.p(), 5, 4, 10); });
    expect_error("scatter-add rows: id -1 -> ERR_INDEX", ErrorCode::Index,
                 [&] { cu::scatter_add_rows(gout.p(), gidx.p() + 3, gt.p(), 1, 4, 10); });
    report("gather rows: nothing written on a bad id", mismatches(gout.host(), before), 0);
  });
}

void check_rope() {
  std::printf("RoPE forward / inverse\n");
  struct Case { int64_t B, H, T, D, rot; };
  const Case cases[] = {{1, 1, 1, 2, 2}, {2, 3, 17, 64, 64}, {2, 4, 33, 80, 32}, {1, 12, 129, 128, 128}};
  for (const Case& c : cases)
    for (const bool inverse : {false, true})
      for (const bool in_place : {false, true}) {
        const std::string name = "rope " + dims({c.B, c.H, c.T, c.D}) + " rot " + std::to_string(c.rot) +
                                 (inverse ? " inverse" : "") + (in_place ? " in place" : "");
        guarded(name, [&] {
          const int64_t n = c.B * c.H * c.T * c.D;
          const F x = randf(n);
          I32 pos(c.B * c.T);
          for (int64_t i = 0; i < c.B * c.T; ++i) pos[i] = static_cast<int32_t>((i * 37) % 4099);
          F inv(c.rot / 2);
          for (int64_t i = 0; i < c.rot / 2; ++i)
            inv[i] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / static_cast<double>(c.rot)));
          F ref(n);
          cpu::rope_reference(x.data(), ref.data(), pos.data(), inv.data(), c.B, c.H, c.T, c.D, c.rot, inverse);
          Dev<float> gx(x), gout(n);
          Dev<int32_t> gpos(pos);
          Dev<float> ginv(inv);
          float* out = in_place ? gx.p() : gout.p();
          cu::rope(gx.p(), out, gpos.p(), ginv.p(), c.B, c.H, c.T, c.D, c.rot, inverse);
          check(name, in_place ? gx.host() : gout.host(), ref, 1e-6);
        });
      }
}

void check_reductions() {
  std::printf("reductions, argmax, sum of squares, non-finite count\n");
  const char* names[] = {"sum", "mean", "max", "min"};
  struct Case { int64_t outer, n, inner; };
  const Case cases[] = {{1, 1, 1}, {3, 1000, 1}, {1, 100003, 1}, {7, 33, 129}, {1, 4096, 768}, {2, 0, 5}};
  for (const Case& c : cases)
    for (int op = 0; op < 4; ++op) {
      if (c.n == 0 && op >= 2) continue;  // max/min over an empty axis: refused by the binding
      const std::string name = std::string("reduce ") + names[op] + " " + dims({c.outer, c.n, c.inner});
      guarded(name, [&] {
        F x = randf(c.outer * c.n * c.inner);
        if (x.size() > 10) x[7] = NAN;  // NaN wins max/min and poisons sums
        F ref(c.outer * c.inner);
        cpu::reduce_reference(static_cast<ReduceOp>(op), x.data(), ref.data(), c.outer, c.n, c.inner);
        Dev<float> gx(x), gout(ref.size());
        cu::reduce(static_cast<ReduceOp>(op), gx.p(), gout.p(), c.outer, c.n, c.inner);
        check(name, gout.host(), ref, 1e-6);
      });
    }
  guarded("argmax", [&] {
    const int64_t rows = 9, cols = 1031;
    F x = randf(rows * cols);
    x[1 * cols + 500] = 5.0f;  // a tie: the first position wins
    x[1 * cols + 700] = 5.0f;
    x[2 * cols + 3] = NAN;  // the first NaN wins
    x[2 * cols + 900] = NAN;
    x[2 * cols + 10] = 100.0f;
    for (int64_t j = 0; j < cols; ++j) x[3 * cols + j] = -INFINITY;
    x[4 * cols + cols - 1] = 7.0f;
    I32 ref(rows);
    cpu::argmax_reference(x.data(), ref.data(), rows, cols);
    Dev<float> gx(x);
    Dev<int32_t> gout(rows);
    cu::argmax(gx.p(), gout.p(), rows, cols);
    report("argmax 9x1031 ties, NaN, all -inf (mismatches)", mismatches(gout.host(), ref), 0);
  });
  guarded("sum of squares / non-finite count", [&] {
    const int64_t n = 3000017;
    F x = randf(n, -3.0f, 3.0f);
    const double ref = cpu::sum_squares_reference(x.data(), n);
    Dev<float> gx(x);
    // double sums in another order: relative error bound n eps = 7e-10, typically ~1e-13
    report("sum_squares 3M (relative)", std::fabs(cu::sum_squares(gx.p(), n) - ref) / ref, 1e-10);
    x[5] = INFINITY;
    x[77] = -INFINITY;
    x[n - 1] = NAN;
    Dev<float> gy(x);
    report("count_non_finite 3M (difference)",
           std::fabs(static_cast<double>(cu::count_non_finite(gy.p(), n) - cpu::count_non_finite_reference(x.data(), n))), 0);
  });
}

// every dtype's bytes from the same doubles, so casts between any pair can be compared
std::vector<uint8_t> dtype_bytes(DType d, const std::vector<double>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(d));
  for (size_t i = 0; i < v.size(); ++i) cpu::fill(out.data() + i * dtype_size(d), d, 1, v[i]);
  return out;
}

void check_data_movement() {
  std::printf("fill, cast, strided / row / byte copies, random fills, arange\n");
  const DType all[] = {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64, DType::U8, DType::F64};
  guarded("fill every dtype", [&] {
    for (DType d : all) {
      const int64_t n = 1001;
      std::vector<uint8_t> ref(n * dtype_size(d));
      cpu::fill(ref.data(), d, n, 3.14159);
      Dev<uint8_t> g(ref.size());
      cu::fill(g.p(), d, n, 3.14159);
      report(std::string("fill ") + dtype_name(d) + " (byte mismatches)", mismatches(g.host(), ref), 0);
    }
  });
  guarded("cast every dtype pair", [&] {
    std::vector<double> v;
    for (int i = 0; i < 517; ++i) v.push_back(std::fmod(i * 7.37, 250.0));  // >= 0: a negative value to u8 is undefined in C++
    v[1] = 1e-6;
    v[2] = 65504.0;
    v[3] = 1.0 / 3.0;
    for (DType s : all)
      for (DType d : all) {
        const std::vector<uint8_t> src = dtype_bytes(s, v);
        std::vector<uint8_t> ref(v.size() * dtype_size(d));
        cpu::cast(src.data(), s, ref.data(), d, static_cast<int64_t>(v.size()));
        Dev<uint8_t> gs(src), gd(ref.size());
        cu::cast(gs.p(), s, gd.p(), d, static_cast<int64_t>(v.size()));
        report(std::string("cast ") + dtype_name(s) + " -> " + dtype_name(d) + " (byte mismatches)", mismatches(gd.host(), ref), 0);
      }
  });
  guarded("copy_strided", [&] {
    struct Case { std::vector<int64_t> shape, strides; int64_t es; };
    const Case cases[] = {
        {{4, 5, 6}, {30, 1, 5}, 4},        // transpose of the last two axes
        {{3, 7}, {0, 1}, 4},               // a broadcast row
        {{2, 3, 4}, {12, 4, 1}, 2},        // contiguous (one byte copy)
        {{5, 1, 9}, {18, 99, 2}, 8},       // every other element, a size-1 axis
        {{6, 4}, {1, 6}, 3},               // 3-byte elements, transposed
        {{2, 2, 2, 2, 2, 2, 2, 2, 2, 3}, {1536, 768, 384, 192, 96, 48, 24, 12, 6, 2}, 1},  // 10 dims that merge
    };
    for (const Case& c : cases) {
      int64_t total = 1, max_index = 0;
      for (size_t k = 0; k < c.shape.size(); ++k) {
        total *= c.shape[k];
        max_index += (c.shape[k] - 1) * c.strides[k];
      }
      std::vector<uint8_t> src((max_index + 1) * c.es);
      for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
      std::vector<uint8_t> ref(total * c.es);
      cpu::copy_strided(src.data(), ref.data(), c.es, c.shape, c.strides);
      Dev<uint8_t> gs(src), gd(ref.size());
      cu::copy_strided(gs.p(), gd.p(), c.es, static_cast<int>(c.shape.size()), c.shape.data(), c.strides.data());
      std::string nm = "copy_strided es=" + std::to_string(c.es) + " ndim=" + std::to_string(c.shape.size());
      report(nm + " (byte mismatches)", mismatches(gd.host(), ref), 0);
    }
  });
  guarded("copy_rows / copy_bytes", [&] {
    std::vector<uint8_t> src(4096);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 17 + 3);
    for (const auto& rc : std::vector<std::vector<int64_t>>{{9, 12, 40, 16}, {5, 7, 9, 7}, {4, 32, 0, 32}}) {
      const int64_t rows = rc[0], rb = rc[1], ss = rc[2], ds = rc[3];
      std::vector<uint8_t> ref(2048, 0xAB);
      for (int64_t r = 0; r < rows; ++r) std::memcpy(ref.data() + r * ds, src.data() + r * ss, rb);
      Dev<uint8_t> gs(src), gd(std::vector<uint8_t>(2048, 0xAB));
      cu::copy_rows(gs.p(), gd.p(), rows, rb, ss, ds);
      report("copy_rows " + dims({rows, rb, ss, ds}) + " (byte mismatches)", mismatches(gd.host(), ref), 0);
    }
    // overlapping copies forward and backward (memmove)
    for (const int64_t shift : {int64_t(100), int64_t(-100)}) {
      std::vector<uint8_t> ref = src;
      std::memmove(ref.data() + 1000 + shift, ref.data() + 1000, 2000);
      Dev<uint8_t> g(src);
      cu::copy_bytes(g.p() + 1000, g.p() + 1000 + shift, 2000);
      report("copy_bytes overlapping, shift " + std::to_string(shift) + " (byte mismatches)", mismatches(g.host(), ref), 0);
    }
  });
  guarded("random fills", [&] {
    for (const int64_t n : {int64_t(1), int64_t(7), int64_t(100001)}) {
      F ref(n), refu(n);
      cpu::random_normal_f32(ref.data(), n, 42, 0.5f, 0.02f);
      cpu::random_uniform_f32(refu.data(), n, 43, -0.1f, 0.3f);
      Dev<float> g(n), gu(n);
      cu::random_normal_f32(g.p(), n, 42, 0.5f, 0.02f);
      cu::random_uniform_f32(gu.p(), n, 43, -0.1f, 0.3f);
      // log/cos/sin of CUDA and libm differ in the last bits; the counters are the same
      check("random_normal n=" + std::to_string(n), g.host(), ref, 1e-6);
      check("random_uniform n=" + std::to_string(n), gu.host(), refu, 0);
    }
  });
  guarded("arange", [&] {
    for (DType d : all) {
      const int64_t n = 777;
      std::vector<uint8_t> ref(n * dtype_size(d));
      cpu::arange(ref.data(), d, n, -3.0, 0.37);
      Dev<uint8_t> g(ref.size());
      cu::arange(g.p(), d, n, -3.0, 0.37);
      report(std::string("arange ") + dtype_name(d) + " (byte mismatches)", mismatches(g.host(), ref), 0);
    }
  });
}

void check_adalora_scores() {
  std::printf("AdaLoRA triplet scores\n");
  for (const auto& sh : std::vector<std::vector<int64_t>>{{1, 1, 1}, {8, 768, 2304}, {12, 33, 7}}) {
    const std::string name = "adalora triplet scores " + dims({sh[0], sh[1], sh[2]});
    guarded(name, [&] {
      AdaloraShape s;
      s.r = sh[0];
      s.in = sh[1];
      s.out = sh[2];
      const int64_t na = s.r * s.in, nb = s.out * s.r;
      const F state = randf(2 * (na + s.r + nb), 0.0f, 1.0f);
      auto layout = [&](float* base) {
        AdaloraState st;
        st.ibar_a = base;
        st.unc_a = base + na;
        st.ibar_e = base + 2 * na;
        st.unc_e = base + 2 * na + s.r;
        st.ibar_b = base + 2 * na + 2 * s.r;
        st.unc_b = base + 2 * na + 2 * s.r + nb;
        return st;
      };
      F host = state, ref(s.r);
      cpu::adalora_triplet_scores_f32(s, layout(host.data()), ref.data());
      Dev<float> g(state), gs(s.r);
      cu::adalora_triplet_scores_f32(s, layout(g.p()), gs.p());
      check(name, gs.host(), ref, 1e-6);
    });
  }
}

void check_nf4_double_dequant() {
  std::printf("NF4 double dequantization of absmax\n");
  for (const int64_t nb : {int64_t(1), int64_t(255), int64_t(257), int64_t(100000)}) {
    const std::string name = "nf4 double dequantize nblocks=" + std::to_string(nb);
    guarded(name, [&] {
      const F absmax = randf(nb, 0.01f, 2.0f);
      U8 q(nb);
      F nested((nb + 255) / 256), ref(nb);
      float offset = 0.0f;
      cpu::nf4_double_quantize_absmax(absmax.data(), nb, q.data(), nested.data(), &offset);
      cpu::nf4_double_dequantize_absmax(q.data(), nested.data(), offset, nb, ref.data());
      Dev<uint8_t> gq(q);
      Dev<float> gn(nested), gout(nb);
      cu::nf4_double_dequantize_absmax(gq.p(), gn.p(), offset, nb, cpu::dynamic_map_signed(), gout.p());
      report(name + " (bit mismatches)", mismatches(gout.host(), ref), 0);
    });
  }
}

void check_lstm() {
  std::printf("LSTM forward / backward through time\n");
  struct Case { int64_t B, T, in, H; bool reverse, bias, dx; };
  const Case cases[] = {{1, 1, 1, 1, false, true, true}, {2, 7, 33, 17, false, true, true}, {3, 20, 64, 96, true, false, true},
                        {2, 9, 768, 128, true, true, false}};
  for (const Case& c : cases) {
    const std::string name = "lstm " + dims({c.B, c.T, c.in, c.H}) + (c.reverse ? " reverse" : "") + (c.bias ? "" : " nobias");
    guarded(name, [&] {
      cpu::LstmShape s;
      s.B = c.B;
      s.T = c.T;
      s.in = c.in;
      s.H = c.H;
      s.reverse = c.reverse;
      const int64_t G = 4 * c.H, BT = c.B * c.T;
      const F x = randf(BT * c.in), wih = randf(G * c.in, -0.2f, 0.2f), whh = randf(G * c.H, -0.2f, 0.2f), bih = randf(G),
              bhh = randf(G), dy = randf(BT * c.H);
      F y(BT * c.H), gates(BT * G), cell(BT * c.H), dx(BT * c.in), dwih(G * c.in), dwhh(G * c.H), db(G);
      cpu::lstm_forward_f32(s, x.data(), wih.data(), whh.data(), c.bias ? bih.data() : nullptr, c.bias ? bhh.data() : nullptr,
                            y.data(), gates.data(), cell.data());
      cpu::lstm_backward_f32(s, dy.data(), x.data(), wih.data(), whh.data(), y.data(), gates.data(), cell.data(),
                             c.dx ? dx.data() : nullptr, dwih.data(), dwhh.data(), db.data());
      Dev<float> gx(x), gwih(wih), gwhh(whh), gbih(bih), gbhh(bhh), gdy(dy), gy(y.size()), gg(gates.size()), gc(cell.size()),
          gdx(dx.size()), gdwih(dwih.size()), gdwhh(dwhh.size()), gdb(db.size());
      cu::lstm_forward_f32(c.B, c.T, c.in, c.H, c.reverse, gx.p(), gwih.p(), gwhh.p(), c.bias ? gbih.p() : nullptr,
                           c.bias ? gbhh.p() : nullptr, gy.p(), gg.p(), gc.p());
      cu::lstm_backward_f32(c.B, c.T, c.in, c.H, c.reverse, gdy.p(), gx.p(), gwih.p(), gwhh.p(), gy.p(), gg.p(), gc.p(),
                            c.dx ? gdx.p() : nullptr, gdwih.p(), gdwhh.p(), gdb.p());
      const double tol = 1e-5 * std::sqrt(static_cast<double>(c.in + c.H + c.T) + 1);
      check(name + " y", gy.host(), y, tol);
      check(name + " gates", gg.host(), gates, tol);
      check(name + " cell", gc.host(), cell, tol);
      if (c.dx) check(name + " dx", gdx.host(), dx, tol * 4);
      check(name + " dW_ih", gdwih.host(), dwih, tol * 4);
      check(name + " dW_hh", gdwhh.host(), dwhh, tol * 4);
      check(name + " db", gdb.host(), db, tol * 4);
    });
  }
}

}  // namespace

void check_step_ops() {
  check_gemm_f32();
  check_lora_f32();
  check_dropout();
  check_embedding();
  check_rope();
  check_reductions();
  check_data_movement();
  check_adalora_scores();
  check_nf4_double_dequant();
  check_lstm();
}
