#include "thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace tk {

namespace {

class Pool {
 public:
  Pool() {
    unsigned hw = std::thread::hardware_concurrency();
    wanted_ = hw == 0 ? 1 : static_cast<int>(hw);
  }
  ~Pool() { stop(); }

  int threads() const { return wanted_; }
  int spin_us() const { return spin_us_.load(); }
  void set_spin_us(int us) { spin_us_.store(std::clamp(us, 0, 100000)); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> g(run_mutex_);
    stop();
    wanted_ = std::max(1, n);
  }

  void run(const std::function<void(int, int)>& fn) {
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (!busy.owns_lock() || wanted_ == 1) {
      fn(0, 1);
      return;
    }
    ensure_started();
    int n = wanted_;
    bool wake;
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = &fn;
      job_threads_ = n;
      pending_ = n - 1;
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
      wake = sleepers_ > 0;
    }
    // Workers still spinning from the last job see the new generation without a futex wake-up.
    if (wake) cv_.notify_all();
    try {
      fn(0, n);
    } catch (...) {
      std::lock_guard<std::mutex> g(m_);
      if (!error_) error_ = std::current_exception();
    }
    // Wait for workers: poll (a worker's share rarely ends at the same instant as ours), then
    // sleep; a futex wake-up of this thread costs as much as the workers' (spin_for_job).
    for (int spin = 0; spin < 20000 && pending_.load(std::memory_order_acquire) != 0; ++spin) {
    }
    poll_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
    {
      std::unique_lock<std::mutex> lk(m_);
      done_cv_.wait(lk, [&] { return pending_.load() == 0; });
      job_ = nullptr;
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void ensure_started() {
    if (static_cast<int>(workers_.size()) == wanted_ - 1) return;
    uint64_t start_gen;
    {
      std::lock_guard<std::mutex> g(m_);
      start_gen = generation_.load();
    }
    for (int i = static_cast<int>(workers_.size()) + 1; i < wanted_; ++i) {
      workers_.emplace_back([this, i, start_gen] { loop(i, start_gen); });
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(m_);
      quit_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    quit_ = false;
  }

  // A worker that has finished a job polls for the next one for up to spin_us_ before it
  // sleeps on cv_. A training step posts hundreds of jobs, a few to a few hundred microseconds
  // apart (the JS between native calls); waking a sleeping worker costs a futex call on the
  // poster and tens of microseconds of scheduler (and, in a VM, IPI) latency on the worker,
  // during which the poster computes its share alone and then waits. TUNEKIT_POOL_SPIN_US
  // sets the window (0: sleep at once, the old behaviour).
  void spin_for_job(uint64_t seen) const {
    poll_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
  }

  // Polls done() for up to spin_us_ (pausing between polls, yielding every 64), then returns.
  template <class Done>
  void poll_until(Done done) const {
    int us = spin_us_.load(std::memory_order_relaxed);
    if (us <= 0 || done()) return;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (done()) return;
        cpu_relax();
      }
      if (std::chrono::steady_clock::now() >= deadline) return;
      // Give the core to another runnable thread (with more threads than free cores, the
      // poster or a sibling that has yet to finish may be waiting for it).
      std::this_thread::yield();
    }
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  static int spin_us_from_env() {
    const char* e = std::getenv("TUNEKIT_POOL_SPIN_US");
    if (!e || !*e) return kDefaultSpinUs;
    long v = std::strtol(e, nullptr, 10);
    return static_cast<int>(std::clamp<long>(v, 0, 100000));
  }

  // start_gen: the generation when the worker was created, so a job posted before the thread
  // first runs is still seen.
  void loop(int tid, uint64_t start_gen) {
    uint64_t seen = start_gen;
    for (;;) {
      const std::function<void(int, int)>* job;
      int n;
      spin_for_job(seen);
      {
        std::unique_lock<std::mutex> lk(m_);
        if (generation_.load() == seen) {
          ++sleepers_;
          cv_.wait(lk, [&] { return generation_.load() != seen; });
          --sleepers_;
        }
        seen = generation_.load();
        if (quit_) return;
        job = job_;
        n = job_threads_;
      }
      if (job && tid < n) {
        try {
          (*job)(tid, n);
        } catch (...) {
          std::lock_guard<std::mutex> g(m_);
          if (!error_) error_ = std::current_exception();
        }
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          std::lock_guard<std::mutex> g(m_);
          done_cv_.notify_all();
        }
      }
    }
  }

  static constexpr int kDefaultSpinUs = 200;
  std::atomic<int> spin_us_{spin_us_from_env()};
  int wanted_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex m_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::atomic<int> pending_{0};
  // Bumped under m_ for each job and for stop(); read without the lock while a worker spins.
  std::atomic<uint64_t> generation_{0};
  int sleepers_ = 0;  // workers blocked on cv_ (under m_): a job needs a futex wake-up only then
  bool quit_ = false;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: workers may outlive static destruction order
  return *p;
}

}  // namespace

int num_threads() { return pool().threads(); }
void set_num_threads(int n) { pool().set_threads(n); }
int pool_spin_us() { return pool().spin_us(); }
void set_pool_spin_us(int us) { pool().set_spin_us(us); }

void parallel_run(const std::function<void(int, int)>& fn) { pool().run(fn); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t max_chunks = (n + grain - 1) / grain;
  if (max_chunks <= 1 || num_threads() == 1) {
    fn(0, n);
    return;
  }
  parallel_run([&](int tid, int nt) {
    int64_t chunks = std::min<int64_t>(nt, max_chunks);
    if (tid >= chunks) return;
    int64_t per = n / chunks, rem = n % chunks;
    int64_t b = tid * per + std::min<int64_t>(tid, rem);
    int64_t e = b + per + (tid < rem ? 1 : 0);
    fn(b, e);
  });
}

}  // namespace tk
