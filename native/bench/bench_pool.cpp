// Thread-pool hand-off benchmark: `pool work_us gap_us [threads]` posts jobs in which every
// thread does work_us of arithmetic, with gap_us of caller-only work between posts (the JS
// between two native calls of a training step), and prints the wall time per job beyond the
// ideal work_us + gap_us, with workers that sleep at once (spin 0, the pool before 2026-12-06)
// and with the default polling window. Wall time: run it on a quiet machine.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "../core/thread_pool.h"
#include "bench_harness.h"

namespace {

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void busy_us(double us) {
  const double until = now_us() + us;
  while (now_us() < until) {
  }
}

// Mean wall microseconds per job over `jobs` jobs (best of 5 batches).
double per_job_us(double work_us, double gap_us, int jobs) {
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_us();
    for (int j = 0; j < jobs; ++j) {
      tk::parallel_run([&](int, int) { busy_us(work_us); });
      busy_us(gap_us);
    }
    const double per = (now_us() - t0) / jobs;
    best = per < best ? per : best;
  }
  return best;
}

}  // namespace

TK_BENCH(pool, "work_us gap_us [threads]: wall per parallel_run beyond the work, workers sleeping at once vs polling") {
  const double work = args.size() > 0 ? std::atof(args[0].c_str()) : 100.0;
  const double gap = args.size() > 1 ? std::atof(args[1].c_str()) : 20.0;
  const int threads = args.size() > 2 ? std::atoi(args[2].c_str()) : 2;
  tk::set_num_threads(threads);
  const int jobs = 400;
  const int polling = tk::pool_spin_us();
  tk::set_pool_spin_us(0);
  const double sleep_at_once = per_job_us(work, gap, jobs);
  tk::set_pool_spin_us(polling);
  const double poll = per_job_us(work, gap, jobs);
  std::printf("pool threads=%d work %.0f us gap %.0f us: overhead per job, workers sleep at once %.1f us, poll %d us %.1f us\n",
              threads, work, gap, sleep_at_once - work - gap, polling, poll - work - gap);
  return 0;
}
