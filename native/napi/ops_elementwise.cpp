// Element-wise and reduction bindings (lib/native.ts, section "element-wise"), f32.
// Every size, stride and op code is checked here before a kernel touches memory.
#include <cmath>
#include <limits>

#include "cpu/elementwise.h"
#include "cpu/reduce.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

cpu::BinaryOp binary_op_arg(const Napi::CallbackInfo& info, size_t i) {
  int64_t op = int_arg(info, i, "binary op");
  TK_CHECK(op >= 0 && op < cpu::kNumBinaryOps, Value, "binary: unknown op code ", op, " (expected 0..",
           cpu::kNumBinaryOps - 1, ", see BINARY_OP)");
  return static_cast<cpu::BinaryOp>(op);
}

cpu::UnaryOp unary_op_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  int64_t op = int_arg(info, i, "unary op");
  TK_CHECK(op >= 0 && op < cpu::kNumUnaryOps, Value, fn, ": unknown op code ", op, " (expected 0..",
           cpu::kNumUnaryOps - 1, ", see UNARY_OP)");
  return static_cast<cpu::UnaryOp>(op);
}

// Elements an operand spans under (shape, strides): 1 + sum (shape_k - 1) * stride_k, or 0 when
// the output is empty.
int64_t strided_extent(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides, const char* what) {
  int64_t extent = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 0) return 0;
    TK_CHECK(strides[k] >= 0, Shape, "binary: ", what, " stride ", strides[k], " at axis ", k,
             " is negative (make the view contiguous first)");
    extent += checked_elems(shape[k] - 1, strides[k], "binary");
    TK_CHECK(extent <= (int64_t(1) << 53), Shape, "binary: ", what, " extent overflows");
  }
  return extent;
}

}  // namespace

// binary(op, a, aOff, b, bOff, out, outOff, outShape, aStrides, bStrides)
TK_EXPORT(binary) {
  cpu::BinaryOp op = binary_op_arg(info, 0);
  std::vector<int64_t> shape = ints_arg(info, 7, "binary outShape");
  std::vector<int64_t> as = ints_arg(info, 8, "binary aStrides");
  std::vector<int64_t> bs = ints_arg(info, 9, "binary bStrides");
  TK_CHECK(as.size() == shape.size() && bs.size() == shape.size(), Shape, "binary: outShape has ", shape.size(),
           " dims but aStrides has ", as.size(), " and bStrides ", bs.size());
  int64_t total = 1;
  for (size_t k = 0; k < shape.size(); ++k) {
    TK_CHECK(shape[k] >= 0, Shape, "binary: outShape[", k, "] = ", shape[k], " is negative");
    total = checked_elems(total, shape[k], "binary outShape");
  }
  const float* a = tensor_arg<float>(info, 1, strided_extent(shape, as, "a"), "binary a");
  const float* b = tensor_arg<float>(info, 3, strided_extent(shape, bs, "b"), "binary b");
  float* out = tensor_arg<float>(info, 5, total, "binary out");
  if (total > 0)
    cpu::binary(op, a, b, out, static_cast<int>(shape.size()), shape.data(), as.data(), bs.data());
  return info.Env().Undefined();
}

// unary(op, x, xOff, out, outOff, n, param)
TK_EXPORT(unary) {
  cpu::UnaryOp op = unary_op_arg(info, 0, "unary");
  int64_t n = count_arg(info, 5, "unary n");
  float param = static_cast<float>(num_arg(info, 6, "unary param"));
  const float* x = tensor_arg<float>(info, 1, n, "unary x");
  float* y = tensor_arg<float>(info, 3, n, "unary out");
  cpu::unary(op, x, y, n, param);
  return info.Env().Undefined();
}

// unaryBackward(op, x, xOff, y, yOff, dy, dyOff, dx, dxOff, n, param)
TK_EXPORT(unaryBackward) {
  cpu::UnaryOp op = unary_op_arg(info, 0, "unaryBackward");
  int64_t n = count_arg(info, 9, "unaryBackward n");
  float param = static_cast<float>(num_arg(info, 10, "unaryBackward param"));
  const float* x = tensor_arg<float>(info, 1, n, "unaryBackward x");
  const float* y = tensor_arg<float>(info, 3, n, "unaryBackward y");
  const float* dy = tensor_arg<float>(info, 5, n, "unaryBackward dy");
  float* dx = tensor_arg<float>(info, 7, n, "unaryBackward dx");
  cpu::unary_backward(op, x, y, dy, dx, n, param);
  return info.Env().Undefined();
}

// reduce(op, x, xOff, out, outOff, outer, n, inner)
TK_EXPORT(reduce) {
  int64_t op = int_arg(info, 0, "reduce op");
  TK_CHECK(op >= 0 && op < cpu::kNumReduceOps, Value, "reduce: unknown op code ", op,
           " (expected 0..", cpu::kNumReduceOps - 1, ", see REDUCE_OP)");
  int64_t outer = count_arg(info, 5, "reduce outer");
  int64_t n = count_arg(info, 6, "reduce n");
  int64_t inner = count_arg(info, 7, "reduce inner");
  auto rop = static_cast<cpu::ReduceOp>(op);
  int64_t out_count = checked_elems(outer, inner, "reduce");
  TK_CHECK(n > 0 || out_count == 0 || rop == cpu::ReduceOp::Sum || rop == cpu::ReduceOp::Mean, Shape,
           "reduce: max/min over an empty axis (n = 0) has no identity");
  const float* x = tensor_arg<float>(info, 1, checked_elems(out_count, n, "reduce"), "reduce x");
  float* out = tensor_arg<float>(info, 3, out_count, "reduce out");
  cpu::reduce(rop, x, out, outer, n, inner);
  return info.Env().Undefined();
}

// argmax(x, xOff, out, outOff, rows, cols) -> out i32 [rows]
TK_EXPORT(argmax) {
  int64_t rows = count_arg(info, 4, "argmax rows");
  int64_t cols = count_arg(info, 5, "argmax cols");
  TK_CHECK(cols > 0 || rows == 0, Shape, "argmax: rows of zero columns have no maximum");
  TK_CHECK(cols <= std::numeric_limits<int32_t>::max(), Shape, "argmax: cols ", cols, " exceeds the i32 index range");
  const float* x = tensor_arg<float>(info, 0, checked_elems(rows, cols, "argmax"), "argmax x");
  int32_t* out = tensor_arg<int32_t>(info, 2, rows, "argmax out");
  cpu::argmax(x, out, rows, cols);
  return info.Env().Undefined();
}

// sumSquares(x, xOff, n) -> number (double)
TK_EXPORT(sumSquares) {
  int64_t n = count_arg(info, 2, "sumSquares n");
  const float* x = tensor_arg<float>(info, 0, n, "sumSquares x");
  return Napi::Number::New(info.Env(), cpu::sum_squares(x, n));
}

// countNonFinite(x, xOff, n) -> number
TK_EXPORT(countNonFinite) {
  int64_t n = count_arg(info, 2, "countNonFinite n");
  const float* x = tensor_arg<float>(info, 0, n, "countNonFinite x");
  return Napi::Number::New(info.Env(), static_cast<double>(cpu::count_non_finite(x, n)));
}
