#include "cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace wanrt {

namespace {

class HostBuffer final : public Buffer {
public:
    HostBuffer(Backend* be, size_t bytes) : Buffer(be, nullptr, bytes) {
        // 64-byte alignment for full-width vector loads; at least one line so ptr is never null.
        size_t n = (bytes + 63) / 64 * 64;
        ptr_ = std::aligned_alloc(64, n ? n : 64);
        if (!ptr_) fail("cpu", "out of memory allocating ", bytes, " bytes; use a smaller size or fewer frames");
    }
    ~HostBuffer() override { std::free(ptr_); }
};

// The alloc-check mode (Backend::set_alloc_check): kGuard bytes of a known pattern before and after
// the data, which starts as all-ones bytes (NaN in f32, bf16 and f16); a guard found changed when
// the buffer is freed is counted, so a test sees out-of-bounds writes of any kernel.
class GuardedBuffer final : public Buffer {
public:
    static constexpr size_t kGuard = 256;
    static constexpr unsigned char kPattern = 0xA5;
    GuardedBuffer(Backend* be, size_t bytes, std::shared_ptr<std::atomic<int64_t>> failures)
        : Buffer(be, nullptr, bytes), failures_(std::move(failures)) {
        const size_t n = (bytes + 63) / 64 * 64;
        base_ = static_cast<unsigned char*>(std::aligned_alloc(64, n + 2 * kGuard));
        if (!base_) fail("cpu", "out of memory allocating ", bytes, " bytes; use a smaller size or fewer frames");
        std::memset(base_, kPattern, kGuard);
        std::memset(base_ + kGuard, 0xFF, bytes);
        std::memset(base_ + kGuard + bytes, kPattern, n + kGuard - bytes);
        ptr_ = base_ + kGuard;
    }
    ~GuardedBuffer() override {
        const size_t n = (bytes_ + 63) / 64 * 64;
        bool ok = true;
        for (size_t i = 0; i < kGuard; ++i) ok = ok && base_[i] == kPattern;
        for (size_t i = kGuard + bytes_; i < n + 2 * kGuard; ++i) ok = ok && base_[i] == kPattern;
        if (!ok) failures_->fetch_add(1);
        std::free(base_);
    }

private:
    unsigned char* base_ = nullptr;
    std::shared_ptr<std::atomic<int64_t>> failures_;
};

std::string cpu_model_name() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            auto p = line.find(':');
            if (p != std::string::npos) return line.substr(p + 2);
        }
    }
    return "unknown CPU";
}

}  // namespace

CpuBackend::CpuBackend(int threads) : pool_(threads > 0 ? threads : default_thread_count()) {}

std::string CpuBackend::description() const {
    return cat(cpu_model_name(), ", ", pool_.threads(), " threads");
}

std::shared_ptr<Buffer> CpuBackend::alloc(size_t bytes) {
    if (alloc_check_) return std::make_shared<GuardedBuffer>(this, bytes, guard_failures_);
    return std::make_shared<HostBuffer>(this, bytes);
}

void CpuBackend::upload(const Tensor& dst, const void* src) {
    WANRT_ASSERT(dst.is_contiguous());
    std::memcpy(dst.raw(), src, dst.nbytes());
}

void CpuBackend::download(const Tensor& src, void* dst) {
    WANRT_ASSERT(src.is_contiguous());
    std::memcpy(dst, src.raw(), src.nbytes());
}

std::shared_ptr<Backend> make_cpu_backend(int threads) { return std::make_shared<CpuBackend>(threads); }

}  // namespace wanrt
