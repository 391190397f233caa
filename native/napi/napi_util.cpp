#include "napi_util.h"

#include <sstream>

#include <cmath>
#include <limits>
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

std::string describe_value(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNumber()) {
    std::ostringstream os;
    os << v.As<Napi::Number>().DoubleValue();
    return os.str();
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.size() > 40) s = s.substr(0, 40) + "...";
    return "'" + s + "'";
  }
  if (v.IsExternal()) return "a storage handle";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

Opts::Opts(const Napi::CallbackInfo& info, const char* op, Backend backend) : op_(op), backend_(backend) {
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    fail(ErrorCode::Value, op, ": expected one options object but received ",
         info.Length() < 1 ? std::string("nothing") : describe_value(info[0]));
  o_ = info[0].As<Napi::Object>();
}

Napi::Value Opts::get(const char* key) const { return o_.Get(key); }

void Opts::bad(const char* key, const char* expected, const Napi::Value& v) const {
  fail(ErrorCode::Value, op_, ": options.", key, ": expected ", expected, " but received ", describe_value(v));
}

bool Opts::has(const char* key) const {
  Napi::Value v = get(key);
  return !v.IsUndefined() && !v.IsNull();
}

double Opts::number(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsNumber()) bad(key, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t Opts::integer(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsNumber()) bad(key, "an integer", v);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(std::fabs(d) <= 9007199254740992.0) || std::trunc(d) != d) bad(key, "an integer", v);
  return static_cast<int64_t>(d);
}

int64_t Opts::count(const char* key) const {
  Napi::Value v = get(key);
  const int64_t n = integer(key);
  if (n < 0) bad(key, "an integer >= 0", v);
  return n;
}

float Opts::finite_f32(const char* key) const {
  Napi::Value v = get(key);
  const double d = number(key);
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) bad(key, "a finite f32 number", v);
  return static_cast<float>(d);
}

bool Opts::flag(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsBoolean()) bad(key, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

bool Opts::flag_or(const char* key, bool fallback) const { return has(key) ? flag(key) : fallback; }

std::vector<int64_t> Opts::ints(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsArray()) bad(key, "an array of integers", v);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t k = 0; k < a.Length(); ++k) {
    Napi::Value e = a.Get(k);
    const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : NAN;
    if (!(std::fabs(d) <= 9007199254740992.0) || std::trunc(d) != d)
      fail(ErrorCode::Value, op_, ": options.", key, "[", k, "]: expected an integer but received ", describe_value(e));
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

std::string Opts::string(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsString()) bad(key, "a string", v);
  return v.As<Napi::String>().Utf8Value();
}

DType Opts::dtype(const char* key) const {
  const std::string name = string(key);
  for (int d = 0; d <= 6; ++d)
    if (name == dtype_name(static_cast<DType>(d))) return static_cast<DType>(d);
  fail(ErrorCode::Dtype, op_, ": options.", key, ": unknown dtype '", name, "' (expected f32, bf16, f16, i32, i64, u8 or f64)");
}

Storage* Opts::storage(const char* key) const {
  Napi::Value v = get(key);
  if (!v.IsExternal()) bad(key, "a storage handle", v);
  Handle* h = v.As<Napi::External<Handle>>().Data();
  if (!h || !h->storage) fail(ErrorCode::Disposed, op_, ": options.", key, ": the tensor's storage was already disposed");
  return h->storage;
}

void* Opts::bytes_at(const char* key, int64_t count, size_t elem_size, size_t align) const {
  Storage* s = storage(key);
  if (backend_ == Backend::Cpu) {
    TK_CHECK(s->device < 0, Device, op_, ": ", key, " is on cuda:", s->device,
             " but this is the cpu kernel (every tensor of an op must be on one device)");
  } else {
    TK_CHECK(s->device >= 0, Device, op_, ": ", key, " is on cpu but this is the cuda kernel (every tensor of an op must be on one device)");
    TK_CHECK(device_ < 0 || device_ == s->device, Device, op_, ": ", key, " is on cuda:", s->device,
             " but an earlier tensor of the call is on cuda:", device_);
    device_ = s->device;
  }
  std::string off_key = std::string(key) + "Off";
  int64_t off = 0;
  if (has(off_key.c_str())) off = integer(off_key.c_str());
  TK_CHECK(count >= 0, Shape, op_, ": ", key, ": negative element count ", count);
  TK_CHECK(off >= 0 && off % static_cast<int64_t>(align) == 0, Value, op_, ": options.", off_key, ": bad byte offset ", off);
  const uint64_t need = static_cast<uint64_t>(off) + static_cast<uint64_t>(count) * elem_size;
  TK_CHECK(need <= s->bytes, Index, op_, ": ", key, " needs bytes [", off, ", ", need, ") but its storage holds ", s->bytes);
  return static_cast<uint8_t*>(s->data) + off;
}

std::vector<ExportEntry>& export_registry() {
  static std::vector<ExportEntry> r;
  return r;
}

Export::Export(const char* group, const char* name, NativeFn fn) { export_registry().push_back({group, name, fn}); }

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
