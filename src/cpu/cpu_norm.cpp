// Row normalisations and the DiT's modulation/gating, fused per row (one read, one write).
#include <cmath>

#include "core/error.h"
#include "cpu/cpu_backend.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

struct Moments {
    float mean, rstd;
};

// Two passes (mean, then centred variance) in float with SIMD-lane partial sums: for rows of a
// few thousand values this stays within ~1e-7 relative of a float64 computation.
Moments layer_moments(const float* x, int64_t D, float eps) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += x[i];
    const float mean = s / float(D);
    float v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < D; ++i) v += (x[i] - mean) * (x[i] - mean);
    return {mean, 1.0f / std::sqrt(v / float(D) + eps)};
}

int64_t row_grain(int64_t D) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(D, 1)); }

}  // namespace

static void layer_norm_cpu(CpuBackend& be, const Tensor& x, const Tensor* w, const Tensor* b, float eps, const Tensor& y) {
    const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    const float* ws = w ? w->data<float>() : nullptr;
    const float* bs = b ? b->data<float>() : nullptr;
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* xr = xs + r * D;
            float* yr = ys + r * D;
            Moments m = layer_moments(xr, D, eps);
            for (int64_t i = 0; i < D; ++i) {
                float v = (xr[i] - m.mean) * m.rstd;
                if (ws) v *= ws[i];
                if (bs) v += bs[i];
                yr[i] = v;
            }
        }
    });
}

void cpu::rms_norm(CpuBackend& be, const Tensor& x, const Tensor& w, float eps, const Tensor& y) {
    const int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
    const float* xs = x.data<float>();
    const float* ws = w.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(rows, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* xr = xs + r * D;
            float* yr = ys + r * D;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t i = 0; i < D; ++i) s += xr[i] * xr[i];
            const float rs = 1.0f / std::sqrt(s / float(D) + eps);
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) yr[i] = xr[i] * rs * ws[i];
        }
    });
}

static void norm_modulate_cpu(CpuBackend& be, const Tensor& x, const Tensor& shift, const Tensor& scale, float eps,
                               const Tensor& y) {
    // x [B, L, D]; shift/scale [B, D] with row strides of their own.
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
    const float* xs = x.data<float>();
    float* ys = y.data<float>();
    be.pool().parallel_for(B * L, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / L;
            const float* sh = shift.data<float>() + b * shift.stride(0);
            const float* sc = scale.data<float>() + b * scale.stride(0);
            const float* xr = xs + r * D;
            float* yr = ys + r * D;
            Moments m = layer_moments(xr, D, eps);
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - m.mean) * m.rstd * (1.0f + sc[i]) + sh[i];
        }
    });
}

static void gated_residual_cpu(CpuBackend& be, const Tensor& x, const Tensor& y, const Tensor& gate) {
    const int64_t B = x.size(0), L = x.size(1), D = x.size(2);
    float* xs = x.data<float>();
    const float* ys = y.data<float>();
    be.pool().parallel_for(B * L, row_grain(D), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* g = gate.data<float>() + (r / L) * gate.stride(0);
            float* xr = xs + r * D;
            const float* yr = ys + r * D;
#pragma omp simd
            for (int64_t i = 0; i < D; ++i) xr[i] += yr[i] * g[i];
        }
    });
}

namespace {
const RegisterKernel<LayerNormArgs, CpuBackend> reg_layer_norm({{DType::F32}}, [](CpuBackend& be, const LayerNormArgs& a) {
    layer_norm_cpu(be, a.x, a.w, a.b, a.eps, a.y);
});
const RegisterKernel<RmsNormArgs, CpuBackend> reg_rms_norm({{DType::F32}}, [](CpuBackend& be, const RmsNormArgs& a) {
    cpu::rms_norm(be, a.x, a.w, a.eps, a.y);
});
const RegisterKernel<NormModulateArgs, CpuBackend> reg_norm_modulate(
    {{DType::F32}}, [](CpuBackend& be, const NormModulateArgs& a) { norm_modulate_cpu(be, a.x, a.shift, a.scale, a.eps, a.y); });
const RegisterKernel<GatedResidualArgs, CpuBackend> reg_gated_residual(
    {{DType::F32}}, [](CpuBackend& be, const GatedResidualArgs& a) { gated_residual_cpu(be, a.x, a.y, a.gate); });
}  // namespace

}  // namespace wanrt
