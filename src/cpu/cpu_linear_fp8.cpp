// The FP8 ops (ops/linear_fp8.h) on the CPU: the emulation every other backend is tested against.
// Quantization follows the rule in linear_fp8.h with core/fp8.h's encoder; the GEMM runs in f32
// on the decoded e4m3 values (small integers times powers of two: every product is exact, only
// the f32 sums round), then the two scales, the bf16-rounded bias and the activation, as the
// cuBLASLt epilogue does. Slow by design (the weight is decoded per call): for tests and for
// checking the FP8 path of a model on a machine without an FP8 GPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/fp8.h"
#include "cpu/cpu_backend.h"
#include "cpu/vecmath.h"
#include "ops/linear_fp8.h"

namespace wanrt {

namespace {

float load_any(const void* p, DType t, int64_t i) {
    switch (t) {
        case DType::F32: return static_cast<const float*>(p)[i];
        case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
        default: WANRT_ASSERT(false); return 0;
    }
}

// amax over the finite elements (linear_fp8.h); NaN and ±inf are skipped by the comparison.
float finite_amax(CpuBackend& be, const void* x, DType t, int64_t n) {
    const int64_t chunk = 1 << 16, parts = (n + chunk - 1) / chunk;
    std::vector<float> part(size_t(std::max<int64_t>(parts, 1)), 0.0f);
    be.pool().parallel_for(parts, 1, [&](int64_t b, int64_t e) {
        for (int64_t p = b; p < e; ++p) {
            float m = 0.0f;
            for (int64_t i = p * chunk, end = std::min(n, i + chunk); i < end; ++i) {
                const float v = std::fabs(load_any(x, t, i));
                if (v <= 3.4028234663852886e38f && v > m) m = v;
            }
            part[size_t(p)] = m;
        }
    });
    return *std::max_element(part.begin(), part.end());
}

// out[i] = e4m3fn(x[i] / s) (the codes), for i < n.
void encode(CpuBackend& be, const void* x, DType t, int64_t n, float s, uint8_t* out) {
    be.pool().parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = f32_to_fp8_e4m3(load_any(x, t, i) / s);
    });
}

void quantize_fp8_cpu(CpuBackend& be, const QuantizeFp8Args& a) {
    const int64_t n = a.x.numel();
    const float s = fp8_scale_of_amax(finite_amax(be, a.x.raw(), a.x.dtype(), n));
    encode(be, a.x.raw(), a.x.dtype(), n, s, a.q.data<uint8_t>());
    *a.scale.data<float>() = s;
}

float activate(Activation act, float v) {
    switch (act) {
        case Activation::None: return v;
        case Activation::GeluTanh: return cpu::gelu_tanh(v);
        case Activation::GeluErf: return cpu::gelu_erf(v);
        case Activation::Silu: return cpu::silu(v);
        case Activation::Tanh: return std::tanh(v);
        case Activation::Relu: return v > 0.0f ? v : 0.0f;
    }
    return v;
}

void linear_fp8_cpu(CpuBackend& be, const LinearFp8Args& a) {
    const int64_t K = a.x.size(-1), N = a.w.size(0), M = a.x.numel() / K;
    // x → codes → their values as f32 (exact); w's codes likewise.
    const float sx = fp8_scale_of_amax(finite_amax(be, a.x.raw(), a.x.dtype(), M * K));
    std::vector<uint8_t> qx(size_t(M * K));
    encode(be, a.x.raw(), a.x.dtype(), M * K, sx, qx.data());
    std::vector<float> xf(size_t(M * K)), wf(size_t(N * K));
    const uint8_t* qw = a.w.data<uint8_t>();
    be.pool().parallel_for(M * K, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) xf[size_t(i)] = fp8_e4m3_to_f32(qx[size_t(i)]);
    });
    be.pool().parallel_for(N * K, 1 << 14, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) wf[size_t(i)] = fp8_e4m3_to_f32(qw[i]);
    });
    const bool y_f32 = a.y.dtype() == DType::F32;
    std::vector<float> tmp(y_f32 ? 0 : size_t(M * N));
    float* acc = y_f32 ? a.y.data<float>() : tmp.data();
    cpu::gemm_xwt(be.pool(), M, N, K, xf.data(), K, wf.data(), DType::F32, acc, N);
    // Epilogue as cuBLASLt's: (sx·sw)·acc + bf16(bias), activation, one rounding to y's dtype.
    const float alpha = sx * *a.w_scale.data<float>();
    std::vector<float> bias(size_t(N), 0.0f);
    if (a.bias)
        for (int64_t n = 0; n < N; ++n) bias[size_t(n)] = bf16_to_f32(f32_to_bf16(a.bias->data<float>()[n]));
    uint16_t* yb = y_f32 ? nullptr : a.y.data<uint16_t>();
    be.pool().parallel_for(M, std::max<int64_t>(1, 16384 / N), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t n = 0; n < N; ++n) {
                const int64_t i = r * N + n;
                const float v = activate(a.act, alpha * acc[i] + bias[size_t(n)]);
                if (y_f32)
                    acc[i] = v;
                else
                    yb[i] = f32_to_bf16(v);
            }
    });
}

const RegisterKernel<QuantizeFp8Args, CpuBackend> reg_quantize(
    {{DType::F32, DType::F8E4M3}, {DType::BF16, DType::F8E4M3}, {DType::F16, DType::F8E4M3}}, &quantize_fp8_cpu);
const RegisterKernel<LinearFp8Args, CpuBackend> reg_linear_fp8({{DType::F32, DType::F8E4M3}, {DType::BF16, DType::F8E4M3}},
                                                               &linear_fp8_cpu);

}  // namespace

}  // namespace wanrt
