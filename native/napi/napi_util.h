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
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/op_codes.h"
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
  // The field-name lists of options passed by position (kernelSchema): a kernel called as
  // kernel(schemaId, v0, v1, ...) reads field schemas[schemaId][i] from argument 1 + i. Reading
  // named properties of an object costs about 80 ns a field (N-API builds and internalizes the
  // name each time): most of a small op's time; positions cost nothing. Deduplicated by content.
  struct Schema {
    std::vector<std::string> names;
    // field index by the address of the C string Opts asked with (kernels ask with literals: a
    // pointer compare instead of a string compare after the first call); -1 = absent
    std::vector<std::pair<const char*, int>> plain, off;
  };
  std::vector<Schema> schemas;
  std::unordered_map<std::string, int> schema_ids;  // names joined by ',' -> id
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
  TK_CHECK(s->device < 0, Device, what, " is on cuda:", s->device, " but this is a cpu kernel");
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

// Which memory an op's kernels read: host memory (native/cpu) or one CUDA device (native/cuda).
enum class Backend { Cpu, Cuda };

// The options object of one native op call (`native.cpu.softmax({ x, xOff, y, yOff, rows, cols,
// log })`): every field is read by name and checked, with errors naming the op and the field
// ("softmax: options.rows: expected an integer >= 0 but received -1"). lib/native.ts types each
// op's options and the kernel table (lib/tensor/kernels.ts) checks them before the call; the
// checks here guard the memory the kernels touch, whatever the caller sent.
//
// A tensor field `x` is two properties: `x`, the storage handle (an External), and `xOff`, the
// byte offset of element 0 in it (0 when absent). tensor<T>() checks that the storage holds the
// `count` elements the kernel will touch and that it lives where the backend reads: host memory
// for Backend::Cpu (ERR_DEVICE naming the tensor's device otherwise), and one CUDA device for
// Backend::Cuda, the same for every tensor of the call.
//
// The same fields may come by position: kernel(schemaId, v0, v1, ...) with the names registered
// once by kernelSchema (what the kernel table does: no per-field property reads); every reader
// below works the same in both modes.
class Opts {
 public:
  Opts(const Napi::CallbackInfo& info, const char* op, Backend backend = Backend::Cpu);
  const char* op() const { return op_; }
  Napi::Env env() const { return env_; }
  // present and neither null nor undefined
  bool has(const char* key) const;
  int64_t integer(const char* key) const;
  int64_t count(const char* key) const;  // an integer >= 0
  double number(const char* key) const;
  float finite_f32(const char* key) const;  // a finite number within f32's range
  bool flag(const char* key) const;
  bool flag_or(const char* key, bool fallback) const;
  std::vector<int64_t> ints(const char* key) const;
  std::string string(const char* key) const;
  // a string field of at most size - 1 bytes read into buf (op codes: no allocation); longer ones are ERR_VALUE
  const char* short_string(const char* key, char* buf, size_t size) const;
  DType dtype(const char* key) const;  // by name: 'f32', 'bf16', ...
  // present: the value; null or absent: fallback (one property read)
  int64_t integer_or(const char* key, int64_t fallback) const;
  // the byte offset of tensor field `key`: options[key + 'Off'], 0 when absent
  int64_t offset(const char* key) const;
  // an op code by name from one of core/op_codes.h's lists
  template <typename E, int N>
  E code(const char* key, const char* const (&names)[N]) const {
    char buf[64];
    const char* name = short_string(key, buf, sizeof buf);
    const int i = op_code_index(name, names);
    if (i < 0) {
      std::string all;
      for (int k = 0; k < N; ++k) all += (k ? ", " : "") + std::string(names[k]);
      fail(ErrorCode::Value, op_, ": options.", key, ": unknown op '", name, "' (expected one of ", all, ")");
    }
    return static_cast<E>(i);
  }
  Storage* storage(const char* key) const;
  template <typename T>
  T* tensor(const char* key, int64_t count) const {
    return static_cast<T*>(bytes_at(key, count, sizeof(T), alignof(T) < 4 ? alignof(T) : 4));
  }
  // null (or absent) gives nullptr
  template <typename T>
  T* optional_tensor(const char* key, int64_t count) const {
    return has(key) ? tensor<T>(key, count) : nullptr;
  }
  // the CUDA ordinal the call's tensors live on (Backend::Cuda, after a tensor was read), else -1
  int device() const { return device_; }

 private:
  Napi::Value get(const char* key) const;
  // positional mode: the argument holding field `key` (with "Off" appended when off), or nullptr
  napi_value slot(const char* key, bool off) const;
  void* bytes_at(const char* key, int64_t count, size_t elem_size, size_t align) const;
  [[noreturn]] void bad(const char* key, const char* expected, const Napi::Value& v) const;

  Napi::Env env_;
  Napi::Object o_;                                        // the options object (object mode)
  const Napi::CallbackInfo* info_ = nullptr;              // the call (positional mode)
  EnvState::Schema* schema_ = nullptr;                    // field names by position (positional mode)
  const char* op_;
  Backend backend_;
  mutable int device_ = -1;
};

// A short description of a JS value for error messages: 12, 'abc', null, an object, ...
std::string describe_value(const Napi::Value& v);

using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);

// Registers fn as exports[name] (group null), or as exports[group][name] for the kernels of a
// backend (group "cpu" or "cuda": lib/tensor/kernels.ts builds its (op, device) table from those
// two objects); called from static initialisers (TK_EXPORT, TK_CPU_OP, TK_CUDA_OP), so op
// families live in their own files without a central list to edit.
struct ExportEntry {
  const char* group;
  const char* name;
  NativeFn fn;
};
struct Export {
  Export(const char* group, const char* name, NativeFn fn);
};
std::vector<ExportEntry>& export_registry();

// Runs body, converting C++ exceptions into JS TunekitErrors.
Napi::Value guarded(const Napi::CallbackInfo& info, NativeFn body);

}  // namespace tk::napi

// TK_EXPORT(name) { ...body using `info`... } defines and registers a native function.
#define TK_EXPORT(name)                                                             \
  static Napi::Value tk_fn_##name(const Napi::CallbackInfo& info);                  \
  static ::tk::napi::Export tk_export_##name(nullptr, #name, tk_fn_##name);         \
  static Napi::Value tk_fn_##name(const Napi::CallbackInfo& info)

// TK_CPU_OP(name) { ...body using `info` (one options object)... }: native.cpu.name, a kernel on
// host memory; TK_CUDA_OP(name): native.cuda.name, the same op on a CUDA device.
#define TK_CPU_OP(name)                                                             \
  static Napi::Value tk_cpu_##name(const Napi::CallbackInfo& info);                 \
  static ::tk::napi::Export tk_cpu_export_##name("cpu", #name, tk_cpu_##name);      \
  static Napi::Value tk_cpu_##name(const Napi::CallbackInfo& info)
#define TK_CUDA_OP(name)                                                            \
  static Napi::Value tk_cuda_##name(const Napi::CallbackInfo& info);                \
  static ::tk::napi::Export tk_cuda_export_##name("cuda", #name, tk_cuda_##name);   \
  static Napi::Value tk_cuda_##name(const Napi::CallbackInfo& info)
