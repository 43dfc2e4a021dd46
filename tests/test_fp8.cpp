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
