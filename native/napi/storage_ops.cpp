// Storage handles and data movement exposed to lib/native.ts.
#include <chrono>
#include <cstring>
#include <thread>

#include "core/cpu_features.h"
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

void finalize_handle(Napi::Env env, Handle* h) {
  if (h->storage) {
    report_external(env, -static_cast<int64_t>(h->storage->bytes));
    h->storage->release();
  }
  delete h;
}

Napi::Value wrap_storage(Napi::Env env, Storage* s) {
  auto* h = new Handle{s};
  report_external(env, static_cast<int64_t>(s->bytes));
  return Napi::External<Handle>::New(env, h, finalize_handle);
}

}  // namespace

// setErrorClass(TunekitError): native errors are constructed as new TunekitError(code, message).
TK_EXPORT(setErrorClass) {
  if (info.Length() < 1 || !info[0].IsFunction()) fail(ErrorCode::Value, "setErrorClass: expected a constructor");
  env_state(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// alloc(bytes, zero) -> handle
TK_EXPORT(alloc) {
  int64_t bytes = int_arg(info, 0, "alloc bytes");
  TK_CHECK(bytes >= 0, Value, "alloc: expected a byte count >= 0 but received ", bytes);
  bool zero = info.Length() > 1 && info[1].ToBoolean().Value();
  return wrap_storage(info.Env(), Storage::allocate(static_cast<size_t>(bytes), zero));
}

// dispose(handle): drops the handle's reference now; a live ArrayBuffer view keeps memory alive.
TK_EXPORT(dispose) {
  if (info.Length() < 1 || !info[0].IsExternal()) fail(ErrorCode::Value, "dispose: expected a storage handle");
  Handle* h = info[0].As<Napi::External<Handle>>().Data();
  if (h->storage) {
    report_external(info.Env(), -static_cast<int64_t>(h->storage->bytes));
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
  s->retain();
  return Napi::ArrayBuffer::New(
      info.Env(), s->data, s->bytes, [](Napi::Env, void*, Storage* st) { st->release(); }, s);
}

// write(handle, byteOffset, typedArrayOrBuffer): copies bytes in.
TK_EXPORT(write) {
  if (info.Length() < 3 || !(info[2].IsTypedArray() || info[2].IsArrayBuffer() || info[2].IsDataView()))
    fail(ErrorCode::Value, "write: expected a typed array or ArrayBuffer as the source");
  const uint8_t* src;
  size_t n;
  if (info[2].IsArrayBuffer()) {
    auto ab = info[2].As<Napi::ArrayBuffer>();
    src = static_cast<const uint8_t*>(ab.Data());
    n = ab.ByteLength();
  } else {
    auto ta = info[2].As<Napi::TypedArray>();
    src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    n = ta.ByteLength();
  }
  uint8_t* dst = tensor_arg<uint8_t>(info, 0, static_cast<int64_t>(n), "write destination");
  std::memcpy(dst, src, n);
  return info.Env().Undefined();
}

// copyBytes(src, srcOff, dst, dstOff, nbytes)
TK_EXPORT(copyBytes) {
  int64_t n = int_arg(info, 4, "copyBytes count");
  const uint8_t* s = tensor_arg<uint8_t>(info, 0, n, "copyBytes source");
  uint8_t* d = tensor_arg<uint8_t>(info, 2, n, "copyBytes destination");
  std::memmove(d, s, static_cast<size_t>(n));
  return info.Env().Undefined();
}

// fill(dst, off, dtype, n, value)
TK_EXPORT(fill) {
  DType d = dtype_arg(info, 2, "fill dtype");
  int64_t n = int_arg(info, 3, "fill count");
  void* p = tensor_arg<uint8_t>(info, 0, n * static_cast<int64_t>(dtype_size(d)), "fill destination");
  cpu::fill(p, d, n, num_arg(info, 4, "fill value"));
  return info.Env().Undefined();
}

// cast(src, off, srcDtype, dst, off, dstDtype, n)
TK_EXPORT(cast) {
  DType sd = dtype_arg(info, 2, "cast source dtype"), dd = dtype_arg(info, 5, "cast target dtype");
  int64_t n = int_arg(info, 6, "cast count");
  const void* s = tensor_arg<uint8_t>(info, 0, n * static_cast<int64_t>(dtype_size(sd)), "cast source");
  void* d = tensor_arg<uint8_t>(info, 3, n * static_cast<int64_t>(dtype_size(dd)), "cast destination");
  cpu::cast(s, sd, d, dd, n);
  return info.Env().Undefined();
}

// copyStrided(src, off, dst, off, elemSize, shape[], strides[]); src extent checked from strides.
TK_EXPORT(copyStrided) {
  int64_t es = int_arg(info, 4, "copyStrided element size");
  auto shape = ints_arg(info, 5, "copyStrided shape");
  auto strides = ints_arg(info, 6, "copyStrided strides");
  TK_CHECK(shape.size() == strides.size(), Shape, "copyStrided: shape and strides differ in length");
  int64_t total = 1, max_index = 0;
  for (size_t k = 0; k < shape.size(); ++k) {
    TK_CHECK(shape[k] >= 0 && strides[k] >= 0, Value, "copyStrided: negative shape or stride");
    total *= shape[k];
    if (shape[k] > 0) max_index += (shape[k] - 1) * strides[k];
  }
  const void* s = tensor_arg<uint8_t>(info, 0, total == 0 ? 0 : (max_index + 1) * es, "copyStrided source");
  void* d = tensor_arg<uint8_t>(info, 2, total * es, "copyStrided destination");
  cpu::copy_strided(s, d, es, shape, strides);
  return info.Env().Undefined();
}

// randomNormal(dst, off, n, seed, mean, std) / randomUniform(dst, off, n, seed, low, high), f32
TK_EXPORT(randomNormal) {
  int64_t n = int_arg(info, 2, "randn count");
  float* d = tensor_arg<float>(info, 0, n, "randn destination");
  cpu::random_normal_f32(d, n, static_cast<uint64_t>(int_arg(info, 3, "seed")), static_cast<float>(num_arg(info, 4, "mean")),
                         static_cast<float>(num_arg(info, 5, "std")));
  return info.Env().Undefined();
}

TK_EXPORT(randomUniform) {
  int64_t n = int_arg(info, 2, "rand count");
  float* d = tensor_arg<float>(info, 0, n, "rand destination");
  cpu::random_uniform_f32(d, n, static_cast<uint64_t>(int_arg(info, 3, "seed")), static_cast<float>(num_arg(info, 4, "low")),
                          static_cast<float>(num_arg(info, 5, "high")));
  return info.Env().Undefined();
}

// arange(dst, off, dtype, n, start, step)
TK_EXPORT(arange) {
  DType d = dtype_arg(info, 2, "arange dtype");
  int64_t n = int_arg(info, 3, "arange count");
  void* p = tensor_arg<uint8_t>(info, 0, n * static_cast<int64_t>(dtype_size(d)), "arange destination");
  cpu::arange(p, d, n, num_arg(info, 4, "start"), num_arg(info, 5, "step"));
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

// copyRows(src, off, dst, off, rows, rowBytes, srcStrideBytes, dstStrideBytes): 2-D block copy
// (concatenation and slicing along an inner axis).
TK_EXPORT(copyRows) {
  int64_t rows = int_arg(info, 4, "copyRows rows"), rb = int_arg(info, 5, "copyRows rowBytes");
  int64_t ss = int_arg(info, 6, "copyRows srcStride"), ds = int_arg(info, 7, "copyRows dstStride");
  TK_CHECK(rows >= 0 && rb >= 0 && ss >= 0 && ds >= 0, Value, "copyRows: negative size");
  int64_t sext = rows == 0 ? 0 : (rows - 1) * ss + rb, dext = rows == 0 ? 0 : (rows - 1) * ds + rb;
  const uint8_t* s = tensor_arg<uint8_t>(info, 0, sext, "copyRows source");
  uint8_t* d = tensor_arg<uint8_t>(info, 2, dext, "copyRows destination");
  for (int64_t r = 0; r < rows; ++r) std::memcpy(d + r * ds, s + r * ss, static_cast<size_t>(rb));
  return info.Env().Undefined();
}

// read(handle, byteOffset, dst typed array): copies dst.byteLength bytes out of the storage into
// JS-owned memory (no external ArrayBuffer is created, so nothing waits for the GC).
TK_EXPORT(read) {
  if (info.Length() < 3 || !info[2].IsTypedArray()) fail(ErrorCode::Value, "read: expected a typed array as the destination");
  auto ta = info[2].As<Napi::TypedArray>();
  uint8_t* dst = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const uint8_t* src = tensor_arg<uint8_t>(info, 0, static_cast<int64_t>(ta.ByteLength()), "read source");
  std::memcpy(dst, src, ta.ByteLength());
  return info.Env().Undefined();
}
