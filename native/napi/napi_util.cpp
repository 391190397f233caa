#include "napi_util.h"

#include <sstream>

#include <cmath>
#include <cstring>
#include <limits>
#include <new>

namespace tk::napi {

EnvState& env_state(Napi::Env env) { return *env.GetInstanceData<EnvState>(); }

// null or undefined (an absent optional field)
namespace {
bool absent(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) != napi_ok || t == napi_undefined || t == napi_null;
}
}  // namespace


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

Opts::Opts(const Napi::CallbackInfo& info, const char* op, Backend backend) : env_(info.Env()), op_(op), backend_(backend) {
  double id = 0;
  if (info.Length() >= 1 && napi_get_value_double(env_, info[0], &id) == napi_ok) {
    // kernel(schemaId, v0, v1, ...): the fields named by kernelSchema's list, by position
    std::vector<EnvState::Schema>& schemas = env_state(env_).schemas;
    if (!(id >= 0 && id < static_cast<double>(schemas.size())) || std::trunc(id) != id)
      fail(ErrorCode::Value, op, ": unknown options schema ", id, " (register the field names with kernelSchema first)");
    schema_ = &schemas[static_cast<size_t>(id)];
    if (info.Length() != schema_->names.size() + 1)
      fail(ErrorCode::Value, op, ": options schema ", id, " has ", schema_->names.size(), " fields but the call passed ", info.Length() - 1, " values");
    info_ = &info;
    return;
  }
  if (info.Length() < 1 || !info[0].IsObject() || info[0].IsArray())
    fail(ErrorCode::Value, op, ": expected one options object but received ",
         info.Length() < 1 ? std::string("nothing") : describe_value(info[0]));
  o_ = info[0].As<Napi::Object>();
}

napi_value Opts::slot(const char* key, bool off) const {
  auto& memo = off ? schema_->off : schema_->plain;
  int at = -2;
  for (const auto& [k, i] : memo) {
    if (k == key) {
      at = i;
      break;
    }
  }
  if (at == -2) {
    const size_t len = std::strlen(key);
    at = -1;
    for (size_t i = 0; i < schema_->names.size(); ++i) {
      const std::string& name = schema_->names[i];
      if (name.size() == len + (off ? 3 : 0) && name.compare(0, len, key) == 0 && (!off || name.compare(len, 3, "Off") == 0)) {
        at = static_cast<int>(i);
        break;
      }
    }
    // a key built at run time (not a literal) could reuse an address: only literals are memoised
    // in practice, and a wrong memo would name another field, so keep the memo small and exact
    if (memo.size() < 64) memo.emplace_back(key, at);
  }
  return at < 0 ? nullptr : static_cast<napi_value>((*info_)[1 + static_cast<size_t>(at)]);
}

const char* Opts::short_string(const char* key, char* buf, size_t size) const {
  Napi::Value v = get(key);
  size_t n = 0;
  if (napi_get_value_string_utf8(env_, v, buf, size, &n) != napi_ok) bad(key, "a string", v);
  if (n + 1 >= size) bad(key, "a short string", v);
  return buf;
}

Napi::Value Opts::get(const char* key) const {
  if (schema_) {
    const napi_value v = slot(key, false);
    return v ? Napi::Value(env_, v) : env_.Undefined();
  }
  return o_.Get(key);
}

int64_t Opts::integer_or(const char* key, int64_t fallback) const {
  return absent(env_, get(key)) ? fallback : integer(key);
}

int64_t Opts::offset(const char* key) const {
  Napi::Value v;
  if (schema_) {
    const napi_value s = slot(key, true);
    v = s ? Napi::Value(env_, s) : env_.Undefined();
  } else {
    v = o_.Get(std::string(key) + "Off");
  }
  double d;
  if (napi_get_value_double(env_, v, &d) != napi_ok) {
    if (absent(env_, v)) return 0;
    d = NAN;
  }
  if (!(std::fabs(d) <= 9007199254740992.0) || std::trunc(d) != d) bad((std::string(key) + "Off").c_str(), "an integer byte offset", v);
  return static_cast<int64_t>(d);
}

void Opts::bad(const char* key, const char* expected, const Napi::Value& v) const {
  fail(ErrorCode::Value, op_, ": options.", key, ": expected ", expected, " but received ", describe_value(v));
}

// The readers below make as few N-API calls as they can (each costs tens of ns and a small op
// reads ~10 fields): a number is read with napi_get_value_double, whose failure says it is no
// number, instead of a type query first.
bool Opts::has(const char* key) const { return !absent(env_, get(key)); }

double Opts::number(const char* key) const {
  Napi::Value v = get(key);
  double d;
  if (napi_get_value_double(env_, v, &d) != napi_ok) bad(key, "a number", v);
  return d;
}

int64_t Opts::integer(const char* key) const {
  Napi::Value v = get(key);
  double d;
  if (napi_get_value_double(env_, v, &d) != napi_ok || !(std::fabs(d) <= 9007199254740992.0) || std::trunc(d) != d) bad(key, "an integer", v);
  return static_cast<int64_t>(d);
}

int64_t Opts::count(const char* key) const {
  const int64_t n = integer(key);
  if (n < 0) bad(key, "an integer >= 0", get(key));
  return n;
}

float Opts::finite_f32(const char* key) const {
  const double d = number(key);
  if (!std::isfinite(d) || std::fabs(d) > std::numeric_limits<float>::max()) bad(key, "a finite f32 number", get(key));
  return static_cast<float>(d);
}

bool Opts::flag(const char* key) const {
  Napi::Value v = get(key);
  bool b;
  if (napi_get_value_bool(env_, v, &b) != napi_ok) bad(key, "a boolean", v);
  return b;
}

bool Opts::flag_or(const char* key, bool fallback) const {
  Napi::Value v = get(key);
  bool b;
  if (napi_get_value_bool(env_, v, &b) == napi_ok) return b;
  if (absent(env_, v)) return fallback;
  bad(key, "a boolean", v);
}

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
  void* data = nullptr;
  if (napi_get_value_external(env_, v, &data) != napi_ok) bad(key, "a storage handle", v);
  Handle* h = static_cast<Handle*>(data);
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
  const int64_t off = offset(key);
  TK_CHECK(count >= 0, Shape, op_, ": ", key, ": negative element count ", count);
  TK_CHECK(off >= 0 && off % static_cast<int64_t>(align) == 0, Value, op_, ": options.", key, "Off: bad byte offset ", off);
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
