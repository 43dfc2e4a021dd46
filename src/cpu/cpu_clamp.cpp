// clamp (ops/clamp.h) on the CPU: the reference.
#include "cpu/cpu_backend.h"
#include "ops/clamp.h"

namespace wanrt {

namespace {

void clamp_cpu(CpuBackend& be, const ClampArgs& a) {
    const float* x = a.x.data<float>();
    float* y = a.y.data<float>();
    const float lo = a.lo, hi = a.hi;
    be.pool().parallel_for(a.x.numel(), 65536, [&](int64_t b, int64_t e) {
        // Comparisons, not fminf/fmaxf, which would turn a NaN into a bound.
        for (int64_t i = b; i < e; ++i) y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
    });
}

const RegisterKernel<ClampArgs, CpuBackend> reg({{DType::F32}}, &clamp_cpu);

}  // namespace

}  // namespace wanrt
