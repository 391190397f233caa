// Binding for the CUDA backend's status (lib/native.ts, section "CUDA"). Builds with or without
// the CUDA backend: without TUNEKIT_WITH_CUDA (node-gyp, machines without nvcc) it reports
// compiled = false.
#include "napi_util.h"
#ifdef TUNEKIT_WITH_CUDA
#include "cuda/device_runtime.h"
#endif

using namespace tk::napi;

// cudaInfo() -> { compiled, devices, reason, name?, computeCapability?, totalBytes? }
TK_EXPORT(cudaInfo) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef TUNEKIT_WITH_CUDA
  tk::cuda::DeviceInfo d = tk::cuda::device_info();
  o.Set("compiled", Napi::Boolean::New(env, true));
  o.Set("devices", Napi::Number::New(env, d.devices));
  o.Set("reason", Napi::String::New(env, d.reason));
  if (d.devices > 0) {
    o.Set("name", Napi::String::New(env, d.name));
    o.Set("computeCapability", Napi::String::New(env, std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)));
    o.Set("totalBytes", Napi::Number::New(env, static_cast<double>(d.total_bytes)));
  }
#else
  o.Set("compiled", Napi::Boolean::New(env, false));
  o.Set("devices", Napi::Number::New(env, 0));
  o.Set("reason", Napi::String::New(env, "built without the CUDA backend (no CUDA compiler at build time, or TUNEKIT_CUDA=OFF)"));
#endif
  return o;
}
