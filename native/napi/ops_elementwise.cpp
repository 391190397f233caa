// Element-wise and reduction bindings (lib/native.ts, section "element-wise"), f32.
// Each takes one options object (napi_util.h: Opts); every size, stride and op code is checked
// here before a kernel touches memory.
#include <cmath>
#include <limits>

#include "cpu/elementwise.h"
#include "cpu/reduce.h"
#include "napi_util.h"
#include "op_options.h"

using namespace tk;
using namespace tk::napi;


// binary({ op, a, b, out, outShape, aStrides, bStrides }): out[outShape] = a op b, where the
// strides are element strides of a and b over outShape (0 = broadcast).
TK_CPU_OP(binary) {
  Opts o(info, "binary");
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
  if (total > 0) cpu::binary(op, a, b, out, static_cast<int>(shape.size()), shape.data(), as.data(), bs.data());
  return info.Env().Undefined();
}

// unary({ op, x, out, n, param }): out = f(x); param is the scalar of the *_scalar ops
TK_CPU_OP(unary) {
  Opts o(info, "unary");
  const UnaryOp op = unary_op(o);
  const int64_t n = o.count("n");
  const float param = static_cast<float>(o.number("param"));
  const float* x = o.tensor<float>("x", n);
  float* y = o.tensor<float>("out", n);
  cpu::unary(op, x, y, n, param);
  return info.Env().Undefined();
}

// unaryBackward({ op, x, y, dy, dx, n, param }): dx = dy * f'(x)
TK_CPU_OP(unaryBackward) {
  Opts o(info, "unaryBackward");
  const UnaryOp op = unary_op(o);
  const int64_t n = o.count("n");
  const float param = static_cast<float>(o.number("param"));
  const float* x = o.tensor<float>("x", n);
  const float* y = o.tensor<float>("y", n);
  const float* dy = o.tensor<float>("dy", n);
  float* dx = o.tensor<float>("dx", n);
  cpu::unary_backward(op, x, y, dy, dx, n, param);
  return info.Env().Undefined();
}

// reduce({ op, x, out, outer, n, inner }): x [outer, n, inner] -> out [outer, inner]
TK_CPU_OP(reduce) {
  Opts o(info, "reduce");
  const ReduceOp rop = reduce_op(o);
  const int64_t outer = o.count("outer"), n = o.count("n"), inner = o.count("inner");
  const int64_t out_count = checked_elems(outer, inner, "reduce");
  TK_CHECK(n > 0 || out_count == 0 || rop == ReduceOp::Sum || rop == ReduceOp::Mean, Shape,
           "reduce: max/min over an empty axis (n = 0) has no identity");
  const float* x = o.tensor<float>("x", checked_elems(out_count, n, "reduce"));
  float* out = o.tensor<float>("out", out_count);
  cpu::reduce(rop, x, out, outer, n, inner);
  return info.Env().Undefined();
}

// argmax({ x, out, rows, cols }): out i32 [rows]
TK_CPU_OP(argmax) {
  Opts o(info, "argmax");
  const int64_t rows = o.count("rows"), cols = o.count("cols");
  TK_CHECK(cols > 0 || rows == 0, Shape, "argmax: rows of zero columns have no maximum");
  TK_CHECK(cols <= std::numeric_limits<int32_t>::max(), Shape, "argmax: cols ", cols, " exceeds the i32 index range");
  const float* x = o.tensor<float>("x", checked_elems(rows, cols, "argmax"));
  int32_t* out = o.tensor<int32_t>("out", rows);
  cpu::argmax(x, out, rows, cols);
  return info.Env().Undefined();
}

// sumSquares({ x, n }) -> number (sum in double)
TK_CPU_OP(sumSquares) {
  Opts o(info, "sumSquares");
  const int64_t n = o.count("n");
  return Napi::Number::New(info.Env(), cpu::sum_squares(o.tensor<float>("x", n), n));
}

// countNonFinite({ x, n }) -> number
TK_CPU_OP(countNonFinite) {
  Opts o(info, "countNonFinite");
  const int64_t n = o.count("n");
  return Napi::Number::New(info.Env(), static_cast<double>(cpu::count_non_finite(o.tensor<float>("x", n), n)));
}
