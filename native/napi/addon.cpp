// Addon entry: registers every TK_EXPORT function, wrapped so that C++ errors become
// TunekitErrors. Context-aware (NAPI_MODULE_INIT): each worker thread gets its own state.
#include <cstring>

#include "napi_util.h"

namespace {


// Napi::Function::New needs a distinct callback per export: route through user data instead.
Napi::Value dispatch(const Napi::CallbackInfo& info) {
  auto fn = reinterpret_cast<tk::napi::NativeFn>(info.Data());
  return tk::napi::guarded(info, fn);
}

}  // namespace

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new tk::napi::EnvState());
  // the kernels of each backend in one object (exports.cpu, exports.cuda), everything else flat
  Napi::Object cpu = Napi::Object::New(env), cuda = Napi::Object::New(env);
  bool any_cuda = false;
  for (const auto& e : tk::napi::export_registry()) {
    Napi::Function f = Napi::Function::New(env, dispatch, e.name, reinterpret_cast<void*>(e.fn));
    if (!e.group) exports.Set(e.name, f);
    else if (std::strcmp(e.group, "cpu") == 0) cpu.Set(e.name, f);
    else {
      cuda.Set(e.name, f);
      any_cuda = true;
    }
  }
  exports.Set("cpu", cpu);
  if (any_cuda) exports.Set("cuda", cuda);
  return exports;
}

NODE_API_MODULE(tunekit, Init)
