// Per-tensor e4m3fn quantization on the device (ops/linear_fp8.h's rule, bit for bit the CPU's):
// one pass for the finite absmax (block reduction + one atomicMax per block on the float's bits,
// which order like the floats for non-negative values), one pass that derives the scale from it on
// the device (no host round trip) and writes the codes. The encoder is core/fp8.h's (torch's
// round-to-nearest-even bit manipulation), not the cvt intrinsic, so the CPU emulation and the GPU
// agree on every code by construction.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>

#include "cuda/cuda_common.h"
#include "cuda/cuda_fp8.h"

namespace wanrt::cuda {

namespace {

__device__ __forceinline__ float load_v(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_v(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float load_v(const __half* p, int64_t i) { return __half2float(p[i]); }

// core/fp8.h f32_to_fp8_e4m3, line for line.
__device__ __forceinline__ uint32_t e4m3_code(float f) {
    uint32_t u = __float_as_uint(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint32_t r;
    if (u >= (uint32_t(1087) << 20)) {
        r = 0x7f;
    } else if (u < (uint32_t(121) << 23)) {
        const uint32_t denorm_mask = uint32_t(141) << 23;
        r = (__float_as_uint(__fadd_rn(__uint_as_float(u), __uint_as_float(denorm_mask))) - denorm_mask) & 0xFFu;
    } else {
        const uint32_t mant_odd = (u >> 20) & 1u;
        u += (uint32_t(7 - 127) << 23) + 0x7FFFFu + mant_odd;
        r = (u >> 20) & 0xFFu;
    }
    return r | (sign >> 24);
}

__device__ __forceinline__ float scale_of_amax(float amax) {
    const float s = __fdiv_rn(amax, 448.0f);
    return s > 0.0f ? s : 1.0f;
}

template <class T>
__global__ void finite_amax_kernel(const T* __restrict__ x, int64_t n, unsigned* __restrict__ amax_bits) {
    float m = 0.0f;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float v = fabsf(load_v(x, i));
        if (v <= FLT_MAX && v > m) m = v;  // NaN and inf fail the first test
    }
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    __shared__ float warp_max[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_max[warp] = m;
    __syncthreads();
    if (warp == 0) {
        m = lane < int(blockDim.x >> 5) ? warp_max[lane] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        if (lane == 0) atomicMax(amax_bits, __float_as_uint(m));
    }
}

template <class T>
__global__ void quantize_kernel(const T* __restrict__ x, int64_t n, const unsigned* __restrict__ amax_bits,
                                uint8_t* __restrict__ q, float* __restrict__ scale) {
    const float s = scale_of_amax(__uint_as_float(*amax_bits));
    if (blockIdx.x == 0 && threadIdx.x == 0) *scale = s;
    for (int64_t i = 4 * (blockIdx.x * int64_t(blockDim.x) + threadIdx.x); i < n; i += 4 * int64_t(gridDim.x) * blockDim.x) {
        if (i + 4 <= n) {  // q is 16-byte aligned and i a multiple of 4: one 4-byte store
            const uint32_t c = e4m3_code(__fdiv_rn(load_v(x, i), s)) | e4m3_code(__fdiv_rn(load_v(x, i + 1), s)) << 8 |
                               e4m3_code(__fdiv_rn(load_v(x, i + 2), s)) << 16 |
                               e4m3_code(__fdiv_rn(load_v(x, i + 3), s)) << 24;
            *reinterpret_cast<uint32_t*>(q + i) = c;
        } else {
            for (int64_t j = i; j < n; ++j) q[j] = uint8_t(e4m3_code(__fdiv_rn(load_v(x, j), s)));
        }
    }
}

template <class T>
void quantize_t(const T* x, int64_t n, uint8_t* q, float* scale, unsigned* amax_scratch, cudaStream_t stream) {
    CUDA_CHECK(cudaMemsetAsync(amax_scratch, 0, sizeof(unsigned), stream));
    if (n > 0) {
        const int blocks = int(std::min<int64_t>(div_up(n, 256 * 8), 1024));
        finite_amax_kernel<<<blocks, 256, 0, stream>>>(x, n, amax_scratch);
        CUDA_CHECK_LAUNCH();
    }
    // Also for n = 0: the scale (1) is still written.
    const int blocks = int(std::max<int64_t>(1, std::min<int64_t>(div_up(n, 256 * 4), 4096)));
    quantize_kernel<<<blocks, 256, 0, stream>>>(x, n, amax_scratch, q, scale);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_fp8_quantize(const void* x, DevType t, int64_t n, uint8_t* q, float* scale, unsigned* amax_scratch,
                         cudaStream_t stream) {
    switch (t) {
        case DevType::F32:
            quantize_t(static_cast<const float*>(x), n, q, scale, amax_scratch, stream);
            break;
        case DevType::BF16:
            quantize_t(static_cast<const __nv_bfloat16*>(x), n, q, scale, amax_scratch, stream);
            break;
        case DevType::F16:
            quantize_t(static_cast<const __half*>(x), n, q, scale, amax_scratch, stream);
            break;
        default:
            std::fprintf(stderr, "wanrt internal error: launch_fp8_quantize: input must be f32, bf16 or f16\n");
            std::abort();
    }
}

}  // namespace wanrt::cuda
