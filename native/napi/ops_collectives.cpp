// Collectives for data-parallel training (native/core/collectives.h): MPI loaded at run time,
// one communication thread. lib/train/distributed/process_group.ts is the only caller.
#include "core/collectives.h"
#include "napi_util.h"

using namespace tk;
using namespace tk::napi;

namespace {

Napi::Object library_object(Napi::Env env, const dist::LibraryInfo& l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, l.available));
  o.Set("implementation", Napi::String::New(env, l.implementation));
  o.Set("library", Napi::String::New(env, l.library));
  o.Set("version", Napi::String::New(env, l.version));
  o.Set("reason", Napi::String::New(env, l.reason));
  return o;
}

// The byte offset after a storage handle, checked to be a non-negative integer.
size_t offset_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  const int64_t off = int_arg(info, i, what);
  TK_CHECK(off >= 0, Value, what, ": expected a byte offset >= 0 but received ", off);
  return static_cast<size_t>(off);
}

}  // namespace

// collectivesProbe() -> { available, implementation, library, version, reason }: loads the MPI
// library if it can (MPI is not initialised).
TK_EXPORT(collectivesProbe) { return library_object(info.Env(), dist::probe()); }

// collectivesInit() -> { rank, size, threadLevel, implementation, version }: MPI_Init on the
// communication thread (once per process). ERR_BACKEND when there is no MPI or it fails.
TK_EXPORT(collectivesInit) {
  const dist::WorldInfo w = dist::init();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("rank", Napi::Number::New(env, w.rank));
  o.Set("size", Napi::Number::New(env, w.size));
  o.Set("threadLevel", Napi::Number::New(env, w.thread_level));
  o.Set("implementation", Napi::String::New(env, w.implementation));
  o.Set("version", Napi::String::New(env, w.version));
  return o;
}

// collectivesAllreduce(h, off, count, elem, op) -> id. elem 0 f32 | 1 f64; op 0 sum | 1 max | 2 min.
// In place: every rank's `count` elements become the reduction over ranks.
TK_EXPORT(collectivesAllreduce) {
  Storage* s = storage_arg(info, 0, "collectivesAllreduce buffer");
  const size_t off = offset_arg(info, 1, "collectivesAllreduce offset");
  const int64_t count = count_arg(info, 2, "collectivesAllreduce count");
  const int64_t elem = int_arg(info, 3, "collectivesAllreduce elem");
  const int64_t op = int_arg(info, 4, "collectivesAllreduce op");
  TK_CHECK(elem == 0 || elem == 1, Dtype, "collectivesAllreduce: expected elem 0 (f32) or 1 (f64) but received ", elem);
  TK_CHECK(op >= 0 && op <= 2, Value, "collectivesAllreduce: expected op 0 (sum), 1 (max) or 2 (min) but received ", op);
  const uint64_t id = dist::allreduce(s, off, count, static_cast<dist::Elem>(elem), static_cast<dist::ReduceOp>(op));
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

// collectivesBroadcast(h, off, bytes, root) -> id: rank `root`'s bytes are copied to every rank.
TK_EXPORT(collectivesBroadcast) {
  Storage* s = storage_arg(info, 0, "collectivesBroadcast buffer");
  const size_t off = offset_arg(info, 1, "collectivesBroadcast offset");
  const int64_t bytes = count_arg(info, 2, "collectivesBroadcast bytes");
  const int64_t root = int_arg(info, 3, "collectivesBroadcast root");
  TK_CHECK(root >= 0 && root < (int64_t{1} << 30), Value, "collectivesBroadcast: bad root rank ", root);
  const uint64_t id = dist::broadcast(s, off, bytes, static_cast<int>(root));
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

// collectivesBarrier() -> id
TK_EXPORT(collectivesBarrier) { return Napi::Number::New(info.Env(), static_cast<double>(dist::barrier())); }

// collectivesWait(id, timeoutMs) -> true (done) | false (still in flight after timeoutMs).
// A failed operation throws ERR_BACKEND with MPI's message.
TK_EXPORT(collectivesWait) {
  const int64_t id = int_arg(info, 0, "collectivesWait id");
  const double timeout_ms = num_arg(info, 1, "collectivesWait timeoutMs");
  TK_CHECK(id >= 1, Value, "collectivesWait: expected an operation id >= 1 but received ", id);
  TK_CHECK(timeout_ms >= 0, Value, "collectivesWait: expected timeoutMs >= 0 but received ", timeout_ms);
  return Napi::Boolean::New(info.Env(), dist::wait(static_cast<uint64_t>(id), timeout_ms / 1000.0));
}

// collectivesAbort(code): MPI_Abort (every rank of the job ends). Does not return.
TK_EXPORT(collectivesAbort) {
  const int64_t code = int_arg(info, 0, "collectivesAbort code");
  dist::abort(static_cast<int>(code & 0xff));
}

// collectivesFinalize(): MPI_Finalize (every rank must call it); no-op when not initialised.
TK_EXPORT(collectivesFinalize) {
  dist::finalize();
  return info.Env().Undefined();
}

// collectivesStats() -> { ops, bytes, busySeconds } of this process so far.
TK_EXPORT(collectivesStats) {
  const dist::Stats s = dist::stats();
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("ops", Napi::Number::New(env, static_cast<double>(s.ops)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("busySeconds", Napi::Number::New(env, s.busy_seconds));
  return o;
}
