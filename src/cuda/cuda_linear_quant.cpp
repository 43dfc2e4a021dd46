// The linear op on block-quantized weights on the GPU (core/dtype.h: Q8_0, Q4_0, Q4_K, Q5_K, Q6_K,
// kept as a GGUF's bytes: CudaBackend::holds_block_types()). Each call decodes W [N, K] into a bf16
// scratch buffer (cuda_quant.cu) and runs the bf16 GEMM of the ordinary linear (cuda_gemm.cu) on it,
// with the same staging of x and the same bias / activation / bf16-output epilogue.
//
// Why dequantize-then-GEMM and not a fused kernel (Marlin-style: the GEMM's mainloop unpacks the
// 4-bit tiles in registers): the DiT's linears see thousands of tokens (1.3B 480p 81 frames: M =
// 32,760; 14B 720p: 75,600), so they are compute-bound: 2·M·N·K flops against the decode pass's
// N·K·(0.56 … 1.06 + 2) bytes (read the blocks, write bf16; the GEMM then reads the bf16 once more,
// as it does for a bf16 weight). On an H100 (~700 bf16 TFLOP/s dense, ~3 TB/s) that pass is
// ≈ 2.6·N·K / 3e12 s against 2·M·N·K / 7e14 s: 0.9% of the GEMM at M = 32,760, 0.4% at 75,600. A
// fused kernel would save that <1% and cost us a second GEMM implementation to tune. What the
// scheme buys is memory: resident weights at 4.5–8.5 bits instead of 16, and one scratch of the
// largest N·K in bf16 (the caching allocator hands the same block back every call: its size only
// depends on the weight's shape).
// Where a fused kernel would pay: few tokens per call (the causal/streaming DiT's chunks, M of a few
// hundred or less), where the GEMM is bound by reading W and the decode pass's write and re-read of
// 2 bytes per weight costs several times the 0.56-byte quantized read a fused kernel would do.
#include "core/error.h"
#include "cuda/cuda_backend.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "cuda/cuda_quant.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

using namespace cuda;

// W [N, K] of a block type decoded into a new bf16 buffer on be's stream.
std::shared_ptr<Buffer> dequantized(CudaBackend& be, const Tensor& w) {
    WANRT_CHECK(w.ndim() == 2 && w.is_contiguous() && dequantize_supported(w.dtype()), "cuda",
                "dequantize: ", w.describe(),
                " is not a contiguous [N, K] weight of a block type (q8_0, q4_0, q4_k, "
                "q5_k, q6_k)");
    const int64_t N = w.size(0), K = w.size(1);
    auto buf = be.alloc(size_t(N * K) * 2);
    launch_dequantize_bf16(w.dtype(), w.raw(), N, K, static_cast<__nv_bfloat16*>(buf->ptr()), be.stream());
    return buf;
}

// y = act(x·Wᵀ + bias): x f32 (staged to bf16 as the dense linear does) or bf16, W decoded per call
// into a scratch buffer that is handed back to the allocator once the GEMM is queued (stream order
// keeps it alive for the GEMM), y f32 or bf16.
void linear_q_cuda(CudaBackend& be, const LinearArgs& a) {
    const Tensor &x = a.x, &w = a.w, &y = a.y;
    be.check_here(x, "linear");
    be.check_here(w, "linear");
    be.check_here(y, "linear");
    if (x.dtype() != DType::F32 && x.dtype() != DType::BF16) be.unsupported_dtype("linear", x.dtype());
    if (y.dtype() != DType::F32 && y.dtype() != DType::BF16) be.unsupported_dtype("linear output", y.dtype());
    const int64_t K = x.size(-1), N = w.size(0), M = x.numel() / K;
    const __nv_bfloat16* xb = x.dtype() == DType::BF16 ? x.data<__nv_bfloat16>() : be.staged_bf16(x);
    const std::shared_ptr<Buffer> wb = dequantized(be, w);
    be.gemm().run(xb, static_cast<const __nv_bfloat16*>(wb->ptr()), a.bias ? a.bias->data<float>() : nullptr,
                  int(a.act), y.raw(), M, N, K, y.dtype() == DType::BF16);
    be.wrote(y);
}

constexpr DType F32 = DType::F32, BF16 = DType::BF16;
// x f32 or bf16 (the bf16 chain, ops::linear_chain_dtype) × every block type.
const RegisterKernel<LinearArgs, CudaBackend> reg_linear_q({{F32, DType::Q8_0},
                                                            {F32, DType::Q4_0},
                                                            {F32, DType::Q4_K},
                                                            {F32, DType::Q5_K},
                                                            {F32, DType::Q6_K},
                                                            {BF16, DType::Q8_0},
                                                            {BF16, DType::Q4_0},
                                                            {BF16, DType::Q4_K},
                                                            {BF16, DType::Q5_K},
                                                            {BF16, DType::Q6_K}},
                                                           &linear_q_cuda);

}  // namespace

Tensor cuda_dequantize_bf16(const Tensor& w) {
    auto* be = dynamic_cast<CudaBackend*>(w.defined() ? w.backend() : nullptr);
    WANRT_CHECK(be != nullptr, "cuda", "dequantize: ", w.defined() ? w.describe() : std::string("(undefined)"),
                " is not a tensor of a CUDA backend");
    Tensor out(dequantized(*be, w), DType::BF16, w.shape());
    be->wrote(out);
    return out;
}

}  // namespace wanrt
