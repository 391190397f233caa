// NF4/FP4 quantization (scalar, bit-exact with bitsandbytes' rules in REFERENCE.md), double
// quantization of the absmax array, and the front ends of the NF4 matmuls (argument checks,
// dispatch to nf4_avx512.cpp, thread split; a dequantize-then-gemm_f32 fallback elsewhere).
#include "nf4.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/cpu_features.h"
#include "../core/dtype.h"
#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"
#include "core/quant4.h"
#include "gemm_internal.h"

namespace tk::cpu {

namespace {

// The code values (core/quant4.h, shared with the CUDA backend), index = code.
constexpr const float* kNf4 = kNf4Codebook;
constexpr const float* kFp4 = kFp4Codebook;

// NF4 code of a normalised value x in [-1, 1]: the number of midpoints strictly below x
// (ties go down). The midpoints are computed in fp32 from the codebook, as bitsandbytes' own
// threshold constants are.
struct Nf4Thresholds {
  float mid[15];
  Nf4Thresholds() {
    for (int i = 0; i < 15; ++i) mid[i] = (kNf4[i] + kNf4[i + 1]) / 2.0f;
  }
};
const Nf4Thresholds& nf4_thresholds() {
  static const Nf4Thresholds t;
  return t;
}

inline uint8_t nf4_code(float x, const float* mid) {
  uint8_t c = 0;
  for (int i = 0; i < 15; ++i) c += x > mid[i] ? 1 : 0;
  return c;
}

// FP4 magnitude thresholds: midpoints of the sorted magnitudes {0, 0.0625, 2, 3, 4, 6, 8, 12}/12,
// with the codes those magnitudes have in the bit order above.
inline uint8_t fp4_code(float x) {
  const uint8_t sign = x < 0.0f ? 8 : 0;
  const float a = std::fabs(x);
  uint8_t m;
  if (a > 0.29166667f) {        // (3+4)/2/12
    if (a > 0.583333f)          // (6+8)/2/12
      m = a > 0.8333333f ? 3 : 2;  // (8+12)/2/12: 12 or 8
    else
      m = a > 0.4166667f ? 5 : 4;  // (4+6)/2/12: 6 or 4
  } else {
    if (a > 0.0859375f)         // (0.0625+2)/2/12
      m = a > 0.20833333f ? 7 : 6;  // (2+3)/2/12: 3 or 2
    else
      m = a > 0.00260417f ? 1 : 0;  // (0+0.0625)/2/12: 0.0625 or 0
  }
  return static_cast<uint8_t>(sign + m);
}

void check_4bit_args(const void* in, int64_t n, int blocksize, const void* packed, const void* absmax,
                     const char* what) {
  TK_CHECK(n >= 0, Shape, what, ": negative length ", n);
  TK_CHECK(blocksize >= 2, Value, what, ": blocksize must be >= 2, got ", blocksize);
  if (n > 0) TK_CHECK(in && packed && absmax, Value, what, ": null pointer");
}

template <class CodeFn>
void quantize_4bit(const float* w, int64_t n, int blocksize, uint8_t* packed, float* absmax, uint8_t zero_code,
                   CodeFn code_of, const char* what) {
  check_4bit_args(w, n, blocksize, packed, absmax, what);
  const int64_t nblocks = (n + blocksize - 1) / blocksize;
  // Threads own whole blocks; an odd blocksize would make two blocks share a byte, so run serially.
  const int64_t grain = (blocksize & 1) ? nblocks : std::max<int64_t>(1, 16384 / blocksize);
  parallel_for(nblocks, grain, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t e0 = b * blocksize, e1 = std::min(n, e0 + blocksize);
      float amax = 0.0f;
      for (int64_t e = e0; e < e1; ++e) amax = std::max(amax, std::fabs(w[e]));
      absmax[b] = amax;
      const float inv = amax == 0.0f ? 0.0f : 1.0f / amax;
      // Nibble by nibble: a block of odd size shares a byte with its neighbour.
      for (int64_t e = e0; e < e1; ++e) {
        const uint8_t c = amax == 0.0f ? zero_code : code_of(w[e] * inv);
        uint8_t& byte = packed[e >> 1];
        if ((e & 1) == 0) byte = static_cast<uint8_t>((c << 4) | (byte & 0x0F));
        else byte = static_cast<uint8_t>((byte & 0xF0) | c);
      }
    }
  });
  // An odd length leaves one low nibble past the end. bitsandbytes fills it as if the last block
  // held one more 0.0 (its CPU path pads the scaled values with 0 before bucketize, its CUDA
  // kernel loads 0.0 past n): NF4 code 7, FP4 code 0; an all-zero last block gives zero_code.
  if (n & 1) {
    const float last_amax = absmax[(n - 1) / blocksize];
    const uint8_t pad = last_amax == 0.0f ? zero_code : code_of(0.0f);
    packed[n >> 1] = static_cast<uint8_t>((packed[n >> 1] & 0xF0) | pad);
  }
}

template <class Out, class Convert>
void dequantize_4bit(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, Out* out,
                     const float* book, Convert cvt, const char* what) {
  check_4bit_args(packed, n, blocksize, packed, absmax, what);
  TK_CHECK(n == 0 || out, Value, what, ": null output");
  parallel_for(n, 1 << 16, [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      const uint8_t byte = packed[e >> 1];
      const uint8_t c = (e & 1) ? (byte & 0x0F) : (byte >> 4);
      out[e] = cvt(book[c] * absmax[e / blocksize]);
    }
  });
}

// bitsandbytes' create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), with the
// fp32 arithmetic torch does for it: for exponent i = 0..6, 2^i + 1 boundaries
// torch.linspace(0.1, 1, 2^i + 1) (fp32 step, start + step*k fused, second half from the end),
// midpoints (b[j] + b[j+1]) / 2, scaled by fp32(10^(i-6)) in fp32, both signs; then 0 and 1;
// sorted. Checked against torch 2.13 output in test_nf4.cpp.
struct DynamicMap {
  float v[256];
  DynamicMap() {
    std::vector<float> data;
    for (int i = 0; i < 7; ++i) {
      const int n = (1 << i) + 1;
      const float start = 0.1f, end = 1.0f;
      const float step = (end - start) / static_cast<float>(n - 1);
      std::vector<float> b(n);
      for (int k = 0; k < n; ++k)
        b[k] = k < n / 2 ? std::fmaf(step, static_cast<float>(k), start)
                         : std::fmaf(-step, static_cast<float>(n - 1 - k), end);
      const float scale = static_cast<float>(std::pow(10.0, i - 6));
      for (int j = 0; j + 1 < n; ++j) {
        const float mean = (b[j] + b[j + 1]) / 2.0f;
        data.push_back(scale * mean);
        data.push_back(-scale * mean);
      }
    }
    data.push_back(0.0f);
    data.push_back(1.0f);
    std::sort(data.begin(), data.end());
    std::copy(data.begin(), data.end(), v);
  }
};

}  // namespace

const float* nf4_codebook() { return kNf4; }
const float* fp4_codebook() { return kFp4; }

void nf4_quantize(const float* w, int64_t n, int blocksize, uint8_t* packed, float* absmax) {
  const float* mid = nf4_thresholds().mid;
  quantize_4bit(w, n, blocksize, packed, absmax, 7, [mid](float x) { return nf4_code(x, mid); }, "nf4_quantize");
}

void fp4_quantize(const float* w, int64_t n, int blocksize, uint8_t* packed, float* absmax) {
  quantize_4bit(w, n, blocksize, packed, absmax, 0, [](float x) { return fp4_code(x); }, "fp4_quantize");
}

void nf4_dequantize(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, float* out) {
  dequantize_4bit(packed, absmax, n, blocksize, out, kNf4, [](float v) { return v; }, "nf4_dequantize");
}

void fp4_dequantize(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, float* out) {
  dequantize_4bit(packed, absmax, n, blocksize, out, kFp4, [](float v) { return v; }, "fp4_dequantize");
}

void nf4_dequantize_bf16(const uint8_t* packed, const float* absmax, int64_t n, int blocksize, uint16_t* out) {
  dequantize_4bit(packed, absmax, n, blocksize, out, kNf4, [](float v) { return f32_to_bf16(v); },
                  "nf4_dequantize_bf16");
}

const float* dynamic_map_signed() {
  static const DynamicMap m;
  return m.v;
}

void nf4_double_quantize_absmax(const float* absmax, int64_t nblocks, uint8_t* q, float* nested_absmax,
                                float* offset) {
  TK_CHECK(nblocks >= 0, Shape, "nf4_double_quantize_absmax: negative length ", nblocks);
  TK_CHECK(offset != nullptr, Value, "nf4_double_quantize_absmax: null offset");
  if (nblocks == 0) {
    *offset = 0.0f;
    return;
  }
  TK_CHECK(absmax && q && nested_absmax, Value, "nf4_double_quantize_absmax: null pointer");
  // torch's mean accumulates pairwise in fp32; a double sum rounded once is at least as accurate
  // and may differ from it in the last bit.
  double sum = 0.0;
  for (int64_t i = 0; i < nblocks; ++i) sum += absmax[i];
  const float off = static_cast<float>(sum / static_cast<double>(nblocks));
  *offset = off;
  const float* code = dynamic_map_signed();
  constexpr int64_t kBlock = 256;
  for (int64_t b = 0; b * kBlock < nblocks; ++b) {
    const int64_t i0 = b * kBlock, i1 = std::min(nblocks, i0 + kBlock);
    float amax = 0.0f;
    for (int64_t i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(absmax[i] - off));
    nested_absmax[b] = amax;
    for (int64_t i = i0; i < i1; ++i) {
      // bitsandbytes' CPU blockwise quantizer: divide by the block absmax, binary-search the
      // sorted map for the last value <= x, then step right only if strictly nearer.
      const float x = amax == 0.0f ? 0.0f : (absmax[i] - off) / amax;
      int lo = 0, hi = 255;  // invariant: code[lo] <= x unless x < code[0]
      if (x < code[0]) {
        hi = 0;
      } else {
        while (hi - lo > 1) {
          const int mid = (lo + hi) / 2;
          if (code[mid] <= x) lo = mid;
          else hi = mid;
        }
        if (code[hi] <= x) lo = hi;
        hi = lo;
        if (lo < 255 && std::fabs(x - code[lo + 1]) < std::fabs(x - code[lo])) hi = lo + 1;
      }
      q[i] = static_cast<uint8_t>(hi);
    }
  }
}

void nf4_double_dequantize_absmax(const uint8_t* q, const float* nested_absmax, float offset, int64_t nblocks,
                                  float* absmax) {
  TK_CHECK(nblocks >= 0, Shape, "nf4_double_dequantize_absmax: negative length ", nblocks);
  if (nblocks == 0) return;
  TK_CHECK(q && nested_absmax && absmax, Value, "nf4_double_dequantize_absmax: null pointer");
  const float* code = dynamic_map_signed();
  for (int64_t i = 0; i < nblocks; ++i) {
    const float scaled = code[q[i]] * nested_absmax[i / 256];  // two roundings, as bitsandbytes
    absmax[i] = scaled + offset;
  }
}

// ---- NF4 matmuls ------------------------------------------------------------------------------

namespace {

void check_weight(const Nf4Weight& W, const char* what) {
  TK_CHECK(W.N >= 0 && W.K >= 0, Shape, what, ": negative weight shape [", W.N, ", ", W.K, "]");
  TK_CHECK(W.blocksize >= 2, Value, what, ": blocksize must be >= 2, got ", W.blocksize);
  if (W.N > 0 && W.K > 0) TK_CHECK(W.packed && W.absmax, Value, what, ": weight has null data");
}

// Fallback without AVX-512: expand W to f32 once and use the dense GEMM.
std::vector<float> dequantize_all(const Nf4Weight& W) {
  std::vector<float> w(static_cast<size_t>(W.N * W.K));
  if (W.type == Quant4Type::NF4) nf4_dequantize(W.packed, W.absmax, W.N * W.K, W.blocksize, w.data());
  else fp4_dequantize(W.packed, W.absmax, W.N * W.K, W.blocksize, w.data());
  return w;
}

// Splits `dim` (rows of Y for forward = W rows; columns of dX = W columns) across threads in
// multiples of the microtile width 32, like gemm_f32.
template <class Fn>
void split_columns(int64_t dim, double flops, Fn fn) {
  const int64_t unit = 32, units = (dim + unit - 1) / unit;
  if (num_threads() == 1 || flops < 4e6 || units < 2) {
    fn(0, dim);
    return;
  }
  parallel_run([&](int tid, int nthr) {
    const int64_t parts = std::min<int64_t>(nthr, units);
    if (tid >= parts) return;
    const int64_t per = units / parts, rem = units % parts;
    const int64_t u0 = tid * per + std::min<int64_t>(tid, rem), u1 = u0 + per + (tid < rem ? 1 : 0);
    const int64_t b = u0 * unit, e = std::min(dim, u1 * unit);
    if (b < e) fn(b, e);
  });
}

}  // namespace

void nf4_gemm(const float* X, int64_t M, int64_t ldx, const Nf4Weight& W, float* Y, int64_t ldy, float beta) {
  check_weight(W, "nf4_gemm");
  TK_CHECK(M >= 0, Shape, "nf4_gemm: negative M ", M);
  TK_CHECK(ldx >= std::max<int64_t>(1, W.K), Shape, "nf4_gemm: ldx=", ldx, " is smaller than K=", W.K);
  TK_CHECK(ldy >= std::max<int64_t>(1, W.N), Shape, "nf4_gemm: ldy=", ldy, " is smaller than N=", W.N);
  if (M == 0 || W.N == 0) return;
  TK_CHECK(X && Y, Value, "nf4_gemm: null X or Y");
  GemmShape s;
  s.M = M; s.N = W.N; s.K = W.K;
  s.transB = true;
  s.lda = ldx; s.ldb = std::max<int64_t>(1, W.K); s.ldc = ldy;
  s.beta = beta;
  if (W.K == 0) {  // Y = beta * Y
    GemmShape z = s;
    z.alpha = 0.0f;
    return gemm_f32(z, X, nullptr, Y);
  }
  if (!cpu_features().avx512f) {
    const std::vector<float> w = dequantize_all(W);
    return gemm_f32(s, X, w.data(), Y);
  }
  const double flops = 2.0 * M * W.N * W.K;
  if (M <= nf4_detail::kGemvMaxRows) {
    // Streaming: each weight byte read once for all M rows; split W's rows across threads.
    const int64_t grain = std::max<int64_t>(16, (int64_t{1} << 18) / W.K);
    parallel_for(W.N, grain, [&](int64_t n0, int64_t n1) {
      nf4_detail::nf4_gemv_avx512(X, M, ldx, W, n0, n1, Y, ldy, beta);
    });
    return;
  }
  split_columns(W.N, flops, [&](int64_t n0, int64_t n1) {
    GemmShape sub = s;
    sub.N = n1 - n0;
    nf4_detail::nf4_gemm_avx512(sub, X, W, n0, 0, false, Y + n0, &gemm_detail::thread_workspace);
  });
}

void nf4_gemm_dx(const float* dY, int64_t M, int64_t ldy, const Nf4Weight& W, float* dX, int64_t ldx, float beta) {
  check_weight(W, "nf4_gemm_dx");
  TK_CHECK(M >= 0, Shape, "nf4_gemm_dx: negative M ", M);
  TK_CHECK(ldy >= std::max<int64_t>(1, W.N), Shape, "nf4_gemm_dx: ldy=", ldy, " is smaller than N=", W.N);
  TK_CHECK(ldx >= std::max<int64_t>(1, W.K), Shape, "nf4_gemm_dx: ldx=", ldx, " is smaller than K=", W.K);
  if (M == 0 || W.K == 0) return;
  TK_CHECK(dY && dX, Value, "nf4_gemm_dx: null dY or dX");
  // dX[M,K] = dY[M,N] W[N,K]: a GEMM with reduction over N and op(B) = W as stored.
  GemmShape s;
  s.M = M; s.N = W.K; s.K = W.N;
  s.lda = ldy; s.ldb = std::max<int64_t>(1, W.K); s.ldc = ldx;
  s.beta = beta;
  if (W.N == 0) {
    GemmShape z = s;
    z.alpha = 0.0f;
    return gemm_f32(z, dY, nullptr, dX);
  }
  if (!cpu_features().avx512f) {
    const std::vector<float> w = dequantize_all(W);
    return gemm_f32(s, dY, w.data(), dX);
  }
  split_columns(W.K, 2.0 * M * W.N * W.K, [&](int64_t k0, int64_t k1) {
    GemmShape sub = s;
    sub.N = k1 - k0;
    nf4_detail::nf4_gemm_avx512(sub, dY, W, 0, k0, true, dX + k0, &gemm_detail::thread_workspace);
  });
}

}  // namespace tk::cpu
