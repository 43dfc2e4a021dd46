// Branch-free float math that GCC vectorises inside `#pragma omp simd` loops (built with
// -fopenmp-simd: the pragmas only, no OpenMP runtime), so softmax, GELU and SiLU run at SIMD width
// without intrinsics. Accuracy: exp_approx ≤ 2 ulp on [−87, 88].
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace wanrt::cpu {

// exp(x) by range reduction x = n·ln2 + r, |r| ≤ ln2/2, and a degree-6 polynomial for e^r.
// Inputs below −87.3 return 0 (softmax masking relies on exp(−inf) = 0).
inline float exp_approx(float x) {
    const float lo = -87.3f, hi = 88.7f;
    bool under = x < lo;
    x = x < lo ? lo : (x > hi ? hi : x);
    // Round to nearest by the 1.5·2^23 trick: vectorises where nearbyint may not.
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;  // Cody–Waite split of ln2
    r = r - n * -2.12194440e-4f;
    float p = 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = int32_t(n) + 127;
    uint32_t bits = uint32_t(e) << 23;
    float scale;
    std::memcpy(&scale, &bits, 4);
    return under ? 0.0f : p * scale;
}

inline float tanh_approx(float x) {
    // tanh(x) = 1 − 2/(e^{2x} + 1); saturates cleanly for large |x|.
    float e = exp_approx(2.0f * x);
    return 1.0f - 2.0f / (e + 1.0f);
}

inline float gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + tanh_approx(k * (x + 0.044715f * x * x * x)));
}

inline float silu(float x) { return x / (1.0f + exp_approx(-x)); }

inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f)); }

}  // namespace wanrt::cpu
