// Launchers of the FP8 ops' device code (cuda_fp8.cu; the GEMM is GemmEngine::run_fp8 in
// cuda_gemm.cu). Host side and registration: cuda_linear_fp8_ops.cpp.
#pragma once

#include <cstdint>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

// Per-tensor e4m3fn quantization of x (n contiguous elements of f32, bf16 or f16) by the rule of
// ops/linear_fp8.h: q ← the codes (16-byte aligned), *scale ← s, both on the device, no host sync.
// amax_scratch: one device u32 (overwritten).
void launch_fp8_quantize(const void* x, DevType t, int64_t n, uint8_t* q, float* scale, unsigned* amax_scratch,
                         cudaStream_t stream);

}  // namespace wanrt::cuda
