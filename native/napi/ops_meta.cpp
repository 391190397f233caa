// opCodes(): the closed lists of core/op_codes.h and the dtype names, as lib/native.ts checks
// them at load against its own copies (a build whose lists differ from the TypeScript is refused).
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {
template <int N>
Napi::Array names(Napi::Env env, const char* const (&list)[N]) {
  Napi::Array a = Napi::Array::New(env, N);
  for (int i = 0; i < N; ++i) a.Set(static_cast<uint32_t>(i), Napi::String::New(env, list[i]));
  return a;
}
}  // namespace

// opCodes() -> { binary: string[], unary: string[], reduce: string[], quant4: string[], dtypes: string[] }
TK_EXPORT(opCodes) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("binary", names(env, kBinaryOpNames));
  o.Set("unary", names(env, kUnaryOpNames));
  o.Set("reduce", names(env, kReduceOpNames));
  o.Set("quant4", names(env, kQuant4TypeNames));
  Napi::Array dt = Napi::Array::New(env, 7);
  for (int d = 0; d < 7; ++d) dt.Set(static_cast<uint32_t>(d), Napi::String::New(env, dtype_name(static_cast<DType>(d))));
  o.Set("dtypes", dt);
  return o;
}
