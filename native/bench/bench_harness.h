// A tiny benchmark registry for the native bench runner (no Node needed).
// TK_BENCH(name) { ... } registers a benchmark; it receives the command-line arguments that
// follow its name. Benchmarks print their own figures, each beside the figure it is judged
// against where one exists in the same process (the Python/OpenBLAS side runs in bench/*.sh).
#pragma once
#include <time.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace tk::bench {

using Args = std::vector<std::string>;
struct Case {
  const char* name;
  const char* help;
  std::function<int(const Args&)> fn;  // returns a process exit code
};
std::vector<Case>& registry();

struct Register {
  Register(const char* name, const char* help, std::function<int(const Args&)> fn) {
    registry().push_back({name, help, std::move(fn)});
  }
};

// The clock benchmarks read: wall time (default), or with TUNEKIT_BENCH_CLOCK=cpu the CPU time
// of this process (all its threads). On a machine shared with other jobs, CPU time of a
// single-threaded run is unaffected by time slicing, so it compares kernels fairly there.
inline double bench_now() {
  static const bool cpu = [] {
    const char* c = std::getenv("TUNEKIT_BENCH_CLOCK");
    return c && std::strcmp(c, "cpu") == 0;
  }();
  if (cpu) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best (minimum) seconds per call of fn over at least `min_reps` calls and `min_seconds` total,
// after one warm-up call. The minimum is the figure least disturbed by other processes.
inline double best_seconds(const std::function<void()>& fn, int min_reps = 3, double min_seconds = 0.3) {
  fn();
  double best = 1e30, total = 0;
  for (int r = 0; r < min_reps || total < min_seconds; ++r) {
    const double t0 = bench_now();
    fn();
    const double s = bench_now() - t0;
    best = s < best ? s : best;
    total += s;
    if (r > 10000) break;
  }
  return best;
}

}  // namespace tk::bench

#define TK_BENCH_CONCAT2(a, b) a##b
#define TK_BENCH_CONCAT(a, b) TK_BENCH_CONCAT2(a, b)
// The function is named tk_bench_<name> so a benchmark may share its name with the op it times.
#define TK_BENCH(name, help)                                                                          \
  static int TK_BENCH_CONCAT(tk_bench_, name)(const ::tk::bench::Args& args);                         \
  static ::tk::bench::Register TK_BENCH_CONCAT(tk_bench_reg_, name)(#name, help,                      \
                                                                    TK_BENCH_CONCAT(tk_bench_, name)); \
  static int TK_BENCH_CONCAT(tk_bench_, name)(const ::tk::bench::Args& args)
