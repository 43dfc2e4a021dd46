// RAII over cuDNN backend descriptors for the graph-API users (cuda_sdpa.cpp, cuda_conv.cpp).
// Building a graph may fail for shapes cuDNN has no engine for; that is reported by throwing
// BuildError, which the callers turn into a fallback, never into an abort.
#pragma once

#include <string>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

struct BuildError {
    std::string what;
};

// Owning handle of one backend descriptor.
class Desc {
public:
    explicit Desc(cudnnBackendDescriptorType_t t) {
        if (cudnnBackendCreateDescriptor(t, &d_) != CUDNN_STATUS_SUCCESS) throw BuildError{"create descriptor"};
    }
    ~Desc() {
        if (d_) cudnnBackendDestroyDescriptor(d_);
    }
    Desc(Desc&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
    Desc(const Desc&) = delete;
    Desc& operator=(const Desc&) = delete;
    cudnnBackendDescriptor_t get() const { return d_; }

    Desc& set(cudnnBackendAttributeName_t a, cudnnBackendAttributeType_t t, int64_t n, const void* v,
              const char* what) {
        const cudnnStatus_t st = cudnnBackendSetAttribute(d_, a, t, n, v);
        if (st != CUDNN_STATUS_SUCCESS) throw BuildError{std::string("set ") + what + ": " + cudnnGetErrorString(st)};
        return *this;
    }
    Desc& set_desc(cudnnBackendAttributeName_t a, cudnnBackendDescriptor_t p, const char* what) {
        return set(a, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &p, what);
    }
    Desc& set_desc(cudnnBackendAttributeName_t a, const Desc& other, const char* what) {
        return set_desc(a, other.get(), what);
    }
    void finalize(const char* what) {
        const cudnnStatus_t st = cudnnBackendFinalize(d_);
        if (st != CUDNN_STATUS_SUCCESS)
            throw BuildError{std::string("finalize ") + what + ": " + cudnnGetErrorString(st)};
    }

private:
    cudnnBackendDescriptor_t d_ = nullptr;
};

}  // namespace wanrt::cuda
