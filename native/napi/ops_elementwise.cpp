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
  const BinaryArgs r = binary_args(o);
  if (r.total > 0)
    cpu::binary(r.op, r.a, r.b, r.out, static_cast<int>(r.shape.size()), r.shape.data(), r.a_strides.data(),
                r.b_strides.data());
  return info.Env().Undefined();
}

// unary({ op, x, out, n, param }): out = f(x); param is the scalar of the *_scalar ops
TK_CPU_OP(unary) {
  Opts o(info, "unary");
  const UnaryArgs r = unary_args(o, false);
  cpu::unary(r.op, r.x, r.out, r.n, r.param);
  return info.Env().Undefined();
}

// unaryBackward({ op, x, y, dy, dx, n, param }): dx = dy * f'(x)
TK_CPU_OP(unaryBackward) {
  Opts o(info, "unaryBackward");
  const UnaryArgs r = unary_args(o, true);
  cpu::unary_backward(r.op, r.x, r.y, r.dy, r.out, r.n, r.param);
  return info.Env().Undefined();
}

// reduce({ op, x, out, outer, n, inner }): x [outer, n, inner] -> out [outer, inner]
TK_CPU_OP(reduce) {
  Opts o(info, "reduce");
  const ReduceArgs r = reduce_args(o);
  cpu::reduce(r.op, r.x, r.out, r.outer, r.n, r.inner);
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
