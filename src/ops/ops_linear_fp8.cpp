// Front-ends of the FP8 ops (ops/linear_fp8.h): checks, output allocation, dispatch.
#include "ops/linear_fp8.h"

#include <cstdlib>
#include <string>

namespace wanrt::ops {

bool fp8_fast_accum() {
    static const bool on = [] {
        const char* e = std::getenv("WANRT_FP8_FAST_ACCUM");
        return !(e && std::string(e) == "0");
    }();
    return on;
}

Fp8Tensor quantize_fp8(const Tensor& x_in) {
    if (!x_in.defined()) fail("quantize_fp8", "input tensor is undefined");
    Backend& be = *x_in.backend();
    const DType t = x_in.dtype();
    if (t != DType::F32 && t != DType::BF16 && t != DType::F16)
        fail("quantize_fp8", "input must be f32, bf16 or f16, got ", x_in.describe());
    if (!be.supports(QuantizeFp8Args::kName, t, DType::F8E4M3))
        fail("quantize_fp8", dtype_name(t), " input is not supported on ", be.name(),
             "; FP8 needs the CPU or a CUDA build");
    const Tensor x = contiguous(x_in);
    Fp8Tensor out{be.empty(DType::F8E4M3, x.shape()), be.empty(DType::F32, {1})};
    dispatch(be, QuantizeFp8Args{x, out.q, out.scale}, {t, DType::F8E4M3}, 0);
    return out;
}

Tensor linear_fp8(const Tensor& x_in, const Tensor& w, const Tensor& w_scale, const Tensor* bias, Activation act,
                  DType out_dtype, bool fast_accum) {
    if (!x_in.defined() || !w.defined() || !w_scale.defined()) fail("linear_fp8", "an input tensor is undefined");
    Backend& be = *x_in.backend();
    if (w.backend() != &be || w_scale.backend() != &be || (bias && bias->backend() != &be))
        fail("linear_fp8", "inputs live on different backends; move them to one device first");
    if (x_in.dtype() != DType::F32 && x_in.dtype() != DType::BF16)
        fail("linear_fp8", "input must be f32 or bf16, got ", x_in.describe());
    if (out_dtype != DType::F32 && out_dtype != DType::BF16)
        fail("linear_fp8", "output dtype must be f32 or bf16, got ", dtype_name(out_dtype));
    if (w.ndim() != 2 || w.dtype() != DType::F8E4M3 || !w.is_contiguous())
        fail("linear_fp8", "weight must be a contiguous F8E4M3 [N, K] (ops::quantize_fp8), got ", w.describe());
    if (w_scale.dtype() != DType::F32 || w_scale.numel() != 1)
        fail("linear_fp8", "weight scale must be f32 [1], got ", w_scale.describe());
    const int64_t N = w.size(0), K = w.size(1);
    if (x_in.ndim() < 1 || x_in.size(-1) != K)
        fail("linear_fp8", "input ", x_in.describe(), " does not match weight ", w.describe(), " (last dims differ)");
    if (K % 16 || N % 16)
        fail("linear_fp8", "weight ", w.describe(), ": FP8 GEMMs need K and N multiples of 16 (16-byte rows); ",
             "keep this layer in bf16/f32");
    if (bias && (bias->ndim() != 1 || bias->size(0) != N || bias->dtype() != DType::F32))
        fail("linear_fp8", "bias must be f32[", N, "], got ", bias->describe());
    if (!be.supports(LinearFp8Args::kName, x_in.dtype(), DType::F8E4M3))
        fail("linear_fp8", dtype_name(x_in.dtype()), " input is not supported on ", be.name(),
             "; FP8 linears run on the CPU (emulated) and on CUDA");
    const Tensor x = contiguous(x_in);
    Shape out = x.shape();
    out.back() = N;
    Tensor y = be.empty(out_dtype, out);
    if (y.numel() == 0) return y;
    LinearFp8Args a{x, w, w_scale, bias, act, fast_accum, y};
    dispatch(be, a, {x.dtype(), DType::F8E4M3}, 2.0 * double(y.numel()) * double(K));
    return y;
}

}  // namespace wanrt::ops
