// W8A8 FP8 linear layers (issues 15/16): weights quantized once to float8_e4m3fn with one f32 scale
// per tensor, activations quantized on the fly the same way, the GEMM on FP8 tensor cores (CUDA:
// cuBLASLt on sm_89+) with f32 accumulation, then the scales, a bf16 bias and the activation.
//
// The quantization rule, shared bit for bit by every backend and by the test references:
//   amax = max |v| over the finite elements (NaN and ±inf do not count; 0 for none),
//   s    = amax / 448 in f32 (448 is e4m3fn's largest finite value), or 1 where that is not > 0,
//   q    = e4m3fn(v / s) with v / s an IEEE f32 division and torch's round-to-nearest-even encoder
//          (core/fp8.h; |v / s| ≤ 448 by construction, so nothing saturates; NaN and ±inf become NaN).
// The value q stands for is decode(q) · s.
//
// linear_fp8 computes y = act(decode(qx)·decode(qw)ᵀ · (sx·sw) + bf16(bias)): the bias is rounded to
// bf16 because cuBLASLt's FP8 kernels take a bf16 bias vector (for f32 and bf16 outputs alike), and
// every backend rounds it the same way. Per-tensor scales (not per-channel or per-token) because they
// are what Hopper's cuBLASLt applies as plain scalars inside the GEMM; the error this costs on the
// DiT is measured in docs/perf.md.
//
// Legal shapes: K and N multiples of 16 (cuBLASLt's FP8 kernels need 16-byte leading dimensions;
// every backend refuses the same shapes, so a model runs or fails identically everywhere), any M.
#pragma once

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

struct QuantizeFp8Args {  // {x dtype, F8E4M3}; x contiguous f32/bf16/f16, q F8E4M3 of x's shape, scale f32 [1]
    static constexpr const char* kName = "quantize_fp8";
    Tensor x, q, scale;
};

struct LinearFp8Args {  // {x dtype, F8E4M3}; x [M, K] contiguous f32 or bf16, w [N, K] F8E4M3, w_scale f32 [1]
    static constexpr const char* kName = "linear_fp8";
    Tensor x, w, w_scale;
    const Tensor* bias = nullptr;  // f32 [N] (rounded to bf16 by the kernel) or null
    Activation act = Activation::None;
    bool fast_accum = false;  // CUDA: cuBLASLt's FP8 fast accumulation (no periodic promotion to f32)
    Tensor y;                 // [M, N] f32 or bf16
};

// A weight quantized by quantize_fp8: q F8E4M3 [N, K], scale f32 [1] on the same backend.
struct Fp8Tensor {
    Tensor q, scale;
};

// The rule above, on the host (the CPU kernels and the test references use these).
inline float fp8_scale_of_amax(float amax) {
    const float s = amax / 448.0f;
    return s > 0.0f ? s : 1.0f;
}

namespace ops {

// Whether models run their FP8 linears with fast accumulation: yes unless the environment sets
// WANRT_FP8_FAST_ACCUM=0 (read once). Fast accumulation skips cuBLASLt's periodic promotion of the
// FP8 tensor-core sums to f32: faster, at an error the op table's fast-accumulation rows bound.
bool fp8_fast_accum();

// x f32, bf16 or f16 (any shape, any strides) → its per-tensor e4m3fn quantization.
Fp8Tensor quantize_fp8(const Tensor& x);

// x [..., K] f32 or bf16 (made contiguous), w [N, K] F8E4M3 with w_scale f32 [1] (quantize_fp8 of
// the weight), bias f32 [N] or null → [..., N] in out_dtype (f32 or bf16). fast_accum: see the args.
Tensor linear_fp8(const Tensor& x, const Tensor& w, const Tensor& w_scale, const Tensor* bias = nullptr,
                  Activation act = Activation::None, DType out_dtype = DType::F32, bool fast_accum = false);

}  // namespace ops
}  // namespace wanrt
