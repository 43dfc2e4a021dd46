// CPU kernel of the AdamW update (train/adamw.h), in the operation order of torch.optim.AdamW's
// single-tensor path, with the per-step scalars in double.
#include <cmath>

#include "cpu/cpu_backend.h"
#include "train/adamw.h"

namespace wanrt {

namespace {

void adamw_step_cpu(CpuBackend& be, const AdamWStepArgs& a) {
    const AdamWHyper& h = a.h;
    const double bc1 = 1 - std::pow(h.beta1, double(a.step)), bc2 = 1 - std::pow(h.beta2, double(a.step));
    const float decay = float(1 - h.lr * h.weight_decay), b1 = float(h.beta1), b2 = float(h.beta2);
    const float step_size = float(h.lr / bc1), bc2_sqrt = float(std::sqrt(bc2)), eps = float(h.eps);
    float* p = a.p.data<float>();
    const float* g = a.g.data<float>();
    float* m = a.m.data<float>();
    float* v = a.v.data<float>();
    be.pool().parallel_for(a.p.numel(), 8192, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
            p[i] *= decay;
            m[i] = b1 * m[i] + (1 - b1) * g[i];
            v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
            p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps);
        }
    });
}

const RegisterKernel<AdamWStepArgs, CpuBackend> reg_adamw({{DType::F32, DType::F32}}, &adamw_step_cpu);

}  // namespace

}  // namespace wanrt
