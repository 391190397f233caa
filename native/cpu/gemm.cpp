// GEMM front end: argument checks, ISA dispatch, thread split, per-thread workspaces.
// The loop nest and microkernels live in gemm_driver.h and gemm_{avx512,avx2,portable}.cpp.
//
// Threading: each thread runs the whole serial GotoBLAS nest on its own slice of C (columns when
// N >= M, else rows), with its own packed buffers. The slices are multiples of the microtile so
// no thread gets partial tiles in the middle of C. The two cores here have private 1 MiB L2s, so
// independent slices (rather than a shared packed B) cost only the duplicate packing of the other
// operand, which is O(K*(M or N)) against O(M*N*K) arithmetic.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/storage.h"
#include "../core/thread_pool.h"
#include "copy.h"
#include "gemm.h"
#include "gemm_internal.h"

namespace tk::cpu {
namespace gemm_detail {

// Grow-only, 64-byte aligned scratch per thread: packed panels are a few MiB, and mapping them
// fresh on every call costs page faults comparable to a small GEMM.
struct ThreadWorkspace {
  void* p = nullptr;
  size_t bytes = 0;
  ~ThreadWorkspace() { aligned_free(p); }
};

void* thread_workspace(size_t bytes) {
  thread_local ThreadWorkspace w;
  if (bytes > w.bytes) {
    aligned_free(w.p);
    w.p = nullptr;
    w.bytes = 0;
    w.p = aligned_alloc_bytes(bytes);  // throws ERR_OOM
    w.bytes = bytes;
  }
  return w.p;
}

const IsaGemm& isa_gemm_best() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return isa_gemm_avx512();
  if (f.avx2_fma) return isa_gemm_avx2();
  return isa_gemm_portable();
}

}  // namespace gemm_detail

namespace {
using namespace gemm_detail;

// Below this many flops a second thread costs more (wake-up, duplicate packing) than it saves:
// ~4 MFLOP is ~40 us on one core here.
constexpr double kMinParallelFlops = 4e6;

void check_shape(const GemmShape& s, const void* A, const void* B, const void* C, const char* what) {
  TK_CHECK(s.M >= 0 && s.N >= 0 && s.K >= 0, Shape, what, ": negative size M=", s.M, " N=", s.N, " K=", s.K);
  const int64_t a_cols = s.transA ? s.M : s.K, b_cols = s.transB ? s.K : s.N;
  TK_CHECK(s.lda >= std::max<int64_t>(1, a_cols), Shape, what, ": lda=", s.lda, " is smaller than ", a_cols,
           s.transA ? " (M, A is [K,M])" : " (K, A is [M,K])");
  TK_CHECK(s.ldb >= std::max<int64_t>(1, b_cols), Shape, what, ": ldb=", s.ldb, " is smaller than ", b_cols,
           s.transB ? " (K, B is [N,K])" : " (N, B is [K,N])");
  TK_CHECK(s.ldc >= std::max<int64_t>(1, s.N), Shape, what, ": ldc=", s.ldc, " is smaller than N=", s.N);
  if (s.M > 0 && s.N > 0) {
    TK_CHECK(C != nullptr, Value, what, ": C is null");
    if (s.K > 0 && s.alpha != 0.0f) TK_CHECK(A != nullptr && B != nullptr, Value, what, ": A or B is null");
  }
  TK_CHECK(s.K2 >= 0, Shape, what, ": negative K2=", s.K2);
  if (s.K2 > 0) {
    TK_CHECK(s.K >= 1, Shape, what, ": a second product (K2=", s.K2, ") needs K >= 1");
    TK_CHECK(s.A2 != nullptr && s.B2 != nullptr, Value, what, ": A2 or B2 is null");
    TK_CHECK(s.lda2 >= 0 && s.ldb2 >= s.N, Shape, what, ": lda2=", s.lda2, " / ldb2=", s.ldb2, " (ldb2 must be >= N=", s.N, ")");
  }
}

// C = beta * C, for K == 0 or alpha == 0 (BLAS reads neither A nor B then).
void scale_c(const GemmShape& s, float* C) {
  for (int64_t i = 0; i < s.M; ++i) {
    float* c = C + i * s.ldc;
    if (s.beta == 0.0f) std::fill(c, c + s.N, 0.0f);
    else if (s.beta != 1.0f) for (int64_t j = 0; j < s.N; ++j) c[j] *= s.beta;
  }
}

// scale_c, then the epilogue on all of C (its one block): what the packed path ends with.
void scale_c_then_epilogue(const GemmShape& s, float* C) {
  scale_c(s, C);
  if (s.epilogue) s.epilogue(s.epilogue_ctx, s.epilogue_i0, s.M, s.epilogue_j0, s.N, C, s.ldc);
}

// Whether run_split gives the threads column slices of C, so that each of them packs all of op(A).
bool splits_by_columns(const GemmShape& s, const IsaGemm& isa) {
  const double flops = 2.0 * static_cast<double>(s.M) * static_cast<double>(s.N) * static_cast<double>(s.K);
  const int64_t units = (s.N + isa.nr - 1) / isa.nr;
  return num_threads() > 1 && flops >= kMinParallelFlops && s.N >= s.M && units >= 2;
}

// Runs serial(sub-shape) on each thread's slice of C. TA, TB: float or uint16_t (bf16 bits).
template <class TA, class TB, class Serial>
void run_split(const GemmShape& s, const TA* A, const TB* B, float* C, const IsaGemm& isa, Serial serial) {
  const double flops = 2.0 * static_cast<double>(s.M) * static_cast<double>(s.N) * static_cast<double>(s.K);
  const int nt = num_threads();
  const bool split_n = s.N >= s.M;
  const int64_t unit = split_n ? isa.nr : isa.mr;
  const int64_t units = ((split_n ? s.N : s.M) + unit - 1) / unit;
  if (nt == 1 || flops < kMinParallelFlops || units < 2) {
    serial(s, A, B, C, &thread_workspace);
    return;
  }
  parallel_run([&](int tid, int nthr) {
    const int64_t dim = split_n ? s.N : s.M;
    const int64_t total_units = (dim + unit - 1) / unit;
    const int64_t parts = std::min<int64_t>(nthr, total_units);
    if (tid >= parts) return;
    const int64_t per = total_units / parts, rem = total_units % parts;
    const int64_t u0 = tid * per + std::min<int64_t>(tid, rem);
    const int64_t u1 = u0 + per + (tid < rem ? 1 : 0);
    const int64_t b = u0 * unit, e = std::min(dim, u1 * unit);
    if (b >= e) return;
    GemmShape sub = s;
    if (split_n) {
      sub.N = e - b;
      sub.epilogue_j0 = s.epilogue_j0 + b;
      if (s.K2 > 0) sub.B2 = s.B2 + b;
      serial(sub, A, s.transB ? B + b * s.ldb : B + b, C + b, &thread_workspace);
    } else {
      sub.M = e - b;
      sub.epilogue_i0 = s.epilogue_i0 + b;
      if (s.K2 > 0) sub.A2 = s.A2 + b * s.lda2;
      serial(sub, s.transA ? A + b : A + b * s.lda, B, C + b * s.ldc, &thread_workspace);
    }
  });
}

// M == 1: stream B once instead of packing it (memory bound; packing would double the traffic).
// gemv: the ISA's entry for B's type; round_x: x rounded to bf16 first (gemm_bf16_round_a's A).
template <class TB, class Gemv>
void run_gemv(const GemmShape& s, const float* A, const TB* B, float* C, Gemv gemv, bool round_x) {
  const float* x = A;
  std::vector<float> xs;
  if ((s.transA && s.lda != 1) || round_x) {  // A is [K,1] with a stride: gather the row
    xs.resize(static_cast<size_t>(s.K));
    for (int64_t k = 0; k < s.K; ++k) {
      const float v = A[s.transA ? k * s.lda : k];
      xs[k] = round_x ? bf16_to_f32(f32_to_bf16(v)) : v;
    }
    x = xs.data();
  }
  // Below ~256K multiply-adds one core finishes before a second would start.
  const int64_t grain = std::max<int64_t>(64, (int64_t{1} << 18) / std::max<int64_t>(1, s.K));
  parallel_for(s.N, grain, [&](int64_t n0, int64_t n1) { gemv(x, B, s.ldb, s.transB, s.K, n0, n1, C, s.alpha, s.beta); });
}

SerialBF16 bf16_serial_for(const IsaGemm& isa) {
  // The avx512 table's bf16 entry uses vdpbf16ps; without AVX512_BF16 widen to f32 while packing.
  if (&isa == &isa_gemm_avx512() && !cpu_features().avx512_bf16) return &gemm_bf16_avx512_via_f32;
  return isa.bf16;
}

SerialBF16RoundA bf16_round_a_serial_for(const IsaGemm& isa) {
  if (&isa == &isa_gemm_avx512() && !cpu_features().avx512_bf16) return &gemm_bf16_round_a_avx512_via_f32;
  return isa.bf16_round_a;
}

}  // namespace

void gemm_f32(const GemmShape& s, const float* A, const float* B, float* C) {
  check_shape(s, A, B, C, "gemm_f32");
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0 || s.alpha == 0.0f) return scale_c_then_epilogue(s, C);
  const IsaGemm& isa = isa_gemm_best();
  // the streaming M == 1 path has no second product or epilogue: the packed path takes them
  if (s.M == 1 && isa.gemv && s.K2 == 0 && !s.epilogue) return run_gemv(s, A, B, C, isa.gemv, false);
  run_split(s, A, B, C, isa, isa.f32);
}

void gemm_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C) {
  check_shape(s, A, B, C, "gemm_bf16");
  TK_CHECK(s.K2 == 0, Value, "gemm_bf16: a second product (K2) is f32 only");
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0 || s.alpha == 0.0f) return scale_c_then_epilogue(s, C);
  const IsaGemm& isa = isa_gemm_best();
  run_split(s, A, B, C, isa, bf16_serial_for(isa));
}

void gemm_bf16_round_a(const GemmShape& s, const float* A, const uint16_t* B, float* C) {
  check_shape(s, A, B, C, "gemm_bf16_round_a");
  TK_CHECK(s.K2 == 0, Value, "gemm_bf16_round_a: a second product (K2) is f32 only");
  if (s.M == 0 || s.N == 0) return;
  if (s.K == 0 || s.alpha == 0.0f) return scale_c_then_epilogue(s, C);
  const IsaGemm& isa = isa_gemm_best();
  // one row (decoding a token): stream the bf16 weight once, half the bytes of f32's GEMV
  if (s.M == 1 && isa.gemv_bf16 && !s.epilogue) return run_gemv(s, A, B, C, isa.gemv_bf16, true);
  if (splits_by_columns(s, isa)) {
    // Every thread would round all of A while packing it (the threads split C by columns): the
    // rounding work, and A's f32 reads, times the thread count (measured: the GPT-2 step's
    // GEMMs took as long as the separate cast they replaced). A is rounded once instead, by all
    // threads, into a grow-only buffer of the calling thread (no fresh pages per call), then the
    // plain bf16 GEMM runs. Same bits either way (cast rounds as the packers do).
    const int64_t rows = s.transA ? s.K : s.M, cols = s.transA ? s.M : s.K;
    const int64_t span = (rows - 1) * s.lda + cols;  // A's storage up to its last element
    thread_local std::vector<uint16_t> rounded;
    if (static_cast<int64_t>(rounded.size()) < span) rounded.resize(static_cast<size_t>(span));
    cast(A, DType::F32, rounded.data(), DType::BF16, span);
    return run_split(s, rounded.data(), B, C, isa, bf16_serial_for(isa));
  }
  run_split(s, A, B, C, isa, bf16_round_a_serial_for(isa));
}

void gemm_f32_batched(const GemmShape& s, int64_t batch, const float* A, int64_t strideA, const float* B,
                      int64_t strideB, float* C, int64_t strideC) {
  TK_CHECK(batch >= 0, Shape, "gemm_f32_batched: negative batch ", batch);
  check_shape(s, A, B, C, "gemm_f32_batched");
  TK_CHECK(s.K2 == 0 && !s.epilogue, Value, "gemm_f32_batched: a second product (K2) or an epilogue is not supported");
  TK_CHECK(strideA >= 0 && strideB >= 0 && strideC >= 0, Shape,
           "gemm_f32_batched: negative stride (A ", strideA, ", B ", strideB, ", C ", strideC, ")");
  TK_CHECK(batch <= 1 || strideC >= s.M * s.ldc - (s.ldc - s.N) || s.M == 0 || s.N == 0, Shape,
           "gemm_f32_batched: strideC=", strideC, " makes the C matrices overlap");
  if (batch == 0 || s.M == 0 || s.N == 0) return;
  const int nt = num_threads();
  if (batch >= nt && nt > 1) {
    // One whole product per thread at a time: no split inside each GEMM.
    const IsaGemm& isa = isa_gemm_best();
    parallel_for(batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) {
        float* c = C + i * strideC;
        if (s.K == 0 || s.alpha == 0.0f) scale_c(s, c);
        else isa.f32(s, A + i * strideA, B + i * strideB, c, &thread_workspace);
      }
    });
    return;
  }
  for (int64_t i = 0; i < batch; ++i) gemm_f32(s, A + i * strideA, B + i * strideB, C + i * strideC);
}

const char* gemm_kernel_name() { return isa_gemm_best().name; }

}  // namespace tk::cpu
