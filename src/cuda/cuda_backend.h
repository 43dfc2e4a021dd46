// The CUDA backend: one device, one stream, device buffers from a caching allocator. Its kernels
// register with the op registry per family file (cuda_*_ops.cpp, cuda_conv.cpp);
// the class is in cuda_backend_impl.h, for those files only. Memory statistics come from
// Backend::memory_stats(), NVTX ranges ("wanrt::<op>") from Backend::trace_push/trace_pop.
//
// Contract beyond core/backend.h:
//  - Ops are asynchronous on the backend's stream; download() and synchronize() wait for it.
//  - Memory: alloc() never calls cudaMalloc for a size it has seen freed before (blocks are cached
//    by rounded size and reused in stream order); the cache is released only if a cudaMalloc fails.
//  - Precision (docs/wan21.md §1.10): activations stay f32. linear() rounds x to bf16 and multiplies it
//    with a bf16 copy of w, accumulating in fp32, output f32. An f32/f16 weight is converted to
//    bf16 on the device the first time it is used and the copy is cached, keyed by the weight's
//    buffer and invalidated when that buffer is written again (upload or op output), so weights
//    uploaded once are converted once; a bf16 weight is used in place. attention() runs in bf16
//    with fp32 softmax for head dims 64 and 128, unmasked 72–120 (multiples of 8: the CLIP's 80,
//    cuDNN only) and > 128 (bf16 GEMMs); fp32 kernels for smaller dims and the rest;
//    norms, RoPE, modulation and residuals run in fp32. Unmasked attention runs on cuDNN's fused
//    SDPA engine when cuDNN has one for the shape, else on our flash kernel.
//  - Block-quantized linear weights (a GGUF DiT's Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) stay on the device
//    as their bytes (holds_block_types); linear decodes W to a bf16 scratch each call and runs the
//    bf16 GEMM on it (cuda_linear_quant.cpp says why not a fused kernel).
//  - conv3d runs through cuDNN (fp32 tensors, TF32 tensor cores allowed, as PyTorch's default),
//    with a direct fp32 kernel as fallback; channel_rms_norm and upsample2x run on f32 or, for the
//    VAEs' half activations, f16/bf16 tensors (cuda_half_act.cu).
#pragma once

#include <cstddef>
#include <memory>

#include "core/backend.h"

namespace wanrt {

// Number of CUDA devices the driver reports (0 if there is no driver or no device; never throws).
int cuda_device_count();

// The backend for device `device` (0-based). Throws wanrt::Error if the device does not exist.
std::shared_ptr<Backend> make_cuda_backend(int device);

// A block-quantized weight [N, K] (core/dtype.h: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) of a CUDA backend
// decoded on the device into a new bf16 [N, K]: exactly what linear multiplies (cuda_linear_quant.cpp),
// each element cpu::dequantize_rows's f32 value rounded once to bf16. For tests and tools; throws
// for a tensor of another backend or dtype.
Tensor cuda_dequantize_bf16(const Tensor& w);

}  // namespace wanrt
