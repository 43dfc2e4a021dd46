// The FP8 linear's contract on the CPU (ops/linear_fp8.h): the quantization rule on hand-picked
// values, empty inputs, and one-line errors for illegal shapes and dtypes. Numerics against the
// float64 references for every backend are rows of the op table (src/testing/op_cases_fp8.cpp).
#include <cmath>

#include "core/fp8.h"
#include "ops/linear_fp8.h"
#include "test_util.h"

namespace wanrt::test {
namespace {

// The values of F8E4M3 codes (raw bytes downloaded and decoded on the host).
std::vector<float> decoded(const Tensor& q) {
    std::vector<uint8_t> raw(q.nbytes());
    q.backend()->synchronize();
    q.backend()->download(q, raw.data());
    std::vector<float> v;
    for (uint8_t b : raw) v.push_back(fp8_e4m3_to_f32(b));
    return v;
}

Tensor up(Backend& be, const std::vector<float>& v, const Shape& s) { return ops::from_host(be, DType::F32, s, v.data()); }

TEST(Fp8Linear, QuantizationRule) {
    auto be = make_cpu_backend(1);
    // amax over the finite values = 896 → s = 2; 896/2 = 448 (the largest code), −3/2 = −1.5 exact,
    // 0.3/2 = 0.15 → nearest e4m3 0.15625, NaN and ±inf → NaN codes.
    Fp8Tensor q = ops::quantize_fp8(up(*be, {896.f, -3.f, NAN, INFINITY, 0.3f, -INFINITY, 0.f, 1e-9f}, {8}));
    ASSERT_EQ(q.q.dtype(), DType::F8E4M3);
    ASSERT_EQ(q.q.nbytes(), 8u);
    EXPECT_EQ(ops::to_host_f32(q.scale).at(0), 2.f);
    const std::vector<float> v = decoded(q.q);
    EXPECT_EQ(v[0], 448.f);
    EXPECT_EQ(v[1], -1.5f);
    EXPECT_TRUE(std::isnan(v[2]));
    EXPECT_TRUE(std::isnan(v[3]));
    EXPECT_EQ(v[4], 0.15625f);
    EXPECT_TRUE(std::isnan(v[5]));
    EXPECT_EQ(v[6], 0.f);
    EXPECT_EQ(v[7], 0.f);  // far below the smallest subnormal (2^-9 · s)
    // all zeros: scale 1
    EXPECT_EQ(ops::to_host_f32(ops::quantize_fp8(up(*be, {0.f, 0.f}, {2})).scale).at(0), 1.f);
    EXPECT_EQ(fp8_scale_of_amax(0.f), 1.f);
    EXPECT_EQ(fp8_scale_of_amax(448.f), 1.f);
}

TEST(Fp8Linear, EmptyAndBatchedInputs) {
    auto be = make_cpu_backend(1);
    Fp8Tensor w = ops::quantize_fp8(up(*be, randn(32 * 16, 1, 0.2f), {32, 16}));
    Tensor y = ops::linear_fp8(ops::zeros(*be, {0, 16}), w.q, w.scale);
    EXPECT_EQ(y.shape(), (Shape{0, 32}));
    Tensor y3 = ops::linear_fp8(up(*be, randn(2 * 3 * 16, 2), {2, 3, 16}), w.q, w.scale, nullptr, Activation::None,
                                DType::BF16);
    EXPECT_EQ(y3.shape(), (Shape{2, 3, 32}));
    EXPECT_EQ(y3.dtype(), DType::BF16);
}

TEST(Fp8Linear, BadInputsAreOneLine) {
    auto be = make_cpu_backend(1);
    Tensor x = up(*be, randn(4 * 40, 1), {4, 40});
    Fp8Tensor w_badk = ops::quantize_fp8(up(*be, randn(32 * 40, 2), {32, 40}));  // K = 40
    expect_error([&] { ops::linear_fp8(x, w_badk.q, w_badk.scale); }, {"[linear_fp8]", "multiples of 16", "[32, 40]"});
    Tensor x2 = up(*be, randn(4 * 32, 3), {4, 32});
    Fp8Tensor w_badn = ops::quantize_fp8(up(*be, randn(24 * 32, 4), {24, 32}));  // N = 24
    expect_error([&] { ops::linear_fp8(x2, w_badn.q, w_badn.scale); }, {"[linear_fp8]", "multiples of 16"});
    Fp8Tensor w = ops::quantize_fp8(up(*be, randn(32 * 32, 5), {32, 32}));
    Tensor wf = up(*be, randn(32 * 32, 6), {32, 32});
    expect_error([&] { ops::linear_fp8(x2, wf, w.scale); }, {"[linear_fp8]", "F8E4M3", "quantize_fp8"});
    expect_error([&] { ops::linear_fp8(x2, w.q, ops::zeros(*be, {2})); }, {"[linear_fp8]", "scale", "f32 [1]"});
    expect_error([&] { ops::linear_fp8(x, w.q, w.scale); }, {"[linear_fp8]", "does not match"});
    Tensor bias = ops::zeros(*be, {16});
    expect_error([&] { ops::linear_fp8(x2, w.q, w.scale, &bias); }, {"[linear_fp8]", "bias", "f32[32]"});
    expect_error([&] { ops::linear_fp8(x2, w.q, w.scale, nullptr, Activation::None, DType::F16); },
                 {"[linear_fp8]", "output dtype"});
    expect_error([&] { ops::linear_fp8(ops::to_dtype(x2, DType::F16), w.q, w.scale); }, {"[linear_fp8]", "f32 or bf16"});
}

}  // namespace
}  // namespace wanrt::test
