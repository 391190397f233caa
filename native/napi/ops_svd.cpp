// SVD kernel (one-sided Jacobi, native/cpu/svd.h), native.cpu.svd, used by AdaLoRA's rank analysis.
#include <algorithm>

#include "cpu/svd.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

template <typename T>
void run_svd(const Opts& o, int64_t m, int64_t n, int64_t k) {
  const T* a = o.tensor<T>("a", checked_elems(m, n, "svd a"));
  T* u = o.optional_tensor<T>("u", checked_elems(m, k, "svd u"));
  T* s = o.tensor<T>("s", k);
  T* vt = o.optional_tensor<T>("vt", checked_elems(k, n, "svd vt"));
  if constexpr (sizeof(T) == 4) cpu::svd_f32(m, n, k, a, u, s, vt);
  else cpu::svd_f64(m, n, k, a, u, s, vt);
}

}  // namespace

// svd({ a, m, n, u | null, s, vt | null, dtype: 'f32' | 'f64', k? })
// a [m, n] = u [m, k] diag(s [k]) vt [k, n]; k defaults to min(m, n) (thin SVD), a smaller k
// keeps the k largest (all four tensors share the dtype). s descending.
TK_CPU_OP(svd) {
  Opts o(info, "svd");
  const int64_t m = o.integer("m");
  const int64_t n = o.integer("n");
  TK_CHECK(m >= 0 && n >= 0, Shape, "svd: negative size m=", m, " n=", n);
  const int64_t kmax = std::min(m, n);
  const int64_t k = o.has("k") ? o.integer("k") : kmax;
  TK_CHECK(k >= 0 && k <= kmax, Shape, "svd: k must lie in [0, min(m, n) = ", kmax, "] but is ", k);
  const DType dt = o.dtype("dtype");
  if (dt == DType::F32) run_svd<float>(o, m, n, k);
  else if (dt == DType::F64) run_svd<double>(o, m, n, k);
  else fail(ErrorCode::Dtype, "svd: expected f32 or f64 but received ", dtype_name(dt));
  return info.Env().Undefined();
}
