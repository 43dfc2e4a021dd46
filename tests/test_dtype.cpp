// convert_elements on buffers at odd byte offsets: tensors inside a .safetensors or .pth file start
// wherever the header puts them, so the loads and stores must not assume alignment (the sanitizer
// job's UBSan reported misaligned int64/double reads here).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"

namespace wanrt {
namespace {

// Copies values to byte offset 1 of a fresh buffer (misaligned for every type wider than a byte).
template <class T>
std::vector<unsigned char> at_odd_offset(const std::vector<T>& v) {
    std::vector<unsigned char> buf(1 + v.size() * sizeof(T) + 8);
    std::memcpy(buf.data() + 1, v.data(), v.size() * sizeof(T));
    return buf;
}

TEST(Dtype, ConvertsFromMisalignedSources) {
    const std::vector<int64_t> i64{-3, 0, 7, int64_t(1) << 40};
    const std::vector<double> f64{-1.5, 0.25, 3.0e10, -0.0};
    const std::vector<float> f32{1.5f, -2.25f, 3.0f, 0.0f};
    auto b64 = at_odd_offset(i64), bd = at_odd_offset(f64), bf = at_odd_offset(f32);

    std::vector<float> out(4);
    convert_elements(b64.data() + 1, DType::I64, out.data(), DType::F32, 4);
    for (size_t k = 0; k < 4; ++k) EXPECT_EQ(out[k], float(i64[k])) << k;
    convert_elements(bd.data() + 1, DType::F64, out.data(), DType::F32, 4);
    for (size_t k = 0; k < 4; ++k) EXPECT_EQ(out[k], float(f64[k])) << k;

    std::vector<int32_t> i32(4);
    convert_elements(b64.data() + 1, DType::I64, i32.data(), DType::I32, 4);
    EXPECT_EQ(i32[0], -3);
    EXPECT_EQ(i32[2], 7);

    // Generic path, misaligned on both sides: f32 → f64 into an odd destination.
    std::vector<unsigned char> dst(1 + 4 * sizeof(double));
    convert_elements(bf.data() + 1, DType::F32, dst.data() + 1, DType::F64, 4);
    for (size_t k = 0; k < 4; ++k) {
        double d;
        std::memcpy(&d, dst.data() + 1 + k * sizeof(double), sizeof d);
        EXPECT_EQ(d, double(f32[k])) << k;
    }
}

TEST(Dtype, HalfTypesFromMisalignedSources) {
    const std::vector<uint16_t> h{f32_to_f16(1.0f), f32_to_f16(-0.5f), f32_to_f16(65504.0f)};
    const std::vector<uint16_t> b{f32_to_bf16(1.0f), f32_to_bf16(-0.5f), f32_to_bf16(3.0e38f)};
    auto bh = at_odd_offset(h), bb = at_odd_offset(b);
    std::vector<float> out(3);
    convert_elements(bh.data() + 1, DType::F16, out.data(), DType::F32, 3);
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -0.5f);
    EXPECT_EQ(out[2], 65504.0f);
    convert_elements(bb.data() + 1, DType::BF16, out.data(), DType::F32, 3);
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[1], -0.5f);
    EXPECT_EQ(out[2], bf16_to_f32(f32_to_bf16(3.0e38f)));
}

}  // namespace
}  // namespace wanrt
