// The RoPE ops on the GPU (rope, rms_norm_rope): the per-sample grids checked against the table,
// write versions and registration; the kernels are in cuda_rope.cu.
//
// Kernel files (.cu) are compiled by nvcc as C++17 and cannot include ops/ops.h (C++20), so each
// op family's host side (checks, launch, wrote(), RegisterKernel) lives in a .cpp like this one.
#include "core/error.h"
#include "cuda/cuda_backend_impl.h"
#include "cuda/cuda_common.h"
#include "ops/ops.h"

namespace wanrt {

std::vector<cuda::RopeGridDev> cuda::rope_grids(const std::vector<RopeGrid>& grids, const Tensor& table) {
    const int64_t P = table.size(0);
    std::vector<cuda::RopeGridDev> g(grids.size());
    for (size_t b = 0; b < grids.size(); ++b) {
        const RopeGrid& s = grids[b];
        WANRT_CHECK(s.f + s.frame_offset <= P && s.h <= P && s.w <= P && s.frame_offset >= 0, "cuda", "rope grid (",
                    s.f, "+", s.frame_offset, ", ", s.h, ", ", s.w, ") of sample ", b, " exceeds the table's ", P,
                    " positions");
        g[b] = {s.f, s.h, s.w, s.frame_offset};
    }
    return g;
}

namespace {

using namespace cuda;

void rope_cuda(CudaBackend& be, const RopeArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "rope");
    const std::vector<RopeGridDev> g = rope_grids(*a.grids, a.table);
    launch_rope(x.data<float>(), g.data(), a.table.data<float>(), a.table.size(0), a.y.data<float>(), x.size(0),
                x.size(1), x.size(2), x.size(3), be.stream());
    be.wrote(a.y);
}

void rms_norm_rope_cuda(CudaBackend& be, const RmsNormRopeArgs& a) {
    const Tensor& x = a.x;
    be.need_f32(x, "rms_norm_rope");
    be.need_f32(a.w, "rms_norm_rope");
    const std::vector<RopeGridDev> g = rope_grids(*a.grids, a.table);
    launch_rms_norm_rope(x.data<float>(), a.w.data<float>(), a.eps, g.data(), a.table.data<float>(), a.y.data<float>(),
                         x.size(0), x.size(1), x.size(2), x.size(3), be.stream());
    be.wrote(a.y);
}

const RegisterKernel<RopeArgs, CudaBackend> reg_rope({{DType::F32}}, &rope_cuda);
const RegisterKernel<RmsNormRopeArgs, CudaBackend> reg_rms_norm_rope({{DType::F32}}, &rms_norm_rope_cuda);

}  // namespace

}  // namespace wanrt
