// Native bench runner: `tunekit_native_bench` lists the benchmarks; `tunekit_native_bench NAME
// [args...]` runs the first one whose name contains NAME, passing it the remaining arguments.
#include <cstdio>
#include <cstring>

#include <cstdlib>

#include "../core/thread_pool.h"
#include "bench_harness.h"

namespace tk::bench {
std::vector<Case>& registry() {
  static std::vector<Case> r;
  return r;
}
}  // namespace tk::bench

int main(int argc, char** argv) {
  using namespace tk::bench;
  if (argc < 2) {
    std::printf("usage: tunekit_native_bench NAME [args...]\n");
    for (auto& c : registry()) std::printf("  %-16s %s\n", c.name, c.help);
    return 0;
  }
  // Exact name first, then the first substring match.
  const Case* pick = nullptr;
  for (auto& c : registry()) if (std::strcmp(c.name, argv[1]) == 0) pick = &c;
  if (!pick) for (auto& c : registry()) if (std::strstr(c.name, argv[1])) { pick = &c; break; }
  if (!pick) {
    std::fprintf(stderr, "no benchmark matches '%s'\n", argv[1]);
    return 2;
  }
  // TUNEKIT_BENCH_THREADS=n runs the pool with n threads (default: all hardware threads).
  if (const char* t = std::getenv("TUNEKIT_BENCH_THREADS")) tk::set_num_threads(std::atoi(t) > 0 ? std::atoi(t) : 1);
  Args args(argv + 2, argv + argc);
  try {
    return pick->fn(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s failed: %s\n", pick->name, e.what());
    return 1;
  }
}
