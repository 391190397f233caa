// SVD binding (one-sided Jacobi, native/cpu/svd.h), used by AdaLoRA's rank analysis.
#include <algorithm>

#include "cpu/svd.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

int64_t elems(int64_t a, int64_t b, const char* what) {
  int64_t n = 0;
  TK_CHECK(a >= 0 && b >= 0, Shape, what, ": negative size");
  TK_CHECK(!__builtin_mul_overflow(a, b, &n) && n <= (int64_t{1} << 60), Shape, what, ": size overflows");
  return n;
}

bool is_null(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNull() || info[i].IsUndefined());
}

template <typename T>
void run(const Napi::CallbackInfo& info, int64_t m, int64_t n, int64_t k) {
  const T* a = tensor_arg<T>(info, 0, elems(m, n, "svd a"), "svd a");
  T* u = is_null(info, 4) ? nullptr : tensor_arg<T>(info, 4, elems(m, k, "svd u"), "svd u");
  T* s = tensor_arg<T>(info, 6, k, "svd s");
  T* vt = is_null(info, 8) ? nullptr : tensor_arg<T>(info, 8, elems(k, n, "svd vt"), "svd vt");
  if constexpr (sizeof(T) == 4) cpu::svd_f32(m, n, k, a, u, s, vt);
  else cpu::svd_f64(m, n, k, a, u, s, vt);
}

}  // namespace

// svd(a, off, m, n, u | null, uOff, s, sOff, vt | null, vtOff, dtype, k?)
// a [m, n] = u [m, k] diag(s [k]) vt [k, n]; k defaults to min(m, n) (thin SVD), a smaller k
// keeps the k largest. dtype 0 = f32, 6 = f64 (all four tensors share it). s descending.
TK_EXPORT(svd) {
  const int64_t m = int_arg(info, 2, "svd m");
  const int64_t n = int_arg(info, 3, "svd n");
  TK_CHECK(m >= 0 && n >= 0, Shape, "svd: negative size m=", m, " n=", n);
  const int64_t kmax = std::min(m, n);
  const int64_t k = info.Length() > 11 && !info[11].IsUndefined() ? int_arg(info, 11, "svd k") : kmax;
  TK_CHECK(k >= 0 && k <= kmax, Shape, "svd: k must lie in [0, min(m, n) = ", kmax, "] but is ", k);
  const DType dt = dtype_arg(info, 10, "svd dtype");
  if (dt == DType::F32) run<float>(info, m, n, k);
  else if (dt == DType::F64) run<double>(info, m, n, k);
  else fail(ErrorCode::Dtype, "svd: expected f32 or f64 but received ", dtype_name(dt));
  return info.Env().Undefined();
}
