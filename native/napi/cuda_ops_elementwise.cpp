// native.cuda: element-wise ops and reductions (the CUDA twins of ops_elementwise.cpp: same
// options, same checks; kernels in native/cuda/ops.cu and nn.cu). Compiled to nothing without
// TUNEKIT_WITH_CUDA.
#include "cuda_ops.h"
#ifdef TUNEKIT_WITH_CUDA
#include <limits>
#include <utility>
#include <vector>

using namespace tk;
using namespace tk::napi;

namespace {

// Merges the dimensions of a broadcasting binary op that walk all three operands as one (size-1
// axes dropped; axis k folded into k+1 when both a's and b's strides satisfy stride[k] ==
// stride[k+1] * shape[k+1], out being contiguous), so that views of any rank whose strides merge
// fit the kernel's kMaxDims and contiguous operands reach its fast path. The element order is
// unchanged.
void merge_dims(std::vector<int64_t>& shape, std::vector<int64_t>& as, std::vector<int64_t>& bs) {
  std::vector<int64_t> sh, sa, sb;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 1) continue;
    if (!sh.empty() && sa.back() == as[k] * shape[k] && sb.back() == bs[k] * shape[k]) {
      sh.back() *= shape[k];
      sa.back() = as[k];
      sb.back() = bs[k];
    } else {
      sh.push_back(shape[k]);
      sa.push_back(as[k]);
      sb.push_back(bs[k]);
    }
  }
  shape = std::move(sh);
  as = std::move(sa);
  bs = std::move(sb);
}

}  // namespace

// binary({ op, a, b, out, outShape, aStrides, bStrides }); after merging, at most cuda::kMaxDims
// dimensions that do not merge
TK_CUDA_OP(binary) {
  Opts o(info, "binary", Backend::Cuda);
  BinaryArgs r = binary_args(o);
  use_call_device(o);
  if (r.total == 0) return info.Env().Undefined();
  std::vector<int64_t>& shape = r.shape;
  merge_dims(shape, r.a_strides, r.b_strides);
  TK_CHECK(shape.size() <= static_cast<size_t>(cuda::kMaxDims), Shape, "binary: the operands' strides leave ", shape.size(),
           " dimensions that do not merge but the cuda kernel takes at most ", cuda::kMaxDims);
  cuda::binary(r.op, r.a, r.b, r.out, static_cast<int>(shape.size()), shape.data(), r.a_strides.data(),
               r.b_strides.data());
  return info.Env().Undefined();
}

// unary({ op, x, out, n, param })
TK_CUDA_OP(unary) {
  Opts o(info, "unary", Backend::Cuda);
  const UnaryArgs r = unary_args(o, false);
  use_call_device(o);
  cuda::unary(r.op, r.x, r.out, r.n, r.param);
  return info.Env().Undefined();
}

// unaryBackward({ op, x, y, dy, dx, n, param })
TK_CUDA_OP(unaryBackward) {
  Opts o(info, "unaryBackward", Backend::Cuda);
  const UnaryArgs r = unary_args(o, true);
  use_call_device(o);
  cuda::unary_backward(r.op, r.x, r.y, r.dy, r.out, r.n, r.param);
  return info.Env().Undefined();
}

// reduce({ op, x, out, outer, n, inner })
TK_CUDA_OP(reduce) {
  Opts o(info, "reduce", Backend::Cuda);
  const ReduceArgs r = reduce_args(o);
  use_call_device(o);
  cuda::reduce(r.op, r.x, r.out, r.outer, r.n, r.inner);
  return info.Env().Undefined();
}

// argmax({ x, out, rows, cols })
TK_CUDA_OP(argmax) {
  Opts o(info, "argmax", Backend::Cuda);
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  TK_CHECK(cols > 0 || rows == 0, Shape, "argmax: rows of zero columns have no maximum");
  TK_CHECK(cols <= std::numeric_limits<int32_t>::max(), Shape, "argmax: cols ", cols, " exceeds the i32 index range");
  const float* x = o.tensor<float>("x", checked_elems(rows, cols, "argmax"));
  int32_t* out = o.tensor<int32_t>("out", rows);
  use_call_device(o);
  cuda::argmax(x, out, rows, cols);
  return info.Env().Undefined();
}

// sumSquares({ x, n }) -> number (waits for the device)
TK_CUDA_OP(sumSquares) {
  Opts o(info, "sumSquares", Backend::Cuda);
  const int64_t n = o.count("n");
  const float* x = o.tensor<float>("x", n);
  use_call_device(o);
  return Napi::Number::New(info.Env(), cuda::sum_squares(x, n));
}

// countNonFinite({ x, n }) -> number (waits for the device)
TK_CUDA_OP(countNonFinite) {
  Opts o(info, "countNonFinite", Backend::Cuda);
  const int64_t n = o.count("n");
  const float* x = o.tensor<float>("x", n);
  use_call_device(o);
  return Napi::Number::New(info.Env(), static_cast<double>(cuda::count_non_finite(x, n)));
}

#endif  // TUNEKIT_WITH_CUDA
