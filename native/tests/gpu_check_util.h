// Shared by the Node-free GPU check's files (gpu_check.cpp, gpu_check_step_ops.cpp): random
// inputs, device copies of host vectors, the scaled error measure and the PASS/FAIL report.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "cpu/gemm.h"
#include "cuda/device_runtime.h"

namespace tk::gpu_check {

namespace cu = tk::cuda;

using F = std::vector<float>;
using U16 = std::vector<uint16_t>;

// The CPU kernels' GEMM shape (it may carry CPU-only extras) from the backend-neutral one.
inline cpu::GemmShape cpu_shape(const tk::GemmShape& g) {
  cpu::GemmShape c;
  static_cast<tk::GemmShape&>(c) = g;
  return c;
}

inline std::mt19937 rng(12345);

inline F randf(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  F v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
inline U16 to_bf16(const F& v) {
  U16 o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = f32_to_bf16(v[i]);
  return o;
}
inline F from_bf16(const U16& v) {
  F o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = bf16_to_f32(v[i]);
  return o;
}

// A device copy of a host vector (or an uninitialised device array of n elements).
template <typename T>
struct Dev {
  cu::DeviceBuffer buf;
  size_t n = 0;
  explicit Dev(size_t count) : buf(std::max<size_t>(count, 1) * sizeof(T)), n(count) {}
  explicit Dev(const std::vector<T>& h) : Dev(h.size()) { cu::copy_to_device(buf.get(), h.data(), n * sizeof(T)); }
  T* p() const { return buf.get<T>(); }
  std::vector<T> host() const {
    std::vector<T> h(n);
    cu::copy_to_host(h.data(), buf.get(), n * sizeof(T));
    return h;
  }
};

inline int failures = 0, checks = 0;

// Scaled max error: max_i |got - ref| / max(1, max_i |ref|). Matching infinities and NaNs count
// as exact; a NaN or infinity on one side only fails.
inline double scaled_err(const F& got, const F& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double mref = 1.0, m = 0.0;
  for (float r : ref)
    if (std::isfinite(r)) mref = std::max(mref, static_cast<double>(std::fabs(r)));
  for (size_t i = 0; i < got.size(); ++i) {
    const float g = got[i], r = ref[i];
    if (std::isnan(r) || std::isnan(g)) {
      if (!(std::isnan(r) && std::isnan(g))) return INFINITY;
      continue;
    }
    if (std::isinf(r) || std::isinf(g)) {
      if (g != r) return INFINITY;
      continue;
    }
    m = std::max(m, std::fabs(static_cast<double>(g) - r));
  }
  return m / mref;
}

inline void report(const std::string& name, double err, double tol) {
  ++checks;
  const bool ok = err <= tol;
  if (!ok) ++failures;
  std::printf("  %-4s %-58s err %.3e  tol %.1e\n", ok ? "PASS" : "FAIL", name.c_str(), err, tol);
}
inline void check(const std::string& name, const F& got, const F& ref, double tol) { report(name, scaled_err(got, ref), tol); }

// Runs fn, turning an exception into a failed check (so one broken op does not hide the rest).
inline void guarded(const std::string& what, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    ++checks;
    ++failures;
    std::printf("  FAIL %-58s threw: %s\n", what.c_str(), e.what());
  }
}

inline std::string dims(std::initializer_list<int64_t> v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : "x") + std::to_string(x);
  return s;
}

}  // namespace tk::gpu_check
