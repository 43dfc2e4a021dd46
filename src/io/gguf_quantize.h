// Quantizers for the GGML types a Wan GGUF holds: float32 rows in, GGUF block bytes out (the layouts
// of io/gguf_quants.h, whose dequantizers invert them).
//
// References, bit for bit (tests/test_convert.cpp against tests/fixtures/quantize_ref.safetensors, made
// by tests/fixtures/make_quantize_ref.py):
//   F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1   gguf-py's numpy quantizers (gguf/quants.py), which
//       ComfyUI-GGUF's convert.py runs and which reproduce ggml's C quantize_row_*_ref (Q4_0 and Q5_0
//       round x·(1/d) + 8.5 in float64 and then to float32, standing in for the FMA the C code gets);
//   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K              ggml's quantize_row_q*_K_ref (ggml-quants.c; llama-quantize
//       calls them when no importance matrix is given), evaluated as ISO C does: no fused multiply-add.
// F32 is a copy. f16 scales round to nearest even (subnormals kept), as numpy's astype and ggml do.
//
// One known difference: in a Q4_1 / Q5_1 block whose max or min is a tie between +0 and −0 (a block of
// zeros of mixed sign), numpy's vectorised min/max may pick the other zero than the first-wins rule
// here, so the f16 d or m can differ in its sign bit; every value decodes the same (0).
//
// Inputs must be finite (the K-quant searches assume it; callers check and name the tensor). Pure
// byte-level functions: no tensors, no runtime dtypes, safe to call from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>

#include "io/gguf_quants.h"

namespace wanrt {

// True for the types gguf_quantize() writes.
bool gguf_can_quantize(GgmlType type);

// Bytes of n elements of `type` (n a multiple of the type's block elements).
size_t gguf_type_bytes(GgmlType type, int64_t n);

// Quantizes n floats (a multiple of the type's block elements: 32 for Q4_0 … Q8_0, 256 for the
// K-quants, 1 for F32/F16/BF16) into gguf_type_bytes(type, n) bytes at dst. Rows are independent
// sequences of blocks, so a tensor is quantized as one call over all its elements or row by row
// with the same result.
void gguf_quantize(GgmlType type, const float* src, int64_t n, void* dst);

// f32 → f16 bits as numpy's astype(float16): round to nearest even, subnormals, overflow to inf,
// NaN kept NaN with its top payload bits.
uint16_t gguf_f32_to_f16(float f);

}  // namespace wanrt
