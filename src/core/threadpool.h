// A fixed pool of worker threads for data-parallel loops. Workers sleep between jobs (no spinning)
// so they do not compete with OpenBLAS's own threads while a GEMM runs.
#pragma once

#include <cstdint>
#include <functional>

namespace wanrt {

class ThreadPool {
public:
    explicit ThreadPool(int threads);  // threads ≥ 1 (the caller counts as one)
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return nthreads_; }
    // Runs fn(begin, end) over [0, n) split into contiguous chunks of at least `grain` items,
    // one chunk per thread; returns when all are done. If chunks throw, the first exception is
    // rethrown after every chunk has finished. Not reentrant.
    void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

private:
    struct Impl;
    Impl* impl_;
    int nthreads_;
};

int default_thread_count();  // physical cores visible to this process

}  // namespace wanrt
