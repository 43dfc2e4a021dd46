// Golden tests of the CLIP image encoder (models/clip.h) against clip.safetensors: the official
// CLIPModel.visual in float64. Every config value comes from the fixture.
#include <gtest/gtest.h>

#include <map>

#include "io/pth.h"
#include "models/clip.h"
#include "test_util.h"

namespace wanrt::test {
namespace {

// The backend under test: CPU unless WANRT_TEST_DEVICE names another.
std::shared_ptr<Backend> test_backend() {
    auto device = test_device();
    return device ? device : make_cpu_backend(2);
}
// The tolerance of a key: cpu_tol on the CPU (f32); on the GPU bf16 linears (8-bit mantissa, ~2e-3
// per rounding) through a few blocks: 1e-2, the GPU DiT goldens' bound (official fp16 CLIP has no
// measured row in the fixtures README's table). Exact preprocessing keys keep cpu_tol there too: the
// resize runs on the host in float64 on every backend.
double tol(const Backend& be, double cpu_tol, bool host_side = false) {
    return be.name() == "cpu" || host_side ? cpu_tol : std::max(cpu_tol, 1e-2);
}

ClipVisionConfig fixture_config(const SafeTensorsFile& f) {
    ClipVisionConfig c = ClipVisionConfig::from_json(f.metadata().at("config"), f.origin());
    const nlohmann::json mean = meta_json(f, "mean"), std = meta_json(f, "std");
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(c.mean[size_t(i)], mean[size_t(i)].get<double>());  // the official literals
        EXPECT_EQ(c.std[size_t(i)], std[size_t(i)].get<double>());
    }
    EXPECT_EQ(c.tokens(), std::stoll(f.metadata().at("tokens")));
    return c;
}

void check_golden(const ClipVisionEncoder& enc, const SafeTensorsFile& f, const std::string& what) {
    Backend& be = enc.backend();
    std::printf("[clip %s] on %s\n", what.c_str(), be.description().c_str());
    std::map<std::string, Tensor> mids;
    Tensor out = enc.encode(load_f32(be, f, "in.images"), [&](const std::string& n, const Tensor& t) { mids[n] = t; });
    const int64_t blocks = std::stoll(f.metadata().at("blocks_run"));
    EXPECT_EQ(blocks, enc.config().layers - 1);
    EXPECT_CLOSE(mids.at("pixels"), load_f64(f, "mid.pixels"), tol(be, 1e-6, true), what + " mid.pixels");
    EXPECT_CLOSE(mids.at("embed"), load_f64(f, "mid.embed"), tol(be, 1e-6), what + " mid.embed");
    EXPECT_CLOSE(mids.at("prenorm"), load_f64(f, "mid.prenorm"), tol(be, 1e-5), what + " mid.prenorm");
    for (int64_t k = 0; k < blocks; ++k) {
        const std::string n = "block" + std::to_string(k) + "_out";
        EXPECT_CLOSE(mids.at(n), load_f64(f, "mid." + n), tol(be, 1e-5), what + " mid." + n);
    }
    EXPECT_EQ(out.shape(), stored(f, "out.clip_fea").shape);
    EXPECT_CLOSE(out, load_f64(f, "out.clip_fea"), tol(be, 1e-5), what + " out.clip_fea");
}

TEST(Clip, GoldenFromSafetensors) {
    auto f = open_fixture("clip.safetensors");
    auto be = test_backend();
    ClipVisionEncoder enc(fixture_config(*f), f, *be);  // textual.* and log_scale are outside "visual."
    check_golden(enc, *f, "safetensors");
}

TEST(Clip, GoldenFromPth) {
    auto f = open_fixture("clip.safetensors");
    const std::string pth = fixture_path("clip_weights.pth");
    ASSERT_TRUE(std::filesystem::exists(pth)) << "fixture file missing: " << pth;
    auto be = test_backend();
    ClipVisionEncoder enc(fixture_config(*f), open_pth(pth), *be);  // the released file's layout
    check_golden(enc, *f, "pth");
}

// Properties of torch's kernel that the golden's mid.pixels does not isolate: weights sum to 1 at
// every output (a constant image stays constant, borders included), and the half-pixel mapping is
// symmetric (a mirrored image gives the mirrored output).
TEST(Clip, BicubicProperties) {
    const std::vector<double> flat(5 * 7, 0.375);
    for (double v : bicubic_resize(flat, 1, 5, 7, 9, 4)) EXPECT_NEAR(v, 0.375, 1e-15);
    std::vector<double> img(7), mir(7);
    for (int i = 0; i < 7; ++i) img[size_t(i)] = mir[size_t(6 - i)] = std::sin(1.7 * i) + 0.1 * i * i;
    const std::vector<double> a = bicubic_resize(img, 1, 1, 7, 1, 11), b = bicubic_resize(mir, 1, 1, 7, 1, 11);
    for (int i = 0; i < 11; ++i) EXPECT_NEAR(a[size_t(i)], b[size_t(10 - i)], 1e-12) << i;
}

TEST(Clip, BadInput) {
    auto f = open_fixture("clip.safetensors");
    auto be = test_backend();
    ClipVisionConfig c = fixture_config(*f);
    ClipVisionConfig more = c;  // two more blocks than the file has: a block that must run is missing
    more.layers += 2;
    expect_error([&] { ClipVisionEncoder(more, f, *be); }, {"[weights]", "missing tensor", "transformer."});
    ClipVisionConfig fewer = c;
    fewer.layers -= 1;
    expect_error([&] { ClipVisionEncoder(fewer, f, *be); }, {"[clip]", cat("more than ", fewer.layers, " vision blocks")});
    ClipVisionConfig wide = c;
    wide.image_size += wide.patch_size;
    expect_error([&] { ClipVisionEncoder(wide, f, *be); }, {"[weights]", "pos_embedding"});
    expect_error([&] { ClipVisionConfig::from_json(R"({"activation": "quick_gelu"})", "x"); }, {"[clip]", "gelu"});
    ClipVisionEncoder enc(c, f, *be);
    expect_error([&] { enc.encode(randn_tensor(*be, {1, 4, 32, 32}, 1)); }, {"[clip]", "[B, 3, H, W]"});
}

}  // namespace
}  // namespace wanrt::test
