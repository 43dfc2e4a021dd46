// FP8 decoders and encoders for safetensors "F8_E4M3" (float8_e4m3fn) and "F8_E5M2".
// The encoders are torch's (c10/util/Float8_e4m3fn.h, Float8_e5m2.h): round to nearest even; e4m3fn
// has no infinity, so |x| > 464 (rounding past 448, the largest finite value) becomes NaN, and e5m2
// overflows to infinity from 61440 up. Callers that want saturation (ComfyUI clamps to +-448) clamp first.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace wanrt {

// float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN.
inline float fp8_e4m3_to_f32(uint8_t b) {
    const float sign = (b & 0x80) ? -1.0f : 1.0f;
    const int e = (b >> 3) & 0xF, m = b & 0x7;
    if (e == 0xF && m == 0x7) return std::numeric_limits<float>::quiet_NaN();
    if (e == 0) return sign * std::ldexp(float(m), -9);           // subnormal: m/8 * 2^-6
    return sign * std::ldexp(float(8 + m), e - 7 - 3);
}

// float8_e5m2: sign, 5 exponent bits (bias 15), 2 mantissa bits; IEEE inf/NaN.
inline float fp8_e5m2_to_f32(uint8_t b) {
    const float sign = (b & 0x80) ? -1.0f : 1.0f;
    const int e = (b >> 2) & 0x1F, m = b & 0x3;
    if (e == 0x1F) return m ? std::numeric_limits<float>::quiet_NaN() : sign * std::numeric_limits<float>::infinity();
    if (e == 0) return sign * std::ldexp(float(m), -16);          // subnormal: m/4 * 2^-14
    return sign * std::ldexp(float(4 + m), e - 15 - 2);
}

namespace fp8_detail {
inline uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
}  // namespace fp8_detail

inline uint8_t f32_to_fp8_e4m3(float f) {
    using namespace fp8_detail;
    constexpr uint32_t fp8_max = uint32_t(1087) << 20;  // 480.0f
    constexpr uint32_t denorm_mask = uint32_t(141) << 23;
    uint32_t u = bits(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint8_t r;
    if (u >= fp8_max) {
        r = 0x7f;  // NaN (also for inf and NaN inputs)
    } else if (u < (uint32_t(121) << 23)) {  // below 2^-6: subnormal, the FPU adds and rounds
        r = uint8_t(bits(from_bits(u) + from_bits(denorm_mask)) - denorm_mask);
    } else {
        const uint32_t mant_odd = (u >> 20) & 1;
        u += (uint32_t(7 - 127) << 23) + 0x7FFFF + mant_odd;
        r = uint8_t(u >> 20);
    }
    return uint8_t(r | (sign >> 24));
}

inline uint8_t f32_to_fp8_e5m2(float f) {
    using namespace fp8_detail;
    constexpr uint32_t fp32_inf = uint32_t(255) << 23;
    constexpr uint32_t fp8_max = uint32_t(143) << 23;  // 65536.0f
    constexpr uint32_t denorm_mask = uint32_t(134) << 23;
    uint32_t u = bits(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint8_t r;
    if (u >= fp8_max) {
        r = u > fp32_inf ? 0x7f : 0x7c;  // NaN stays NaN, the rest overflows to inf
    } else if (u < (uint32_t(113) << 23)) {
        r = uint8_t(bits(from_bits(u) + from_bits(denorm_mask)) - denorm_mask);
    } else {
        const uint32_t mant_odd = (u >> 21) & 1;
        u += (uint32_t(15 - 127) << 23) + 0xFFFFF + mant_odd;
        r = uint8_t(u >> 21);
    }
    return uint8_t(r | (sign >> 24));
}

}  // namespace wanrt
