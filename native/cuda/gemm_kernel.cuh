// The tensor-core GEMM kernel shared by gemm.cu (bf16 x bf16) and nf4.cu (bf16 x NF4 weight
// dequantized into shared memory). Not a public header.
//
// C[M,N] = alpha op(A) op(B) + beta C, bf16 operands, f32 accumulation and output.
//
// Tiling: a CTA of 8 warps computes a 128x128 tile of C; warps form a 2 (M) x 4 (N) grid and
// each owns 64x32 = 4x4 mma.sync.m16n8k16 tiles (64 f32 accumulators per thread). K advances
// 32 at a time through a 3-stage shared-memory ring filled by cp.async (16-byte copies) while
// the tensor cores work on the oldest stage.
//
// Each operand tile keeps its global layout in shared memory (the contiguous dimension stays
// contiguous, so the copies are 16-byte vectors for any transpose combination); fragments are
// read with ldmatrix, or ldmatrix.trans when the tile is stored k-major the other way:
//   A [M,K] (row-major A)     : smem [128 m][32 k + 8]  -> ldmatrix
//   A^T stored [K,M]          : smem [32 k][128 m + 8]  -> ldmatrix.trans
//   B^T stored [N,K]          : smem [128 n][32 k + 8]  -> ldmatrix
//   B stored [K,N]            : smem [32 k][128 n + 8]  -> ldmatrix.trans
// The 8-element padding makes the 8 row addresses of every ldmatrix phase hit distinct banks.
//
// Ragged edges (any M, N, K) and unaligned leading dimensions: chunks that are not entirely
// inside the matrix, or rows that are not 16-byte aligned, are loaded element by element with
// zero fill and stored to shared memory directly; the accumulation over zero padding is exact.
//
// NF4 B operand: the weight W [Wrows, Wcols] (bitsandbytes layout) is the B operand, W^T for the
// forward (Y = X W^T: TB, B^T stored [N,K] = W) and W itself for the input gradient (dX = dY W:
// B stored [K,N] = W). Each thread owns 16 consecutive weights of the tile; their 8 packed bytes
// (and the block's absmax) are fetched into registers before the tensor-core work on the current
// stage and are dequantized (codebook * absmax in f32, rounded to bf16) into the free stage after
// it, so the loads overlap the math.
#pragma once
#include "cuda/common.cuh"

namespace tk::cuda::gemm_detail {

constexpr int BM = 128, BN = 128, BK = 32, STAGES = 3, THREADS = 256;
constexpr int LDK = BK + 8;   // stride of tiles stored [128][32]
constexpr int LDW = BM + 8;   // stride of tiles stored [32][128]
constexpr int TILE_ELEMS = (BM * LDK > BK * LDW) ? BM * LDK : BK * LDW;  // 5120
constexpr int STAGE_ELEMS = 2 * TILE_ELEMS;
constexpr size_t SMEM_BYTES = size_t(STAGES) * STAGE_ELEMS * sizeof(uint16_t);  // 61440

struct Params {
  int64_t M = 0, N = 0, K = 0;
  const uint16_t* A = nullptr;
  int64_t lda = 0;
  const uint16_t* B = nullptr;
  int64_t ldb = 0;
  float* C = nullptr;
  int64_t ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  bool vecA = false, vecB = false;
  // NF4 / FP4 weight as the B operand
  const uint8_t* packed = nullptr;
  const float* absmax = nullptr;
  int64_t wrows = 0, wcols = 0;
  int blocksize = 64;
  bool nf4vec = false;  // wcols % 16 == 0, blocksize % 16 == 0, packed 8-byte aligned
  float codebook[16];
};

namespace {

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(smem)), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A ROWS x COLS tile of a row-major bf16 matrix (nrows x ncols, leading dimension ld) starting
// at (row0, col0) into shared memory with row stride LDS. 512 chunks of 8 elements, 2 per thread.
template <int ROWS, int COLS, int LDS>
__device__ __forceinline__ void load_tile_bf16(uint16_t* sm, const uint16_t* __restrict__ g, int64_t ld,
                                               int64_t row0, int64_t col0, int64_t nrows, int64_t ncols, bool vec) {
  constexpr int CPR = COLS / 8;
  constexpr int CHUNKS = ROWS * CPR;
#pragma unroll
  for (int c = threadIdx.x; c < CHUNKS; c += THREADS) {
    const int r = c / CPR, cc = (c % CPR) * 8;
    const int64_t gr = row0 + r, gc = col0 + cc;
    uint16_t* dst = sm + r * LDS + cc;
    if (vec && gr < nrows && gc + 8 <= ncols) {
      cp_async16(dst, g + gr * ld + gc);
    } else {
      uint32_t w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        uint32_t lo = 0, hi = 0;
        if (gr < nrows && gc + 2 * i < ncols) lo = g[gr * ld + gc + 2 * i];
        if (gr < nrows && gc + 2 * i + 1 < ncols) hi = g[gr * ld + gc + 2 * i + 1];
        w[i] = lo | (hi << 16);
      }
      *reinterpret_cast<uint4*>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  }
}

// ---- NF4 B operand: 16 consecutive weights of W per thread ----
struct Nf4Regs {
  uint2 raw;
  float scale;
  bool valid;
};

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// The thread's chunk of a ROWS x COLS tile of W at (wr0, wc0): row tid / (COLS/16), 16 columns.
template <int ROWS, int COLS>
__device__ __forceinline__ void nf4_chunk(int& r, int& c) {
  constexpr int CPR = COLS / 16;
  static_assert(ROWS * CPR == THREADS, "one 16-weight chunk per thread");
  r = threadIdx.x / CPR;
  c = (threadIdx.x % CPR) * 16;
}

template <int ROWS, int COLS>
__device__ __forceinline__ void nf4_prefetch(Nf4Regs& rg, const Params& p, int64_t wr0, int64_t wc0) {
  int r, c;
  nf4_chunk<ROWS, COLS>(r, c);
  const int64_t wr = wr0 + r, wc = wc0 + c;
  rg.valid = wr < p.wrows && wc < p.wcols;
  rg.raw = make_uint2(0, 0);
  rg.scale = 0.0f;
  if (rg.valid) {
    const int64_t flat = wr * p.wcols + wc;  // multiple of 16
    rg.raw = __ldg(reinterpret_cast<const uint2*>(p.packed + (flat >> 1)));
    rg.scale = __ldg(p.absmax + flat / p.blocksize);
  }
}

template <int ROWS, int COLS, int LDS>
__device__ __forceinline__ void nf4_store(const Nf4Regs& rg, uint16_t* sm, const float* cb) {
  int r, c;
  nf4_chunk<ROWS, COLS>(r, c);
  uint32_t w[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    const uint32_t byte = ((j < 4 ? rg.raw.x : rg.raw.y) >> (8 * (j & 3))) & 0xffu;
    // even element (lower address) in the high nibble
    w[j] = pack_bf16x2(cb[byte >> 4] * rg.scale, cb[byte & 15u] * rg.scale);
  }
  uint4* dst = reinterpret_cast<uint4*>(sm + r * LDS + c);
  dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
  dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

// Any shape / blocksize: element by element.
template <int ROWS, int COLS, int LDS>
__device__ __forceinline__ void nf4_load_scalar(uint16_t* sm, const Params& p, const float* cb, int64_t wr0,
                                                int64_t wc0) {
  int r, c;
  nf4_chunk<ROWS, COLS>(r, c);
  const int64_t wr = wr0 + r;
  uint32_t w[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    float v[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int64_t wc = wc0 + c + 2 * j + h;
      v[h] = 0.0f;
      if (wr < p.wrows && wc < p.wcols) {
        const int64_t flat = wr * p.wcols + wc;
        const uint32_t byte = p.packed[flat >> 1];
        const uint32_t code = (flat & 1) ? (byte & 15u) : (byte >> 4);
        v[h] = cb[code] * p.absmax[flat / p.blocksize];
      }
    }
    w[j] = pack_bf16x2(v[0], v[1]);
  }
  uint4* dst = reinterpret_cast<uint4*>(sm + r * LDS + c);
  dst[0] = make_uint4(w[0], w[1], w[2], w[3]);
  dst[1] = make_uint4(w[4], w[5], w[6], w[7]);
}

}  // namespace

template <bool TA, bool TB, bool NF4>
__global__ void __launch_bounds__(THREADS, 2) gemm_kernel(const Params p) {
  extern __shared__ __align__(16) uint16_t smem[];
  __shared__ float cb[16];
  if constexpr (NF4) {
    if (threadIdx.x < 16) cb[threadIdx.x] = p.codebook[threadIdx.x];
    __syncthreads();
  }

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int warp_m = warp >> 2, warp_n = warp & 3;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int numK = static_cast<int>((p.K + BK - 1) / BK);

  auto a_stage = [&](int s) { return smem + s * STAGE_ELEMS; };
  auto b_stage = [&](int s) { return smem + s * STAGE_ELEMS + TILE_ELEMS; };

  auto load_a = [&](int s, int64_t k0) {
    if constexpr (!TA) load_tile_bf16<BM, BK, LDK>(a_stage(s), p.A, p.lda, m0, k0, p.M, p.K, p.vecA);
    else load_tile_bf16<BK, BM, LDW>(a_stage(s), p.A, p.lda, k0, m0, p.K, p.M, p.vecA);
  };
  auto load_b = [&](int s, int64_t k0) {
    if constexpr (TB) load_tile_bf16<BN, BK, LDK>(b_stage(s), p.B, p.ldb, n0, k0, p.N, p.K, p.vecB);
    else load_tile_bf16<BK, BN, LDW>(b_stage(s), p.B, p.ldb, k0, n0, p.K, p.N, p.vecB);
  };
  // NF4: forward tiles are W[n0.., k0..] (128 x 32), dx tiles are W[k0.., n0..] (32 x 128)
  auto nf4_pre = [&](Nf4Regs& rg, int64_t k0) {
    if constexpr (TB) nf4_prefetch<BN, BK>(rg, p, n0, k0);
    else nf4_prefetch<BK, BN>(rg, p, k0, n0);
  };
  auto nf4_put = [&](const Nf4Regs& rg, int s) {
    if constexpr (TB) nf4_store<BN, BK, LDK>(rg, b_stage(s), cb);
    else nf4_store<BK, BN, LDW>(rg, b_stage(s), cb);
  };
  auto nf4_sync_load = [&](int s, int64_t k0) {
    if (p.nf4vec) {
      Nf4Regs rg;
      nf4_pre(rg, k0);
      nf4_put(rg, s);
    } else {
      if constexpr (TB) nf4_load_scalar<BN, BK, LDK>(b_stage(s), p, cb, n0, k0);
      else nf4_load_scalar<BK, BN, LDW>(b_stage(s), p, cb, k0, n0);
    }
  };

  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < numK) {
      load_a(s, static_cast<int64_t>(s) * BK);
      if constexpr (NF4) nf4_sync_load(s, static_cast<int64_t>(s) * BK);
      else load_b(s, static_cast<int64_t>(s) * BK);
    }
    cp_async_commit();
  }

  const int mat = lane >> 3, mr = lane & 7;
  for (int kt = 0; kt < numK; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();

    // refill the stage consumed in the previous iteration
    const int pf = kt + STAGES - 1;
    const int pfs = pf % STAGES;
    Nf4Regs rg;
    rg.valid = false;
    if (pf < numK) {
      load_a(pfs, static_cast<int64_t>(pf) * BK);
      if constexpr (!NF4) load_b(pfs, static_cast<int64_t>(pf) * BK);
      else if (p.nf4vec) nf4_pre(rg, static_cast<int64_t>(pf) * BK);
    }
    cp_async_commit();

    const uint16_t* As = a_stage(kt % STAGES);
    const uint16_t* Bs = b_stage(kt % STAGES);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[4][4];
      uint32_t bfr[4][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int mb = warp_m * 64 + mi * 16;
        if constexpr (!TA) {
          ldmatrix_x4(af[mi], As + (mb + mr + (mat & 1) * 8) * LDK + kk + (mat >> 1) * 8);
        } else {
          ldmatrix_x4_trans(af[mi], As + (kk + mr + (mat >> 1) * 8) * LDW + mb + (mat & 1) * 8);
        }
      }
#pragma unroll
      for (int pr = 0; pr < 2; ++pr) {
        const int nb = warp_n * 32 + pr * 16;
        uint32_t r[4];
        if constexpr (TB) ldmatrix_x4(r, Bs + (nb + mr + (mat >> 1) * 8) * LDK + kk + (mat & 1) * 8);
        else ldmatrix_x4_trans(r, Bs + (kk + mr + (mat & 1) * 8) * LDW + nb + (mat >> 1) * 8);
        bfr[2 * pr][0] = r[0];
        bfr[2 * pr][1] = r[1];
        bfr[2 * pr + 1][0] = r[2];
        bfr[2 * pr + 1][1] = r[3];
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], af[mi], bfr[ni][0], bfr[ni][1]);
    }

    if constexpr (NF4) {
      if (pf < numK && p.nf4vec) nf4_put(rg, pfs);
      else if (pf < numK) nf4_sync_load(pfs, static_cast<int64_t>(pf) * BK);
    }
  }
  cp_async_wait<0>();

  // epilogue: c0,c1 at (row g, cols 2t, 2t+1), c2,c3 at (row g+8, same cols)
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t row = m0 + warp_m * 64 + mi * 16 + g + half * 8;
      if (row >= p.M) continue;
      float* crow = p.C + row * p.ldc;
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int64_t col = n0 + warp_n * 32 + ni * 8 + 2 * t;
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          if (col + e < p.N) {
            float v = p.alpha * acc[mi][ni][half * 2 + e];
            if (p.beta != 0.0f) v += p.beta * crow[col + e];
            crow[col + e] = v;
          }
        }
      }
    }
  }
}

// Host side: launch one instantiation (dynamic shared memory above 48 KiB is opted into once).
template <bool TA, bool TB, bool NF4>
void launch_gemm(const Params& p, const char* what) {
  static bool configured = false;
  if (!configured) {
    cuda_check(cudaFuncSetAttribute(gemm_kernel<TA, TB, NF4>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(SMEM_BYTES)),
               what);
    configured = true;
  }
  const int64_t gx = (p.N + BN - 1) / BN, gy = (p.M + BM - 1) / BM;
  TK_CHECK(gy <= 65535, Shape, what, ": M = ", p.M, " exceeds the CUDA GEMM's limit of ", 65535LL * BM, " rows");
  TK_CHECK(gx <= 0x7fffffffLL, Shape, what, ": N = ", p.N, " too large");
  if (gx == 0 || gy == 0) return;
  gemm_kernel<TA, TB, NF4><<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), THREADS, SMEM_BYTES>>>(p);
  check_launch(what);
}

}  // namespace tk::cuda::gemm_detail
