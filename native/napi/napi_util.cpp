#include "napi_util.h"

#include <new>

namespace tk::napi {

EnvState& env_state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  EnvState* st = env.GetInstanceData<EnvState>();
  if (st && !st->error_class.IsEmpty()) {
    Napi::Object err = st->error_class.New({Napi::String::New(env, code), Napi::String::New(env, message)});
    return Napi::Error(env, err);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Storage* storage_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsExternal()) fail(ErrorCode::Value, what, ": expected a storage handle");
  Handle* h = info[i].As<Napi::External<Handle>>().Data();
  if (!h || !h->storage) fail(ErrorCode::Disposed, what, ": tensor storage was already disposed");
  return h->storage;
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(ErrorCode::Value, what, ": expected an integer");
  double d = info[i].As<Napi::Number>().DoubleValue();
  int64_t v = static_cast<int64_t>(d);
  TK_CHECK(static_cast<double>(v) == d, Value, what, ": expected an integer but received ", d);
  return v;
}

double num_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) fail(ErrorCode::Value, what, ": expected a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsBoolean()) fail(ErrorCode::Value, what, ": expected a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

int64_t checked_elems(std::initializer_list<int64_t> dims, const char* what) {
  constexpr int64_t kMax = int64_t(1) << 53;
  int64_t n = 1;
  for (int64_t d : dims) {
    TK_CHECK(d >= 0, Shape, what, ": negative size ", d);
    TK_CHECK(d == 0 || n <= kMax / d, Shape, what, ": element count overflows");
    n *= d;
  }
  return n;
}

int64_t count_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  int64_t n = int_arg(info, i, what);
  TK_CHECK(n >= 0, Shape, what, ": expected a count >= 0 but received ", n);
  return n;
}

std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsArray()) fail(ErrorCode::Value, what, ": expected an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value v = a.Get(k);
    if (!v.IsNumber()) fail(ErrorCode::Value, what, ": element ", k, " is not a number");
    out[k] = static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
  }
  return out;
}

DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  int64_t d = int_arg(info, i, what);
  TK_CHECK(d >= 0 && d <= 6, Dtype, what, ": unknown dtype code ", d);
  return static_cast<DType>(d);
}

std::vector<std::pair<const char*, NativeFn>>& export_registry() {
  static std::vector<std::pair<const char*, NativeFn>> r;
  return r;
}

Export::Export(const char* name, NativeFn fn) { export_registry().emplace_back(name, fn); }

Napi::Value guarded(const Napi::CallbackInfo& info, NativeFn body) {
  try {
    return body(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const Error& e) {
    throw make_error(info.Env(), error_code_name(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    throw make_error(info.Env(), "ERR_OOM", "out of host memory");
  } catch (const std::exception& e) {
    throw make_error(info.Env(), "ERR_BACKEND", e.what());
  }
}

}  // namespace tk::napi
