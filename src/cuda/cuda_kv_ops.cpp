// The KV-cache op on the GPU (kv_sink_write): checks, scratch, write versions and registration;
// the kernels are in cuda_kv.cu.
//
// Kernel files (.cu) are compiled by nvcc as C++17 and cannot include ops/ops.h (C++20), so each
// op family's host side (checks, launch, wrote(), RegisterKernel) lives in a .cpp like this one.
#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

using namespace cuda;

void kv_sink_write_cuda(CudaBackend& be, const KvSinkWriteArgs& a) {
    const KvSinkWrite& p = a.p;
    for (const Tensor* t : {&a.k_new, &a.v_new, &a.k_cache, &a.v_cache, &a.decision})
        be.check_here(*t, "kv_sink_write");
    WANRT_CHECK(p.sink <= 16, "cuda", "kv_sink_write takes at most 16 sink frames, got ", p.sink);
    WANRT_CHECK(a.k_cache.dtype() == DType::BF16 || a.k_cache.dtype() == DType::F32, "cuda",
                "kv_sink_write cache must be bf16 or f32, got ", a.k_cache.describe());
    const int64_t S = p.tokens, W = a.k_new.size(1) * a.k_new.size(2);
    auto means = be.alloc(size_t(2 * (p.sink + 1) * W) * sizeof(double));
    launch_kv_sink_write(a.k_new.data<float>(), a.v_new.data<float>(), a.k_cache.raw(), a.v_cache.raw(),
                         dev_type(a.k_cache.dtype()), S, W, p.sink, p.fixed_slot, p.queue_front, p.ring_slot,
                         p.threshold, static_cast<double*>(means->ptr()), a.decision.data<int32_t>(), be.stream());
    be.wrote(a.k_cache);
    be.wrote(a.v_cache);
    be.wrote(a.decision);
}

// f32 new K/V into an f32 or bf16 cache.
const RegisterKernel<KvSinkWriteArgs, CudaBackend> reg_kv_sink_write({{DType::F32, DType::F32},
                                                                      {DType::F32, DType::BF16}},
                                                                     &kv_sink_write_cuda);

}  // namespace

}  // namespace wanrt
