// The FP8 ops (ops/linear_fp8.h) on the GPU: quantize_fp8 (weights at load, activations inside
// linear_fp8) and linear_fp8 through cuBLASLt's FP8 GEMM (GemmEngine::run_fp8, cuda_gemm.cu).
// The activation's quantization is kept for the next linear of the same x (q, k, v), as the bf16
// path keeps its staging; the bias is the backend's cached bf16 copy of the f32 bias.
#include <string>

#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_fp8.h"
#include "ops/linear_fp8.h"

namespace wanrt {

namespace {

using namespace cuda;

// FP8 tensor cores: sm_89 (Ada) and sm_90 (Hopper) and later.
void need_fp8_device(CudaBackend& be, const char* op) {
    const cudaDeviceProp& p = be.props();
    if (p.major * 10 + p.minor < 89)
        fail(op, be.name(), " is sm_", p.major, p.minor,
             ", which has no FP8 tensor cores (sm_89+ needed); use bf16 linears (--linear_dtype bf16)");
}

size_t round16(size_t n) { return (n + 15) / 16 * 16; }

void quantize_fp8_cuda(CudaBackend& be, const QuantizeFp8Args& a) {
    be.check_here(a.x, "quantize_fp8");
    be.check_here(a.q, "quantize_fp8");
    be.check_here(a.scale, "quantize_fp8");
    auto scratch = be.alloc(16);
    launch_fp8_quantize(a.x.raw(), dev_type(a.x.dtype()), a.x.numel(), a.q.data<uint8_t>(), a.scale.data<float>(),
                        static_cast<unsigned*>(scratch->ptr()), be.stream());
    be.wrote(a.q);
    be.wrote(a.scale);
}

// x's codes and scale: the kept ones when x is the last activation quantized, else a new quantization.
std::pair<const uint8_t*, const float*> quantized_activation(CudaBackend& be, const Tensor& x) {
    CudaBackend::Fp8Staged& st = be.fp8_staged();
    const auto src = st.src.lock();
    if (!(st.q && src.get() == x.buffer().get() && st.offset == x.offset_bytes() && st.numel == x.numel() &&
          st.version == be.version_of(x))) {
        st = {};
        CudaBackend::Fp8Staged s;
        s.src = x.buffer();
        s.offset = x.offset_bytes();
        s.numel = x.numel();
        s.version = be.version_of(x);
        s.scale_offset = round16(size_t(x.numel()));
        s.q = be.alloc(s.scale_offset + 16);  // codes, the scale, and the absmax scratch after it
        char* base = static_cast<char*>(s.q->ptr());
        launch_fp8_quantize(x.raw(), dev_type(x.dtype()), x.numel(), reinterpret_cast<uint8_t*>(base),
                            reinterpret_cast<float*>(base + s.scale_offset),
                            reinterpret_cast<unsigned*>(base + s.scale_offset + 4), be.stream());
        st = std::move(s);
    }
    const char* base = static_cast<const char*>(st.q->ptr());
    return {reinterpret_cast<const uint8_t*>(base), reinterpret_cast<const float*>(base + st.scale_offset)};
}

void linear_fp8_cuda(CudaBackend& be, const LinearFp8Args& a) {
    const Tensor &x = a.x, &w = a.w, &y = a.y;
    for (const Tensor* t : {&x, &w, &a.w_scale, &y}) be.check_here(*t, "linear_fp8");
    need_fp8_device(be, "linear_fp8");
    const int64_t K = x.size(-1), N = w.size(0), M = x.numel() / K;
    const auto [x8, x_scale] = quantized_activation(be, x);
    const __nv_bfloat16* bias = a.bias ? be.weight_bf16(*a.bias) : nullptr;
    std::string why;
    if (!be.gemm().run_fp8(x8, x_scale, w.data<uint8_t>(), a.w_scale.data<float>(), bias, int(a.act), y.raw(), M, N, K,
                           y.dtype() == DType::BF16, a.fast_accum, &why))
        fail("linear_fp8", "cuBLASLt has no FP8 GEMM for [", M, ", ", K, "] x [", N, ", ", K, "]ᵀ → ",
             dtype_name(y.dtype()), " on ", be.name(), " (", why, "); use --linear_dtype bf16");
    be.wrote(y);
}

const RegisterKernel<QuantizeFp8Args, CudaBackend> reg_quantize(
    {{DType::F32, DType::F8E4M3}, {DType::BF16, DType::F8E4M3}, {DType::F16, DType::F8E4M3}}, &quantize_fp8_cuda);
const RegisterKernel<LinearFp8Args, CudaBackend> reg_linear_fp8({{DType::F32, DType::F8E4M3}, {DType::BF16, DType::F8E4M3}},
                                                                &linear_fp8_cuda);

}  // namespace

}  // namespace wanrt
