// Batch normalization per channel, NCHW (see batchnorm.h).
#include "batchnorm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/status.h"
#include "../core/thread_pool.h"

namespace tk::cpu {

namespace {

// statistics and normalisation of channel c; the body shared by both train versions
void train_channel(const BatchNormShape& s, int64_t c, const float* x, const float* w, const float* b, float* y,
                   float* mean, float* rstd, float* running_mean, float* running_var, float eps, float momentum) {
  const int64_t M = s.N * s.HW;
  double sum = 0;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* p = x + (n * s.C + c) * s.HW;
    for (int64_t k = 0; k < s.HW; ++k) sum += p[k];
  }
  const double mu = M ? sum / M : 0.0;
  double ss = 0;  // two passes: no cancellation with a large mean
  for (int64_t n = 0; n < s.N; ++n) {
    const float* p = x + (n * s.C + c) * s.HW;
    for (int64_t k = 0; k < s.HW; ++k) ss += (p[k] - mu) * (p[k] - mu);
  }
  const double var = M ? ss / M : 0.0;
  const double r = 1.0 / std::sqrt(var + eps);
  mean[c] = float(mu);
  rstd[c] = float(r);
  const double scale = (w ? w[c] : 1.0) * r, shift = (b ? b[c] : 0.0) - mu * scale;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* p = x + (n * s.C + c) * s.HW;
    float* q = y + (n * s.C + c) * s.HW;
    for (int64_t k = 0; k < s.HW; ++k) q[k] = float(p[k] * scale + shift);
  }
  if (running_mean) running_mean[c] = float((1.0 - momentum) * running_mean[c] + momentum * mu);
  if (running_var) {
    const double unbiased = M > 1 ? ss / (M - 1) : var;
    running_var[c] = float((1.0 - momentum) * running_var[c] + momentum * unbiased);
  }
}

void backward_channel(const BatchNormShape& s, int64_t c, const float* x, const float* w, const float* mean,
                      const float* rstd, const float* dy, float* dx, float* dw, float* db, bool train) {
  const int64_t M = s.N * s.HW;
  // train: the batch mean again in double (the saved f32 mean would cost x - mean its low digits
  // where a channel's values are close together and rstd is large)
  double mu = mean[c];
  if (train && M > 0) {
    double sum = 0;
    for (int64_t n = 0; n < s.N; ++n) {
      const float* p = x + (n * s.C + c) * s.HW;
      for (int64_t k = 0; k < s.HW; ++k) sum += p[k];
    }
    mu = sum / M;
  }
  const double r = rstd[c], wc = w ? w[c] : 1.0;
  double sdy = 0, sdyx = 0;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* p = x + (n * s.C + c) * s.HW;
    const float* g = dy + (n * s.C + c) * s.HW;
    for (int64_t k = 0; k < s.HW; ++k) {
      sdy += g[k];
      sdyx += g[k] * (p[k] - mu) * r;
    }
  }
  if (dw) dw[c] = float(sdyx);
  if (db) db[c] = float(sdy);
  if (!dx) return;
  const double a = wc * r;
  const double mdy = train && M ? sdy / M : 0.0, mdyx = train && M ? sdyx / M : 0.0;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* p = x + (n * s.C + c) * s.HW;
    const float* g = dy + (n * s.C + c) * s.HW;
    float* d = dx + (n * s.C + c) * s.HW;
    for (int64_t k = 0; k < s.HW; ++k) d[k] = float(a * (g[k] - mdy - (p[k] - mu) * r * mdyx));
  }
}

void check(const BatchNormShape& s, float eps, float momentum) {
  TK_CHECK(s.N >= 0 && s.C > 0 && s.HW >= 0, Shape, "batch_norm: expected (N, C, HW) with C >= 1 but received (", s.N, ", ", s.C,
           ", ", s.HW, ")");
  TK_CHECK(std::isfinite(eps) && eps >= 0, Value, "batch_norm: eps must be finite and >= 0 but is ", eps);
  TK_CHECK(std::isfinite(momentum) && momentum >= 0 && momentum <= 1, Value, "batch_norm: momentum must be in [0, 1] but is ", momentum);
}

int64_t channel_grain(const BatchNormShape& s) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(1, s.N * s.HW)); }

}  // namespace

void batch_norm_train_reference(const BatchNormShape& s, const float* x, const float* w, const float* b, float* y,
                                float* mean, float* rstd, float* running_mean, float* running_var, float eps,
                                float momentum) {
  check(s, eps, momentum);
  // the textbook formulas, one channel after another, in double
  const int64_t M = s.N * s.HW;
  for (int64_t c = 0; c < s.C; ++c) {
    std::vector<double> v;
    v.reserve(M);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) v.push_back(x[(n * s.C + c) * s.HW + k]);
    double mu = 0, var = 0;
    for (double e : v) mu += e;
    mu = M ? mu / M : 0;
    for (double e : v) var += (e - mu) * (e - mu);
    const double unbiased = M > 1 ? var / (M - 1) : (M ? var / M : 0);
    var = M ? var / M : 0;
    const double r = 1.0 / std::sqrt(var + eps);
    mean[c] = float(mu);
    rstd[c] = float(r);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) {
        const int64_t i = (n * s.C + c) * s.HW + k;
        y[i] = float((x[i] - mu) * r * (w ? w[c] : 1.0) + (b ? b[c] : 0.0));
      }
    if (running_mean) running_mean[c] = float((1.0 - momentum) * running_mean[c] + momentum * mu);
    if (running_var) running_var[c] = float((1.0 - momentum) * running_var[c] + momentum * unbiased);
  }
}

void batch_norm_train(const BatchNormShape& s, const float* x, const float* w, const float* b, float* y, float* mean,
                      float* rstd, float* running_mean, float* running_var, float eps, float momentum) {
  check(s, eps, momentum);
  parallel_for(s.C, channel_grain(s), [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) train_channel(s, c, x, w, b, y, mean, rstd, running_mean, running_var, eps, momentum);
  });
}

void batch_norm_eval(const BatchNormShape& s, const float* x, const float* w, const float* b, const float* running_mean,
                     const float* running_var, float* y, float* mean, float* rstd, float eps) {
  check(s, eps, 0.0f);
  parallel_for(s.C, channel_grain(s), [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) {
      const double mu = running_mean[c], r = 1.0 / std::sqrt(double(running_var[c]) + eps);
      mean[c] = float(mu);
      rstd[c] = float(r);
      const double scale = (w ? w[c] : 1.0) * r, shift = (b ? b[c] : 0.0) - mu * scale;
      for (int64_t n = 0; n < s.N; ++n) {
        const float* p = x + (n * s.C + c) * s.HW;
        float* q = y + (n * s.C + c) * s.HW;
        for (int64_t k = 0; k < s.HW; ++k) q[k] = float(p[k] * scale + shift);
      }
    }
  });
}

void batch_norm_backward_reference(const BatchNormShape& s, const float* x, const float* w, const float* mean,
                                   const float* rstd, const float* dy, float* dx, float* dw, float* db, bool train) {
  const int64_t M = s.N * s.HW;
  for (int64_t c = 0; c < s.C; ++c) {
    double mu = mean[c];
    if (train && M > 0) {  // the batch mean in double, as the fast version
      mu = 0;
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t k = 0; k < s.HW; ++k) mu += x[(n * s.C + c) * s.HW + k];
      mu /= M;
    }
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) {
        const int64_t i = (n * s.C + c) * s.HW + k;
        sdy += dy[i];
        sdyx += double(dy[i]) * (x[i] - mu) * rstd[c];
      }
    if (dw) dw[c] = float(sdyx);
    if (db) db[c] = float(sdy);
    if (!dx) continue;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t k = 0; k < s.HW; ++k) {
        const int64_t i = (n * s.C + c) * s.HW + k;
        const double xhat = (x[i] - mu) * rstd[c];
        const double g = train ? (M * double(dy[i]) - sdy - xhat * sdyx) / M : dy[i];
        dx[i] = float((w ? w[c] : 1.0) * rstd[c] * g);
      }
  }
}

void batch_norm_backward(const BatchNormShape& s, const float* x, const float* w, const float* mean, const float* rstd,
                         const float* dy, float* dx, float* dw, float* db, bool train) {
  parallel_for(s.C, channel_grain(s), [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; ++c) backward_channel(s, c, x, w, mean, rstd, dy, dx, dw, db, train);
  });
}

}  // namespace tk::cpu
