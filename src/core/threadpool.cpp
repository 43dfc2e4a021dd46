#include "core/threadpool.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <sched.h>

#include "core/error.h"

namespace wanrt {

struct ThreadPool::Impl {
    std::vector<std::thread> workers;
    std::mutex mu;
    std::condition_variable wake, done;
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t n = 0, chunk = 0, nchunks = 0;
    uint64_t generation = 0;
    int pending = 0;
    bool stop = false;
    std::exception_ptr error;  // the first exception a chunk threw in this job (guarded by mu)

    // Runs chunk c; an exception is kept, not propagated: a worker thread that let it escape would
    // std::terminate, and the caller's chunk unwinding out of parallel_for would free `fn` (and
    // the data it captures) while the workers still run it.
    void run_chunk(int64_t c) {
        int64_t b = c * chunk, e = std::min(n, b + chunk);
        if (b >= e) return;
        try {
            (*fn)(b, e);
        } catch (...) {
            std::lock_guard<std::mutex> lock(mu);
            if (!error) error = std::current_exception();
        }
    }
};

ThreadPool::ThreadPool(int threads) : impl_(new Impl), nthreads_(std::max(1, threads)) {
    for (int t = 1; t < nthreads_; ++t) {
        impl_->workers.emplace_back([this, t] {
            Impl& s = *impl_;
            uint64_t seen = 0;
            for (;;) {
                std::unique_lock<std::mutex> lock(s.mu);
                s.wake.wait(lock, [&] { return s.stop || s.generation != seen; });
                if (s.stop) return;
                seen = s.generation;
                lock.unlock();
                if (t < s.nchunks) s.run_chunk(t);
                lock.lock();
                if (--s.pending == 0) s.done.notify_one();
            }
        });
    }
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->stop = true;
    }
    impl_->wake.notify_all();
    for (auto& w : impl_->workers) w.join();
    delete impl_;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int64_t nchunks = std::min<int64_t>(nthreads_, (n + grain - 1) / grain);
    if (nchunks <= 1) {
        fn(0, n);
        return;
    }
    Impl& s = *impl_;
    {
        std::lock_guard<std::mutex> lock(s.mu);
        s.fn = &fn;
        s.n = n;
        s.chunk = (n + nchunks - 1) / nchunks;
        s.nchunks = nchunks;
        s.pending = nthreads_ - 1;
        ++s.generation;
    }
    s.wake.notify_all();
    s.run_chunk(0);
    std::unique_lock<std::mutex> lock(s.mu);
    s.done.wait(lock, [&] { return s.pending == 0; });
    // Every chunk has finished: rethrow the first failure (the pool is ready for the next job).
    if (std::exception_ptr e = std::exchange(s.error, nullptr)) std::rethrow_exception(e);
}

int default_thread_count() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace wanrt
