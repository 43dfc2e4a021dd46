#include <gtest/gtest.h>
#include <cmath>
#include <cstring>
#include "core/fp8.h"

using namespace wanrt;

namespace {
// Reference: e5m2 is the top byte of an IEEE f16; e4m3fn decoded by brute-force table of value=(1+m/8)2^(e-7).
float ref_e5m2(uint8_t b) {
    uint16_t h = uint16_t(b) << 8;
    int s = h >> 15, e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double v;
    if (e == 31) v = m ? NAN : INFINITY;
    else if (e == 0) v = m / 1024.0 * std::pow(2.0, -14);
    else v = (1 + m / 1024.0) * std::pow(2.0, e - 15);
    return float(s ? -v : v);
}
float ref_e4m3(uint8_t b) {
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    double v;
    if (e == 15 && m == 7) v = NAN;
    else if (e == 0) v = m / 8.0 * std::pow(2.0, -6);
    else v = (1 + m / 8.0) * std::pow(2.0, e - 7);
    return float(s ? -v : v);
}
uint32_t bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
}  // namespace

TEST(Fp8, E4M3AllPatterns) {
    for (int i = 0; i < 256; ++i) {
        float a = fp8_e4m3_to_f32(uint8_t(i)), r = ref_e4m3(uint8_t(i));
        if (std::isnan(r)) { EXPECT_TRUE(std::isnan(a)) << i; continue; }
        EXPECT_EQ(bits(a), bits(r)) << i;
    }
    EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
    EXPECT_EQ(fp8_e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
    EXPECT_TRUE(std::signbit(fp8_e4m3_to_f32(0x80)));
}

TEST(Fp8, E5M2AllPatterns) {
    for (int i = 0; i < 256; ++i) {
        float a = fp8_e5m2_to_f32(uint8_t(i)), r = ref_e5m2(uint8_t(i));
        if (std::isnan(r)) { EXPECT_TRUE(std::isnan(a)) << i; continue; }
        EXPECT_EQ(bits(a), bits(r)) << i;
    }
    EXPECT_EQ(fp8_e5m2_to_f32(0x7B), 57344.0f);
    EXPECT_TRUE(std::isinf(fp8_e5m2_to_f32(0xFC)));
}

// Encoders: every finite pattern survives decode -> encode; halfway points round to the even code;
// overflow follows torch (e4m3fn: NaN above 464, e5m2: inf from 61440).
TEST(Fp8, EncodeRoundTripAndTies) {
    for (int i = 0; i < 256; ++i) {
        const float v4 = fp8_e4m3_to_f32(uint8_t(i)), v5 = fp8_e5m2_to_f32(uint8_t(i));
        if (!std::isnan(v4)) EXPECT_EQ(f32_to_fp8_e4m3(v4), uint8_t(i)) << i;
        if (!std::isnan(v5)) EXPECT_EQ(f32_to_fp8_e5m2(v5), uint8_t(i)) << i;
    }
    EXPECT_EQ(f32_to_fp8_e4m3(1.0625f), 0x38);   // halfway 1 and 1.125: even mantissa (1.0)
    EXPECT_EQ(f32_to_fp8_e4m3(1.1875f), 0x3A);   // halfway 1.125 and 1.25: even (1.25)
    EXPECT_EQ(f32_to_fp8_e4m3(1.07f), 0x39);
    EXPECT_EQ(f32_to_fp8_e4m3(464.0f), 0x7E);    // ties down to 448
    EXPECT_EQ(f32_to_fp8_e4m3(464.5f), 0x7F);    // NaN, as torch
    EXPECT_EQ(f32_to_fp8_e4m3(-1e30f), 0xFF);
    EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: even (0)
    EXPECT_EQ(f32_to_fp8_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 subnormal steps: even (2)
    EXPECT_EQ(f32_to_fp8_e4m3(-0.0f), 0x80);
    EXPECT_EQ(f32_to_fp8_e5m2(61439.0f), 0x7B);
    EXPECT_EQ(f32_to_fp8_e5m2(61440.0f), 0x7C);  // inf
    EXPECT_EQ(f32_to_fp8_e5m2(-INFINITY), 0xFC);
    EXPECT_EQ(f32_to_fp8_e5m2(NAN), 0x7F);
}
