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

std::shared_ptr<Buffer> CpuBackend::alloc(size_t bytes) { return std::make_shared<HostBuffer>(this, bytes); }

void CpuBackend::upload(const Tensor& dst, const void* src) {
    WANRT_ASSERT(dst.is_contiguous());
    std::memcpy(dst.raw(), src, dst.nbytes());
}

void CpuBackend::download(const Tensor& src, void* dst) {
    WANRT_ASSERT(src.is_contiguous());
    std::memcpy(dst, src.raw(), src.nbytes());
}

bool CpuBackend::supports(Op op, DType input, DType weight) const {
    switch (op) {
        case Op::Copy: return true;
        case Op::Linear:
        case Op::Embedding:
            return input == DType::F32 &&
                   (weight == DType::F32 || weight == DType::BF16 || weight == DType::F16);
        case Op::Attention:  // f32 K/V only
        case Op::KvSinkWrite: return input == DType::F32 && weight == DType::F32;
        default: return input == DType::F32;
    }
}

std::shared_ptr<Backend> make_cpu_backend(int threads) { return std::make_shared<CpuBackend>(threads); }

}  // namespace wanrt
