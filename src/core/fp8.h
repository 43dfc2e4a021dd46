// FP8 decoders for safetensors "F8_E4M3" (float8_e4m3fn) and "F8_E5M2".
#pragma once
#include <cmath>
#include <cstdint>
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

}  // namespace wanrt
