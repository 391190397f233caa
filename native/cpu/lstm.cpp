// LSTM layer (one direction) on the CPU. The fast path batches what does not depend on the
// recurrence into single GEMMs (the input projection of every step, and dW_ih, dW_hh, dx in the
// backward); only the [B, H] x [H, 4H] recurrent product runs step by step. See lstm.h.
#include "lstm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"
#include "gemm.h"

namespace tk::cpu {

namespace {

inline void gemm_call(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  GemmShape g;
  g.transA = transA;
  g.transB = transB;
  g.M = M;
  g.N = N;
  g.K = K;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.alpha = 1.0f;
  g.beta = beta;
  gemm_f32(g, A, B, C);
}

inline float sigmoidf(float z) { return 1.0f / (1.0f + std::exp(-z)); }
inline double sigmoidd(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Step index of the k-th step walked (k = 0 first).
inline int64_t step_at(const LstmShape& s, int64_t k) { return s.reverse ? s.T - 1 - k : k; }

}  // namespace

void lstm_forward_f32(const LstmShape& s, const float* x, const float* w_ih, const float* w_hh, const float* b_ih,
                      const float* b_hh, float* y, float* gates, float* cell) {
  check_lstm_shape(s);
  const int64_t B = s.B, T = s.T, H = s.H, G = 4 * H;
  if (B == 0 || T == 0 || H == 0) return;
  // gates [B*T, 4H] = x W_ih^T + b_ih + b_hh  (pre-activations; the recurrent term is added per step)
  gemm_call(false, true, B * T, G, s.in, x, s.in, w_ih, s.in, 0.0f, gates, G);
  if (b_ih || b_hh) {
    parallel_for(B * T, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        float* z = gates + r * G;
        for (int64_t j = 0; j < G; ++j) z[j] += (b_ih ? b_ih[j] : 0.0f) + (b_hh ? b_hh[j] : 0.0f);
      }
    });
  }
  for (int64_t k = 0; k < T; ++k) {
    const int64_t t = step_at(s, k);
    float* zt = gates + t * G;  // row b at zt + b*T*G
    if (k > 0) {
      const int64_t tp = step_at(s, k - 1);
      // z_t += h_{t-1} W_hh^T, h_{t-1} = y[:, tp] (rows T*H apart)
      gemm_call(false, true, B, G, H, y + tp * H, T * H, w_hh, H, 1.0f, zt, T * G);
    }
    const int64_t tp = k > 0 ? step_at(s, k - 1) : -1;
    parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* z = zt + b * T * G;
        const float* cp = tp >= 0 ? cell + (b * T + tp) * H : nullptr;
        float* c = cell + (b * T + t) * H;
        float* h = y + (b * T + t) * H;
        for (int64_t j = 0; j < H; ++j) {
          const float i = sigmoidf(z[j]), f = sigmoidf(z[H + j]), g = std::tanh(z[2 * H + j]),
                      o = sigmoidf(z[3 * H + j]);
          z[j] = i;
          z[H + j] = f;
          z[2 * H + j] = g;
          z[3 * H + j] = o;
          const float cv = (cp ? f * cp[j] : 0.0f) + i * g;
          c[j] = cv;
          h[j] = o * std::tanh(cv);
        }
      }
    });
  }
}

void lstm_backward_f32(const LstmShape& s, const float* dy, const float* x, const float* w_ih, const float* w_hh,
                       const float* y, const float* gates, const float* cell, float* dx, float* dw_ih, float* dw_hh,
                       float* db) {
  check_lstm_shape(s);
  const int64_t B = s.B, T = s.T, H = s.H, G = 4 * H, in = s.in;
  if (B * T == 0 || H == 0) {
    std::fill(dw_ih, dw_ih + G * in, 0.0f);
    std::fill(dw_hh, dw_hh + G * H, 0.0f);
    std::fill(db, db + G, 0.0f);
    if (dx) std::fill(dx, dx + B * T * in, 0.0f);
    return;
  }
  std::vector<float> dz(static_cast<size_t>(B * T * G));  // pre-activation gradients
  std::vector<float> dh_next(static_cast<size_t>(B * H), 0.0f), dc_next(static_cast<size_t>(B * H), 0.0f);
  std::vector<float> hprev(static_cast<size_t>(B * T * H), 0.0f);  // h_{t-1} of each step (0 at the first)
  for (int64_t k = T - 1; k >= 0; --k) {
    const int64_t t = step_at(s, k);
    const int64_t tp = k > 0 ? step_at(s, k - 1) : -1;
    parallel_for(B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const float* a = gates + (b * T + t) * G;
        const float* c = cell + (b * T + t) * H;
        const float* cp = tp >= 0 ? cell + (b * T + tp) * H : nullptr;
        const float* d = dy + (b * T + t) * H;
        float* dzr = dz.data() + (b * T + t) * G;
        float* dhn = dh_next.data() + b * H;
        float* dcn = dc_next.data() + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const float i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
          const float tc = std::tanh(c[j]);
          const float dh = d[j] + dhn[j];
          const float dc = dh * o * (1.0f - tc * tc) + dcn[j];
          const float cpv = cp ? cp[j] : 0.0f;
          dzr[j] = dc * g * i * (1.0f - i);
          dzr[H + j] = dc * cpv * f * (1.0f - f);
          dzr[2 * H + j] = dc * i * (1.0f - g * g);
          dzr[3 * H + j] = dh * tc * o * (1.0f - o);
          dcn[j] = dc * f;
        }
        if (tp >= 0) std::copy(y + (b * T + tp) * H, y + (b * T + tp + 1) * H, hprev.data() + (b * T + t) * H);
      }
    });
    // dh_{t-1} = dz_t W_hh  ([B, 4H] rows T*4H apart, times [4H, H])
    if (k > 0) gemm_call(false, false, B, H, G, dz.data() + t * G, T * G, w_hh, H, 0.0f, dh_next.data(), H);
  }
  const int64_t M = B * T;
  gemm_call(true, false, G, in, M, dz.data(), G, x, in, 0.0f, dw_ih, in);          // dW_ih = dZ^T x
  gemm_call(true, false, G, H, M, dz.data(), G, hprev.data(), H, 0.0f, dw_hh, H);  // dW_hh = dZ^T h_prev
  if (dx) gemm_call(false, false, M, in, G, dz.data(), G, w_ih, in, 0.0f, dx, in);  // dx = dZ W_ih
  parallel_for(G, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      double acc = 0;
      for (int64_t r = 0; r < M; ++r) acc += dz[static_cast<size_t>(r * G + j)];
      db[j] = static_cast<float>(acc);
    }
  });
}

void lstm_forward_reference(const LstmShape& s, const float* x, const float* w_ih, const float* w_hh,
                            const float* b_ih, const float* b_hh, float* y, float* gates, float* cell) {
  check_lstm_shape(s);
  const int64_t B = s.B, T = s.T, H = s.H, G = 4 * H, in = s.in;
  std::vector<double> h(static_cast<size_t>(H)), c(static_cast<size_t>(H)), z(static_cast<size_t>(G));
  for (int64_t b = 0; b < B; ++b) {
    std::fill(h.begin(), h.end(), 0.0);
    std::fill(c.begin(), c.end(), 0.0);
    for (int64_t k = 0; k < T; ++k) {
      const int64_t t = step_at(s, k);
      const float* xt = x + (b * T + t) * in;
      for (int64_t r = 0; r < G; ++r) {
        double acc = (b_ih ? b_ih[r] : 0.0) + (b_hh ? b_hh[r] : 0.0);
        for (int64_t q = 0; q < in; ++q) acc += static_cast<double>(w_ih[r * in + q]) * xt[q];
        for (int64_t q = 0; q < H; ++q) acc += static_cast<double>(w_hh[r * H + q]) * h[q];
        z[r] = acc;
      }
      float* a = gates + (b * T + t) * G;
      for (int64_t j = 0; j < H; ++j) {
        const double i = sigmoidd(z[j]), f = sigmoidd(z[H + j]), g = std::tanh(z[2 * H + j]), o = sigmoidd(z[3 * H + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * std::tanh(c[j]);
        a[j] = static_cast<float>(i);
        a[H + j] = static_cast<float>(f);
        a[2 * H + j] = static_cast<float>(g);
        a[3 * H + j] = static_cast<float>(o);
        cell[(b * T + t) * H + j] = static_cast<float>(c[j]);
        y[(b * T + t) * H + j] = static_cast<float>(h[j]);
      }
    }
  }
}

void lstm_backward_reference(const LstmShape& s, const float* dy, const float* x, const float* w_ih,
                             const float* w_hh, const float* y, const float* gates, const float* cell, float* dx,
                             float* dw_ih, float* dw_hh, float* db) {
  check_lstm_shape(s);
  const int64_t B = s.B, T = s.T, H = s.H, G = 4 * H, in = s.in;
  std::vector<double> gwi(static_cast<size_t>(G * in), 0.0), gwh(static_cast<size_t>(G * H), 0.0),
      gb(static_cast<size_t>(G), 0.0), dz(static_cast<size_t>(G));
  std::vector<double> dhn(static_cast<size_t>(H)), dcn(static_cast<size_t>(H));
  for (int64_t b = 0; b < B; ++b) {
    std::fill(dhn.begin(), dhn.end(), 0.0);
    std::fill(dcn.begin(), dcn.end(), 0.0);
    for (int64_t k = T - 1; k >= 0; --k) {
      const int64_t t = step_at(s, k);
      const int64_t tp = k > 0 ? step_at(s, k - 1) : -1;
      const float* a = gates + (b * T + t) * G;
      for (int64_t j = 0; j < H; ++j) {
        const double i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
        const double tc = std::tanh(static_cast<double>(cell[(b * T + t) * H + j]));
        const double dh = dy[(b * T + t) * H + j] + dhn[j];
        const double dc = dh * o * (1 - tc * tc) + dcn[j];
        const double cpv = tp >= 0 ? cell[(b * T + tp) * H + j] : 0.0;
        dz[j] = dc * g * i * (1 - i);
        dz[H + j] = dc * cpv * f * (1 - f);
        dz[2 * H + j] = dc * i * (1 - g * g);
        dz[3 * H + j] = dh * tc * o * (1 - o);
        dcn[j] = dc * f;
      }
      const float* xt = x + (b * T + t) * in;
      for (int64_t r = 0; r < G; ++r) {
        gb[r] += dz[r];
        for (int64_t q = 0; q < in; ++q) gwi[r * in + q] += dz[r] * xt[q];
        if (tp >= 0)
          for (int64_t q = 0; q < H; ++q) gwh[r * H + q] += dz[r] * y[(b * T + tp) * H + q];
      }
      if (dx) {
        for (int64_t q = 0; q < in; ++q) {
          double acc = 0;
          for (int64_t r = 0; r < G; ++r) acc += dz[r] * w_ih[r * in + q];
          dx[(b * T + t) * in + q] = static_cast<float>(acc);
        }
      }
      for (int64_t q = 0; q < H; ++q) {
        double acc = 0;
        for (int64_t r = 0; r < G; ++r) acc += dz[r] * w_hh[r * H + q];
        dhn[q] = acc;
      }
    }
  }
  for (size_t i = 0; i < gwi.size(); ++i) dw_ih[i] = static_cast<float>(gwi[i]);
  for (size_t i = 0; i < gwh.size(); ++i) dw_hh[i] = static_cast<float>(gwh[i]);
  for (size_t i = 0; i < gb.size(); ++i) db[i] = static_cast<float>(gb[i]);
}

}  // namespace tk::cpu
