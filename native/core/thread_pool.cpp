#include "thread_pool.h"

#include <algorithm>
#include <atomic>
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
    {
      std::lock_guard<std::mutex> g(m_);
      job_ = &fn;
      job_threads_ = n;
      pending_ = n - 1;
      error_ = nullptr;
      generation_++;
    }
    cv_.notify_all();
    try {
      fn(0, n);
    } catch (...) {
      std::lock_guard<std::mutex> g(m_);
      if (!error_) error_ = std::current_exception();
    }
    // Wait for workers: spin briefly (short kernels), then sleep.
    for (int spin = 0; spin < 20000 && pending_.load(std::memory_order_acquire) != 0; ++spin) {
    }
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
      start_gen = generation_;
    }
    for (int i = static_cast<int>(workers_.size()) + 1; i < wanted_; ++i) {
      workers_.emplace_back([this, i, start_gen] { loop(i, start_gen); });
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> g(m_);
      quit_ = true;
      generation_++;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    quit_ = false;
  }

  // start_gen: the generation when the worker was created, so a job posted before the thread
  // first runs is still seen.
  void loop(int tid, uint64_t start_gen) {
    uint64_t seen = start_gen;
    for (;;) {
      const std::function<void(int, int)>* job;
      int n;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
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

  int wanted_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::mutex m_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0;
  std::atomic<int> pending_{0};
  uint64_t generation_ = 0;
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
