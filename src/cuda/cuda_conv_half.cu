// Operand kernels of the half-precision conv3d (cuda_conv.cpp): the input is rounded to f16/bf16
// while its cached frames are put in front (the one pass that replaces the f32 concatenation), and
// the output is widened back to f32 with the bias added (the pass the f32 path spends on the bias).
// Rows are frame planes: one grid row per (channel, frame), no per-element 64-bit division.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

namespace {

constexpr int kThreads = 256;

template <class H>
__device__ inline H to_half(float v);
template <>
__device__ inline __half to_half<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ inline __nv_bfloat16 to_half<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}
__device__ inline float to_float(__half v) { return __half2float(v); }
__device__ inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// out row r = c·(Tp + T) + t holds prefix[c, t] for t < Tp, else x[c, t − Tp]; rows of S values.
template <class H>
__global__ void concat_to_half_kernel(const float* __restrict__ prefix, int64_t Tp, const float* __restrict__ x,
                                      int64_t T, int64_t rows, int64_t S, H* __restrict__ out) {
    for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
        const int64_t c = r / (Tp + T), t = r % (Tp + T);
        const float* src = t < Tp ? prefix + (c * Tp + t) * S : x + (c * T + (t - Tp)) * S;
        H* dst = out + r * S;
        if (S % 4 == 0) {
            const int64_t n4 = S / 4;
            for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
                const float4 v = reinterpret_cast<const float4*>(src)[i];
                H h[4] = {to_half<H>(v.x), to_half<H>(v.y), to_half<H>(v.z), to_half<H>(v.w)};
                reinterpret_cast<uint2*>(dst)[i] = *reinterpret_cast<const uint2*>(h);
            }
        } else {
            for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < S; i += int64_t(gridDim.x) * blockDim.x)
                dst[i] = to_half<H>(src[i]);
        }
    }
}

template <class H>
__global__ void half_bias_to_f32_kernel(const H* __restrict__ yh, const float* __restrict__ bias, float* __restrict__ y,
                                        int64_t O, int64_t S) {
    for (int64_t o = blockIdx.y; o < O; o += gridDim.y) {
        const float b = bias ? bias[o] : 0.f;
        const H* src = yh + o * S;
        float* dst = y + o * S;
        if (S % 4 == 0) {
            const int64_t n4 = S / 4;
            for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
                const uint2 raw = reinterpret_cast<const uint2*>(src)[i];
                const H* h = reinterpret_cast<const H*>(&raw);
                reinterpret_cast<float4*>(dst)[i] =
                    make_float4(to_float(h[0]) + b, to_float(h[1]) + b, to_float(h[2]) + b, to_float(h[3]) + b);
            }
        } else {
            for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < S; i += int64_t(gridDim.x) * blockDim.x)
                dst[i] = to_float(src[i]) + b;
        }
    }
}

// Enough blocks per row to cover it in one sweep (capped), rows spread over grid.y.
dim3 plane_grid(int64_t rows, int64_t S) {
    const int64_t per_row = S % 4 == 0 ? S / 4 : S;
    const int64_t bx = std::max<int64_t>(1, std::min<int64_t>((per_row + kThreads - 1) / kThreads, std::max<int64_t>(1, 16384 / std::max<int64_t>(rows, 1))));
    return dim3(unsigned(bx), unsigned(std::min<int64_t>(rows, 65535)));
}

}  // namespace

void launch_concat_to_half(const float* prefix, int64_t Tp, const float* x, int64_t T, int64_t C, int64_t S,
                           void* out, DevType dt, cudaStream_t stream) {
    const int64_t rows = C * (Tp + T);
    if (rows == 0 || S == 0) return;
    const dim3 grid = plane_grid(rows, S);
    if (dt == DevType::F16)
        concat_to_half_kernel<<<grid, kThreads, 0, stream>>>(prefix, Tp, x, T, rows, S, static_cast<__half*>(out));
    else
        concat_to_half_kernel<<<grid, kThreads, 0, stream>>>(prefix, Tp, x, T, rows, S, static_cast<__nv_bfloat16*>(out));
    CUDA_CHECK_LAUNCH();
}

void launch_half_bias_to_f32(const void* yh, DevType dt, const float* bias, float* y, int64_t O, int64_t S,
                             cudaStream_t stream) {
    if (O == 0 || S == 0) return;
    const dim3 grid = plane_grid(O, S);
    if (dt == DevType::F16)
        half_bias_to_f32_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __half*>(yh), bias, y, O, S);
    else
        half_bias_to_f32_kernel<<<grid, kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(yh), bias, y, O, S);
    CUDA_CHECK_LAUNCH();
}

}  // namespace wanrt::cuda
