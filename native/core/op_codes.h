// The closed lists of op codes shared by every backend and by TypeScript, each written once.
//
// Each list is an X-macro of (Enumerator, "name"): the enum, its count and its names are
// generated from it. Across the N-API boundary an op code travels as its name (TypeScript passes
// `op: 'gelu_tanh'`), never as a number, and lib/native.ts holds the same names in the same order:
// at load it compares them with `opCodes()` (native/napi/ops_meta.cpp) and refuses an addon
// whose lists differ (a stale build). The static_asserts below are the C++ half of that count
// check: adding an op here fails the build until the count, lib/native.ts and every backend's
// switch are updated together.
#pragma once
#include <cstdint>
#include <cstring>

namespace tk {

#define TK_BINARY_OPS(X) X(Add, "add") X(Sub, "sub") X(Mul, "mul") X(Div, "div") X(Maximum, "maximum") X(Minimum, "minimum")

#define TK_UNARY_OPS(X)                                                                                        \
  X(Neg, "neg") X(Exp, "exp") X(Log, "log") X(Sqrt, "sqrt") X(Rsqrt, "rsqrt") X(Abs, "abs") X(Tanh, "tanh")      \
  X(Sigmoid, "sigmoid") X(Relu, "relu") X(GeluTanh, "gelu_tanh") X(GeluErf, "gelu_erf") X(Silu, "silu")          \
  X(Square, "square") X(MulScalar, "mul_scalar") X(AddScalar, "add_scalar") X(PowScalar, "pow_scalar")

#define TK_REDUCE_OPS(X) X(Sum, "sum") X(Mean, "mean") X(Max, "max") X(Min, "min")

// bitsandbytes' 4-bit formats
#define TK_QUANT4_TYPES(X) X(NF4, "nf4") X(FP4, "fp4")

#define TK_OP_ENUMERATOR(e, name) e,
#define TK_OP_NAME(e, name) name,
#define TK_OP_COUNT(e, name) +1

enum class BinaryOp : int { TK_BINARY_OPS(TK_OP_ENUMERATOR) };
enum class UnaryOp : int { TK_UNARY_OPS(TK_OP_ENUMERATOR) };
enum class ReduceOp : int { TK_REDUCE_OPS(TK_OP_ENUMERATOR) };
enum class Quant4Type : int32_t { TK_QUANT4_TYPES(TK_OP_ENUMERATOR) };

constexpr int kNumBinaryOps = 0 TK_BINARY_OPS(TK_OP_COUNT);
constexpr int kNumUnaryOps = 0 TK_UNARY_OPS(TK_OP_COUNT);
constexpr int kNumReduceOps = 0 TK_REDUCE_OPS(TK_OP_COUNT);
constexpr int kNumQuant4Types = 0 TK_QUANT4_TYPES(TK_OP_COUNT);

// The count check (lib/native.ts: BINARY_OPS, UNARY_OPS, REDUCE_OPS, QUANT4_TYPES).
static_assert(kNumBinaryOps == 6, "binary op list changed: update lib/native.ts BINARY_OPS and every backend");
static_assert(kNumUnaryOps == 16, "unary op list changed: update lib/native.ts UNARY_OPS and every backend");
static_assert(kNumReduceOps == 4, "reduce op list changed: update lib/native.ts REDUCE_OPS and every backend");
static_assert(kNumQuant4Types == 2, "4-bit type list changed: update lib/native.ts QUANT4_TYPES and every backend");

inline constexpr const char* kBinaryOpNames[] = {TK_BINARY_OPS(TK_OP_NAME)};
inline constexpr const char* kUnaryOpNames[] = {TK_UNARY_OPS(TK_OP_NAME)};
inline constexpr const char* kReduceOpNames[] = {TK_REDUCE_OPS(TK_OP_NAME)};
inline constexpr const char* kQuant4TypeNames[] = {TK_QUANT4_TYPES(TK_OP_NAME)};

// The name of an op code ("?" out of range).
template <typename E, int N>
inline const char* op_code_name(E e, const char* const (&names)[N]) {
  const int i = static_cast<int>(e);
  return i >= 0 && i < N ? names[i] : "?";
}
inline const char* op_name(BinaryOp op) { return op_code_name(op, kBinaryOpNames); }
inline const char* op_name(UnaryOp op) { return op_code_name(op, kUnaryOpNames); }
inline const char* op_name(ReduceOp op) { return op_code_name(op, kReduceOpNames); }
inline const char* op_name(Quant4Type t) { return op_code_name(t, kQuant4TypeNames); }

// The code of `name` in a list, or -1.
template <int N>
inline int op_code_index(const char* name, const char* const (&names)[N]) {
  for (int i = 0; i < N; ++i)
    if (std::strcmp(name, names[i]) == 0) return i;
  return -1;
}

}  // namespace tk
