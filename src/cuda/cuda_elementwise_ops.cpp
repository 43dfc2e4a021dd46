// The elementwise ops on the GPU (copy, fill, lincomb, unary, binary, patchify, unpatchify,
// embedding): argument checks, write versions and registration; the kernels are in
// cuda_elementwise.cu.
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

void copy_cuda(CudaBackend& be, const CopyArgs& a) {
    be.copy_tensor(a.src, a.dst);
}

void fill_cuda(CudaBackend& be, const FillArgs& a) {
    const Tensor& y = a.y;
    be.check_here(y, "fill");
    WANRT_CHECK(y.is_contiguous(), "cuda", "fill of non-contiguous ", y.describe());
    launch_fill(y.raw(), dev_type(y.dtype()), y.numel(), a.value, be.stream());
    be.wrote(y);
}

void lincomb_cuda(CudaBackend& be, const LinCombArgs& a) {
    be.check_here(a.out, "lincomb");
    WANRT_CHECK(a.n >= 1 && a.n <= 4, "cuda", "lincomb takes 1 to 4 inputs, got ", a.n);
    const float* p[4] = {nullptr, nullptr, nullptr, nullptr};
    float c[4] = {0, 0, 0, 0};
    for (int k = 0; k < a.n; ++k) {
        be.check_here(*a.in[k], "lincomb");
        if (k > 0) p[k] = a.in[k]->data<float>();  // the front-end checked: f32 after the first
        c[k] = a.coef[k];
    }
    launch_lincomb(a.in[0]->raw(), p[1], p[2], p[3], c[0], c[1], c[2], c[3], a.n, a.out.raw(), dev_type(a.out.dtype()),
                   a.out.numel(), be.stream());
    be.wrote(a.out);
}

void unary_cuda(CudaBackend& be, const UnaryArgs& a) {
    be.need_f32(a.x, "unary");
    launch_unary(int(a.act), a.x.data<float>(), a.y.data<float>(), a.x.numel(), be.stream());
    be.wrote(a.y);
}

void binary_cuda(CudaBackend& be, const BinaryArgs& a) {
    be.need_f32(a.a, "binary");
    be.need_f32(a.b, "binary");
    const Shape& shape = a.y.shape();
    launch_binary(int(a.op), a.a.data<float>(), broadcast_of(a.a, shape), a.b.data<float>(), broadcast_of(a.b, shape),
                  a.y.data<float>(), broadcast_of(a.y, shape), a.y.numel(), be.stream());
    be.wrote(a.y);
}

void patchify_cuda(CudaBackend& be, const PatchifyArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "patchify");
    launch_patchify(x.data<float>(), x.size(0), x.size(1), x.size(2), x.size(3), a.pt, a.ph, a.pw, a.y.data<float>(),
                    be.stream());
    be.wrote(a.y);
}

void unpatchify_cuda(CudaBackend& be, const UnpatchifyArgs& a) {
    be.need_f32(a.x, "unpatchify");
    launch_unpatchify(a.x.data<float>(), a.y.size(0), a.f, a.h, a.w, a.pt, a.ph, a.pw, a.y.data<float>(), be.stream());
    be.wrote(a.y);
}

void embedding_cuda(CudaBackend& be, const EmbeddingArgs& a) {
    be.check_here(a.table, "embedding");
    WANRT_CHECK(a.ids.dtype() == DType::I32, "cuda", "embedding ids must be i32, got ", a.ids.describe());
    const Tensor t = a.table.is_contiguous() ? a.table : be.contiguous_copy(a.table);
    launch_embedding(t.raw(), dev_type(t.dtype()), t.size(0), t.size(1), a.ids.data<int32_t>(), a.ids.numel(),
                     a.y.data<float>(), be.stream());
    be.wrote(a.y);
}

constexpr DType F32 = DType::F32, F16 = DType::F16, BF16 = DType::BF16;
// Every dtype the copy and fill kernels convert (load_any / store_any).
const RegisterKernel<CopyArgs, CudaBackend> reg_copy(
    all_sig_pairs({F32, F16, BF16, DType::F64, DType::I32, DType::I64, DType::U8}), &copy_cuda);
const RegisterKernel<FillArgs, CudaBackend> reg_fill({{F32}, {F16}, {BF16}, {DType::F64}, {DType::I32}, {DType::I64},
                                                      {DType::U8}},
                                                     &fill_cuda);
const RegisterKernel<LinCombArgs, CudaBackend> reg_lincomb({{F32}, {BF16, BF16}, {F16, F16}}, &lincomb_cuda);
const RegisterKernel<UnaryArgs, CudaBackend> reg_unary({{F32}}, &unary_cuda);
const RegisterKernel<BinaryArgs, CudaBackend> reg_binary({{F32}}, &binary_cuda);
const RegisterKernel<PatchifyArgs, CudaBackend> reg_patchify({{F32}}, &patchify_cuda);
const RegisterKernel<UnpatchifyArgs, CudaBackend> reg_unpatchify({{F32}}, &unpatchify_cuda);
// {F32, table dtype}: the gather widens f32/bf16/f16 rows to f32.
const RegisterKernel<EmbeddingArgs, CudaBackend> reg_embedding({{F32, F32}, {F32, BF16}, {F32, F16}}, &embedding_cuda);

}  // namespace

}  // namespace wanrt
