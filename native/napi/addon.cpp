// Addon entry: registers every TK_EXPORT function, wrapped so that C++ errors become
// TunekitErrors. Context-aware (NAPI_MODULE_INIT): each worker thread gets its own state.
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
  for (auto& [name, fn] : tk::napi::export_registry()) {
    exports.Set(name, Napi::Function::New(env, dispatch, name, reinterpret_cast<void*>(fn)));
  }
  return exports;
}

NODE_API_MODULE(tunekit, Init)
