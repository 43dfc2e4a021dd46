// rgb8_to_video / video_to_rgb8 (ops/rgb8.h) on the GPU: one thread per pixel, its three channels.
// Each float step is an explicit round-to-nearest intrinsic, so nvcc cannot contract or reorder it
// (an FMA, a reciprocal for the division): the bytes equal the host functions' (the CPU kernels),
// which the op table checks exactly.
#include "cuda/cuda_backend_impl.h"
#include "ops/rgb8.h"

namespace wanrt {

namespace {

// float(v) / 255 · 2 − 1, as rgb24_frame_to_planes.
__device__ __forceinline__ float byte_to_unit(unsigned char v) {
    return __fadd_rn(__fmul_rn(__fdiv_rn(float(v), 255.0f), 2.0f), -1.0f);
}

// NaN → −1, clamp to [−1, 1], (x + 1) / 2, · 255, truncated, as planes_to_rgb24_frame.
__device__ __forceinline__ unsigned char unit_to_byte(float x) {
    x = isnan(x) ? -1.0f : (x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x));
    x = __fdiv_rn(__fadd_rn(x, 1.0f), 2.0f);
    x = __fmul_rn(x, 255.0f);
    return static_cast<unsigned char>(__float2uint_rz(x));  // x in [0, 255]
}

// rgb [px, 3] (px = n·H·W pixels) → video [3, px] (the [3, n, H, W] planes).
__global__ void rgb8_to_video_kernel(const unsigned char* __restrict__ rgb, float* __restrict__ video, int64_t px) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < px; i += stride) {
        video[i] = byte_to_unit(rgb[3 * i]);
        video[px + i] = byte_to_unit(rgb[3 * i + 1]);
        video[2 * px + i] = byte_to_unit(rgb[3 * i + 2]);
    }
}

__global__ void video_to_rgb8_kernel(const float* __restrict__ video, unsigned char* __restrict__ rgb, int64_t px) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < px; i += stride) {
        rgb[3 * i] = unit_to_byte(video[i]);
        rgb[3 * i + 1] = unit_to_byte(video[px + i]);
        rgb[3 * i + 2] = unit_to_byte(video[2 * px + i]);
    }
}

int blocks_for(int64_t px, int threads) {
    return int(std::min<int64_t>((px + threads - 1) / threads, 65536));
}

void rgb8_to_video_cuda(CudaBackend& be, const Rgb8ToVideoArgs& a) {
    be.check_here(a.rgb, "rgb8_to_video");
    const int64_t px = a.rgb.numel() / 3;
    const int threads = 256;
    rgb8_to_video_kernel<<<blocks_for(px, threads), threads, 0, be.stream()>>>(a.rgb.data<uint8_t>(),
                                                                              a.video.data<float>(), px);
    CUDA_CHECK_LAUNCH();
    be.wrote(a.video);
}

void video_to_rgb8_cuda(CudaBackend& be, const VideoToRgb8Args& a) {
    be.check_here(a.video, "video_to_rgb8");
    const int64_t px = a.video.numel() / 3;
    const int threads = 256;
    video_to_rgb8_kernel<<<blocks_for(px, threads), threads, 0, be.stream()>>>(a.video.data<float>(),
                                                                              a.rgb.data<uint8_t>(), px);
    CUDA_CHECK_LAUNCH();
    be.wrote(a.rgb);
}

const RegisterKernel<Rgb8ToVideoArgs, CudaBackend> reg_in({{DType::U8, DType::F32}}, &rgb8_to_video_cuda);
const RegisterKernel<VideoToRgb8Args, CudaBackend> reg_out({{DType::F32, DType::U8}}, &video_to_rgb8_cuda);

}  // namespace

}  // namespace wanrt
