// First-last-frame-to-video against pipeline_flf2v.safetensors (the official WanFLF2V.generate with
// tiny models in float64). The conditioning — size from the first frame, both resized frames, CLIP on
// [first, last] as one batch, the 81-frame mask, y, the contexts — and then the whole chain with the
// flf2v DiT (img_emb.emb_pos added to both frames' CLIP tokens): every step's latent and the video.
// WANRT_TEST_DEVICE=cuda (a CUDA build, on a GPU machine) runs them on that backend with the GPU
// tolerances below instead of float32's; every key compared prints its rel-L2 and max abs.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/flf2v.h"
#include "test_util.h"

using namespace wanrt;
using test::meta;
using test::meta_int;
using test::real_ids;

namespace {

// A picture from its u8 [h, w, 3] key: u8/255·2 − 1 (equal to TF.to_tensor·2 − 1, the in.* f64 key).
Tensor picture(Backend& be, const SafeTensorsFile& f, const std::string& name) {
    const StoredTensor& t = test::stored(f, "in." + name + "_u8");
    const int64_t h = t.shape[0], w = t.shape[1];
    const std::vector<double> u8 = test::load_f64(f, "in." + name + "_u8");
    std::vector<float> img(size_t(3 * h * w));
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < h * w; ++i) img[size_t(c * h * w + i)] = float(u8[size_t(i * 3 + c)] / 255.0 * 2.0 - 1.0);
    EXPECT_CLOSE(std::vector<double>(img.begin(), img.end()), test::load_f64(f, "in." + name), 1e-7, "in." + name);
    return ops::from_host(be, DType::F32, {3, h, w}, img.data());
}

// The backend under test: CPU unless WANRT_TEST_DEVICE names another.
std::shared_ptr<Backend> test_backend() {
    auto device = test::test_device();
    return device ? device : make_cpu_backend(0);
}

// Tolerances (rel-L2 from float64) per key: float32's on the CPU; on the GPU the official deployed
// error of the stage that made the key (fixtures README), rounded up, the loosest stage for keys
// downstream of several. As test_pipeline_i2v.cpp (the official chain error itself is not measured).

struct Fixture {
    std::shared_ptr<SafeTensorsFile> f = test::open_fixture("pipeline_flf2v.safetensors");
    std::shared_ptr<Backend> be = test_backend();
    nlohmann::json cfgs = test::meta_json(*f, "configs");
    test::ChainTols tol = test::chain_tols(*be, int(meta_int(*f, "steps")));
    T2VOptions opt;
    Fixture() {
        std::printf("[pipeline flf2v] on %s\n", be->description().c_str());
        opt.sample_steps = int(meta_int(*f, "steps"));
        opt.sample_shift = std::stod(meta(*f, "shift"));
        opt.guide_scale = std::stod(meta(*f, "guide_scale"));
        opt.solver = meta(*f, "solver");
        opt.frame_num = meta_int(*f, "frame_num");
        opt.width = meta_int(*f, "max_area");  // max_area = W·H
        opt.height = 1;
    }
};

}  // namespace

TEST(PipelineFLF2V, GoldenConditioning) {
    Fixture fx;
    const SafeTensorsFile& f = *fx.f;
    Backend& be = *fx.be;
    ASSERT_EQ(meta(f, "mode"), "flf2v");
    const VaeConfig vaecfg = VaeConfig::from_json(fx.cfgs.at("vae").dump());
    T5Encoder t5 = T5Encoder::load(fx.f, be, "t5.");
    ClipVisionEncoder clip(ClipVisionConfig::from_json(fx.cfgs.at("clip").dump(), f.origin()), fx.f, be, "clip.");
    auto vae = WanVae::load(fx.f, vaecfg, fx.be, "vae.");

    // The size arithmetic from the first frame (the DiT config parsed only for its widths).
    nlohmann::json dj = fx.cfgs.at("dit");
    ASSERT_EQ(dj.at("model_type"), "flf2v");
    dj["model_type"] = "i2v";
    DitConfig widths = DitConfig::from_json(dj.dump(), f.origin());
    widths.model_type = "flf2v";
    const Tensor first = picture(be, f, "first"), last = picture(be, f, "last");
    const I2VLatentShape shape = flf2v_latent_shape(first.shape(), last.shape(), fx.opt, widths, vaecfg);
    EXPECT_EQ(shape.size.lat_h, meta_int(f, "lat_h"));
    EXPECT_EQ(shape.size.lat_w, meta_int(f, "lat_w"));
    EXPECT_EQ(shape.size.h, meta_int(f, "h"));
    EXPECT_EQ(shape.size.w, meta_int(f, "w"));
    EXPECT_EQ(shape.latent[1], meta_int(f, "lat_frames"));
    EXPECT_EQ(shape.seq_len, meta_int(f, "seq_len"));
    EXPECT_EQ(shape.latent, test::stored(f, "in.noise").shape);

    const int64_t F = fx.opt.frame_num;
    const Tensor vin = flf2v_vae_input(be, first, last, F, shape.size.h, shape.size.w);
    EXPECT_CLOSE(vin.select(1, 0), test::load_f64(f, "mid.first_resized"), 1e-6, "mid.first_resized");
    EXPECT_CLOSE(vin.select(1, F - 1), test::load_f64(f, "mid.last_resized"), 1e-6, "mid.last_resized");
    for (float v : ops::to_host_f32(vin.slice(1, 1, F - 1))) ASSERT_EQ(v, 0.0f) << "frames 1 … F−2 must be zeros";

    const Tensor msk = flf2v_mask(be, shape.latent[1], shape.size.lat_h, shape.size.lat_w);
    EXPECT_CLOSE(msk, test::load_f64(f, "mid.msk"), 0.0, "mid.msk (exact)");

    const Tensor clip_fea = flf2v_clip_features(clip, first, last);
    const int64_t tokens = meta_int(f, "clip_tokens");
    EXPECT_EQ(clip_fea.shape(), (Shape{2 * tokens, 1280}));
    EXPECT_CLOSE(clip_fea, test::load_f64(f, "mid.clip_fea"), fx.tol.clip, "mid.clip_fea (CLIP on [first, last])");

    const Tensor y = flf2v_condition(*vae, first, last, F, shape.size);
    EXPECT_EQ(y.shape(), test::stored(f, "mid.y").shape);
    EXPECT_CLOSE(y, test::load_f64(f, "mid.y"), fx.tol.y, "mid.y (mask + VAE latent of [first, zeros, last])");

    EXPECT_CLOSE(t2v_encode_prompt(t5, real_ids(f, "in.ids", "in.mask"), 512), test::load_f64(f, "mid.context"), fx.tol.t5,
                 "mid.context");
    EXPECT_CLOSE(t2v_encode_prompt(t5, real_ids(f, "in.neg_ids", "in.neg_mask"), 512),
                 test::load_f64(f, "mid.context_null"), fx.tol.t5, "mid.context_null");
}

TEST(PipelineFLF2V, GoldenOfficialGenerate) {
    Fixture fx;
    const SafeTensorsFile& f = *fx.f;
    const DitConfig ditcfg = DitConfig::from_json(fx.cfgs.at("dit").dump(), f.origin());
    EXPECT_TRUE(ditcfg.is_flf2v());
    Backend& be = *fx.be;
    T5Encoder t5 = T5Encoder::load(fx.f, be, "t5.");
    ClipVisionEncoder clip(ClipVisionConfig::from_json(fx.cfgs.at("clip").dump(), f.origin()), fx.f, be, "clip.");
    auto vae = WanVae::load(fx.f, VaeConfig::from_json(fx.cfgs.at("vae").dump()), fx.be, "vae.");
    DitModel dit(ditcfg, fx.f, be, "dit.");
    I2VResult r = generate_flf2v(
        t5, clip, dit, *vae, real_ids(f, "in.ids", "in.mask"), real_ids(f, "in.neg_ids", "in.neg_mask"),
        picture(be, f, "first"), picture(be, f, "last"), test::load_f32(be, f, "in.noise"), fx.opt, {},
        [&](int i, const Tensor& x) {
            EXPECT_CLOSE(x, test::load_f64(f, "mid.latent" + std::to_string(i)), fx.tol.chain, "mid.latent" + std::to_string(i));
        },
        [&](int i, const Tensor& v_c, const Tensor& v_u) {
            if (i != 0) return;
            EXPECT_CLOSE(v_c, test::load_f64(f, "mid.v_cond0"), fx.tol.dit, "mid.v_cond0");
            EXPECT_CLOSE(v_u, test::load_f64(f, "mid.v_uncond0"), fx.tol.dit, "mid.v_uncond0");
        });
    EXPECT_CLOSE(r.latent, test::load_f64(f, "out.latent"), fx.tol.chain, "out.latent");
    EXPECT_CLOSE(r.video, test::load_f64(f, "out.video"), fx.tol.chain, "out.video");
}

TEST(PipelineFLF2V, BadInputIsOneLineError) {
    DitConfig dit = DitConfig::preset("i2v-14B");
    dit.model_type = "flf2v";
    const VaeConfig vae;
    T2VOptions o;
    o.width = 1280;
    o.height = 720;
    o.frame_num = 81;
    const I2VLatentShape s = flf2v_latent_shape({3, 720, 1280}, {3, 720, 1280}, o, dit, vae);
    EXPECT_EQ(s.latent, (Shape{16, 21, 90, 160}));
    test::expect_error([&] { flf2v_latent_shape({3, 720, 1280}, {3, 480, 832}, o, dit, vae); },
                       {"[flf2v]", "last frame is 832x480", "first is 1280x720"});
    o.frame_num = 1;
    test::expect_error([&] { flf2v_latent_shape({3, 720, 1280}, {3, 720, 1280}, o, dit, vae); }, {"[flf2v]", "at least 5"});
    o.frame_num = 80;
    test::expect_error([&] { flf2v_latent_shape({3, 720, 1280}, {3, 720, 1280}, o, dit, vae); }, {"[flf2v]", "4n+1"});
    o.frame_num = 81;
    test::expect_error([&] { flf2v_latent_shape({3, 720, 1280}, {3, 720, 1280}, o, DitConfig::preset("i2v-14B"), vae); },
                       {"[flf2v]", "flf2v checkpoint"});
}
