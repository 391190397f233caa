// NF4 / FP4 weights on the GPU: dequantize, the streaming GEMV for a few tokens, and the
// dequant-GEMM for many tokens (tiles dequantized to bf16 in shared memory, then mma.sync; the
// kernel is the bf16 GEMM's, gemm_kernel.cuh). Layout and arithmetic as cpu/nf4.h: flat index
// i = row * K + col, byte i/2 holds element i in its high nibble when i is even, w = code[c] *
// absmax[i / blocksize] in f32.
#include <cstring>

#include "cuda/gemm_kernel.cuh"
#include "core/quant4.h"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

struct Codebook {
  float v[16];
};

Codebook codebook_of(const Nf4Weight& W) {
  Codebook cb;
  std::memcpy(cb.v, W.type == Quant4Type::FP4 ? kFp4Codebook : kNf4Codebook, sizeof(cb.v));
  return cb;
}

void check_weight(const Nf4Weight& W, const char* what) {
  TK_CHECK(W.N >= 0 && W.K >= 0, Shape, what, ": negative weight shape [", W.N, ", ", W.K, "]");
  TK_CHECK(W.blocksize >= 2, Value, what, ": blocksize must be >= 2 but is ", W.blocksize);
  TK_CHECK(W.N * W.K == 0 || (W.packed && W.absmax), Value, what, ": null packed/absmax");
}

// ---- dequantize: one packed byte (two weights) per thread step ----
template <bool BF16>
__global__ void dequant_kernel(const uint8_t* __restrict__ packed, const float* __restrict__ absmax, int64_t n,
                               int blocksize, Codebook cbp, void* __restrict__ out) {
  __shared__ float cb[16];
  if (threadIdx.x < 16) cb[threadIdx.x] = cbp.v[threadIdx.x];
  __syncthreads();
  const int64_t nbytes = (n + 1) / 2;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < nbytes; j += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t byte = packed[j];
    const int64_t i0 = 2 * j, i1 = 2 * j + 1;
    const float v0 = cb[byte >> 4] * absmax[i0 / blocksize];
    if constexpr (BF16) {
      uint16_t* o = static_cast<uint16_t*>(out);
      __nv_bfloat16 h0 = __float2bfloat16_rn(v0);
      o[i0] = *reinterpret_cast<uint16_t*>(&h0);
      if (i1 < n) {
        __nv_bfloat16 h1 = __float2bfloat16_rn(cb[byte & 15u] * absmax[i1 / blocksize]);
        o[i1] = *reinterpret_cast<uint16_t*>(&h1);
      }
    } else {
      float* o = static_cast<float*>(out);
      o[i0] = v0;
      if (i1 < n) o[i1] = cb[byte & 15u] * absmax[i1 / blocksize];
    }
  }
}

// ---- GEMV ----
// Fast path (K % 8 == 0, blocksize % 8 == 0, packed 4-byte aligned): a CTA of 8 warps owns 4
// weight rows; the row is cut into segments of 256 weights (32 lanes x 8 weights = one 4-byte
// word per lane, 128 coalesced bytes per row per warp), and warp w takes segments w, w+8, ...
// Every x value a lane loads serves 4 rows, which keeps L1 traffic for x below the weight
// stream; the 8 warps' partial sums are reduced in shared memory. Up to 4 tokens per pass.
constexpr int kGemvRows = 4, kGemvWarps = 8, kGemvTokens = 4;

struct GemvParams {
  const float* X;
  int64_t M, ldx;
  const uint8_t* packed;
  const float* absmax;
  int64_t N, K;
  int blocksize;
  float* Y;
  int64_t ldy;
  float beta;
  bool xvec;  // X rows 16-byte aligned
  Codebook cb;
};

__global__ void __launch_bounds__(256) gemv_fast_kernel(const GemvParams p) {
  __shared__ float cb[16];
  __shared__ float red[kGemvWarps][kGemvRows][kGemvTokens];
  if (threadIdx.x < 16) cb[threadIdx.x] = p.cb.v[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kGemvRows;
  const int64_t chunks = p.K / 8;
  const int64_t nseg = (chunks + 31) / 32;
  const uint32_t* words = reinterpret_cast<const uint32_t*>(p.packed);

  float acc[kGemvRows][kGemvTokens];
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r)
#pragma unroll
    for (int m = 0; m < kGemvTokens; ++m) acc[r][m] = 0.0f;

#pragma unroll 2
  for (int64_t seg = warp; seg < nseg; seg += kGemvWarps) {
    const int64_t c = seg * 32 + lane;
    if (c >= chunks) continue;
    const int64_t k = c * 8;
    // weights first (the long-latency stream), then x
    uint32_t wd[kGemvRows];
    float sc[kGemvRows];
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
      const int64_t n = n0 + r;
      wd[r] = 0;
      sc[r] = 0.0f;
      if (n < p.N) {
        const int64_t flat = n * p.K + k;
        wd[r] = __ldg(words + flat / 8);
        sc[r] = __ldg(p.absmax + flat / p.blocksize);
      }
    }
    float xv[kGemvTokens][8];
#pragma unroll
    for (int m = 0; m < kGemvTokens; ++m) {
      if (m < p.M) {
        const float* xr = p.X + m * p.ldx + k;
        if (p.xvec) {
          const float4 a = __ldg(reinterpret_cast<const float4*>(xr));
          const float4 b = __ldg(reinterpret_cast<const float4*>(xr) + 1);
          xv[m][0] = a.x; xv[m][1] = a.y; xv[m][2] = a.z; xv[m][3] = a.w;
          xv[m][4] = b.x; xv[m][5] = b.y; xv[m][6] = b.z; xv[m][7] = b.w;
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) xv[m][j] = __ldg(xr + j);
        }
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) xv[m][j] = 0.0f;
      }
    }
#pragma unroll
    for (int r = 0; r < kGemvRows; ++r) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t byte = (wd[r] >> (8 * j)) & 0xffu;
        const float w0 = cb[byte >> 4] * sc[r], w1 = cb[byte & 15u] * sc[r];
#pragma unroll
        for (int m = 0; m < kGemvTokens; ++m) acc[r][m] = fmaf(xv[m][2 * j + 1], w1, fmaf(xv[m][2 * j], w0, acc[r][m]));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r)
#pragma unroll
    for (int m = 0; m < kGemvTokens; ++m) {
      const float s = warp_sum(acc[r][m]);
      if (lane == 0) red[warp][r][m] = s;
    }
  __syncthreads();
  if (threadIdx.x < kGemvRows * kGemvTokens) {
    const int r = threadIdx.x / kGemvTokens, m = threadIdx.x % kGemvTokens;
    const int64_t n = n0 + r;
    if (n < p.N && m < p.M) {
      float s = 0.0f;
#pragma unroll
      for (int w = 0; w < kGemvWarps; ++w) s += red[w][r][m];
      float* y = p.Y + m * p.ldy + n;
      *y = p.beta != 0.0f ? s + p.beta * *y : s;
    }
  }
}

// Any K / blocksize / alignment: a warp per weight row, element-wise nibble decode.
__global__ void gemv_generic_kernel(const GemvParams p) {
  __shared__ float cb[16];
  if (threadIdx.x < 16) cb[threadIdx.x] = p.cb.v[threadIdx.x];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (n >= p.N) return;
  float acc[kGemvTokens] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t k = lane; k < p.K; k += 32) {
    const int64_t flat = n * p.K + k;
    const uint32_t byte = p.packed[flat >> 1];
    const float w = cb[(flat & 1) ? (byte & 15u) : (byte >> 4)] * p.absmax[flat / p.blocksize];
#pragma unroll
    for (int m = 0; m < kGemvTokens; ++m)
      if (m < p.M) acc[m] = fmaf(p.X[m * p.ldx + k], w, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < kGemvTokens; ++m) {
    const float s = warp_sum(acc[m]);
    if (lane == 0 && m < p.M) {
      float* y = p.Y + m * p.ldy + n;
      *y = p.beta != 0.0f ? s + p.beta * *y : s;
    }
  }
}

gemm_detail::Params nf4_gemm_params(const Nf4Weight& W) {
  gemm_detail::Params p;
  p.packed = W.packed;
  p.absmax = W.absmax;
  p.wrows = W.N;
  p.wcols = W.K;
  p.blocksize = W.blocksize;
  p.nf4vec = W.K % 16 == 0 && W.blocksize % 16 == 0 && (reinterpret_cast<uintptr_t>(W.packed) & 7u) == 0;
  std::memcpy(p.codebook, codebook_of(W).v, sizeof(p.codebook));
  return p;
}

}  // namespace

void nf4_dequantize(const Nf4Weight& W, float* out) {
  check_weight(W, "cuda nf4_dequantize");
  const int64_t n = W.N * W.K;
  if (n == 0) return;
  dequant_kernel<false><<<grid_1d((n + 1) / 2, 256), 256>>>(W.packed, W.absmax, n, W.blocksize, codebook_of(W), out);
  check_launch("cuda nf4_dequantize");
}

void nf4_dequantize_bf16(const Nf4Weight& W, uint16_t* out) {
  check_weight(W, "cuda nf4_dequantize_bf16");
  const int64_t n = W.N * W.K;
  if (n == 0) return;
  dequant_kernel<true><<<grid_1d((n + 1) / 2, 256), 256>>>(W.packed, W.absmax, n, W.blocksize, codebook_of(W), out);
  check_launch("cuda nf4_dequantize_bf16");
}

void nf4_gemv(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy, float beta) {
  check_weight(W, "cuda nf4_gemv");
  TK_CHECK(M >= 0, Shape, "cuda nf4_gemv: negative M");
  TK_CHECK(ldx >= W.K && ldy >= W.N, Shape, "cuda nf4_gemv: ldx ", ldx, " < K ", W.K, " or ldy ", ldy, " < N ", W.N);
  if (M == 0 || W.N == 0) return;
  const bool fast = W.K % 8 == 0 && W.blocksize % 8 == 0 && (reinterpret_cast<uintptr_t>(W.packed) & 3u) == 0;
  for (int64_t m0 = 0; m0 < M; m0 += kGemvTokens) {
    GemvParams p;
    p.X = X + m0 * ldx;
    p.M = M - m0 < kGemvTokens ? M - m0 : kGemvTokens;
    p.ldx = ldx;
    p.packed = W.packed;
    p.absmax = W.absmax;
    p.N = W.N;
    p.K = W.K;
    p.blocksize = W.blocksize;
    p.Y = Y + m0 * ldy;
    p.ldy = ldy;
    p.beta = beta;
    p.xvec = ldx % 4 == 0 && (reinterpret_cast<uintptr_t>(X) & 15u) == 0;
    p.cb = codebook_of(W);
    if (fast) {
      gemv_fast_kernel<<<static_cast<unsigned>((W.N + kGemvRows - 1) / kGemvRows), 32 * kGemvWarps>>>(p);
    } else {
      gemv_generic_kernel<<<static_cast<unsigned>((W.N + 7) / 8), 256>>>(p);
    }
    check_launch("cuda nf4_gemv");
  }
}

void nf4_gemm_bf16(const uint16_t* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy, float beta) {
  check_weight(W, "cuda nf4_gemm_bf16");
  TK_CHECK(M >= 0 && ldx >= W.K && ldy >= W.N, Shape, "cuda nf4_gemm_bf16: bad M/ldx/ldy");
  if (M == 0 || W.N == 0) return;
  gemm_detail::Params p = nf4_gemm_params(W);
  p.M = M;
  p.N = W.N;
  p.K = W.K;
  p.A = X;
  p.lda = ldx;
  p.vecA = (reinterpret_cast<uintptr_t>(X) & 15u) == 0 && ldx % 8 == 0;
  p.C = Y;
  p.ldc = ldy;
  p.beta = beta;
  gemm_detail::launch_gemm<false, true, true>(p, "cuda nf4_gemm_bf16");
}

void nf4_gemm_dx_bf16(const uint16_t* dY, int64_t M, int64_t lddy, const Nf4Weight& W, float* dX, int64_t lddx,
                      float beta) {
  check_weight(W, "cuda nf4_gemm_dx_bf16");
  TK_CHECK(M >= 0 && lddy >= W.N && lddx >= W.K, Shape, "cuda nf4_gemm_dx_bf16: bad M/lddy/lddx");
  if (M == 0 || W.K == 0) return;
  gemm_detail::Params p = nf4_gemm_params(W);
  p.M = M;
  p.N = W.K;
  p.K = W.N;
  p.A = dY;
  p.lda = lddy;
  p.vecA = (reinterpret_cast<uintptr_t>(dY) & 15u) == 0 && lddy % 8 == 0;
  p.C = dX;
  p.ldc = lddx;
  p.beta = beta;
  gemm_detail::launch_gemm<false, false, true>(p, "cuda nf4_gemm_dx_bf16");
}

// ---- double quantization of the absmax array (cpu/nf4.h nf4_double_dequantize_absmax) ----

namespace {
struct DynamicMap {
  float v[256];
};
__global__ void double_dequant_kernel(const uint8_t* __restrict__ q, const float* __restrict__ nested, float offset,
                                      int64_t nblocks, const DynamicMap code, float* __restrict__ absmax) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < nblocks; i += int64_t(gridDim.x) * blockDim.x)
    absmax[i] = __fadd_rn(__fmul_rn(code.v[q[i]], nested[i / 256]), offset);  // two roundings, as the CPU
}
}  // namespace

void nf4_double_dequantize_absmax(const uint8_t* q, const float* nested_absmax, float offset, int64_t nblocks,
                                  const float* dynamic_map_host, float* absmax) {
  TK_CHECK(nblocks >= 0, Shape, "cuda nf4_double_dequantize_absmax: negative length ", nblocks);
  if (nblocks == 0) return;
  DynamicMap m;
  std::memcpy(m.v, dynamic_map_host, sizeof(m.v));
  double_dequant_kernel<<<grid_1d(nblocks, 256), 256>>>(q, nested_absmax, offset, nblocks, m, absmax);
  check_launch("cuda nf4_double_dequantize_absmax");
}

}  // namespace tk::cuda
