// Spatial tiling of the VAE (models/vae_tiled.h): tiled decode/encode equal diffusers' tiled_decode /
// tiled_encode recomputed on the host in float64 from the same per-tile results, one tile is the
// untiled model bit for bit, and bad --vae_tile values are one-line errors. The difference from the
// untiled result is printed (the figure docs/perf.md quotes); with random weights it says little
// about trained ones.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/vae.h"
#include "models/vae22.h"
#include "ops/ops.h"
#include "test_util.h"

using namespace wanrt;

namespace {

std::shared_ptr<Backend> backend() {
    static auto be = [] {
        auto d = test::test_device();
        return d ? d : make_cpu_backend();
    }();
    return be;
}

// A fixture's weights only: its in./out./mid. tensors are data, not parameters.
struct WeightsOnly final : TensorSource {
    std::shared_ptr<TensorSource> s;
    explicit WeightsOnly(std::shared_ptr<TensorSource> src) : s(std::move(src)) {}
    static bool is_data(const std::string& n) {
        return !n.rfind("in.", 0) || !n.rfind("out.", 0) || !n.rfind("mid.", 0);
    }
    std::string origin() const override { return s->origin(); }
    std::vector<std::string> names() const override {
        std::vector<std::string> r;
        for (auto& n : s->names())
            if (!is_data(n)) r.push_back(n);
        return r;
    }
    const StoredTensor* find(const std::string& n) const override { return is_data(n) ? nullptr : s->find(n); }
    std::shared_ptr<const void> keepalive() const override { return s->keepalive(); }
};

// The vae.safetensors model.
std::shared_ptr<WanVae> fixture_vae(DType conv_dtype = DType::F32) {
    auto fx = test::open_fixture("vae.safetensors");
    VaeConfig cfg = VaeConfig::from_json(fx->metadata().at("config"));
    cfg.conv_dtype = conv_dtype;  // f16: half activations inside each tile, the blend in f32
    return WanVae::load(std::make_shared<WeightsOnly>(fx), cfg, backend());
}

// The vae22.safetensors model (Wan2.2: 16× spatial, 2×2 patchify).
std::shared_ptr<Vae22Model> fixture_vae22(DType conv_dtype = DType::F32) {
    auto fx = test::open_fixture("vae22.safetensors");
    Vae22Config cfg = Vae22Config::from_json(test::meta(*fx, "config"));
    cfg.conv_dtype = conv_dtype;
    return Vae22Model::load(std::make_shared<WeightsOnly>(fx), cfg, backend());
}

// A host [C, T, H, W] float64 array.
struct Arr {
    Shape s;
    std::vector<double> v;
    double& at(int64_t c, int64_t t, int64_t y, int64_t x) { return v[((c * s[1] + t) * s[2] + y) * s[3] + x]; }
    double at(int64_t c, int64_t t, int64_t y, int64_t x) const { return v[((c * s[1] + t) * s[2] + y) * s[3] + x]; }
};
Arr to_arr(const Tensor& t) {
    const auto f = ops::to_host_f32(t);
    return {t.shape(), std::vector<double>(f.begin(), f.end())};
}

// diffusers' AutoencoderKLWan.tiled_decode/tiled_encode loop with its in-place blend_v/blend_h, on
// the host: tile_fn gets the crop [i, i + tin) × [j, j + tin) of the input.
Arr diffusers_tiled(const Tensor& x, int64_t tin, int64_t sin, int64_t tout, int64_t sout, int64_t out_h,
                    int64_t out_w, const std::function<Tensor(const Tensor&)>& tile_fn) {
    const int64_t H = x.size(2), W = x.size(3), e = tout - sout;
    std::vector<std::vector<Arr>> rows;
    for (int64_t i = 0; i < H; i += sin) {
        rows.emplace_back();
        for (int64_t j = 0; j < W; j += sin)
            rows.back().push_back(to_arr(tile_fn(
                ops::contiguous(x.slice(2, i, std::min(i + tin, H)).slice(3, j, std::min(j + tin, W))))));
    }
    for (size_t i = 0; i < rows.size(); ++i)
        for (size_t j = 0; j < rows[i].size(); ++j) {
            Arr& b = rows[i][j];
            if (i > 0) {
                Arr& a = rows[i - 1][j];
                const int64_t ext = std::min({a.s[2], b.s[2], e});
                for (int64_t y = 0; y < ext; ++y)
                    for (int64_t c = 0; c < b.s[0]; ++c)
                        for (int64_t t = 0; t < b.s[1]; ++t)
                            for (int64_t xx = 0; xx < b.s[3]; ++xx)
                                b.at(c, t, y, xx) = a.at(c, t, a.s[2] - ext + y, xx) * (1.0 - double(y) / ext) +
                                                    b.at(c, t, y, xx) * (double(y) / ext);
            }
            if (j > 0) {
                Arr& a = rows[i][j - 1];
                const int64_t ext = std::min({a.s[3], b.s[3], e});
                for (int64_t xx = 0; xx < ext; ++xx)
                    for (int64_t c = 0; c < b.s[0]; ++c)
                        for (int64_t t = 0; t < b.s[1]; ++t)
                            for (int64_t y = 0; y < b.s[2]; ++y)
                                b.at(c, t, y, xx) = a.at(c, t, y, a.s[3] - ext + xx) * (1.0 - double(xx) / ext) +
                                                    b.at(c, t, y, xx) * (double(xx) / ext);
            }
        }
    const Shape& s0 = rows[0][0].s;
    Arr out{{s0[0], s0[1], out_h, out_w}, std::vector<double>(size_t(s0[0] * s0[1] * out_h * out_w))};
    for (size_t i = 0; i < rows.size(); ++i)
        for (size_t j = 0; j < rows[i].size(); ++j) {
            Arr& b = rows[i][j];
            for (int64_t c = 0; c < b.s[0]; ++c)
                for (int64_t t = 0; t < b.s[1]; ++t)
                    for (int64_t y = 0; y < std::min(sout, b.s[2]); ++y)
                        for (int64_t xx = 0; xx < std::min(sout, b.s[3]); ++xx) {
                            const int64_t oy = int64_t(i) * sout + y, ox = int64_t(j) * sout + xx;
                            if (oy < out_h && ox < out_w) out.at(c, t, oy, ox) = b.at(c, t, y, xx);
                        }
        }
    return out;
}

Tensor random_input(const Shape& s, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> v(size_t(shape_numel(s)));
    for (auto& x : v) x = d(g);
    return ops::from_host(*backend(), DType::F32, s, v.data());
}

// vae2_2.py's unpatchify in float64: pixel (c, t, 2y + q, 2x + r) = channel 4c + 2r + q at (y, x).
Arr unpatchify2(const Arr& a) {
    const int64_t C = a.s[0] / 4, T = a.s[1], h = a.s[2], w = a.s[3];
    Arr out{{C, T, 2 * h, 2 * w}, std::vector<double>(a.v.size())};
    for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t y = 0; y < 2 * h; ++y)
                for (int64_t x = 0; x < 2 * w; ++x)
                    out.at(c, t, y, x) = a.at(4 * c + 2 * (x % 2) + y % 2, t, y / 2, x / 2);
    return out;
}

test::Err compare(const Tensor& out, const Arr& ref) {
    EXPECT_EQ(out.shape(), ref.s);
    return test::compare(test::to_f64(out), ref.v);
}

}  // namespace

// 96 × 80 pixels in tiles of 48 with stride 32 (diffusers' 256/192 proportions): 3 × 3 tiles, the
// last ones clipped, so every blend case (above, left, both, short edge tiles) occurs.
TEST(VaeTiled, DecodeMatchesDiffusersBlend) {
    // f16: the half-activation path inside each tile; the blend of the f32 tile outputs is as exact.
    for (DType dt : {DType::F32, DType::F16}) {
        auto vae = fixture_vae(dt);
        Tensor z = random_input({16, 2, 12, 10}, 1);
        const Arr ref = diffusers_tiled(z, 6, 4, 48, 32, 96, 80, [&](const Tensor& t) { return vae->decode(t); });
        const Tensor whole = vae->decode(z);
        vae->set_tiling(VaeTiling::parse("48:32"));
        const Tensor tiled = vae->decode(z);
        const test::Err e = compare(tiled, ref);
        std::printf("  %s: tiled decode vs diffusers' blend: rel-L2 %.3e, max abs %.3e\n", dtype_name(dt), e.rel_l2,
                    e.max_abs);
        EXPECT_LE(e.rel_l2, 1e-6);
        const test::Err u = test::compare(test::to_f64(tiled), test::to_f64(whole));
        std::printf("  %s: tiled decode vs untiled (random weights): rel-L2 %.3e, max abs %.3e\n", dtype_name(dt),
                    u.rel_l2, u.max_abs);
        EXPECT_GT(u.rel_l2, 0.0);  // the tiled path really ran
    }
}

TEST(VaeTiled, EncodeMatchesDiffusersBlend) {
    // f16: the half-activation path inside each tile; the blend of the f32 tile outputs is as exact.
    for (DType dt : {DType::F32, DType::F16}) {
        auto vae = fixture_vae(dt);
        Tensor v = random_input({3, 5, 96, 80}, 2);
        const Arr ref = diffusers_tiled(v, 48, 32, 6, 4, 12, 10, [&](const Tensor& t) { return vae->encode(t); });
        const Tensor whole = vae->encode(v);
        vae->set_tiling(VaeTiling::parse("48:32"));
        const Tensor tiled = vae->encode(v);
        const test::Err e = compare(tiled, ref);
        std::printf("  %s: tiled encode vs diffusers' blend: rel-L2 %.3e, max abs %.3e\n", dtype_name(dt), e.rel_l2,
                    e.max_abs);
        EXPECT_LE(e.rel_l2, 1e-6);
        const test::Err u = test::compare(test::to_f64(tiled), test::to_f64(whole));
        std::printf("  %s: tiled encode vs untiled (random weights): rel-L2 %.3e, max abs %.3e\n", dtype_name(dt),
                    u.rel_l2, u.max_abs);
        EXPECT_GT(u.rel_l2, 0.0);
    }
}

// A frame that fits one tile is not tiled: the fixture's golden decode, bit for bit.
TEST(VaeTiled, OneTileIsUntiled) {
    auto vae = fixture_vae();
    auto fx = test::open_fixture("vae.safetensors");
    Tensor z = test::load_f32(*backend(), *fx, "in.z");
    z = z.reshape({z.size(1), z.size(2), z.size(3), z.size(4)});
    const auto a = test::to_f64(vae->decode(z));
    vae->set_tiling(VaeTiling::parse("32"));
    const auto b = test::to_f64(vae->decode(z));
    EXPECT_EQ(a, b);
    // run_tiled itself with one tile covering the frame: the tile function's output unchanged.
    const auto c = test::to_f64(run_tiled(z, 8, 8, 64, 48, 32, 32, [&](const Tensor& t) { return vae->decode(t); }));
    EXPECT_EQ(a, c);
}

TEST(VaeTiled, BadFlagValues) {
    EXPECT_FALSE(VaeTiling::parse("off").enabled());
    EXPECT_EQ(VaeTiling::parse("256").stride_px(), 192);
    EXPECT_EQ(VaeTiling::parse("256:128").stride_px(), 128);
    for (const char* bad : {"abc", "250", "256:0", "256:300", "8", "-256", "256:", "1e9"}) {
        try {
            VaeTiling::parse(bad);
            ADD_FAILURE() << "no error for --vae_tile " << bad;
        } catch (const Error& e) {
            const std::string m = e.what();
            EXPECT_NE(m.find("--vae_tile"), std::string::npos) << m;
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        }
    }
}

// Wan2.2, 96 × 80 pixels in tiles of 48 with stride 32 (multiples of 16): latent tiles of 3 every 2,
// decoded to 12 patchified channels of 24 × 24 and blended over 24 − 16 = 8 half-resolution rows /
// columns, as diffusers' tiled_decode does for patch_size 2 (a blend of the unpatchified pixels, over
// 16 rows, would differ), then unpatchified.
TEST(Vae22Tiled, DecodeMatchesDiffusersBlend) {
    // f16: the half-activation path inside each tile; the blend of the f32 tile outputs is as exact.
    for (DType dt : {DType::F32, DType::F16}) {
        auto vae = fixture_vae22(dt);
        Tensor z = random_input({48, 2, 6, 5}, 1);
        const Arr ref = unpatchify2(diffusers_tiled(z, 3, 2, 24, 16, 48, 40, [&](const Tensor& t) {
            return vae22::patchify2(vae->decode(t));  // patchify inverts unpatchify exactly
        }));
        const Tensor whole = vae->decode(z);
        vae->set_tiling(VaeTiling::parse("48:32"));
        const Tensor tiled = vae->decode(z);
        EXPECT_EQ(tiled.shape(), whole.shape());
        const test::Err e = compare(tiled, ref);
        std::printf("  %s: Wan2.2 tiled decode vs diffusers' blend: rel-L2 %.3e, max abs %.3e\n", dtype_name(dt),
                    e.rel_l2, e.max_abs);
        EXPECT_LE(e.rel_l2, 1e-6);
        const test::Err u = test::compare(test::to_f64(tiled), test::to_f64(whole));
        std::printf("  %s: Wan2.2 tiled decode vs untiled (fixture weights): rel-L2 %.3e, max abs %.3e\n",
                    dtype_name(dt), u.rel_l2, u.max_abs);
        EXPECT_GT(u.rel_l2, 0.0);  // the tiled path really ran
    }
}

// Encode tiles the pixels (tile and stride multiples of 16 keep each tile's 2×2 patchify the crop of
// the whole video's) and blends the latents over (64 − 32)/16 = 2 rows / columns.
TEST(Vae22Tiled, EncodeMatchesDiffusersBlend) {
    // f16: the half-activation path inside each tile; the blend of the f32 tile outputs is as exact.
    for (DType dt : {DType::F32, DType::F16}) {
        auto vae = fixture_vae22(dt);
        Tensor v = random_input({3, 5, 96, 80}, 2);
        const Arr ref = diffusers_tiled(v, 64, 32, 4, 2, 6, 5, [&](const Tensor& t) { return vae->encode(t); });
        const Tensor whole = vae->encode(v);
        vae->set_tiling(VaeTiling::parse("64:32"));
        const Tensor tiled = vae->encode(v);
        const test::Err e = compare(tiled, ref);
        std::printf("  %s: Wan2.2 tiled encode vs diffusers' blend: rel-L2 %.3e, max abs %.3e\n", dtype_name(dt),
                    e.rel_l2, e.max_abs);
        EXPECT_LE(e.rel_l2, 1e-6);
        const test::Err u = test::compare(test::to_f64(tiled), test::to_f64(whole));
        std::printf("  %s: Wan2.2 tiled encode vs untiled (fixture weights): rel-L2 %.3e, max abs %.3e\n",
                    dtype_name(dt), u.rel_l2, u.max_abs);
        EXPECT_GT(u.rel_l2, 0.0);
    }
}

// A frame that fits one tile is the golden decode bit for bit; sizes must be multiples of 16, and the
// default stride (3/4 of the tile) rounds down to one.
TEST(Vae22Tiled, OneTileAndSizes) {
    auto vae = fixture_vae22();
    auto fx = test::open_fixture("vae22.safetensors");
    Tensor z = test::load_f32(*backend(), *fx, "in.z");
    z = z.reshape({z.size(1), z.size(2), z.size(3), z.size(4)});  // [48, 3, 2, 3]: 32 × 48 pixels
    const auto a = test::to_f64(vae->decode(z));
    vae->set_tiling(VaeTiling::parse("48"));
    EXPECT_EQ(a, test::to_f64(vae->decode(z)));
    EXPECT_EQ(VaeTiling::parse("272").stride_px(16), 192);  // 204 rounded down to 16
    EXPECT_EQ(VaeTiling::parse("272").stride_px(), 200);    // the Wan2.1 VAE's rounding to 8 unchanged
    for (const char* bad : {"40", "48:24", "272:200"}) {
        test::expect_error([&] { vae->set_tiling(VaeTiling::parse(bad)); }, {"[vae]", "--vae_tile", "multiple of 16"});
        Vae22Config c = vae->config();
        c.tiling = VaeTiling::parse(bad);
        test::expect_error([&] { c.validate(); }, {"--vae_tile", "multiple of 16"});
    }
}
