// FP8 block linears for the DiT (issues 15/16: `--linear_dtype fp8`). The block linears (self- and
// cross-attention q, k, v, o, the I2V image k/v, ffn.0 and ffn.2: ≈ 99% of the linear FLOPs) are
// quantized once, after loading (and after LoRA merging), to e4m3 with a per-tensor scale
// (ops/linear_fp8.h), and run as W8A8 FP8 GEMMs: cuBLASLt on sm_89+ GPUs, the bit-exact emulation
// on the CPU (slow; for tests). The embeddings, time projection and head keep their dtype (tiny,
// and the head's output is the velocity itself). The bf16/f32 path stays the default.
#pragma once

#include <string>

#include "core/dtype.h"

namespace wanrt {

class DitModel;
struct DitConfig;
struct DitWeights;

// `--linear_dtype`: "bf16" (the default: linears in the backend's own precision, bf16 tensor cores
// on CUDA, f32 on the CPU) or "fp8". Anything else is a one-line error naming the flag.
bool parse_linear_dtype_fp8(const std::string& flag, const std::string& value);

// Quantizes the block linears of w in place (the unquantized weights are freed); weights already in
// a block-quantized dtype (a GGUF DiT's Q8_0 … Q6_K, core/dtype.h) are left as they are. Fails with one
// line naming the layer when a shape is not FP8-legal (K and N multiples of 16). They run with
// ops::fp8_fast_accum() (cuBLASLt's fast accumulation unless WANRT_FP8_FAST_ACCUM=0).
void quantize_dit_linears_fp8(DitWeights& w, const DitConfig& c);
void quantize_dit_linears_fp8(DitModel& model);

}  // namespace wanrt
