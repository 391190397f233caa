// Dense matrix multiply on the CPU. Row-major throughout.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C[M,N]
//
// op(A) = A      : A is [M,K] with row stride lda >= K
// op(A) = A^T    : A is [K,M] with row stride lda >= M   (transA)
// op(B) = B      : B is [K,N] with row stride ldb >= N
// op(B) = B^T    : B is [N,K] with row stride ldb >= K   (transB)
// beta == 0 overwrites C (NaNs in C are not propagated), as BLAS does.
#pragma once
#include <cstdint>

#include "core/shapes.h"

namespace tk::cpu {

// The backend-neutral shape (core/shapes.h: transA/B, M, N, K, lda/ldb/ldc, alpha, beta) plus
// what only the CPU kernels take.
struct GemmShape : tk::GemmShape {
  // A second, thin product summed in the same pass over C (K-concatenation [op(A) | A2]
  // [op(B) ; B2] without forming either): C = alpha (op(A) op(B) + A2 B2) + beta C, with A2
  // [M, K2] and B2 [K2, N] row-major (row strides lda2, ldb2) and K2 small (a LoRA rank, plus a
  // bias as a column of ones). It is packed with the last K block, so C is written once instead
  // of being read and written again by a separate rank-K2 update. f32 only; K must be >= 1.
  const float* A2 = nullptr;
  const float* B2 = nullptr;
  int64_t K2 = 0, lda2 = 0, ldb2 = 0;
  // An epilogue on each finished block of C, run by the thread that computed it right after the
  // block's last K step, while it is still in L2: epilogue(ctx, i0, m, j0, n, Cb, ldc) with Cb
  // the block [m, n] at rows i0.., columns j0.. of the whole C (indices count from the caller's
  // C, whatever the thread split). Blocks tile C exactly once. gemm_f32, gemm_bf16 and
  // gemm_bf16_round_a (not the batched GEMM).
  void (*epilogue)(void* ctx, int64_t i0, int64_t m, int64_t j0, int64_t n, float* Cb, int64_t ldc) = nullptr;
  void* epilogue_ctx = nullptr;
  int64_t epilogue_i0 = 0, epilogue_j0 = 0;  // this (sub-)shape's C within the caller's (set by the split)
};

// Fast path: packed panels, AVX-512 / AVX2-FMA / portable microkernel chosen at run time,
// multi-threaded over the core's pool.
void gemm_f32(const GemmShape& s, const float* A, const float* B, float* C);
// The same with the shape spelled out (a convenience for kernels that call GEMM on sub-blocks).
inline void gemm_f32(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  GemmShape g;
  g.transA = transA;
  g.transB = transB;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.alpha = alpha;
  g.beta = beta;
  gemm_f32(g, A, B, C);
}
// bf16 inputs (raw uint16 bf16 bits), f32 accumulation and f32 output.
void gemm_bf16(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C);
// gemm_bf16 with an f32 A that is rounded to bf16 (f32_to_bf16: nearest even, NaN kept quiet)
// while it is packed: bit for bit cast(A -> bf16) followed by gemm_bf16 (same packed panels,
// blocking, thread split and kernel), without the cast's pass over A and its [M, K] bf16 buffer.
// For an f32 activation times a frozen weight's bf16 copy (TUNEKIT_COMPUTE_DTYPE=bf16). When
// the threads split C by columns (each would pack, so round, all of A) A is instead rounded once
// by all threads into a grow-only buffer of the calling thread (2 M K bytes, kept for reuse: the
// GPT-2 LM head's logits gradient makes it 51 MB) and the bf16 GEMM runs on that.
void gemm_bf16_round_a(const GemmShape& s, const float* A, const uint16_t* B, float* C);

// Batched: batch independent products, matrices `strideX` elements apart (0 = shared operand).
void gemm_f32_batched(const GemmShape& s, int64_t batch, const float* A, int64_t strideA,
                      const float* B, int64_t strideB, float* C, int64_t strideC);

// Plain triple loop in double precision accumulation: the oracle for the fast paths.
void gemm_f32_reference(const GemmShape& s, const float* A, const float* B, float* C);
void gemm_bf16_reference(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C);

// Name of the microkernel the fast path dispatches to on this CPU ("avx512", "avx2", "portable").
const char* gemm_kernel_name();

}  // namespace tk::cpu
