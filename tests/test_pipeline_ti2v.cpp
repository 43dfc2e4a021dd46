// The Wan2.2 TI2V-5B chain against pipeline_ti2v.safetensors (tiny T5 + 'ti2v' DiT + Wan2.2 VAE run by
// the official WanTI2V.generate in float64), in both modes: size arithmetic, the PIL LANCZOS resize and
// centre crop, the image latent, contexts, every step's per-token timesteps, DiT outputs and latent,
// the final latent and the clamped video. Every config and setting comes from the fixture; token ids
// stand in for the tokenizer.
// WANRT_TEST_DEVICE=cuda runs the chain on that backend with the GPU tolerances of test::chain_tols.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/ti2v.h"
#include "sched/scheduler.h"
#include "test_util.h"
#include "video/pil_resize.h"

using namespace wanrt;
using test::meta;
using test::meta_int;
using test::real_ids;

namespace {

std::shared_ptr<Backend> test_backend() {
    auto device = test::test_device();
    return device ? device : make_cpu_backend(0);
}

struct Models {
    std::shared_ptr<SafeTensorsFile> f;
    std::shared_ptr<Backend> be;
    DitConfig ditcfg;
    Vae22Config vaecfg;
    T5Encoder t5;
    std::unique_ptr<DitModel> dit;
    std::shared_ptr<Vae22Model> vae;
    T2VOptions opt;
};

Models load_models() {
    Models m;
    m.f = test::open_fixture("pipeline_ti2v.safetensors");
    m.be = test_backend();
    const nlohmann::json cfgs = test::meta_json(*m.f, "configs");
    m.ditcfg = DitConfig::from_json(cfgs.at("dit").dump(), m.f->origin());
    m.vaecfg = Vae22Config::from_json(cfgs.at("vae").dump());
    m.t5 = T5Encoder::load(m.f, *m.be, "t5.");
    m.dit = std::make_unique<DitModel>(m.ditcfg, m.f, *m.be, "dit.");
    m.vae = Vae22Model::load(m.f, m.vaecfg, m.be, "vae.", test::meta_json(*m.f, "latent_mean").get<std::vector<float>>(),
                             test::meta_json(*m.f, "latent_std").get<std::vector<float>>());
    EXPECT_EQ(m.ditcfg.text_len, meta_int(*m.f, "text_len"));
    EXPECT_EQ(m.ditcfg.model_type, "ti2v");
    m.opt.sample_steps = int(meta_int(*m.f, "steps"));
    m.opt.sample_shift = std::stod(meta(*m.f, "shift"));
    m.opt.guide_scale = std::stod(meta(*m.f, "guide_scale"));
    m.opt.solver = meta(*m.f, "solver");
    return m;
}

// One mode's chain from `noise` with the image (i2v) or without (t2v), every key compared.
void run_mode(Models& m, const std::string& mode, const TI2VImage& image, const TI2VLatentShape& shape) {
    const SafeTensorsFile& f = *m.f;
    const test::ChainTols tol = test::chain_tols(*m.be, m.opt.sample_steps);
    const std::string p = "mid." + mode + ".";
    const std::vector<double> ts_ref = test::load_f64(f, p + "timesteps");
    auto sched = make_scheduler(m.opt.solver, m.opt.sample_steps, m.opt.sample_shift);
    ASSERT_EQ(sched->timesteps().size(), ts_ref.size());
    for (size_t i = 0; i < ts_ref.size(); ++i) EXPECT_EQ(double(sched->timesteps()[i]), ts_ref[i]) << i;

    Tensor noise = test::load_f32(*m.be, f, "in." + mode + ".noise");
    ASSERT_EQ(noise.shape(), shape.latent);
    int steps_seen = 0, preds_seen = 0;
    TI2VResult r = generate_ti2v(
        m.t5, *m.dit, *m.vae, real_ids(f, "in.ids", "in.mask"), real_ids(f, "in.neg_ids", "in.neg_mask"), image, noise,
        m.opt, [&](const T2VStepInfo& s) { EXPECT_EQ(s.index, steps_seen++); },
        [&](int i, const Tensor& x) {
            const std::string k = p + "latent" + std::to_string(i);
            EXPECT_CLOSE(x, test::load_f64(f, k), tol.chain, k);
        },
        [&](int i, const std::vector<double>& t_tokens, const Tensor& v_c, const Tensor& v_u) {
            ++preds_seen;
            const std::string k = std::to_string(i);
            EXPECT_EQ(t_tokens, test::load_f64(f, p + "t" + k)) << p + "t" + k;
            // Each step's DiT outputs from the chain's own latent: the chain's error budget.
            const double t = i == 0 ? tol.dit : tol.chain;
            EXPECT_CLOSE(v_c, test::load_f64(f, p + "v_cond" + k), t, p + "v_cond" + k);
            EXPECT_CLOSE(v_u, test::load_f64(f, p + "v_uncond" + k), t, p + "v_uncond" + k);
        });
    EXPECT_EQ(steps_seen, m.opt.sample_steps);
    EXPECT_EQ(preds_seen, m.opt.sample_steps);
    EXPECT_CLOSE(r.context, test::load_f64(f, "mid.context"), tol.t5, "mid.context");
    EXPECT_CLOSE(r.context_null, test::load_f64(f, "mid.context_null"), tol.t5, "mid.context_null");
    if (shape.i2v) {
        EXPECT_CLOSE(r.image.select(1, 0), test::load_f64(f, "mid.i2v.image_resized"), 1e-7,
                     "mid.i2v.image_resized (PIL LANCZOS + crop)");
        EXPECT_CLOSE(r.z, test::load_f64(f, "mid.i2v.z"), tol.y, "mid.i2v.z (VAE encode)");
    }
    EXPECT_CLOSE(r.latent, test::load_f64(f, "out." + mode + ".latent"), tol.chain, "out." + mode + ".latent");
    EXPECT_EQ(r.video.shape(), test::stored(f, "out." + mode + ".video").shape);
    EXPECT_CLOSE(r.video, test::load_f64(f, "out." + mode + ".video"), tol.chain, "out." + mode + ".video (clamped)");
}

}  // namespace

TEST(PipelineTI2V, GoldenT2V) {
    Models m = load_models();
    const nlohmann::json run = test::meta_json(*m.f, "t2v");
    m.opt.width = run.at("size")[0].get<int64_t>();
    m.opt.height = run.at("size")[1].get<int64_t>();
    m.opt.frame_num = run.at("frame_num").get<int64_t>();
    const TI2VLatentShape shape = ti2v_t2v_shape(m.opt, m.ditcfg, m.vaecfg);
    EXPECT_FALSE(shape.i2v);
    EXPECT_EQ(shape.latent, (Shape{48, run.at("lat_frames").get<int64_t>(), run.at("lat_h").get<int64_t>(),
                                   run.at("lat_w").get<int64_t>()}));
    EXPECT_EQ(shape.seq_len, run.at("seq_len").get<int64_t>());
    std::printf("[pipeline ti2v t2v] on %s, %lldx%lld, %lld frames, seq_len %lld\n", m.be->description().c_str(),
                (long long)m.opt.width, (long long)m.opt.height, (long long)m.opt.frame_num, (long long)shape.seq_len);
    run_mode(m, "t2v", TI2VImage{}, shape);
}

TEST(PipelineTI2V, GoldenI2V) {
    Models m = load_models();
    const nlohmann::json run = test::meta_json(*m.f, "i2v");
    const int64_t max_area = run.at("max_area").get<int64_t>();
    m.opt.width = max_area;  // --size W*H is max_area = W·H
    m.opt.height = 1;
    m.opt.frame_num = run.at("frame_num").get<int64_t>();
    const StoredTensor& img = test::stored(*m.f, "in.i2v.image_u8");  // [ih, iw, 3]
    ASSERT_EQ(img.dtype, DType::U8);
    const TI2VImage image{static_cast<const uint8_t*>(img.data), img.shape[0], img.shape[1]};
    EXPECT_EQ(image.height, run.at("image_h").get<int64_t>());
    EXPECT_EQ(image.width, run.at("image_w").get<int64_t>());

    const TI2VLatentShape shape = ti2v_shape(image, m.opt, m.ditcfg, m.vaecfg);
    EXPECT_TRUE(shape.i2v);
    EXPECT_EQ(shape.image.out_w, run.at("out_w").get<int64_t>());
    EXPECT_EQ(shape.image.out_h, run.at("out_h").get<int64_t>());
    EXPECT_EQ(shape.image.scale, run.at("resize_scale").get<double>());
    EXPECT_EQ(shape.image.resized_w, run.at("resized_w").get<int64_t>());
    EXPECT_EQ(shape.image.resized_h, run.at("resized_h").get<int64_t>());
    EXPECT_EQ(shape.image.crop_x, run.at("crop_x").get<int64_t>());
    EXPECT_EQ(shape.image.crop_y, run.at("crop_y").get<int64_t>());
    EXPECT_EQ(shape.latent[2], run.at("lat_h").get<int64_t>());
    EXPECT_EQ(shape.latent[3], run.at("lat_w").get<int64_t>());
    EXPECT_EQ(shape.seq_len, run.at("seq_len").get<int64_t>());
    std::printf("[pipeline ti2v i2v] on %s, image %lldx%lld, max_area %lld -> %lldx%lld, seq_len %lld\n",
                m.be->description().c_str(), (long long)image.width, (long long)image.height, (long long)max_area,
                (long long)shape.image.out_w, (long long)shape.image.out_h, (long long)shape.seq_len);
    run_mode(m, "i2v", image, shape);
}

// best_output_size on the release area (704·1280) and other pictures: sides multiples of 32, within
// max_area, and the release sizes for 16:9 pictures.
TEST(PipelineTI2V, SizeArithmetic) {
    // Values from the official function run in Python: a 1280×720 picture gives 1248×704 (ratio 1.77
    // is nearer 1248/704 than 1280/672), resized by 0.9777… to 1252×704 and cropped 2 px each side.
    TI2VImageSize s = ti2v_image_size(1280, 720, 704 * 1280);
    EXPECT_EQ(s.out_w, 1248);
    EXPECT_EQ(s.out_h, 704);
    EXPECT_EQ(s.resized_w, 1252);
    EXPECT_EQ(s.resized_h, 704);
    EXPECT_EQ(s.crop_x, 2);
    EXPECT_EQ(s.crop_y, 0);
    s = ti2v_image_size(720, 1280, 704 * 1280);
    EXPECT_EQ(s.out_w, 704);
    EXPECT_EQ(s.out_h, 1248);
    EXPECT_EQ(s.crop_y, 2);
    s = ti2v_image_size(1280, 704, 704 * 1280);  // the release size itself: no resize, no crop
    EXPECT_EQ(s.out_w, 1280);
    EXPECT_EQ(s.out_h, 704);
    EXPECT_EQ(s.scale, 1.0);
    s = ti2v_image_size(1024, 1024, 704 * 1280);  // √901120 = 949.3 → 928 × 960 loses to 960 × 928
    EXPECT_EQ(s.out_w, 960);
    EXPECT_EQ(s.out_h, 928);
    EXPECT_EQ(s.resized_h, 960);
    EXPECT_EQ(s.crop_y, 16);
    for (int64_t h : {17, 100, 333, 720, 1001})
        for (int64_t w : {23, 100, 480, 1280, 1999}) {
            const TI2VImageSize q = ti2v_image_size(w, h, 704 * 1280);
            EXPECT_EQ(q.out_w % 32, 0);
            EXPECT_EQ(q.out_h % 32, 0);
            EXPECT_LE(q.out_w * q.out_h, 704 * 1280);
            EXPECT_GE(q.resized_w, q.out_w);
            EXPECT_GE(q.resized_h, q.out_h);
        }
}

// PIL's LANCZOS on hand-checkable cases: a constant picture stays constant (weights sum to 1 in
// fixed point), the identity size is a copy, and the fixture's picture gives its resized frame.
TEST(PipelineTI2V, PilLanczos) {
    std::vector<uint8_t> flat(size_t(7 * 5 * 3), 77);
    for (uint8_t v : pil_resize_lanczos(flat.data(), 7, 5, 13, 3)) ASSERT_EQ(v, 77);
    std::vector<uint8_t> img(size_t(6 * 4 * 3));
    for (size_t i = 0; i < img.size(); ++i) img[i] = uint8_t(i * 37 % 251);
    EXPECT_EQ(pil_resize_lanczos(img.data(), 6, 4, 6, 4), img);
    test::expect_error([&] { pil_resize_lanczos(img.data(), 6, 4, 0, 4); }, {"[image]", "positive"});
}

TEST(PipelineTI2V, BadInputIsOneLineError) {
    DitConfig dit;
    dit.model_type = "ti2v";
    dit.in_dim = dit.out_dim = 48;
    const Vae22Config vae;
    T2VOptions o;
    o.width = 1280;
    o.height = 704;
    o.frame_num = 121;
    const TI2VLatentShape s = ti2v_t2v_shape(o, dit, vae);
    EXPECT_EQ(s.latent, (Shape{48, 31, 44, 80}));
    EXPECT_EQ(s.seq_len, 27280);  // the 27,280 tokens
    o.frame_num = 120;
    test::expect_error([&] { ti2v_t2v_shape(o, dit, vae); }, {"[ti2v]", "frame_num 120", "117", "121"});
    o.frame_num = 121;
    o.height = 720;
    test::expect_error([&] { ti2v_t2v_shape(o, dit, vae); }, {"[ti2v]", "multiple of 32", "--size"});
    o.height = 704;
    DitConfig wan21 = dit;
    wan21.in_dim = wan21.out_dim = 16;
    test::expect_error([&] { ti2v_t2v_shape(o, wan21, vae); }, {"[ti2v]", "48", "Wan2.2 VAE"});
    DitConfig i2v = dit;
    i2v.model_type = "i2v";
    test::expect_error([&] { ti2v_t2v_shape(o, i2v, vae); }, {"[ti2v]", "image-to-video model", "ti2v"});
    o.width = 32;
    o.height = 1;
    test::expect_error([&] { ti2v_i2v_shape(1280, 720, o, dit, vae); }, {"[ti2v]", "too small"});
}
