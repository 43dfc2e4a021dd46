// clamp (ops/clamp.h) on the GPU: one grid-stride pass, float4 where aligned.
#include "cuda/cuda_backend_impl.h"
#include "ops/clamp.h"

namespace wanrt {

namespace {

__device__ __forceinline__ float clamp1(float v, float lo, float hi) {
    return v < lo ? lo : (v > hi ? hi : v);  // a NaN stays NaN, as torch.clamp
}

// Elements [0, 4·n4) as float4 (n4 = 0 when a pointer is not 16-byte aligned), the rest one by one.
__global__ void clamp_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n, int64_t n4, float lo,
                             float hi) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    float4* y4 = reinterpret_cast<float4*>(y);
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float4 v = x4[i];
        y4[i] = make_float4(clamp1(v.x, lo, hi), clamp1(v.y, lo, hi), clamp1(v.z, lo, hi), clamp1(v.w, lo, hi));
    }
    for (int64_t i = n4 * 4 + int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = clamp1(x[i], lo, hi);
}

void clamp_cuda(CudaBackend& be, const ClampArgs& a) {
    const int64_t n = a.x.numel();
    if (n > 0) {
        // Backend buffers are 512-byte aligned and the front-end hands contiguous tensors, but a view
        // may start mid-buffer: the float4 path needs both pointers 16-byte aligned.
        const bool aligned = (reinterpret_cast<uintptr_t>(a.x.raw()) | reinterpret_cast<uintptr_t>(a.y.raw())) % 16 == 0;
        const int64_t n4 = aligned ? n / 4 : 0, work = n4 + (n - 4 * n4);
        const int threads = 256, blocks = int(std::min<int64_t>((work + threads - 1) / threads, 65536));
        clamp_kernel<<<blocks, threads, 0, be.stream()>>>(a.x.data<float>(), a.y.data<float>(), n, n4, a.lo, a.hi);
        CUDA_CHECK_LAUNCH();
    }
    be.wrote(a.y);
}

const RegisterKernel<ClampArgs, CudaBackend> reg({{DType::F32}}, &clamp_cuda);

}  // namespace

}  // namespace wanrt
