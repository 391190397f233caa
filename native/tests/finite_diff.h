// Central finite differences in double precision, the oracle for every backward kernel.
//
// A backward kernel computes dx = J^T dy for y = f(x). The tests write f in plain double
// precision (independent of the kernel code), pick a random upstream gradient dy, and
// differentiate the scalar L(x) = sum_i dy_i * f(x)_i numerically:
//   dL/dx_j ~ (L(x + h e_j) - L(x - h e_j)) / 2h   (error O(h^2) ~ 1e-10 for h = 1e-5)
#pragma once
#include <cmath>
#include <functional>
#include <vector>

namespace tk::test {

using VecD = std::vector<double>;

inline VecD to_double(const std::vector<float>& v) { return VecD(v.begin(), v.end()); }
inline std::vector<float> to_float(const VecD& v) { return std::vector<float>(v.begin(), v.end()); }

// gradient of a scalar function f at x
inline VecD numeric_grad(const std::function<double(const VecD&)>& f, VecD x, double h = 1e-5) {
  VecD g(x.size());
  for (size_t j = 0; j < x.size(); ++j) {
    double keep = x[j];
    x[j] = keep + h;
    double fp = f(x);
    x[j] = keep - h;
    double fm = f(x);
    x[j] = keep;
    g[j] = (fp - fm) / (2 * h);
  }
  return g;
}

// vector-Jacobian product dy^T (d f / dx) of a vector function f at x
inline VecD numeric_vjp(const std::function<VecD(const VecD&)>& f, const VecD& x, const VecD& dy, double h = 1e-5) {
  return numeric_grad(
      [&](const VecD& xx) {
        VecD y = f(xx);
        double s = 0;
        for (size_t i = 0; i < y.size(); ++i) s += dy[i] * y[i];
        return s;
      },
      x, h);
}

}  // namespace tk::test
