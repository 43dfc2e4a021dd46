// The CPU backend's thread pool: every item of a job runs exactly once, jobs follow each other
// without a lost wake-up, and a chunk that throws neither terminates the process (worker) nor
// frees the job under the other chunks (caller). This test is in the ARM64 subset: under qemu-user
// a pool that never wakes shows as this test's ctest timeout, not as every compute test hanging.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "core/threadpool.h"

namespace wanrt {
namespace {

TEST(ThreadPool, EveryItemOnceOverManyJobs) {
    for (int threads : {1, 2, 3, 8}) {
        ThreadPool pool(threads);
        std::vector<int> hits(1000);
        int64_t jobs = 0;
        // Sizes below, at and above the thread count, grains that give one chunk or many.
        for (int it = 0; it < 500; ++it) {
            const int64_t n = 1 + (it * 37) % 1000, grain = 1 + it % 7;
            pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) ++hits[size_t(i)];
            });
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)], 1) << "threads " << threads << " job " << it << " item " << i;
            for (int64_t i = 0; i < n; ++i) hits[size_t(i)] = 0;
            ++jobs;
        }
        EXPECT_EQ(jobs, 500);
    }
}

TEST(ThreadPool, ChunkExceptionIsRethrownAfterAllChunksFinish) {
    ThreadPool pool(4);
    for (int64_t bad : {0, 1, 3}) {  // the caller's chunk, a worker's, the last worker's
        std::atomic<int64_t> done{0};
        try {
            pool.parallel_for(4, 1, [&](int64_t b, int64_t e) {
                if (b == bad) fail("test", "chunk ", b, " failed");
                done += e - b;
            });
            ADD_FAILURE() << "no exception for chunk " << bad;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("chunk " + std::to_string(bad) + " failed"), std::string::npos) << e.what();
        }
        // The other three chunks ran to the end before parallel_for returned.
        EXPECT_EQ(done.load(), 3) << "bad chunk " << bad;
    }
    // Two chunks throw: one exception comes out, and the pool still runs the next job.
    EXPECT_THROW(pool.parallel_for(4, 1, [](int64_t b, int64_t) { if (b >= 2) throw std::runtime_error("x"); }),
                 std::runtime_error);
    std::atomic<int64_t> sum{0};
    pool.parallel_for(100, 1, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) sum += i; });
    EXPECT_EQ(sum.load(), 4950);
}

}  // namespace
}  // namespace wanrt
