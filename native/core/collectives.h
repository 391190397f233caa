// Collectives for data-parallel training, on an existing engine: MPI (Open MPI or MPICH),
// loaded at run time with dlopen. The addon (and the committed prebuild) therefore loads and
// trains on machines without MPI; only distributed use needs the library, and then fails with
// ERR_BACKEND saying how to install it. No mpi.h is needed to build: the few entry points are
// resolved by name and the handles of the two ABIs that cover the MPI libraries people have
// (Open MPI's: pointers to library globals; MPICH's, shared by Intel MPI and MVAPICH: fixed
// integers) are declared here. native/tests/test_collectives.cpp checks those declarations
// against the mpi.h found at build time (CMake's FindMPI), when one is.
//
// Threading: every MPI call is made by one communication thread that the first init() starts
// (MPI_THREAD_FUNNELED: MPI is initialised on that thread). JS (the training thread) enqueues
// operations and waits for them with a deadline, so communication overlaps its work. The
// communication thread starts each operation as soon as it is queued: below 256 KiB as a
// non-blocking MPI_I* call (several in flight), whose progress it drives by testing (without
// pause for 20 ms after the last event, then sleeping 50 us to 1 ms between tests, so that a
// rank waiting for a slower one costs little CPU); from 256 KiB with MPI's blocking call, whose
// tuned algorithms move megabytes several times faster. Operations start in queue order on
// every rank, which is what matches them across ranks.
#pragma once
#include <cstdint>
#include <string>

#include "core/storage.h"

namespace tk::dist {

// What dlopen found (nothing is initialised).
struct LibraryInfo {
  bool available = false;
  std::string implementation;  // "Open MPI" or "MPICH"
  std::string library;         // the file name that was opened
  std::string version;         // MPI_Get_library_version's first line
  std::string reason;          // why not available: the dlopen errors, what to install
};

// The process's place in the job, once initialised.
struct WorldInfo {
  int rank = 0;
  int size = 1;
  int thread_level = 0;  // MPI_THREAD_FUNNELED (1) or better
  std::string implementation;
  std::string version;
};

enum class Elem { F32 = 0, F64 = 1, Byte = 2 };
enum class ReduceOp { Sum = 0, Max = 1, Min = 2 };

// Counters of the operations done so far (bytes: the payload of each operation on this rank).
struct Stats {
  int64_t ops = 0;
  int64_t bytes = 0;
  double busy_seconds = 0;  // wall time with at least one operation in flight
};

// Tries to load the MPI library: $TUNEKIT_MPI_LIBRARY when set, else Open MPI's libmpi.so.40,
// then MPICH's libmpich.so.12 / libmpi.so.12. Cheap after the first call.
LibraryInfo probe();

// Starts the communication thread and initialises MPI on it (once per process; later calls
// return the same WorldInfo). Throws tk::Error(Backend) when no library loads or MPI_Init fails.
WorldInfo init();

// Whether init() succeeded in this process.
bool initialised();

// Queue an operation on `storage` (retained until it completes) and return its id. Data is
// reduced / broadcast in place. `count` elements of `elem` from byte offset `offset`.
uint64_t allreduce(Storage* storage, size_t offset, int64_t count, Elem elem, ReduceOp op);
uint64_t broadcast(Storage* storage, size_t offset, int64_t bytes, int root);
uint64_t barrier();

// Waits for operation `id` for at most timeout_seconds: true when it completed, false when it is
// still in flight (a rank died or hangs; the caller decides). An operation that failed throws
// tk::Error(Backend) with MPI's message; so does every later operation (the group is broken).
bool wait(uint64_t id, double timeout_seconds);

// MPI_Abort on the communication thread: ends every rank of the job (the launcher kills them).
// Does not return. Without MPI initialised, exits the process with `code`.
[[noreturn]] void abort(int code);

// MPI_Finalize (collective: every rank must call it) and stops the communication thread.
void finalize();

Stats stats();

// The handles the binding uses for the loaded library's ABI, as integers (Open MPI: addresses
// of its predefined objects; MPICH: mpi.h's constants), for the test against mpi.h.
struct DeclaredAbi {
  std::string implementation;
  uintptr_t comm_world = 0, f32 = 0, f64 = 0, byte = 0, sum = 0, max = 0, min = 0, errors_return = 0, in_place = 0;
};
DeclaredAbi declared_abi();  // throws tk::Error(Backend) when no library loads

}  // namespace tk::dist
