// Flash-style attention on the GPU, f32 (semantics of cpu/attention.h). No Tq x Tk matrix is
// ever stored: the forward streams key/value tiles through shared memory with an online softmax
// and saves only out and lse; the backward recomputes P = exp(S - lse) tile by tile.
//
// Forward: a CTA = 4 warps x 4 query rows of one (batch, query head). Key tiles of 32: lane j
// scores key j against the warp's 4 rows (each K value read once serves 4 rows), then the lanes
// switch to owning output dimensions d = lane + 32 c and accumulate P V with the probabilities
// broadcast by shuffles.
//
// Backward: delta_i = dout_i . out_i first; then a CTA (one warp) per (batch, kv head, tile of
// 32 keys) walks every query row of every query head of its group: lane j owns key j and
// accumulates dK_j, dV_j in shared memory (written once at the end, no atomics); dQ gets
// scale * dS K through atomicAdd (dq is zeroed first).
//
// These are SIMT (CUDA core) kernels: correct for any shape with D <= 256; a tensor-core
// version is the next step for speed.
#include <cmath>

#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

constexpr int kMaxD = 256, kDC = kMaxD / 32;  // d chunks per lane
constexpr int kKeyTile = 32, kFwdWarps = 4, kRowsPerWarp = 4, kFwdRows = kFwdWarps * kRowsPerWarp;

struct AttnParams {
  int64_t B, Hq, Hkv, Tq, Tk, D;
  float scale;
  bool causal;
  const float *q, *k, *v, *out, *lse, *dout, *delta;
  const int32_t* mask;
  float *o, *l, *dq, *dk, *dv;
};

__global__ void __launch_bounds__(128) attn_fwd_kernel(const AttnParams p) {
  extern __shared__ float sm[];
  const int D = static_cast<int>(p.D);
  float* Ks = sm;                     // [32][D+1]
  float* Vs = Ks + kKeyTile * (D + 1);  // [32][D]
  float* Qs = Vs + kKeyTile * D;        // [16][D]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t b = blockIdx.z, hq = blockIdx.y, q0 = static_cast<int64_t>(blockIdx.x) * kFwdRows;
  const int64_t hk = hq / (p.Hq / p.Hkv);
  const int64_t qbase = (b * p.Hq + hq) * p.Tq;  // row index of query 0 of this head
  const float* kbase = p.k + (b * p.Hkv + hk) * p.Tk * p.D;
  const float* vbase = p.v + (b * p.Hkv + hk) * p.Tk * p.D;
  const int64_t offset = p.Tk - p.Tq;  // absolute position of query row 0

  for (int idx = threadIdx.x; idx < kFwdRows * D; idx += blockDim.x) {
    const int r = idx / D, d = idx % D;
    Qs[idx] = q0 + r < p.Tq ? p.q[(qbase + q0 + r) * p.D + d] : 0.0f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kDC];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < kDC; ++c) acc[r][c] = 0.0f;
  }

  int64_t kend = p.Tk;
  if (p.causal) {
    const int64_t last = (q0 + kFwdRows - 1 < p.Tq ? q0 + kFwdRows - 1 : p.Tq - 1) + offset;
    kend = last + 1 < p.Tk ? last + 1 : p.Tk;
  }
  for (int64_t j0 = 0; j0 < kend; j0 += kKeyTile) {
    __syncthreads();  // previous tile fully consumed (and Qs written, first time)
    for (int idx = threadIdx.x; idx < kKeyTile * D; idx += blockDim.x) {
      const int jj = idx / D, d = idx % D;
      const bool in = j0 + jj < p.Tk;
      Ks[jj * (D + 1) + d] = in ? kbase[(j0 + jj) * p.D + d] : 0.0f;
      Vs[jj * D + d] = in ? vbase[(j0 + jj) * p.D + d] : 0.0f;
    }
    __syncthreads();
    const int64_t j = j0 + lane;
    bool key_ok = j < p.Tk;
    if (key_ok && p.mask) key_ok = p.mask[b * p.Tk + j] != 0;
    // scores of key j against the warp's rows
    float s[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) s[r] = 0.0f;
    for (int d = 0; d < D; ++d) {
      const float kv = Ks[lane * (D + 1) + d];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) s[r] = fmaf(Qs[(warp * kRowsPerWarp + r) * D + d], kv, s[r]);
    }
    float pr[kRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int64_t i = q0 + warp * kRowsPerWarp + r;
      const bool ok = key_ok && i < p.Tq && (!p.causal || j <= i + offset);
      const float sc = ok ? s[r] * p.scale : -INFINITY;
      const float mnew = fmaxf(m[r], warp_max(sc));
      const float muse = mnew == -INFINITY ? 0.0f : mnew;
      pr[r] = ok ? expf(sc - muse) : 0.0f;
      const float alpha = expf(m[r] - muse);
      l[r] = l[r] * alpha + warp_sum(pr[r]);
#pragma unroll
      for (int c = 0; c < kDC; ++c) acc[r][c] *= alpha;
      m[r] = mnew;
    }
    for (int jj = 0; jj < kKeyTile; ++jj) {
      float pj[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) pj[r] = __shfl_sync(0xffffffffu, pr[r], jj);
#pragma unroll
      for (int c = 0; c < kDC; ++c) {
        const int d = lane + 32 * c;
        if (d < D) {
          const float vv = Vs[jj * D + d];
#pragma unroll
          for (int r = 0; r < kRowsPerWarp; ++r) acc[r][c] = fmaf(pj[r], vv, acc[r][c]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = q0 + warp * kRowsPerWarp + r;
    if (i >= p.Tq) continue;
    const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int c = 0; c < kDC; ++c) {
      const int d = lane + 32 * c;
      if (d < D) p.o[(qbase + i) * p.D + d] = acc[r][c] * inv;
    }
    if (lane == 0) p.l[qbase + i] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// delta[row] = sum_d dout[row, d] * out[row, d]; one warp per row
__global__ void attn_delta_kernel(const float* __restrict__ out, const float* __restrict__ dout, float* __restrict__ delta,
                                  int64_t rows, int64_t D) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int lane = threadIdx.x & 31;
  float s = 0.0f;
  for (int64_t d = lane; d < D; d += 32) s = fmaf(out[row * D + d], dout[row * D + d], s);
  s = warp_sum(s);
  if (lane == 0) delta[row] = s;
}

__global__ void __launch_bounds__(32) attn_bwd_kernel(const AttnParams p) {
  extern __shared__ float sm[];
  const int D = static_cast<int>(p.D), LD = D + 1;
  float* Ks = sm;                   // [32][D+1]
  float* Vs = Ks + kKeyTile * LD;   // [32][D+1]
  float* dKs = Vs + kKeyTile * LD;  // [32][D+1]
  float* dVs = dKs + kKeyTile * LD; // [32][D+1]
  float* qs = dVs + kKeyTile * LD;  // [D]
  float* dos = qs + D;              // [D]
  const int lane = threadIdx.x;
  const int64_t b = blockIdx.z, hk = blockIdx.y, j0 = static_cast<int64_t>(blockIdx.x) * kKeyTile;
  const int64_t G = p.Hq / p.Hkv;
  const int64_t kvrow0 = (b * p.Hkv + hk) * p.Tk + j0;
  const int64_t offset = p.Tk - p.Tq;

  for (int idx = lane; idx < kKeyTile * D; idx += 32) {
    const int jj = idx / D, d = idx % D;
    const bool in = j0 + jj < p.Tk;
    Ks[jj * LD + d] = in ? p.k[(kvrow0 + jj) * p.D + d] : 0.0f;
    Vs[jj * LD + d] = in ? p.v[(kvrow0 + jj) * p.D + d] : 0.0f;
    dKs[jj * LD + d] = 0.0f;
    dVs[jj * LD + d] = 0.0f;
  }
  __syncwarp();
  const int64_t j = j0 + lane;
  bool key_ok = j < p.Tk;
  if (key_ok && p.mask) key_ok = p.mask[b * p.Tk + j] != 0;
  const bool any_key = __any_sync(0xffffffffu, key_ok);

  if (any_key) {
    int64_t i_start = 0;
    if (p.causal && j0 - offset > 0) i_start = j0 - offset;
    for (int64_t hq = hk * G; hq < (hk + 1) * G; ++hq) {
      const int64_t qbase = (b * p.Hq + hq) * p.Tq;
      for (int64_t i = i_start; i < p.Tq; ++i) {
        const int64_t row = qbase + i;
        const float L = p.lse[row];
        if (L == -INFINITY) continue;  // fully masked row: no gradient
        for (int d = lane; d < D; d += 32) {
          qs[d] = p.q[row * p.D + d];
          dos[d] = p.dout[row * p.D + d];
        }
        __syncwarp();
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; ++d) {
          s = fmaf(qs[d], Ks[lane * LD + d], s);
          dp = fmaf(dos[d], Vs[lane * LD + d], dp);
        }
        const bool ok = key_ok && (!p.causal || j <= i + offset);
        const float P = ok ? expf(s * p.scale - L) : 0.0f;
        const float dS = P * (dp - p.delta[row]);
        const float sdS = p.scale * dS;
        if (__any_sync(0xffffffffu, P != 0.0f)) {
          for (int d = 0; d < D; ++d) {
            dVs[lane * LD + d] = fmaf(P, dos[d], dVs[lane * LD + d]);
            dKs[lane * LD + d] = fmaf(sdS, qs[d], dKs[lane * LD + d]);
          }
          for (int d = lane; d < D; d += 32) {
            float a = 0.0f;
            for (int jj = 0; jj < kKeyTile; ++jj) a = fmaf(__shfl_sync(0xffffffffu, sdS, jj), Ks[jj * LD + d], a);
            atomicAdd(p.dq + row * p.D + d, a);
          }
        }
        __syncwarp();  // qs / dos reused by the next row
      }
    }
  }
  __syncwarp();
  for (int idx = lane; idx < kKeyTile * D; idx += 32) {
    const int jj = idx / D, d = idx % D;
    if (j0 + jj < p.Tk) {
      p.dk[(kvrow0 + jj) * p.D + d] = dKs[jj * LD + d];
      p.dv[(kvrow0 + jj) * p.D + d] = dVs[jj * LD + d];
    }
  }
}

void check_cuda_attention(const AttentionShape& s, const char* what) {
  check_attention_shape(s);
  TK_CHECK(s.D <= kMaxD, Shape, what, ": head dimension ", s.D, " exceeds the CUDA kernel's limit of ", kMaxD);
  TK_CHECK(s.Tq <= 65535LL * kFwdRows && s.Hq <= 65535 && s.B <= 65535 && s.Tk <= 65535LL * kKeyTile, Shape, what,
           ": sizes exceed the CUDA grid limits");
}

template <typename K>
void set_smem(K kernel, size_t bytes, const char* what) {
  if (bytes > 48 * 1024)
    cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), what);
}

AttnParams make_params(const AttentionShape& s) {
  AttnParams p{};
  p.B = s.B;
  p.Hq = s.Hq;
  p.Hkv = s.Hkv;
  p.Tq = s.Tq;
  p.Tk = s.Tk;
  p.D = s.D;
  p.scale = s.scale;
  p.causal = s.causal;
  return p;
}

}  // namespace

void attention_forward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                           const int32_t* key_mask, float* out, float* lse) {
  check_cuda_attention(s, "cuda attention forward");
  if (s.B == 0 || s.Hq == 0 || s.Tq == 0) return;
  // Tk == 0 or D == 0 need no special case: no key tile -> out 0, lse -inf; D == 0 -> scores 0
  AttnParams p = make_params(s);
  p.q = q;
  p.k = k;
  p.v = v;
  p.mask = key_mask;
  p.o = out;
  p.l = lse;
  const size_t smem = (kKeyTile * (s.D + 1) + kKeyTile * s.D + kFwdRows * s.D) * sizeof(float);
  set_smem(attn_fwd_kernel, smem, "cuda attention forward");
  dim3 grid(static_cast<unsigned>((s.Tq + kFwdRows - 1) / kFwdRows), static_cast<unsigned>(s.Hq),
            static_cast<unsigned>(s.B));
  attn_fwd_kernel<<<grid, 32 * kFwdWarps, smem>>>(p);
  check_launch("cuda attention forward");
}

void attention_backward_f32(const AttentionShape& s, const float* q, const float* k, const float* v,
                            const float* out, const float* lse, const float* dout, const int32_t* key_mask,
                            float* dq, float* dk, float* dv) {
  check_cuda_attention(s, "cuda attention backward");
  const int64_t qn = s.B * s.Hq * s.Tq * s.D, kn = s.B * s.Hkv * s.Tk * s.D;
  fill_zero(dq, static_cast<size_t>(qn) * 4);
  if (s.B == 0 || s.Hkv == 0 || s.Tk == 0 || s.D == 0) {
    fill_zero(dk, static_cast<size_t>(kn) * 4);
    fill_zero(dv, static_cast<size_t>(kn) * 4);
    return;
  }
  const int64_t rows = s.B * s.Hq * s.Tq;
  DeviceBuffer delta(static_cast<size_t>(rows > 0 ? rows : 1) * 4);
  if (rows > 0) {
    attn_delta_kernel<<<static_cast<unsigned>((rows + 7) / 8), 256>>>(out, dout, delta.get<float>(), rows, s.D);
    check_launch("cuda attention backward (delta)");
  }
  AttnParams p = make_params(s);
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.lse = lse;
  p.dout = dout;
  p.delta = delta.get<float>();
  p.mask = key_mask;
  p.dq = dq;
  p.dk = dk;
  p.dv = dv;
  const size_t smem = (4 * kKeyTile * (s.D + 1) + 2 * s.D) * sizeof(float);
  set_smem(attn_bwd_kernel, smem, "cuda attention backward");
  dim3 grid(static_cast<unsigned>((s.Tk + kKeyTile - 1) / kKeyTile), static_cast<unsigned>(s.Hkv),
            static_cast<unsigned>(s.B));
  attn_bwd_kernel<<<grid, 32, smem>>>(p);
  check_launch("cuda attention backward");
}

}  // namespace tk::cuda
