// The core's own thread pool. Every multi-threaded kernel goes through parallel_run or
// parallel_for; the calling thread takes part as thread 0. A call made while the pool is busy
// (a nested call, or a second JS worker thread) runs serially in its caller rather than waiting.
#pragma once
#include <cstdint>
#include <functional>

namespace tk {

int num_threads();              // threads a parallel call uses (default: hardware threads)
void set_num_threads(int n);    // n >= 1; takes effect on the next call

// How long (microseconds) an idle worker polls for the next job before it sleeps: 200 unless
// TUNEKIT_POOL_SPIN_US says otherwise; 0 sleeps at once. Clamped to [0, 100000].
int pool_spin_us();
void set_pool_spin_us(int us);

// fn(tid, nthreads) once on each of nthreads threads (tid 0 is the caller).
void parallel_run(const std::function<void(int, int)>& fn);

// fn(begin, end) over disjoint chunks covering [0, n); chunks hold at least `grain` items.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tk
