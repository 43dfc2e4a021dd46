// A minimal reference quantizer to the block types (core/dtype.h: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K) in
// ggml's byte layout, for tests and benchmarks (synthetic quantized weights). Simple per-block
// min/max rules, not llama.cpp's searches; replaced by the converter's quantizer when it lands.
#pragma once

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace wanrt::testing {

// n values (a multiple of the block size) → n / block_elems blocks of t.
std::vector<uint8_t> ref_quantize(DType t, const float* x, int64_t n);

}  // namespace wanrt::testing
