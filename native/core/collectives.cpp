// MPI bound at run time, and the communication thread that makes every MPI call (collectives.h).
#include "core/collectives.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/status.h"

namespace tk::dist {

namespace {

constexpr int kThreadFunneled = 1;  // MPI_THREAD_FUNNELED in both ABIs
constexpr int kMaxVersion = 8192;   // above MPI_MAX_LIBRARY_VERSION_STRING of either ABI
// MPI counts are int: larger operations are split into chunks of this many elements / bytes.
constexpr int64_t kChunkElems = int64_t{1} << 28;
constexpr int64_t kChunkBytes = int64_t{1} << 30;
// how long the communication thread keeps testing without a pause after the last start or
// completion of an operation (seconds)
constexpr double kSpinSeconds = 0.02;
// operations of at least this many bytes use MPI's blocking calls (see run_blocking)
constexpr int64_t kBlockingBytes = int64_t{256} << 10;

// A request of either ABI (a pointer for Open MPI, an int for MPICH), stored in 64 bits.
using RawRequest = uint64_t;

// The MPI entry points tunekit calls, over one ABI.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string implementation() const = 0;
  virtual DeclaredAbi declared() const = 0;
  virtual int init_thread(int* provided) = 0;
  virtual int rank_size(int* rank, int* size) = 0;
  virtual int iallreduce(void* buf, int count, Elem elem, ReduceOp op, RawRequest* req) = 0;
  virtual int ibcast(void* buf, int bytes, int root, RawRequest* req) = 0;
  virtual int ibarrier(RawRequest* req) = 0;
  virtual int allreduce(void* buf, int count, Elem elem, ReduceOp op) = 0;
  virtual int bcast(void* buf, int bytes, int root) = 0;
  virtual int test(RawRequest* req, int* flag) = 0;
  virtual void abort(int code) = 0;
  virtual int finalize() = 0;
  virtual std::string error_string(int code) = 0;
};

// A function of the library.
template <typename T>
T sym(void* lib, const char* name, std::string& missing) {
  void* p = dlsym(lib, name);
  if (!p) missing += std::string(missing.empty() ? "" : ", ") + name;
  return reinterpret_cast<T>(p);
}

// A predefined object of Open MPI, searched in the global scope first: where the program itself
// links libmpi (the native test runner), its executable holds copies of these objects (copy
// relocations) and the library uses the copies, not the definitions in its own file.
void* object_sym(void* lib, const char* name, std::string& missing) {
  void* p = dlsym(RTLD_DEFAULT, name);
  if (!p) p = dlsym(lib, name);
  if (!p) missing += std::string(missing.empty() ? "" : ", ") + name;
  return p;
}

// H: the handle type of the ABI (MPI_Comm, MPI_Datatype, MPI_Op, MPI_Errhandler), R: MPI_Request.
template <typename H, typename R>
class MpiEngine final : public Engine {
 public:
  struct Handles {
    H comm_world, f32, f64, byte, sum, max, min, errors_return;
    void* in_place;
  };

  MpiEngine(void* lib, std::string name, const Handles& h, std::string& missing) : name_(std::move(name)), h_(h) {
    init_thread_ = sym<decltype(init_thread_)>(lib, "MPI_Init_thread", missing);
    comm_rank_ = sym<decltype(comm_rank_)>(lib, "MPI_Comm_rank", missing);
    comm_size_ = sym<decltype(comm_size_)>(lib, "MPI_Comm_size", missing);
    set_errhandler_ = sym<decltype(set_errhandler_)>(lib, "MPI_Comm_set_errhandler", missing);
    iallreduce_ = sym<decltype(iallreduce_)>(lib, "MPI_Iallreduce", missing);
    allreduce_ = sym<decltype(allreduce_)>(lib, "MPI_Allreduce", missing);
    bcast_ = sym<decltype(bcast_)>(lib, "MPI_Bcast", missing);
    ibcast_ = sym<decltype(ibcast_)>(lib, "MPI_Ibcast", missing);
    ibarrier_ = sym<decltype(ibarrier_)>(lib, "MPI_Ibarrier", missing);
    test_ = sym<decltype(test_)>(lib, "MPI_Test", missing);
    abort_ = sym<decltype(abort_)>(lib, "MPI_Abort", missing);
    finalize_ = sym<decltype(finalize_)>(lib, "MPI_Finalize", missing);
    error_string_ = sym<decltype(error_string_)>(lib, "MPI_Error_string", missing);
  }

  std::string implementation() const override { return name_; }
  DeclaredAbi declared() const override {
    DeclaredAbi d;
    d.implementation = name_;
    d.comm_world = as_int(h_.comm_world);
    d.f32 = as_int(h_.f32);
    d.f64 = as_int(h_.f64);
    d.byte = as_int(h_.byte);
    d.sum = as_int(h_.sum);
    d.max = as_int(h_.max);
    d.min = as_int(h_.min);
    d.errors_return = as_int(h_.errors_return);
    d.in_place = reinterpret_cast<uintptr_t>(h_.in_place);
    return d;
  }

  int init_thread(int* provided) override {
    int rc = init_thread_(nullptr, nullptr, kThreadFunneled, provided);
    // errors come back as return codes (the default handler aborts the job on the first one)
    if (rc == 0) rc = set_errhandler_(h_.comm_world, h_.errors_return);
    return rc;
  }
  int rank_size(int* rank, int* size) override {
    int rc = comm_rank_(h_.comm_world, rank);
    return rc ? rc : comm_size_(h_.comm_world, size);
  }
  int iallreduce(void* buf, int count, Elem elem, ReduceOp op, RawRequest* req) override {
    R r{};
    const H type = elem == Elem::F32 ? h_.f32 : elem == Elem::F64 ? h_.f64 : h_.byte;
    const H o = op == ReduceOp::Sum ? h_.sum : op == ReduceOp::Max ? h_.max : h_.min;
    int rc = iallreduce_(h_.in_place, buf, count, type, o, h_.comm_world, &r);
    store(r, req);
    return rc;
  }
  int allreduce(void* buf, int count, Elem elem, ReduceOp op) override {
    const H type = elem == Elem::F32 ? h_.f32 : elem == Elem::F64 ? h_.f64 : h_.byte;
    const H o = op == ReduceOp::Sum ? h_.sum : op == ReduceOp::Max ? h_.max : h_.min;
    return allreduce_(h_.in_place, buf, count, type, o, h_.comm_world);
  }
  int bcast(void* buf, int bytes, int root) override { return bcast_(buf, bytes, h_.byte, root, h_.comm_world); }
  int ibcast(void* buf, int bytes, int root, RawRequest* req) override {
    R r{};
    int rc = ibcast_(buf, bytes, h_.byte, root, h_.comm_world, &r);
    store(r, req);
    return rc;
  }
  int ibarrier(RawRequest* req) override {
    R r{};
    int rc = ibarrier_(h_.comm_world, &r);
    store(r, req);
    return rc;
  }
  int test(RawRequest* req, int* flag) override {
    R r = load(*req);
    // a status buffer larger than either ABI's MPI_Status (MPI_STATUS_IGNORE differs between them)
    alignas(8) unsigned char status[64];
    int rc = test_(&r, flag, status);
    store(r, req);
    return rc;
  }
  void abort(int code) override { abort_(h_.comm_world, code); }
  int finalize() override { return finalize_(); }
  std::string error_string(int code) override {
    char buf[kMaxVersion];
    int len = 0;
    if (error_string_(code, buf, &len) != 0 || len <= 0) return "MPI error code " + std::to_string(code);
    return std::string(buf, static_cast<size_t>(std::min(len, kMaxVersion - 1)));
  }

 private:
  static uintptr_t as_int(H h) {
    if constexpr (std::is_pointer_v<H>) return reinterpret_cast<uintptr_t>(h);
    else return static_cast<uintptr_t>(static_cast<uint32_t>(h));
  }
  static void store(R r, RawRequest* out) {
    static_assert(sizeof(R) <= sizeof(RawRequest), "request handle wider than 64 bits");
    *out = 0;
    std::memcpy(out, &r, sizeof(R));
  }
  static R load(RawRequest raw) {
    R r;
    std::memcpy(&r, &raw, sizeof(R));
    return r;
  }

  std::string name_;
  Handles h_;
  int (*init_thread_)(int*, char***, int, int*) = nullptr;
  int (*comm_rank_)(H, int*) = nullptr;
  int (*comm_size_)(H, int*) = nullptr;
  int (*set_errhandler_)(H, H) = nullptr;
  int (*iallreduce_)(const void*, void*, int, H, H, H, R*) = nullptr;
  int (*ibcast_)(void*, int, H, int, H, R*) = nullptr;
  int (*allreduce_)(const void*, void*, int, H, H, H) = nullptr;
  int (*bcast_)(void*, int, H, int, H) = nullptr;
  int (*ibarrier_)(H, R*) = nullptr;
  int (*test_)(R*, int*, void*) = nullptr;
  int (*abort_)(H, int) = nullptr;
  int (*finalize_)() = nullptr;
  int (*error_string_)(int, char*, int*) = nullptr;
};

// Open MPI: handles are addresses of the library's predefined objects.
using OmpiEngine = MpiEngine<void*, void*>;
// MPICH ABI (MPICH, Intel MPI, MVAPICH): handles are fixed integers of mpi.h.
using MpichEngine = MpiEngine<int, int>;

struct Loaded {
  LibraryInfo info;
  std::unique_ptr<Engine> engine;
};

std::string library_version(void* lib) {
  auto fn = reinterpret_cast<int (*)(char*, int*)>(dlsym(lib, "MPI_Get_library_version"));
  if (!fn) return "";
  std::vector<char> buf(kMaxVersion, 0);
  int len = 0;
  if (fn(buf.data(), &len) != 0) return "";
  std::string v(buf.data(), static_cast<size_t>(std::max(0, std::min(len, kMaxVersion - 1))));
  const size_t nl = v.find_first_of("\r\n,");
  if (nl != std::string::npos) v.resize(nl);
  // one line, single spaces ("MPICH Version:\t4.0.2" -> "MPICH Version: 4.0.2")
  std::string out;
  for (char c : v) {
    const bool space = c == ' ' || c == '\t';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Binds the library's entry points for its ABI; on failure fills `why` and returns null.
std::unique_ptr<Engine> bind(void* lib, const std::string& version, std::string& why) {
  std::string missing;
  std::unique_ptr<Engine> e;
  if (dlsym(lib, "ompi_mpi_comm_world")) {
    OmpiEngine::Handles h{};
    h.comm_world = object_sym(lib, "ompi_mpi_comm_world", missing);
    h.f32 = object_sym(lib, "ompi_mpi_float", missing);
    h.f64 = object_sym(lib, "ompi_mpi_double", missing);
    h.byte = object_sym(lib, "ompi_mpi_byte", missing);
    h.sum = object_sym(lib, "ompi_mpi_op_sum", missing);
    h.max = object_sym(lib, "ompi_mpi_op_max", missing);
    h.min = object_sym(lib, "ompi_mpi_op_min", missing);
    h.errors_return = object_sym(lib, "ompi_mpi_errors_return", missing);
    h.in_place = reinterpret_cast<void*>(1);
    e = std::make_unique<OmpiEngine>(lib, "Open MPI", h, missing);
  } else if (version.find("MPICH") != std::string::npos || version.find("Intel") != std::string::npos ||
             version.find("MVAPICH") != std::string::npos) {
    MpichEngine::Handles h{};
    h.comm_world = 0x44000000;
    h.f32 = 0x4c00040a;
    h.f64 = 0x4c00080b;
    h.byte = 0x4c00010d;
    h.max = 0x58000001;
    h.min = 0x58000002;
    h.sum = 0x58000003;
    h.errors_return = 0x54000001;
    h.in_place = reinterpret_cast<void*>(static_cast<intptr_t>(-1));
    e = std::make_unique<MpichEngine>(lib, "MPICH", h, missing);
  } else {
    why = "its ABI is neither Open MPI's nor MPICH's (library version: '" + version + "')";
    return nullptr;
  }
  if (!missing.empty()) {
    why = "it lacks " + missing;
    return nullptr;
  }
  return e;
}

Loaded load_library() {
  Loaded out;
  std::vector<std::string> names;
  if (const char* env = std::getenv("TUNEKIT_MPI_LIBRARY"); env && *env) names.push_back(env);
  else names = {"libmpi.so.40", "libmpich.so.12", "libmpi.so.12"};
  std::string tried;
  for (const std::string& name : names) {
    // RTLD_GLOBAL: Open MPI's plugins (mca_*.so, dlopened by libmpi) resolve libmpi's symbols globally
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* err = dlerror();
      tried += "\n  " + name + ": " + (err ? err : "not found");
      continue;
    }
    const std::string version = library_version(lib);
    std::string why;
    std::unique_ptr<Engine> engine = bind(lib, version, why);
    if (!engine) {
      tried += "\n  " + name + ": " + why;
      continue;  // the handle stays open: unloading MPI libraries is not safe
    }
    out.info.available = true;
    out.info.implementation = engine->implementation();
    out.info.library = name;
    out.info.version = version;
    out.engine = std::move(engine);
    return out;
  }
  out.info.reason =
      "no MPI library could be loaded:" + tried +
      "\nInstall Open MPI (Debian/Ubuntu: apt-get install openmpi-bin; Fedora: dnf install openmpi) or MPICH "
      "(apt-get install mpich), or set TUNEKIT_MPI_LIBRARY to the path of libmpi.so.";
  return out;
}

Loaded& loaded() {
  static Loaded* l = new Loaded(load_library());  // never destroyed: MPI outlives static destructors
  return *l;
}

std::mutex g_load_mu;

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

enum class Kind { Allreduce, Broadcast, Barrier };

struct Op {
  uint64_t id = 0;
  Kind kind = Kind::Barrier;
  Storage* storage = nullptr;  // retained while queued or in flight
  uint8_t* data = nullptr;
  int64_t count = 0;  // elements (allreduce) or bytes (broadcast)
  Elem elem = Elem::F32;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
  int64_t payload_bytes = 0;
  int64_t next = 0;  // first element / byte not yet started (chunked operations)
  std::vector<RawRequest> requests;
};

struct Outcome {
  bool ok = true;
  std::string message;
};

// The communication thread and its queues. One per process, never destroyed (a thread stuck in
// MPI when the process exits must not be joined).
class Communicator {
 public:
  WorldInfo start() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!started_) {
      started_ = true;
      std::thread([this] { run(); }).detach();
    }
    cv_done_.wait(lock, [this] { return init_done_; });
    if (!init_error_.empty()) fail(ErrorCode::Backend, init_error_);
    return world_;
  }

  bool ready() {
    std::lock_guard<std::mutex> lock(mu_);
    return init_done_ && init_error_.empty() && !finalized_;
  }

  uint64_t enqueue(Op op) {
    std::lock_guard<std::mutex> lock(mu_);
    TK_CHECK(init_done_ && init_error_.empty(), Value, "collectives: MPI is not initialised (call collectivesInit first)");
    TK_CHECK(!finalize_requested_, Value, "collectives: MPI was finalised; no further operations are possible in this process");
    op.id = ++last_id_;
    if (op.storage) op.storage->retain();
    const uint64_t id = op.id;
    pending_.insert(id);
    queue_.push_back(std::move(op));
    cv_work_.notify_one();
    return id;
  }

  bool wait(uint64_t id, double timeout_seconds) {
    std::unique_lock<std::mutex> lock(mu_);
    TK_CHECK(pending_.count(id), Value, "collectives: operation ", id, id > last_id_ ? " was never started" : " was already waited for");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_seconds > 0 ? timeout_seconds : 0);
    if (!cv_done_.wait_until(lock, deadline, [&] { return done_.count(id) > 0; })) return false;
    auto it = done_.find(id);
    Outcome o = std::move(it->second);
    done_.erase(it);
    pending_.erase(id);
    if (!o.ok) fail(ErrorCode::Backend, o.message);
    return true;
  }

  [[noreturn]] void abort(int code) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!init_done_ || !init_error_.empty() || finalized_) std::_Exit(code);
      abort_code_ = code;
      cv_work_.notify_one();
    }
    // the communication thread calls MPI_Abort, which ends the process; if it never gets there
    // (stuck inside MPI), leave after a while anyway
    std::this_thread::sleep_for(std::chrono::seconds(3));
    std::_Exit(code);
  }

  void finalize() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!init_done_ || !init_error_.empty() || finalized_) return;
    finalize_requested_ = true;
    cv_work_.notify_one();
    cv_done_.wait(lock, [this] { return finalized_; });
    if (!finalize_error_.empty()) fail(ErrorCode::Backend, "MPI_Finalize: ", finalize_error_);
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    Stats s = stats_;
    if (busy_since_ > 0) s.busy_seconds += now_seconds() - busy_since_;
    return s;
  }

 private:
  void run() {
    Engine* e = loaded().engine.get();
    {
      int provided = 0, rank = 0, size = 1;
      int rc = e->init_thread(&provided);
      if (rc == 0) rc = e->rank_size(&rank, &size);
      std::lock_guard<std::mutex> lock(mu_);
      if (rc != 0) init_error_ = "MPI_Init_thread failed: " + e->error_string(rc);
      else if (provided < kThreadFunneled) init_error_ = "MPI provides thread level " + std::to_string(provided) + ", tunekit needs MPI_THREAD_FUNNELED (1)";
      world_ = {rank, size, provided, loaded().info.implementation, loaded().info.version};
      init_done_ = true;
      cv_done_.notify_all();
      if (!init_error_.empty()) return;
    }
    std::vector<Op> in_flight;
    double last_event = 0;
    for (;;) {
      std::deque<Op> fresh;
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (in_flight.empty() && queue_.empty() && abort_code_ < 0 && !finalize_requested_) {
          cv_work_.wait(lock, [this] { return !queue_.empty() || abort_code_ >= 0 || finalize_requested_; });
        }
        if (abort_code_ >= 0) {
          const int code = abort_code_;
          lock.unlock();
          e->abort(code);
          std::_Exit(code);
        }
        if (finalize_requested_ && queue_.empty() && in_flight.empty()) {
          lock.unlock();
          const int rc = e->finalize();
          lock.lock();
          if (rc != 0) finalize_error_ = e->error_string(rc);
          finalized_ = true;
          cv_done_.notify_all();
          return;
        }
        fresh.swap(queue_);
        if (!fresh.empty() && in_flight.empty()) busy_since_ = now_seconds();
      }
      for (Op& op : fresh) {
        start(e, op);
        in_flight.push_back(std::move(op));
      }
      bool progressed = !fresh.empty();
      for (size_t i = 0; i < in_flight.size();) {
        Op& op = in_flight[i];
        std::string error;
        const bool finished = advance(e, op, error);
        if (!finished && error.empty()) {
          ++i;
          continue;
        }
        complete(op, error);
        in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
        progressed = true;
      }
      if (in_flight.empty()) {
        std::lock_guard<std::mutex> lock(mu_);
        if (busy_since_ > 0) stats_.busy_seconds += now_seconds() - busy_since_;
        busy_since_ = 0;
        continue;
      }
      // MPI progresses only while it is called (a large buffer moves in many fragments, each
      // needing a test): test again at once, yielding the core, for kSpinSeconds after the last
      // start or completion, which covers a transfer in progress; past that the others are late
      // (rank 0 evaluating or saving, a slow rank, a dead one): sleep between tests, waking early
      // for new work
      const double now = now_seconds();
      if (progressed) last_event = now;
      const double quiet = now - last_event;
      if (quiet < kSpinSeconds) {
        std::this_thread::yield();
      } else {
        const int us = quiet < 1.0 ? 50 : 1000;
        std::unique_lock<std::mutex> lock(mu_);
        cv_work_.wait_for(lock, std::chrono::microseconds(us), [this] { return !queue_.empty() || abort_code_ >= 0; });
      }
    }
  }

  // Starts the next chunk of op (all of a barrier); the error text is recorded in op.requests' place.
  void start(Engine* e, Op& op) {
    std::string error;
    if (!broken_.empty()) {
      op.next = -1;  // fails in advance()
      return;
    }
    if (op.kind != Kind::Barrier && op.payload_bytes >= kBlockingBytes) {
      run_blocking(e, op, error);
    } else {
      start_chunk(e, op, error);
    }
    if (!error.empty()) {
      broken_ = error;
      op.next = -1;
    }
  }

  // A large operation as MPI's blocking call on this thread: the library's tuned algorithms
  // (single-copy shared memory, segmented rings) are several times faster for megabytes than its
  // non-blocking schedules driven by tests (measured in bench/RESULTS.md). Operations queued
  // meanwhile start when it returns; the training thread's deadline still applies.
  void run_blocking(Engine* e, Op& op, std::string& error) {
    const int64_t width = op.kind == Kind::Broadcast ? 1 : op.elem == Elem::F32 ? 4 : op.elem == Elem::F64 ? 8 : 1;
    const int64_t chunk = op.kind == Kind::Broadcast ? kChunkBytes : kChunkElems;
    while (op.next < op.count) {
      const int64_t n = std::min(chunk, op.count - op.next);
      const int rc = op.kind == Kind::Broadcast ? e->bcast(op.data + op.next, static_cast<int>(n), op.root)
                                                : e->allreduce(op.data + op.next * width, static_cast<int>(n), op.elem, op.op);
      op.next += n;
      if (rc != 0) {
        error = e->error_string(rc);
        return;
      }
    }
  }

  void start_chunk(Engine* e, Op& op, std::string& error) {
    RawRequest req = 0;
    int rc = 0;
    if (op.kind == Kind::Barrier) {
      rc = e->ibarrier(&req);
      op.next = 1;
    } else if (op.kind == Kind::Broadcast) {
      const int64_t n = std::min(kChunkBytes, op.count - op.next);
      rc = e->ibcast(op.data + op.next, static_cast<int>(n), op.root, &req);
      op.next += n;
    } else {
      const int64_t width = op.elem == Elem::F32 ? 4 : op.elem == Elem::F64 ? 8 : 1;
      const int64_t n = std::min(kChunkElems, op.count - op.next);
      rc = e->iallreduce(op.data + op.next * width, static_cast<int>(n), op.elem, op.op, &req);
      op.next += n;
    }
    if (rc != 0) error = e->error_string(rc);
    else op.requests.push_back(req);
  }

  // Tests op's request; starts its next chunk when one completes. True when all of it is done.
  bool advance(Engine* e, Op& op, std::string& error) {
    if (op.next < 0) {
      error = broken_.empty() ? "an earlier operation failed" : broken_;
      return true;
    }
    if (op.requests.empty()) return true;  // an empty operation
    int flag = 0;
    const int rc = e->test(&op.requests.back(), &flag);
    if (rc != 0) {
      error = e->error_string(rc);
      if (broken_.empty()) broken_ = error;
      return true;
    }
    if (!flag) return false;
    const int64_t total = op.kind == Kind::Barrier ? 1 : op.count;
    if (op.next >= total) return true;
    start_chunk(e, op, error);
    if (!error.empty()) {
      if (broken_.empty()) broken_ = error;
      return true;
    }
    return false;
  }

  void complete(Op& op, const std::string& error) {
    if (op.storage) op.storage->release();
    op.storage = nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    if (error.empty()) {
      stats_.ops++;
      stats_.bytes += op.payload_bytes;
      done_[op.id] = Outcome{true, ""};
    } else {
      done_[op.id] = Outcome{false, error};
    }
    cv_done_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_work_, cv_done_;
  bool started_ = false, init_done_ = false, finalize_requested_ = false, finalized_ = false;
  std::string init_error_, finalize_error_;
  std::string broken_;  // the first failure: every later operation fails with it (comm thread only)
  WorldInfo world_;
  std::deque<Op> queue_;
  std::unordered_map<uint64_t, Outcome> done_;
  std::unordered_set<uint64_t> pending_;  // started and not yet waited for
  uint64_t last_id_ = 0;
  int abort_code_ = -1;
  Stats stats_;
  double busy_since_ = 0;
};

Communicator& comm() {
  static Communicator* c = new Communicator();  // never destroyed (see the class comment)
  return *c;
}

uint8_t* data_at(Storage* s, size_t offset, int64_t bytes, const char* what) {
  TK_CHECK(s != nullptr, Value, what, ": no storage");
  TK_CHECK(bytes >= 0, Value, what, ": negative size ", bytes);
  TK_CHECK(offset + static_cast<uint64_t>(bytes) <= s->bytes, Index, what, ": needs bytes [", offset, ", ",
           offset + static_cast<uint64_t>(bytes), ") but its storage holds ", s->bytes);
  return static_cast<uint8_t*>(s->data) + offset;
}

}  // namespace

LibraryInfo probe() {
  std::lock_guard<std::mutex> lock(g_load_mu);
  return loaded().info;
}

WorldInfo init() {
  {
    std::lock_guard<std::mutex> lock(g_load_mu);
    const LibraryInfo& info = loaded().info;
    if (!info.available) fail(ErrorCode::Backend, "distributed training needs MPI, and ", info.reason);
  }
  return comm().start();
}

bool initialised() { return comm().ready(); }

uint64_t allreduce(Storage* storage, size_t offset, int64_t count, Elem elem, ReduceOp op) {
  const int64_t width = elem == Elem::F32 ? 4 : elem == Elem::F64 ? 8 : 1;
  TK_CHECK(elem != Elem::Byte, Dtype, "collectives allreduce: expected f32 or f64 elements");
  TK_CHECK(count >= 0 && count <= (int64_t{1} << 50), Value, "collectives allreduce: bad element count ", count);
  Op o;
  o.kind = Kind::Allreduce;
  o.storage = storage;
  o.data = data_at(storage, offset, count * width, "collectives allreduce");
  o.count = count;
  o.elem = elem;
  o.op = op;
  o.payload_bytes = count * width;
  return comm().enqueue(std::move(o));
}

uint64_t broadcast(Storage* storage, size_t offset, int64_t bytes, int root) {
  Op o;
  o.kind = Kind::Broadcast;
  o.storage = storage;
  o.data = data_at(storage, offset, bytes, "collectives broadcast");
  o.count = bytes;
  o.root = root;
  o.payload_bytes = bytes;
  return comm().enqueue(std::move(o));
}

uint64_t barrier() {
  Op o;
  o.kind = Kind::Barrier;
  return comm().enqueue(std::move(o));
}

bool wait(uint64_t id, double timeout_seconds) { return comm().wait(id, timeout_seconds); }

void abort(int code) { comm().abort(code); }

void finalize() { comm().finalize(); }

Stats stats() { return comm().stats(); }

DeclaredAbi declared_abi() {
  std::lock_guard<std::mutex> lock(g_load_mu);
  const Loaded& l = loaded();
  if (!l.engine) fail(ErrorCode::Backend, l.info.reason);
  return l.engine->declared();
}

}  // namespace tk::dist
