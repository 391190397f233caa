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
  const BinaryOp op = binary_op(o);
  std::vector<int64_t> shape = o.ints("outShape");
  std::vector<int64_t> as = o.ints("aStrides");
  std::vector<int64_t> bs = o.ints("bStrides");
  TK_CHECK(as.size() == shape.size() && bs.size() == shape.size(), Shape, "binary: outShape has ", shape.size(),
           " dims but aStrides has ", as.size(), " and bStrides ", bs.size());
  int64_t total = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    TK_CHECK(shape[k] >= 0, Shape, "binary: outShape[", k, "] = ", shape[k], " is negative");
    total = checked_elems(total, shape[k], "binary outShape");
  }
  const float* a = o.tensor<float>("a", operand_extent(shape, as, "binary a"));
  const float* b = o.tensor<float>("b", operand_extent(shape, bs, "binary b"));
  float* out = o.tensor<float>("out", total);
  use_call_device(o);
  if (total == 0) return info.Env().Undefined();
  merge_dims(shape, as, bs);
  TK_CHECK(shape.size() <= static_cast<size_t>(cuda::kMaxDims), Shape, "binary: the operands' strides leave ", shape.size(),
           " dimensions that do not merge but the cuda kernel takes at most ", cuda::kMaxDims);
  cuda::binary(op, a, b, out, static_cast<int>(shape.size()), shape.data(), as.data(), bs.data());
  return info.Env().Undefined();
}

// unary({ op, x, out, n, param })
TK_CUDA_OP(unary) {
  Opts o(info, "unary", Backend::Cuda);
  const UnaryOp op = unary_op(o);
  const int64_t n = o.count("n");
  const float param = static_cast<float>(o.number("param"));
  const float* x = o.tensor<float>("x", n);
  float* y = o.tensor<float>("out", n);
  use_call_device(o);
  cuda::unary(op, x, y, n, param);
  return info.Env().Undefined();
}

// unaryBackward({ op, x, y, dy, dx, n, param })
TK_CUDA_OP(unaryBackward) {
  Opts o(info, "unaryBackward", Backend::Cuda);
  const UnaryOp op = unary_op(o);
  const int64_t n = o.count("n");
  const float param = static_cast<float>(o.number("param"));
  const float* x = o.tensor<float>("x", n);
  const float* y = o.tensor<float>("y", n);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.tensor<float>("dx", n);
  use_call_device(o);
  cuda::unary_backward(op, x, y, dy, dx, n, param);
  return info.Env().Undefined();
}

// reduce({ op, x, out, outer, n, inner })
TK_CUDA_OP(reduce) {
  Opts o(info, "reduce", Backend::Cuda);
  const ReduceOp rop = reduce_op(o);
  const int64_t outer = o.count("outer"), n = o.count("n"), inner = o.count("inner");
  const int64_t out_count = checked_elems(outer, inner, "reduce");
  TK_CHECK(n > 0 || out_count == 0 || rop == ReduceOp::Sum || rop == ReduceOp::Mean, Shape,
           "reduce: max/min over an empty axis (n = 0) has no identity");
  const float* x = o.tensor<float>("x", checked_elems(out_count, n, "reduce"));
  float* out = o.tensor<float>("out", out_count);
  use_call_device(o);
  cuda::reduce(rop, x, out, outer, n, inner);
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
