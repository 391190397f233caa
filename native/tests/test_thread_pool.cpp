// The thread pool's hand-off: every job posted reaches every thread exactly once, whether the
// workers are still polling from the previous job (posts a few microseconds apart), asleep
// (posts further apart than the polling window), or told to sleep at once (spin 0).
#include <atomic>
#include <chrono>
#include <ctime>
#include <thread>
#include <vector>

#include "../core/thread_pool.h"
#include "test_harness.h"

namespace {

// Posts `jobs` jobs with `gap_us` of idle time on the caller between them; each job records
// which thread ids ran it. Returns the number of jobs that did not run exactly once on each of
// the pool's threads.
int bad_handoffs(int jobs, int gap_us) {
  int threads = tk::num_threads();
  int bad = 0;
  for (int j = 0; j < jobs; ++j) {
    std::vector<std::atomic<int>> seen(threads);
    std::atomic<int> calls{0};
    tk::parallel_run([&](int tid, int nt) {
      if (nt == threads && tid >= 0 && tid < nt) seen[tid].fetch_add(1);
      calls.fetch_add(1);
    });
    bool ok = calls.load() == threads;
    for (auto& s : seen) ok = ok && s.load() == 1;
    bad += ok ? 0 : 1;
    if (gap_us > 0) {
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(gap_us);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
  }
  return bad;
}

}  // namespace

TK_TEST(thread_pool_handoff_while_polling_asleep_and_without_spin) {
  int old_threads = tk::num_threads();
  int old_spin = tk::pool_spin_us();
  tk::set_num_threads(3);
  // Gaps 0 and 20 us fall inside a 2000 us polling window; 300 us gaps with a 50 us window make
  // every worker go to sleep between jobs; spin 0 is the sleep-at-once path.
  struct Case { int spin_us, gap_us, jobs; };
  for (Case c : {Case{2000, 0, 3000}, Case{2000, 20, 500}, Case{50, 300, 200}, Case{0, 0, 1000}, Case{0, 30, 200}}) {
    tk::set_pool_spin_us(c.spin_us);
    int bad = bad_handoffs(c.jobs, c.gap_us);
    TK_EXPECT(bad == 0, "spin %d us, gap %d us: %d of %d jobs did not run once on each of 3 threads", c.spin_us,
              c.gap_us, bad, c.jobs);
  }
  // Alternating the window while jobs flow (a worker polling under one setting sees the next).
  int bad = 0;
  for (int k = 0; k < 200; ++k) {
    tk::set_pool_spin_us(k % 2 ? 0 : 500);
    bad += bad_handoffs(3, k % 3 == 0 ? 100 : 0);
  }
  TK_EXPECT(bad == 0, "alternating spin windows: %d bad jobs", bad);

  // parallel_for over the pool: every index once.
  tk::set_pool_spin_us(200);
  std::vector<std::atomic<int>> hits(10007);
  for (int rep = 0; rep < 50; ++rep) {
    tk::parallel_for(10007, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
    });
  }
  int wrong = 0;
  for (auto& h : hits) wrong += h.load() == 50 ? 0 : 1;
  TK_EXPECT(wrong == 0, "parallel_for: %d indices not hit 50 times", wrong);

  // Changing the thread count stops polling workers and starts new ones.
  tk::set_num_threads(2);
  TK_EXPECT(bad_handoffs(100, 0) == 0, "after set_num_threads(2)");
  tk::set_pool_spin_us(-5);
  TK_EXPECT(tk::pool_spin_us() == 0, "negative window clamps to 0, got %d", tk::pool_spin_us());

  tk::set_pool_spin_us(old_spin);
  tk::set_num_threads(old_threads);
}

TK_TEST(thread_pool_idle_workers_stop_polling) {
  // After the window a worker sleeps: its CPU time stops growing. Measured as the process's CPU
  // time over a 200 ms idle pause after a job, with a 1 ms window: at most the window plus
  // scheduling noise, far below the 200 ms a worker that never slept would burn.
  int old_threads = tk::num_threads();
  int old_spin = tk::pool_spin_us();
  tk::set_num_threads(2);
  tk::set_pool_spin_us(1000);
  tk::parallel_run([](int, int) {});
  auto cpu = [] { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; };
  double c0 = cpu();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double burnt = cpu() - c0;
  TK_EXPECT(burnt < 0.05, "idle pool burnt %.3f s of CPU in 200 ms (window 1 ms)", burnt);
  tk::set_pool_spin_us(old_spin);
  tk::set_num_threads(old_threads);
}
