// GGUF quantizers, the GGUF writer and `wanrt convert`.
// - quantizers: bit-exact against tests/fixtures/quantize_ref.safetensors (gguf-py for F16 … Q5_1,
//   ggml's C reference for the K-quants; tests/fixtures/make_quantize_ref.py), and against the bytes
//   gguf-py wrote into dit_q.gguf / gguf_types.gguf from gguf_ref.safetensors' `in.*` values;
//   quantize → dequantize error within each type's bound;
// - the writer: files our reader and the fixtures' layout agree on (KVs, alignment, 5-D tensors);
// - convert: dit_t2v weights → Q8_0 GGUF → the GGUF DiT loader → forward vs the golden; GGUF →
//   safetensors f32 = the dequantized GGUF exactly; dit_q.gguf → f32 → the same types round-trips the
//   blocks byte for byte where requantization is idempotent; bad inputs one line, exit 1, no file.
#include <cmath>
#include <fstream>

#include "io/gguf.h"
#include "io/gguf_quantize.h"
#include "test_util.h"

namespace wanrt::test {

namespace {

const std::vector<std::pair<std::string, GgmlType>> kRefTypes = {
    {"F16", GgmlType::F16},   {"BF16", GgmlType::BF16}, {"Q8_0", GgmlType::Q8_0}, {"Q4_0", GgmlType::Q4_0},
    {"Q4_1", GgmlType::Q4_1}, {"Q5_0", GgmlType::Q5_0}, {"Q5_1", GgmlType::Q5_1}, {"Q2_K", GgmlType::Q2_K},
    {"Q3_K", GgmlType::Q3_K}, {"Q4_K", GgmlType::Q4_K}, {"Q5_K", GgmlType::Q5_K}, {"Q6_K", GgmlType::Q6_K},
};

std::vector<float> as_f32(const StoredTensor& t) {
    EXPECT_EQ(t.dtype, DType::F32) << t.name;
    std::vector<float> v(t.nbytes / 4);
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
        den += double(ref[i]) * ref[i];
    }
    return std::sqrt(num / den);
}

}  // namespace

// Every type, every row: the bytes equal the reference's, and our dequantizer gives gguf-py's values.
TEST(Quantize, BitExactAgainstReferences) {
    auto ref = open_fixture("quantize_ref.safetensors");
    const StoredTensor& in = stored(*ref, "in.x");
    ASSERT_EQ(in.shape.size(), 2u);
    const int64_t rows = in.shape[0], cols = in.shape[1];
    std::vector<float> x = as_f32(in);
    for (const auto& [name, type] : kRefTypes) {
        SCOPED_TRACE(name);
        const StoredTensor& want = stored(*ref, "q." + name);
        const size_t row_bytes = gguf_type_bytes(type, cols);
        ASSERT_EQ(want.nbytes, row_bytes * size_t(rows));
        std::vector<uint8_t> got(want.nbytes);
        gguf_quantize(type, x.data(), rows * cols, got.data());
        const uint8_t* w = static_cast<const uint8_t*>(want.data);
        int bad_rows = 0;
        for (int64_t r = 0; r < rows; ++r) {
            if (std::memcmp(got.data() + r * row_bytes, w + r * row_bytes, row_bytes) == 0) continue;
            size_t k = 0;
            while (got[r * row_bytes + k] == w[r * row_bytes + k]) ++k;
            ADD_FAILURE() << name << " row " << r << ": first differing byte " << k << " of " << row_bytes;
            ++bad_rows;
        }
        EXPECT_EQ(bad_rows, 0);
        // Row by row gives the same bytes as one call (rows are independent block sequences).
        std::vector<uint8_t> by_row(want.nbytes);
        for (int64_t r = 0; r < rows; ++r) gguf_quantize(type, x.data() + r * cols, cols, by_row.data() + r * row_bytes);
        EXPECT_EQ(by_row, got);
        std::vector<float> deq(size_t(rows * cols));
        const GgmlTypeInfo* ti = ggml_type_info(uint32_t(type));
        gguf_dequantize(type, got.data(), rows * cols / ti->block_elems, deq.data());
        EXPECT_EQ(deq, as_f32(stored(*ref, "deq." + name)));
    }
}

// The f16 rounding of every exponent and tie, against the exact nearest-even value computed in double.
TEST(Quantize, F16RoundingIsNumpys) {
    auto ulp_round = [](double v) {  // nearest-even f16 by brute force over the candidates
        if (std::isnan(v)) return 0x7e00;
        const double a = std::fabs(v);
        int best = 0;
        double bd = 1e300;
        for (int h = 0; h < 0x7c00; ++h) {
            double f = gguf_f16_to_f32(uint16_t(h));
            double d = std::fabs(f - a);
            if (d < bd || (d == bd && (h & 1) == 0)) bd = d, best = h;
        }
        if (a >= 65520.0) best = 0x7c00;
        return (std::signbit(v) ? 0x8000 : 0) | best;
    };
    std::vector<float> probes = {0.f, -0.f, 1.f, 65504.f, 65519.99f, 65520.f, 1e-8f, 2.98e-8f, 2.9802322e-8f,
                                 5.96e-8f, 6.1e-5f, 6.097555e-5f, 0.1f, -3.14159f, 1e5f};
    uint64_t s = 12345;
    for (int i = 0; i < 300; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = uint32_t(s >> 32);
        float f;
        std::memcpy(&f, &u, 4);
        if (std::isfinite(f) && std::fabs(f) < 1e6f) probes.push_back(f);
        probes.push_back(float(std::ldexp(double((u >> 8) & 0x7ff) + 0.5, -24 - int(u % 8))));  // ties near subnormals
    }
    for (float f : probes) EXPECT_EQ(gguf_f32_to_f16(f), ulp_round(f)) << f;
    const float inf = INFINITY, nan = NAN;
    EXPECT_EQ(gguf_f32_to_f16(inf), 0x7c00);
    EXPECT_EQ(gguf_f32_to_f16(-inf), 0xfc00);
    EXPECT_EQ(gguf_f32_to_f16(nan) & 0x7c00, 0x7c00);
    EXPECT_NE(gguf_f32_to_f16(nan) & 0x03ff, 0);
}

// gguf-py quantized the fixtures' tensors from gguf_ref.safetensors' in.* values: the same bytes.
TEST(Quantize, SameBytesAsTheGgufFixtures) {
    auto ref = open_fixture("gguf_ref.safetensors");
    int checked = 0;
    for (const char* file : {"gguf_types.gguf", "dit_q.gguf"}) {
        auto f = GgufFile::open(fixture_path(file));
        for (const GgufTensorInfo& t : f->tensors()) {
            const StoredTensor* in = ref->find("in." + t.name);
            if (!in) continue;
            const GgmlType type = GgmlType(t.type_id);
            if (!gguf_can_quantize(type)) continue;  // TQ1_0, TQ2_0: not a Wan type
            SCOPED_TRACE(std::string(file) + " " + t.name + " " + t.type->name);
            std::vector<float> x = as_f32(*in);
            std::vector<uint8_t> got(t.nbytes);
            gguf_quantize(type, x.data(), int64_t(x.size()), got.data());
            EXPECT_EQ(std::memcmp(got.data(), t.data, t.nbytes), 0);
            ++checked;
        }
    }
    EXPECT_GE(checked, 20);
}

// quantize → dequantize on Gaussian weights: the error of each type within its known range (bits per
// weight decide it: ~2^-bits relative), and a zero block stays exactly zero.
TEST(Quantize, RoundTripErrorWithinTypeBounds) {
    const int64_t n = 256 * 64;
    std::vector<float> x = randn(size_t(n), 7, 0.02f);
    std::fill(x.begin(), x.begin() + 256, 0.0f);
    struct Bound {
        GgmlType t;
        double lo, hi;
    };
    const std::vector<Bound> bounds = {
        {GgmlType::F32, 0, 0},          {GgmlType::F16, 1e-5, 6e-4},    {GgmlType::BF16, 1e-4, 4e-3},
        {GgmlType::Q8_0, 1e-3, 1e-2},   {GgmlType::Q6_K, 3e-3, 2.5e-2}, {GgmlType::Q5_K, 1e-2, 5e-2},
        {GgmlType::Q5_1, 1e-2, 6e-2},   {GgmlType::Q5_0, 1e-2, 6e-2},   {GgmlType::Q4_K, 2e-2, 1e-1},
        {GgmlType::Q4_1, 3e-2, 1.3e-1}, {GgmlType::Q4_0, 3e-2, 1.3e-1}, {GgmlType::Q3_K, 5e-2, 2.2e-1},
        {GgmlType::Q2_K, 1e-1, 4e-1},
    };
    for (const Bound& b : bounds) {
        const GgmlTypeInfo* ti = ggml_type_info(uint32_t(b.t));
        std::vector<uint8_t> q(gguf_type_bytes(b.t, n));
        gguf_quantize(b.t, x.data(), n, q.data());
        std::vector<float> y(static_cast<size_t>(n));
        gguf_dequantize(b.t, q.data(), n / ti->block_elems, y.data());
        const double e = rel_l2(y, x);
        EXPECT_GE(e, b.lo) << ti->name;
        EXPECT_LE(e, b.hi) << ti->name;
        for (int i = 0; i < 256; ++i) ASSERT_EQ(y[size_t(i)], 0.0f) << ti->name << " zero block, element " << i;
    }
}

}  // namespace wanrt::test
