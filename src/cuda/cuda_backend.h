// The CUDA backend: one device, one stream, device buffers from a caching allocator.
//
// Contract beyond core/backend.h:
//  - Ops are asynchronous on the backend's stream; download() and synchronize() wait for it.
//  - Memory: alloc() never calls cudaMalloc for a size it has seen freed before (blocks are cached
//    by rounded size and reused in stream order); the cache is released only if a cudaMalloc fails.
//  - Precision (spec §1.10): activations stay f32. linear() rounds x to bf16 and multiplies it
//    with a bf16 copy of w, accumulating in fp32, output f32. An f32/f16 weight is converted to
//    bf16 on the device the first time it is used and the copy is cached, keyed by the weight's
//    buffer and invalidated when that buffer is written again (upload or op output), so weights
//    uploaded once are converted once; a bf16 weight is used in place. attention() runs in bf16
//    with fp32 softmax for head dims 64 and 128 (fp32 kernel for other dims and for rel_bias);
//    norms, RoPE, modulation and residuals run in fp32. Unmasked attention runs on cuDNN's fused
//    SDPA engine when cuDNN has one for the shape, else on our flash kernel.
//  - conv3d runs through cuDNN (fp32 tensors, TF32 tensor cores allowed, as PyTorch's default),
//    with a direct fp32 kernel as fallback; channel_rms_norm and upsample2x are fp32 kernels.
#pragma once

#include <cstddef>
#include <memory>

#include "core/backend.h"

namespace wanrt {

// Number of CUDA devices the driver reports (0 if there is no driver or no device; never throws).
int cuda_device_count();

// The backend for device `device` (0-based). Throws wanrt::Error if the device does not exist.
std::shared_ptr<Backend> make_cuda_backend(int device);

// Device memory held by a CUDA backend's allocator, in bytes: in use by live tensors, the peak of
// that since the last reset, and reserved from the driver (in use + cached). Zero for other backends.
struct CudaMemoryStats {
    size_t in_use = 0, peak = 0, reserved = 0;
};
CudaMemoryStats cuda_memory_stats(const Backend& backend);
void cuda_reset_peak_memory(Backend& backend);

}  // namespace wanrt
