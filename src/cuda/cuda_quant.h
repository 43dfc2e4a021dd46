// Launchers of the block-quantized weights' device code (cuda_quant.cu). Host side, registration and
// the design note (why dequantize-then-GEMM): cuda_linear_quant.cpp.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "cuda/cuda_common.h"

namespace wanrt::cuda {

// Whether launch_dequantize_bf16 decodes t: the block types of core/dtype.h (Q8_0, Q4_0, Q4_K, Q5_K,
// Q6_K).
bool dequantize_supported(DType t);

// w: `rows` rows of K elements of block type t (row r at byte r · dtype_bytes(t, K), ggml's layout,
// io/gguf_quants.h; K a multiple of t's block, any byte alignment) → out bf16 [rows, K] (contiguous,
// 16-byte aligned). Each value is the f32 cpu::dequantize_rows (cpu/qmatmul.h) computes, s·q + o with
// one rounding and no contraction, rounded once to bf16 (round to nearest even, as f32_to_bf16).
void launch_dequantize_bf16(DType t, const void* w, int64_t rows, int64_t K, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace wanrt::cuda
