// Internal interface between the GEMM driver (gemm.cpp: argument checks, dispatch, threading,
// workspaces) and the per-ISA serial GEMMs (gemm_avx512.cpp, gemm_avx2.cpp, gemm_portable.cpp).
//
// Each ISA file exposes plain functions only: no std containers or std::function cross this
// boundary, because an inline std template instantiated in an AVX-512 translation unit could be
// picked by the linker for baseline code (ODR merge) and fault on CPUs without AVX-512.
#pragma once
#include <cstddef>
#include <cstdint>

#include "gemm.h"

namespace tk::cpu::gemm_detail {

// Returns a 64-byte aligned scratch buffer of at least `bytes`, owned by the calling thread and
// valid until that thread's next call. Packed A/B panels live there.
using WorkspaceFn = void* (*)(size_t bytes);

// Serial (single-thread) C = alpha*op(A)op(B) + beta*C over the whole shape `s`. Arguments are
// already validated; M, N > 0; K may be anything >= 1. Threads split the problem above this.
using SerialF32 = void (*)(const GemmShape& s, const float* A, const float* B, float* C, WorkspaceFn ws);
using SerialBF16 = void (*)(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C, WorkspaceFn ws);
// f32 A rounded to bf16 while packing, bf16 B (gemm_bf16_round_a).
using SerialBF16RoundA = void (*)(const GemmShape& s, const float* A, const uint16_t* B, float* C, WorkspaceFn ws);

// y[n0:n1] = alpha * x op(B) + beta * y for one row x (contiguous, K values); B as in GemmShape.
using GemvF32 = void (*)(const float* x, const float* B, int64_t ldb, bool transB, int64_t K, int64_t n0,
                         int64_t n1, float* y, float alpha, float beta);
// The same with B in bf16 bits (widened as loaded: the bits of GemvF32 on the widened values).
using GemvBF16 = void (*)(const float* x, const uint16_t* B, int64_t ldb, bool transB, int64_t K, int64_t n0,
                          int64_t n1, float* y, float alpha, float beta);

struct IsaGemm {
  const char* name;
  SerialF32 f32;
  SerialBF16 bf16;         // bf16 inputs (converted to f32 while packing unless the ISA has dot-bf16)
  int mr, nr;              // microtile (used by the driver to align thread splits)
  GemvF32 gemv = nullptr;  // M == 1 streaming path, where the ISA has one
  SerialBF16RoundA bf16_round_a = nullptr;  // the bf16 entry with an f32 A rounded while packing
  GemvBF16 gemv_bf16 = nullptr;  // M == 1 streaming path for a bf16 B (gemm_bf16_round_a), where the ISA has one
};

// Defined in their own files; the avx512/avx2 tables are only called when cpu_features() allows.
const IsaGemm& isa_gemm_avx512();  // f32 14x32 FMA kernel; bf16 via vdpbf16ps when available
const IsaGemm& isa_gemm_avx2();    // f32 6x16 FMA kernel
const IsaGemm& isa_gemm_portable();

// The avx512 table's bf16 entry needs AVX512_BF16; this one converts bf16->f32 while packing and
// runs the f32 AVX-512 kernel (for AVX-512 CPUs without bf16 dot products).
void gemm_bf16_avx512_via_f32(const GemmShape& s, const uint16_t* A, const uint16_t* B, float* C,
                              WorkspaceFn ws);
void gemm_bf16_round_a_avx512_via_f32(const GemmShape& s, const float* A, const uint16_t* B, float* C,
                                      WorkspaceFn ws);

// The WorkspaceFn the front end passes: a grow-only buffer per thread (defined in gemm.cpp).
void* thread_workspace(size_t bytes);

// Picks the table the CPU supports (respects TUNEKIT_ISA through cpu_features()).
const IsaGemm& isa_gemm_best();

}  // namespace tk::cpu::gemm_detail
