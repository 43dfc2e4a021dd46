// The linear op on the GPU: bf16 staging of x (kept for the next linear of the same x), the cached
// bf16 weight and the cuBLASLt GEMM of cuda_gemm.cu.
//
// Kernel files (.cu) are compiled by nvcc as C++17 and cannot include ops/ops.h (C++20), so each
// op family's host side (checks, launch, wrote(), RegisterKernel) lives in a .cpp like this one.
#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

using namespace cuda;

// y = act(x·wᵀ + bias): x f32 (staged to bf16, the staging kept for the next linear of the same x)
// or bf16 (used in place), w converted once to bf16 (cached), y f32 or bf16.
void linear_cuda(CudaBackend& be, const LinearArgs& a) {
    const Tensor &x = a.x, &w = a.w, &y = a.y;
    be.check_here(x, "linear");
    be.check_here(y, "linear");
    if (x.dtype() != DType::F32 && x.dtype() != DType::BF16) be.unsupported_dtype("linear", x.dtype());
    if (y.dtype() != DType::F32 && y.dtype() != DType::BF16) be.unsupported_dtype("linear output", y.dtype());
    const int64_t K = x.size(-1), N = w.size(0), M = K > 0 ? x.numel() / K : y.numel() / N;
    const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : be.staged_bf16(x);
    const __nv_bfloat16* wb = be.weight_bf16(w);
    be.gemm().run(xb, wb, a.bias ? a.bias->data<float>() : nullptr, int(a.act), y.raw(), M, N, K,
                  y.dtype() == DType::BF16);
    be.wrote(y);
}

// x f32 or bf16 (a bf16 y feeds the next linear without staging) × w f32, bf16 or f16.
const RegisterKernel<LinearArgs, CudaBackend> reg_linear(
    {{DType::F32, DType::F32}, {DType::F32, DType::BF16}, {DType::F32, DType::F16},
     {DType::BF16, DType::F32}, {DType::BF16, DType::BF16}, {DType::BF16, DType::F16}},
    &linear_cuda);

}  // namespace

}  // namespace wanrt
