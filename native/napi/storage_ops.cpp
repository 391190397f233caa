// Storage handles and data movement exposed to lib/native.ts.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/cpu_features.h"
#include "device_storage.h"
#include "op_options.h"
#include "core/thread_pool.h"
#include "cpu/copy.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

// Native memory held by JS handles is reported to V8 so that handles nobody disposed are
// collected when it grows (GC pressure from the memory, not only from the small JS objects).
// V8 starts a garbage collection whenever the reported amount has grown by a fixed margin since
// the last one, so reporting every allocation and release made each training step (hundreds of
// MiB allocated and freed) start several full GCs: in the main job's step about 30 ms of CPU in
// `alloc`. The reported figure follows the high-water mark of live bytes instead: it rises when
// live memory reaches a new peak (a leak keeps raising it, so the GC still comes for leaked
// handles) and falls only when live memory is below half of it and it last rose long ago (a
// model freed, not the end of a step whose next step follows).
// V8 (Node 20) starts incremental marking for any rise of a few MiB above its limit: measured
// here, alloc + dispose of 4-8 MiB blocks cost 0.05-0.14 ms of CPU each in GC when reported one
// by one, 0.001 ms without.
// A training step of GPT-2 small takes seconds; lowering after 1 s re-raised (and re-started a GC)
// every step, so the figure stays up for half a minute after live memory last peaked.
constexpr double kLowerAfterSeconds = 30.0;

void report_external(Napi::Env env, int64_t delta) {
  EnvState& st = env_state(env);
  st.external_live += delta;
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t adjust = 0;
  if (st.external_live > st.external_reported) {
    adjust = st.external_live - st.external_reported;
    st.external_raised_at = now;
  } else if (st.external_live < st.external_reported / 2 && now - st.external_raised_at > kLowerAfterSeconds) {
    adjust = st.external_live - st.external_reported;
  }
  if (adjust != 0) {
    st.external_reported += adjust;
    Napi::MemoryManagement::AdjustExternalMemory(env, adjust);
  }
}

// Host bytes of a storage, as reported to V8 (device memory is no host pressure: it is freed by
// dispose()/tidy(), and a device storage the GC finalizes is counted as a leak, see below).
int64_t host_bytes(const Storage* s) { return s->device < 0 ? static_cast<int64_t>(s->bytes) : 0; }

std::atomic<int64_t> g_device_storages_finalized{0};

void finalize_handle(Napi::Env env, Handle* h) {
  if (h->storage) {
    if (h->storage->device >= 0) g_device_storages_finalized.fetch_add(1);
    report_external(env, -host_bytes(h->storage));
    h->storage->release();
  }
  delete h;
}

// `count` bytes of a storage field at its offset, on whichever device it lives (bounds checked).
void* any_device_bytes(const Opts& o, const char* key, int64_t count) {
  Storage* s = o.storage(key);
  const int64_t off = o.offset(key);
  TK_CHECK(off >= 0, Value, o.op(), ": options.", key, "Off: bad byte offset ", off);
  const uint64_t need = static_cast<uint64_t>(off) + static_cast<uint64_t>(count);
  TK_CHECK(need <= s->bytes, Index, o.op(), ": ", key, " needs bytes [", off, ", ", need, ") but its storage holds ", s->bytes);
  return static_cast<uint8_t*>(s->data) + off;
}

Napi::Value wrap_storage(Napi::Env env, Storage* s) {
  auto* h = new Handle{s};
  report_external(env, host_bytes(s));
  return Napi::External<Handle>::New(env, h, finalize_handle);
}

}  // namespace

// setErrorClass(TunekitError): native errors are constructed as new TunekitError(code, message).
TK_EXPORT(setErrorClass) {
  if (info.Length() < 1 || !info[0].IsFunction()) fail(ErrorCode::Value, "setErrorClass: expected a constructor");
  env_state(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// alloc({ bytes, zero, device }) -> handle. device -1 (or absent): host memory; N >= 0: CUDA device N.
// kernelSchema(names) -> id: registers the field names of options passed by position
// (kernel(id, v0, v1, ...) reads field names[i] from v_i; see EnvState::schemas). The same list
// gives the same id.
TK_EXPORT(kernelSchema) {
  if (info.Length() < 1 || !info[0].IsArray()) fail(ErrorCode::Value, "kernelSchema: expected an array of field names");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<std::string> names;
  std::string joined;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsString()) fail(ErrorCode::Value, "kernelSchema: field ", i, " is not a string");
    names.push_back(v.As<Napi::String>().Utf8Value());
    joined += (i ? "," : "") + names.back();
  }
  EnvState& st = env_state(info.Env());
  auto it = st.schema_ids.find(joined);
  if (it != st.schema_ids.end()) return Napi::Number::New(info.Env(), it->second);
  TK_CHECK(st.schemas.size() < 100000, Value, "kernelSchema: more than 100000 option layouts");
  st.schemas.push_back(EnvState::Schema{std::move(names), {}, {}});
  const int id = static_cast<int>(st.schemas.size() - 1);
  st.schema_ids.emplace(joined, id);
  return Napi::Number::New(info.Env(), id);
}

TK_EXPORT(alloc) {
  Opts o(info, "alloc");
  const int64_t bytes = o.count("bytes");
  const bool zero = o.flag_or("zero", false);
  const int64_t device = o.integer_or("device", -1);
  if (device >= 0) return wrap_storage(info.Env(), allocate_device_storage(static_cast<size_t>(bytes), zero, static_cast<int>(device)));
  return wrap_storage(info.Env(), Storage::allocate(static_cast<size_t>(bytes), zero));
}

// dispose(handle): drops the handle's reference now; a live ArrayBuffer view keeps memory alive.
TK_EXPORT(dispose) {
  if (info.Length() < 1 || !info[0].IsExternal()) fail(ErrorCode::Value, "dispose: expected a storage handle");
  Handle* h = info[0].As<Napi::External<Handle>>().Data();
  if (h->storage) {
    report_external(info.Env(), -host_bytes(h->storage));
    h->storage->release();
    h->storage = nullptr;
  }
  return info.Env().Undefined();
}

TK_EXPORT(isDisposed) {
  if (info.Length() < 1 || !info[0].IsExternal()) fail(ErrorCode::Value, "isDisposed: expected a storage handle");
  return Napi::Boolean::New(info.Env(), info[0].As<Napi::External<Handle>>().Data()->storage == nullptr);
}

TK_EXPORT(byteLength) {
  return Napi::Number::New(info.Env(), static_cast<double>(storage_arg(info, 0, "byteLength")->bytes));
}

// view(handle) -> ArrayBuffer over the storage, zero-copy. The buffer holds its own reference.
TK_EXPORT(view) {
  Storage* s = storage_arg(info, 0, "view");
  TK_CHECK(s->device < 0, Device, "view: the storage is on cuda:", s->device, " (device memory has no host view: copy it with toTypedArray())");
  s->retain();
  return Napi::ArrayBuffer::New(
      info.Env(), s->data, s->bytes, [](Napi::Env, void*, Storage* st) { st->release(); }, s);
}

// write({ dst, dstOff, from }): copies the bytes of `from` (a typed array, DataView or
// ArrayBuffer) into the storage, host or device.
TK_EXPORT(write) {
  Opts o(info, "write");
  Napi::Value from = info[0].As<Napi::Object>().Get("from");
  const uint8_t* src;
  size_t n;
  if (from.IsArrayBuffer()) {
    auto ab = from.As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(ab.Data());
    n = ab.ByteLength();
  } else if (from.IsTypedArray() || from.IsDataView()) {
    auto ta = from.As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    n = ta.ByteLength();
  } else {
    fail(ErrorCode::Value, "write: options.from: expected a typed array or ArrayBuffer but received ", describe_value(from));
  }
  Storage* s = o.storage("dst");
  uint8_t* dst = static_cast<uint8_t*>(any_device_bytes(o, "dst", static_cast<int64_t>(n)));
  copy_between(s->device, dst, -1, src, n);
  return info.Env().Undefined();
}

// copyBytes({ src, dst, bytes }): a byte copy within one device (memmove on the host)
TK_CPU_OP(copyBytes) {
  Opts o(info, "copyBytes");
  const int64_t n = o.count("bytes");
  const uint8_t* s = o.tensor<uint8_t>("src", n);
  uint8_t* d = o.tensor<uint8_t>("dst", n);
  std::memmove(d, s, static_cast<size_t>(n));
  return info.Env().Undefined();
}

// transfer({ src, dst, bytes }): a byte copy between any two storages (host or device): what
// Tensor.to(device) runs. Waits for the copy.
TK_EXPORT(transfer) {
  Opts o(info, "transfer");
  const int64_t n = o.count("bytes");
  Storage* ss = o.storage("src");
  Storage* ds = o.storage("dst");
  const void* s = any_device_bytes(o, "src", n);
  void* d = any_device_bytes(o, "dst", n);
  copy_between(ds->device, d, ss->device, s, static_cast<size_t>(n));
  return info.Env().Undefined();
}

// fill({ dst, dtype, n, value }): every element = value (converted to dtype)
TK_CPU_OP(fill) {
  Opts o(info, "fill");
  const DType d = o.dtype("dtype");
  const int64_t n = o.count("n");
  void* p = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(d)), "fill"));
  cpu::fill(p, d, n, o.number("value"));
  return info.Env().Undefined();
}

// cast({ src, srcDtype, dst, dstDtype, n })
TK_CPU_OP(cast) {
  Opts o(info, "cast");
  const DType sd = o.dtype("srcDtype"), dd = o.dtype("dstDtype");
  const int64_t n = o.count("n");
  const void* s = o.tensor<uint8_t>("src", checked_elems(n, static_cast<int64_t>(dtype_size(sd)), "cast"));
  void* d = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(dd)), "cast"));
  cpu::cast(s, sd, d, dd, n);
  return info.Env().Undefined();
}

// copyStrided({ src, dst, elemSize, shape, strides }): dst (contiguous) = the view of src with
// these element strides; src's extent is checked from the strides.
TK_CPU_OP(copyStrided) {
  Opts o(info, "copyStrided");
  const int64_t es = o.count("elemSize");
  const std::vector<int64_t> shape = o.ints("shape"), strides = o.ints("strides");
  const int64_t total = strided_extent(shape, strides, "copyStrided").first;
  const int64_t max_index = strided_extent(shape, strides, "copyStrided").second;
  const void* s = o.tensor<uint8_t>("src", total == 0 ? 0 : checked_elems(max_index + 1, es, "copyStrided"));
  void* d = o.tensor<uint8_t>("dst", checked_elems(total, es, "copyStrided"));
  cpu::copy_strided(s, d, es, shape, strides);
  return info.Env().Undefined();
}

// randomNormal({ dst, n, seed, mean, std }) / randomUniform({ dst, n, seed, low, high }), f32;
// counter-based: element i depends only on (seed, i)
TK_CPU_OP(randomNormal) {
  Opts o(info, "randomNormal");
  const int64_t n = o.count("n");
  float* d = o.tensor<float>("dst", n);
  cpu::random_normal_f32(d, n, static_cast<uint64_t>(o.count("seed")), static_cast<float>(o.number("mean")),
                         static_cast<float>(o.number("std")));
  return info.Env().Undefined();
}

TK_CPU_OP(randomUniform) {
  Opts o(info, "randomUniform");
  const int64_t n = o.count("n");
  float* d = o.tensor<float>("dst", n);
  cpu::random_uniform_f32(d, n, static_cast<uint64_t>(o.count("seed")), static_cast<float>(o.number("low")),
                          static_cast<float>(o.number("high")));
  return info.Env().Undefined();
}

// arange({ dst, dtype, n, start, step })
TK_CPU_OP(arange) {
  Opts o(info, "arange");
  const DType d = o.dtype("dtype");
  const int64_t n = o.count("n");
  void* p = o.tensor<uint8_t>("dst", checked_elems(n, static_cast<int64_t>(dtype_size(d)), "arange"));
  cpu::arange(p, d, n, o.number("start"), o.number("step"));
  return info.Env().Undefined();
}

// memoryStats() -> { liveBytes, peakBytes }
TK_EXPORT(memoryStats) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("liveBytes", Napi::Number::New(info.Env(), static_cast<double>(Storage::live_bytes())));
  o.Set("peakBytes", Napi::Number::New(info.Env(), static_cast<double>(Storage::peak_bytes())));
  return o;
}

TK_EXPORT(resetPeakMemory) {
  Storage::reset_peak();
  return info.Env().Undefined();
}

TK_EXPORT(setNumThreads) {
  int64_t n = int_arg(info, 0, "setNumThreads");
  TK_CHECK(n >= 1 && n <= 1024, Value, "setNumThreads: expected 1..1024 but received ", n);
  set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

TK_EXPORT(getNumThreads) { return Napi::Number::New(info.Env(), num_threads()); }

// backendInfo() -> { cpu: {avx2, avx512, avx512bf16, threads}, cuda: {compiled, devices, reason} }
TK_EXPORT(backendInfo) {
  Napi::Env env = info.Env();
  const auto& f = cpu_features();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("avx2", f.avx2_fma);
  cpu.Set("avx512", f.avx512f);
  cpu.Set("avx512bf16", f.avx512_bf16);
  cpu.Set("threads", num_threads());
  cpu.Set("hardwareThreads", static_cast<double>(std::thread::hardware_concurrency()));
  Napi::Object o = Napi::Object::New(env);
  o.Set("cpu", cpu);
  return o;
}

// copyRows({ src, dst, rows, rowBytes, srcStride, dstStride }): `rows` rows of rowBytes bytes,
// strides in bytes (concatenation, slicing along an inner axis, broadcasting a row)
TK_CPU_OP(copyRows) {
  Opts o(info, "copyRows");
  const int64_t rows = o.count("rows"), rb = o.count("rowBytes");
  const int64_t ss = o.count("srcStride"), ds = o.count("dstStride");
  const int64_t sext = rows == 0 ? 0 : (rows - 1) * ss + rb, dext = rows == 0 ? 0 : (rows - 1) * ds + rb;
  const uint8_t* s = o.tensor<uint8_t>("src", sext);
  uint8_t* d = o.tensor<uint8_t>("dst", dext);
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * ds, s + r * ss, static_cast<size_t>(rb));
  return info.Env().Undefined();
}

// read({ src, srcOff, into }): copies into.byteLength bytes out of the storage (host or device)
// into JS-owned memory (no external ArrayBuffer is created, so nothing waits for the GC).
TK_EXPORT(read) {
  Opts o(info, "read");
  Napi::Value into = info[0].As<Napi::Object>().Get("into");
  if (!into.IsTypedArray()) fail(ErrorCode::Value, "read: options.into: expected a typed array but received ", describe_value(into));
  auto ta = into.As<Napi::TypedArray>();
  uint8_t* dst = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  Storage* ss = o.storage("src");
  const void* src = any_device_bytes(o, "src", static_cast<int64_t>(ta.ByteLength()));
  copy_between(-1, dst, ss->device, src, ta.ByteLength());
  return info.Env().Undefined();
}

// storageDevice(handle) -> -1 (host) or the CUDA ordinal of the storage
TK_EXPORT(storageDevice) { return Napi::Number::New(info.Env(), storage_arg(info, 0, "storageDevice")->device); }

// deviceStoragesFinalized() -> device storages freed by the garbage collector instead of
// dispose()/tidy() since the process started (each one is device memory that was held until a GC)
TK_EXPORT(deviceStoragesFinalized) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_device_storages_finalized.load()));
}
