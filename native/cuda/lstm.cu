// One direction of one LSTM layer on the GPU (P-tuning's prompt encoder), f32, with
// cpu/lstm.h's semantics and the structure of its fast path: the input projection of every step
// and the weight gradients are single GEMMs (gemm_f32), only the [B, H] x [H, 4H] recurrent
// product runs step by step, with one element-wise kernel per step for the cell. Arithmetic the
// CPU evaluates unfused is spelled with _rn intrinsics (no fma contraction).
#include "cuda/common.cuh"
#include "cuda/kernels.h"

namespace tk::cuda {

namespace {

#define TK_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// C [M, N] (ldc) = op(A) op(B) + beta C, f32
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  GemmShape g;
  g.transA = ta;
  g.transB = tb;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.beta = beta;
  gemm_f32(g, A, B, C);  // K = 0 writes beta C (0 for beta 0), as the CPU's gemm_call
}

__device__ __forceinline__ float sigmoid_(float z) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-z))); }

// z[r, j] += (b_ih[j] + b_hh[j]) for the [rows, G] pre-activations
__global__ void add_biases_kernel(float* __restrict__ z, const float* __restrict__ bih, const float* __restrict__ bhh,
                                  int64_t rows, int64_t G) {
  TK_GRID_LOOP(e, rows * G) {
    const int64_t j = e % G;
    z[e] = __fadd_rn(z[e], __fadd_rn(bih ? bih[j] : 0.0f, bhh ? bhh[j] : 0.0f));
  }
}

// step t (previous step tp, -1 at the first): activate the gates in place, c_t, h_t = y[:, t]
__global__ void cell_forward_kernel(float* __restrict__ gates, float* __restrict__ cell, float* __restrict__ y, int64_t B,
                                    int64_t T, int64_t H, int64_t t, int64_t tp) {
  const int64_t G = 4 * H;
  TK_GRID_LOOP(e, B * H) {
    const int64_t b = e / H, j = e % H;
    float* z = gates + (b * T + t) * G;
    const float i = sigmoid_(z[j]), f = sigmoid_(z[H + j]), g = tanhf(z[2 * H + j]), o = sigmoid_(z[3 * H + j]);
    z[j] = i;
    z[H + j] = f;
    z[2 * H + j] = g;
    z[3 * H + j] = o;
    const float fc = tp >= 0 ? __fmul_rn(f, cell[(b * T + tp) * H + j]) : 0.0f;
    const float cv = __fadd_rn(fc, __fmul_rn(i, g));
    cell[(b * T + t) * H + j] = cv;
    y[(b * T + t) * H + j] = __fmul_rn(o, tanhf(cv));
  }
}

// step t of the backward: dz_t from dy_t + dh_next and dc_next (updated in place to dc f), and
// h_{t-1} copied to hprev[:, t] for dW_hh
__global__ void cell_backward_kernel(const float* __restrict__ gates, const float* __restrict__ cell,
                                     const float* __restrict__ dy, const float* __restrict__ y, float* __restrict__ dz,
                                     const float* __restrict__ dh_next, float* __restrict__ dc_next, float* __restrict__ hprev,
                                     int64_t B, int64_t T, int64_t H, int64_t t, int64_t tp) {
  const int64_t G = 4 * H;
  TK_GRID_LOOP(e, B * H) {
    const int64_t b = e / H, j = e % H;
    const float* a = gates + (b * T + t) * G;
    const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const float tc = tanhf(cell[(b * T + t) * H + j]);
    const float dh = __fadd_rn(dy[(b * T + t) * H + j], dh_next[b * H + j]);
    // dc = dh o (1 - tc^2) + dc_next, evaluated left to right as the CPU
    const float dc = __fadd_rn(__fmul_rn(__fmul_rn(dh, o), __fsub_rn(1.0f, __fmul_rn(tc, tc))), dc_next[b * H + j]);
    const float cpv = tp >= 0 ? cell[(b * T + tp) * H + j] : 0.0f;
    float* d = dz + (b * T + t) * G;
    d[j] = __fmul_rn(__fmul_rn(__fmul_rn(dc, g), i), __fsub_rn(1.0f, i));
    d[H + j] = __fmul_rn(__fmul_rn(__fmul_rn(dc, cpv), f), __fsub_rn(1.0f, f));
    d[2 * H + j] = __fmul_rn(__fmul_rn(dc, i), __fsub_rn(1.0f, __fmul_rn(g, g)));
    d[3 * H + j] = __fmul_rn(__fmul_rn(__fmul_rn(dh, tc), o), __fsub_rn(1.0f, o));
    dc_next[b * H + j] = __fmul_rn(dc, f);
    if (tp >= 0) hprev[(b * T + t) * H + j] = y[(b * T + tp) * H + j];
  }
}

void check_shape(int64_t B, int64_t T, int64_t in, int64_t H, const char* what) {
  TK_CHECK(B >= 0 && T >= 0 && in >= 0 && H >= 0, Shape, what, ": negative size B=", B, " T=", T, " in=", in, " H=", H);
  const int64_t lim = int64_t{1} << 40;
  TK_CHECK(B < lim && T < lim && in < lim && H < lim / 4, Shape, what, ": sizes too large");
  int64_t n = 0;
  TK_CHECK(!__builtin_mul_overflow(B * T, 4 * H + in, &n) && n < (int64_t{1} << 60), Shape, what, ": sizes overflow");
}

}  // namespace

void lstm_forward_f32(int64_t B, int64_t T, int64_t in, int64_t H, bool reverse, const float* x, const float* w_ih,
                      const float* w_hh, const float* b_ih, const float* b_hh, float* y, float* gates, float* cell) {
  check_shape(B, T, in, H, "cuda lstm_forward");
  const int64_t G = 4 * H;
  if (B == 0 || T == 0 || H == 0) return;
  auto step_at = [&](int64_t k) { return reverse ? T - 1 - k : k; };
  // gates [B*T, 4H] = x W_ih^T + b_ih + b_hh (the recurrent term is added per step)
  gemm(false, true, B * T, G, in, x, in, w_ih, in, 0.0f, gates, G);
  if (b_ih || b_hh) {
    add_biases_kernel<<<grid_1d(B * T * G, 256), 256>>>(gates, b_ih, b_hh, B * T, G);
    check_launch("cuda lstm_forward (biases)");
  }
  for (int64_t k = 0; k < T; ++k) {
    const int64_t t = step_at(k), tp = k > 0 ? step_at(k - 1) : -1;
    // z_t += h_{t-1} W_hh^T: rows of y and of the gates are T*H and T*G apart
    if (k > 0) gemm(false, true, B, G, H, y + tp * H, T * H, w_hh, H, 1.0f, gates + t * G, T * G);
    cell_forward_kernel<<<grid_1d(B * H, 256), 256>>>(gates, cell, y, B, T, H, t, tp);
    check_launch("cuda lstm_forward (cell)");
  }
}

void lstm_backward_f32(int64_t B, int64_t T, int64_t in, int64_t H, bool reverse, const float* dy, const float* x,
                       const float* w_ih, const float* w_hh, const float* y, const float* gates, const float* cell,
                       float* dx, float* dw_ih, float* dw_hh, float* db) {
  check_shape(B, T, in, H, "cuda lstm_backward");
  const int64_t G = 4 * H, M = B * T;
  if (M == 0 || H == 0) {
    if (G * in) fill_zero(dw_ih, static_cast<size_t>(G * in) * sizeof(float));
    if (G * H) fill_zero(dw_hh, static_cast<size_t>(G * H) * sizeof(float));
    if (G) fill_zero(db, static_cast<size_t>(G) * sizeof(float));
    if (dx && M * in) fill_zero(dx, static_cast<size_t>(M * in) * sizeof(float));
    return;
  }
  auto step_at = [&](int64_t k) { return reverse ? T - 1 - k : k; };
  DeviceBuffer dz(static_cast<size_t>(M * G) * sizeof(float)), dh_next(static_cast<size_t>(B * H) * sizeof(float)),
      dc_next(static_cast<size_t>(B * H) * sizeof(float)), hprev(static_cast<size_t>(M * H) * sizeof(float));
  fill_zero(dh_next.get(), dh_next.bytes());
  fill_zero(dc_next.get(), dc_next.bytes());
  fill_zero(hprev.get(), hprev.bytes());  // h_{t-1} of the first step walked is 0
  for (int64_t k = T - 1; k >= 0; --k) {
    const int64_t t = step_at(k), tp = k > 0 ? step_at(k - 1) : -1;
    cell_backward_kernel<<<grid_1d(B * H, 256), 256>>>(gates, cell, dy, y, dz.get<float>(), dh_next.get<float>(),
                                                       dc_next.get<float>(), hprev.get<float>(), B, T, H, t, tp);
    check_launch("cuda lstm_backward (cell)");
    // dh_{t-1} = dz_t W_hh ([B, 4H] rows T*4H apart, times [4H, H])
    if (k > 0) gemm(false, false, B, H, G, dz.get<float>() + t * G, T * G, w_hh, H, 0.0f, dh_next.get<float>(), H);
  }
  gemm(true, false, G, in, M, dz.get<float>(), G, x, in, 0.0f, dw_ih, in);             // dW_ih = dZ^T x
  gemm(true, false, G, H, M, dz.get<float>(), G, hprev.get<float>(), H, 0.0f, dw_hh, H);  // dW_hh = dZ^T h_prev
  if (dx) gemm(false, false, M, in, G, dz.get<float>(), G, w_ih, in, 0.0f, dx, in);    // dx = dZ W_ih
  reduce(ReduceOp::Sum, dz.get<float>(), db, 1, M, G);                                   // db = column sums (double)
}

}  // namespace tk::cuda
