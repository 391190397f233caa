// Shared helpers of the N-API layer: tensor-argument unwrapping with bounds checks, scalar
// arguments, conversion of tk::Error into the JS TunekitError, and the export registry.
//
// Calling convention of every op: a tensor argument is two JS values, the storage handle (an
// External) and a byte offset into it. Ops expect contiguous row-major data; views are made
// contiguous in TypeScript first.
#pragma once
#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/status.h"
#include "core/storage.h"

namespace tk::napi {

// What a JS storage handle points to. `storage` is null after dispose().
struct Handle {
  Storage* storage = nullptr;
};

// Per-environment state (the addon is context-aware: each worker thread gets its own).
struct EnvState {
  Napi::FunctionReference error_class;  // lib/errors.ts TunekitError, set at load time
  // External memory of this env's storage handles, and the part reported to V8 (see
  // storage_ops.cpp: report_external): the reported figure follows the high-water mark of live
  // bytes, not every allocation, so that a training step's churn does not start a GC each step.
  int64_t external_live = 0;
  int64_t external_reported = 0;
  double external_raised_at = 0;  // seconds (steady clock) when the reported figure last rose
};

EnvState& env_state(Napi::Env env);

// A JS TunekitError(code, message) (a plain Error with .code before the class is registered).
Napi::Error make_error(Napi::Env env, const char* code, const std::string& message);

Storage* storage_arg(const Napi::CallbackInfo& info, size_t i, const char* what);

// Pointer to `count` elements of T at info[i] (handle) + info[i+1] (byte offset), checked to lie
// inside the storage.
template <typename T>
T* tensor_arg(const Napi::CallbackInfo& info, size_t i, int64_t count, const char* what) {
  Storage* s = storage_arg(info, i, what);
  if (i + 1 >= info.Length() || !info[i + 1].IsNumber())
    fail(ErrorCode::Value, what, ": expected a byte offset after the storage handle");
  int64_t off = info[i + 1].As<Napi::Number>().Int64Value();
  TK_CHECK(count >= 0, Value, what, ": negative element count ", count);
  TK_CHECK(off >= 0 && off % static_cast<int64_t>(alignof(T) < 4 ? alignof(T) : 4) == 0, Value, what,
           ": bad byte offset ", off);
  uint64_t need = static_cast<uint64_t>(off) + static_cast<uint64_t>(count) * sizeof(T);
  TK_CHECK(need <= s->bytes, Index, what, ": needs bytes [", off, ", ", need, ") but its storage holds ",
           s->bytes);
  return reinterpret_cast<T*>(static_cast<uint8_t*>(s->data) + off);
}

int64_t int_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
double num_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
std::vector<int64_t> ints_arg(const Napi::CallbackInfo& info, size_t i, const char* what);
DType dtype_arg(const Napi::CallbackInfo& info, size_t i, const char* what);

// Element count of a tensor with these dimensions: negative sizes and products past 2^53 (beyond
// any storage we can allocate, and where JS numbers stop being exact) are ERR_SHAPE naming `what`.
int64_t checked_elems(std::initializer_list<int64_t> dims, const char* what);
inline int64_t checked_elems(int64_t a, int64_t b, const char* what) { return checked_elems({a, b}, what); }

// A non-negative count argument.
int64_t count_arg(const Napi::CallbackInfo& info, size_t i, const char* what);

using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);

// Registers fn as exports[name]; called from static initialisers (TK_EXPORT), so op families
// live in their own files without a central list to edit.
struct Export {
  Export(const char* name, NativeFn fn);
};
std::vector<std::pair<const char*, NativeFn>>& export_registry();

// Runs body, converting C++ exceptions into JS TunekitErrors.
Napi::Value guarded(const Napi::CallbackInfo& info, NativeFn body);

}  // namespace tk::napi

// TK_EXPORT(name) { ...body using `info`... } defines and registers a native function.
#define TK_EXPORT(name)                                                             \
  static Napi::Value tk_fn_##name(const Napi::CallbackInfo& info);                  \
  static ::tk::napi::Export tk_export_##name(#name, tk_fn_##name);                  \
  static Napi::Value tk_fn_##name(const Napi::CallbackInfo& info)
