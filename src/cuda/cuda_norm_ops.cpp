// The row-norm ops on the GPU (layer_norm, rms_norm, norm_modulate, gated_residual): argument
// checks, write versions and registration; the kernels are in cuda_norm.cu.
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

void layer_norm_cuda(CudaBackend& be, const LayerNormArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "layer_norm");
    const int64_t D = x.size(-1);
    launch_layer_norm(x.data<float>(), a.w ? a.w->data<float>() : nullptr, a.b ? a.b->data<float>() : nullptr, a.eps,
                      a.y.data<float>(), D > 0 ? x.numel() / D : 0, D, be.stream());
    be.wrote(a.y);
}

void rms_norm_cuda(CudaBackend& be, const RmsNormArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "rms_norm");
    const int64_t D = x.size(-1);
    launch_rms_norm(x.data<float>(), a.w.data<float>(), a.eps, a.y.data<float>(), D > 0 ? x.numel() / D : 0, D,
                    be.stream());
    be.wrote(a.y);
}

void norm_modulate_cuda(CudaBackend& be, const NormModulateArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "norm_modulate");
    const Tensor sh = be.rows_unit_stride(a.shift), sc = be.rows_unit_stride(a.scale);
    launch_norm_modulate(x.data<float>(), sh.data<float>(), sh.stride(0), sc.data<float>(), sc.stride(0), a.eps,
                         a.y.data<float>(), x.size(0), x.size(1), x.size(2), be.stream());
    be.wrote(a.y);
}

// In place: x is the output.
void gated_residual_cuda(CudaBackend& be, const GatedResidualArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "gated_residual");
    const Tensor g = be.rows_unit_stride(a.gate);
    launch_gated_residual(x.data<float>(), a.y.data<float>(), g.data<float>(), g.stride(0), x.size(0), x.size(1),
                          x.size(2), be.stream());
    be.wrote(x);
}

const RegisterKernel<LayerNormArgs, CudaBackend> reg_layer_norm({{DType::F32}}, &layer_norm_cuda);
const RegisterKernel<RmsNormArgs, CudaBackend> reg_rms_norm({{DType::F32}}, &rms_norm_cuda);
const RegisterKernel<NormModulateArgs, CudaBackend> reg_norm_modulate({{DType::F32}}, &norm_modulate_cuda);
const RegisterKernel<GatedResidualArgs, CudaBackend> reg_gated_residual({{DType::F32}}, &gated_residual_cuda);

}  // namespace

}  // namespace wanrt
