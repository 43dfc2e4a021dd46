// Half-precision activations on the GPU (cuda_half_act.cu): the VAEs' f16/bf16 path keeps its
// activations in the conv weights' dtype between convs, so each conv reads and writes 2 bytes per
// element instead of widening to f32 and back around every cuDNN call. These launchers serve the
// ops that run between those convs; each computes in f32 registers and rounds once.
#pragma once

#include <cstdint>

#include "cuda/cuda_common.h"

namespace wanrt::cuda {

// y [O, S] (f16 or bf16, as dt) += bias[o] (f32), in place; one rounding.
void launch_half_bias_inplace(void* y, DevType dt, const float* bias, int64_t O, int64_t S, cudaStream_t stream);
// Channels last: y [S, O] (f32, f16 or bf16, as dt) += bias[o] (f32), in place; one rounding.
void launch_bias_last_inplace(void* y, DevType dt, const float* bias, int64_t S, int64_t O, cudaStream_t stream);
// Channels last nearest upsampling: x [T, H, W, C] → y [T, 2H, 2W, C], elem_bytes 2 or 4 (values only move).
void launch_upsample2x_last(const void* x, void* y, int elem_bytes, int64_t T, int64_t H, int64_t W, int64_t C,
                            cudaStream_t stream);

}  // namespace wanrt::cuda
