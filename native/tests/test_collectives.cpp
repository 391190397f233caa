// The run-time MPI binding (core/collectives.h). Where MPI was found at build time
// (TUNEKIT_TEST_MPI_HEADER, CMake's FindMPI), the handles it declares for the library's ABI are
// checked against that mpi.h, and one process (an MPI singleton, world size 1) runs every
// operation through the communication thread. Multi-rank behaviour (sums across ranks, a rank
// that dies or hangs) is tested with real ranks in test/distributed/.
#include <cstring>
#include <string>

#include "core/collectives.h"
#include "core/status.h"
#include "test_harness.h"

#ifdef TUNEKIT_TEST_MPI_HEADER
#include <mpi.h>
#endif

using namespace tk;

TK_TEST(collectives_probe_reports_library_or_how_to_install) {
  const dist::LibraryInfo l = dist::probe();
  if (l.available) {
    TK_EXPECT(l.implementation == "Open MPI" || l.implementation == "MPICH", "implementation '%s'", l.implementation.c_str());
    TK_EXPECT(!l.library.empty() && !l.version.empty(), "library '%s' version '%s'", l.library.c_str(), l.version.c_str());
  } else {
    TK_EXPECT(l.reason.find("apt-get install openmpi-bin") != std::string::npos, "reason: %s", l.reason.c_str());
  }
}

#ifdef TUNEKIT_TEST_MPI_HEADER

namespace {
template <typename H>
uintptr_t handle_int(H h) {
  if constexpr (std::is_pointer_v<H>) return reinterpret_cast<uintptr_t>(h);
  else return static_cast<uintptr_t>(static_cast<uint32_t>(h));
}
}  // namespace

TK_TEST(collectives_declared_abi_matches_mpi_h) {
  const dist::LibraryInfo l = dist::probe();
  TK_EXPECT(l.available, "MPI was found at build time but does not load at run time: %s", l.reason.c_str());
  if (!l.available) return;
  const dist::DeclaredAbi d = dist::declared_abi();
#ifdef OPEN_MPI
  TK_EXPECT(d.implementation == "Open MPI", "built against Open MPI's mpi.h, loaded %s", d.implementation.c_str());
#else
  TK_EXPECT(d.implementation == "MPICH", "built against MPICH's mpi.h, loaded %s", d.implementation.c_str());
#endif
  TK_EXPECT(d.comm_world == handle_int(MPI_COMM_WORLD), "MPI_COMM_WORLD");
  TK_EXPECT(d.f32 == handle_int(MPI_FLOAT), "MPI_FLOAT");
  TK_EXPECT(d.f64 == handle_int(MPI_DOUBLE), "MPI_DOUBLE");
  TK_EXPECT(d.byte == handle_int(MPI_BYTE), "MPI_BYTE");
  TK_EXPECT(d.sum == handle_int(MPI_SUM), "MPI_SUM");
  TK_EXPECT(d.max == handle_int(MPI_MAX), "MPI_MAX");
  TK_EXPECT(d.min == handle_int(MPI_MIN), "MPI_MIN");
  TK_EXPECT(d.errors_return == handle_int(MPI_ERRORS_RETURN), "MPI_ERRORS_RETURN");
  TK_EXPECT(d.in_place == reinterpret_cast<uintptr_t>(MPI_IN_PLACE), "MPI_IN_PLACE");
  TK_EXPECT(sizeof(MPI_Status) <= 64, "MPI_Status is %zu bytes; the binding's status buffer holds 64", sizeof(MPI_Status));
  TK_EXPECT(MPI_THREAD_FUNNELED == 1 && MPI_SUCCESS == 0, "thread level / success constants");
  TK_EXPECT(sizeof(MPI_Request) <= 8, "MPI_Request is %zu bytes", sizeof(MPI_Request));
}

TK_TEST(collectives_singleton_runs_every_operation) {
  const dist::WorldInfo w = dist::init();
  TK_EXPECT(w.rank == 0 && w.size == 1, "rank %d size %d (run outside mpirun)", w.rank, w.size);
  TK_EXPECT(w.thread_level >= 1, "thread level %d", w.thread_level);
  TK_EXPECT(dist::initialised(), "initialised()");
  Storage* s = Storage::allocate(1 << 12, true);
  float* f = static_cast<float*>(s->data);
  for (int i = 0; i < 256; ++i) f[i] = static_cast<float>(i) - 100.5f;
  const uint64_t a = dist::allreduce(s, 0, 256, dist::Elem::F32, dist::ReduceOp::Sum);
  const uint64_t b = dist::broadcast(s, 2048, 1024, 0);
  const uint64_t c = dist::barrier();
  // several in flight at once, waited for out of order
  TK_EXPECT(dist::wait(c, 30.0), "barrier completes");
  TK_EXPECT(dist::wait(a, 30.0), "allreduce completes");
  TK_EXPECT(dist::wait(b, 30.0), "broadcast completes");
  bool same = true;
  for (int i = 0; i < 256; ++i) same = same && f[i] == static_cast<float>(i) - 100.5f;
  TK_EXPECT(same, "a world of one rank reduces to its own values");
  bool threw = false;
  try {
    dist::wait(a, 0.0);
  } catch (const Error& e) {
    threw = e.code() == ErrorCode::Value && std::string(e.what()).find("already waited") != std::string::npos;
  }
  TK_EXPECT(threw, "a second wait on the same operation is ERR_VALUE");
  threw = false;
  try {
    dist::allreduce(s, 4096, 1, dist::Elem::F32, dist::ReduceOp::Sum);
  } catch (const Error& e) {
    threw = e.code() == ErrorCode::Index;
  }
  TK_EXPECT(threw, "a buffer past the storage's end is ERR_INDEX");
  const dist::Stats st = dist::stats();
  TK_EXPECT(st.ops == 3 && st.bytes == 256 * 4 + 1024, "ops %lld bytes %lld", static_cast<long long>(st.ops), static_cast<long long>(st.bytes));
  s->release();
  dist::finalize();
  threw = false;
  try {
    dist::barrier();
  } catch (const Error& e) {
    threw = std::string(e.what()).find("finalised") != std::string::npos;
  }
  TK_EXPECT(threw, "operations after finalize are refused");
}

#endif  // TUNEKIT_TEST_MPI_HEADER
