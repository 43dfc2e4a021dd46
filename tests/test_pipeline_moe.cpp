// The Wan2.2 A14B mixture-of-experts chains against pipeline_moe.safetensors (T2V-A14B,
// WanT2V.generate of Wan2.2) and pipeline_moe_i2v.safetensors (I2V-A14B, WanI2V.generate, experts
// without CLIP), tiny T5 + two DiT experts + Wan2.1 VAE run by the official code in float64: the
// expert of every step, its guide scale, both DiT outputs of every step, every latent, the final latent
// and the clamped video; I2V also the conditioning frame, mask and y. Every config, size and sampler
// setting comes from the fixture; token ids stand in for the tokenizer.
// WANRT_TEST_DEVICE=cuda runs the chains on that backend with the GPU tolerances of test_util.h.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/demo.h"
#include "pipeline/moe.h"
#include "sched/scheduler.h"
#include "test_util.h"
#include "text/tokenizer.h"

using namespace wanrt;
using test::meta;
using test::meta_int;
using test::real_ids;

namespace {

std::shared_ptr<Backend> test_backend() {
    auto device = test::test_device();
    return device ? device : make_cpu_backend(0);
}
bool on_cpu(const Backend& be) {
    return be.name() == "cpu";
}

// The fixture's experts and options. The experts' config is configs.dit; whether an i2v expert has
// Wan2.1's CLIP branch is read from its tensors (Wan2.2's config does not say).
struct MoeFixture {
    std::shared_ptr<SafeTensorsFile> f;
    DitConfig dit;
    VaeConfig vae;
    T2VOptions opt;
    MoeOptions moe;
};

MoeFixture open_moe(const std::string& name) {
    MoeFixture x;
    x.f = test::open_fixture(name);
    const SafeTensorsFile& f = *x.f;
    const nlohmann::json cfgs = test::meta_json(f, "configs");
    x.dit = DitConfig::from_json(cfgs.at("dit").dump(), f.origin());
    x.dit.clip_branch = f.find("high_noise_model.img_emb.proj.0.weight") != nullptr;
    x.vae = VaeConfig::from_json(cfgs.at("vae").dump());
    x.opt.sample_steps = int(meta_int(f, "steps"));
    x.opt.sample_shift = std::stod(meta(f, "shift"));
    x.opt.solver = meta(f, "solver");
    x.opt.frame_num = meta_int(f, "frame_num");
    const nlohmann::json g = test::meta_json(f, "guide_scale");  // [low, high]
    x.opt.guide_scale = g.at(0).get<double>();
    x.moe.guide_scale_high = g.at(1).get<double>();
    x.moe.boundary = std::stod(meta(f, "boundary"));
    EXPECT_EQ(meta_int(f, "num_train_timesteps"), 1000);
    EXPECT_EQ(x.moe.boundary * 1000.0, std::stod(meta(f, "boundary_timestep")));
    return x;
}

// The schedule, the expert of each step and its guide scale, as the fixture records them.
void check_schedule(const MoeFixture& x, const MoeResult& r) {
    const SafeTensorsFile& f = *x.f;
    const std::vector<double> ts_ref = test::load_f64(f, "mid.timesteps");
    auto sched = make_scheduler(x.opt.solver, x.opt.sample_steps, x.opt.sample_shift);
    ASSERT_EQ(sched->timesteps().size(), ts_ref.size());
    const std::vector<double> expert_ref = test::load_f64(f, "mid.expert");
    const nlohmann::json names = test::meta_json(f, "experts"), g_ref = test::meta_json(f, "step_guide_scale");
    ASSERT_EQ(r.experts.size(), ts_ref.size());
    int high_steps = 0;
    for (size_t i = 0; i < ts_ref.size(); ++i) {
        const int64_t t = sched->timesteps()[i];
        EXPECT_EQ(double(t), ts_ref[i]) << i;
        EXPECT_EQ(r.experts[i], int(expert_ref[i])) << "step " << i << " t=" << t;
        EXPECT_EQ(names.at(i).get<std::string>(), r.experts[i] ? "high_noise_model" : "low_noise_model") << i;
        const double g = moe_high_noise(t, x.moe.boundary) ? x.moe.guide_scale_high : x.opt.guide_scale;
        EXPECT_EQ(g, g_ref.at(i).get<double>()) << "guide scale of step " << i;
        high_steps += r.experts[i];
    }
    // Both experts must run, or the switch is not tested.
    EXPECT_GT(high_steps, 0);
    EXPECT_LT(high_steps, int(ts_ref.size()));
}

// Every step's DiT outputs (of the expert that ran) and latent.
struct StepChecks {
    const SafeTensorsFile& f;
    const test::ChainTols& tol;
    int steps = 0, preds = 0;
    T2VStepCallback on_step() {
        return [this](const T2VStepInfo& s) { EXPECT_EQ(s.index, steps++); };
    }
    T2VLatentCallback on_latent() {
        return [this](int i, const Tensor& x) {
            const std::string k = "mid.latent" + std::to_string(i);
            EXPECT_CLOSE(x, test::load_f64(f, k), tol.chain, k);
        };
    }
    CfgPredCallback on_preds() {
        return [this](int i, const Tensor& v_c, const Tensor& v_u) {
            ++preds;
            const std::string k = std::to_string(i);
            // Step 0 has exact inputs (the DiT's own error); later steps inherit the chain's.
            const double t = i == 0 ? tol.dit : tol.chain;
            EXPECT_CLOSE(v_c, test::load_f64(f, "mid.v_cond" + k), t, "mid.v_cond" + k);
            EXPECT_CLOSE(v_u, test::load_f64(f, "mid.v_uncond" + k), t, "mid.v_uncond" + k);
        };
    }
};

}  // namespace

TEST(PipelineMoe, GoldenT2VA14B) {
    const MoeFixture x = open_moe("pipeline_moe.safetensors");
    const SafeTensorsFile& f = *x.f;
    std::shared_ptr<Backend> be = test_backend();
    const test::ChainTols tol = test::chain_tols(*be, x.opt.sample_steps);
    std::printf("[pipeline moe t2v] on %s\n", be->description().c_str());
    ASSERT_EQ(x.dit.model_type, "t2v");
    T5Encoder t5 = T5Encoder::load(x.f, *be, "t5.");
    DitModel high(x.dit, x.f, *be, "high_noise_model.");
    DitModel low(x.dit, x.f, *be, "low_noise_model.");
    auto vae = WanVae::load(x.f, x.vae, be, "vae.");

    T2VOptions opt = x.opt;
    const nlohmann::json run = test::meta_json(f, "run");
    opt.width = run.at("size").at(0).get<int64_t>();  // size is (width, height)
    opt.height = run.at("size").at(1).get<int64_t>();
    const T2VLatentShape shape = t2v_latent_shape(opt, x.dit, x.vae);
    EXPECT_EQ(shape.latent, test::stored(f, "in.noise").shape);
    EXPECT_EQ(shape.seq_len, meta_int(f, "seq_len"));
    std::printf("[pipeline moe t2v] %s, %d steps, shift %g, guide (%g, %g), boundary %g, %lldx%lld, %lld frames\n",
                opt.solver.c_str(), opt.sample_steps, opt.sample_shift, opt.guide_scale, x.moe.guide_scale_high,
                x.moe.boundary, (long long)opt.width, (long long)opt.height, (long long)opt.frame_num);

    StepChecks c{f, tol};
    const MoeResult r = generate_moe_t2v(t5, high, low, *vae, real_ids(f, "in.ids", "in.mask"),
                                         real_ids(f, "in.neg_ids", "in.neg_mask"), test::load_f32(*be, f, "in.noise"),
                                         opt, x.moe, c.on_step(), c.on_latent(), c.on_preds());
    EXPECT_EQ(c.steps, opt.sample_steps);
    EXPECT_EQ(c.preds, opt.sample_steps);
    check_schedule(x, r);
    EXPECT_CLOSE(r.context, test::load_f64(f, "mid.context"), tol.t5, "mid.context (T5, prompt)");
    EXPECT_CLOSE(r.context_null, test::load_f64(f, "mid.context_null"), tol.t5, "mid.context_null (T5, negative)");
    EXPECT_CLOSE(r.latent, test::load_f64(f, "out.latent"), tol.chain, "out.latent");
    EXPECT_EQ(r.video.shape(), test::stored(f, "out.video").shape);
    EXPECT_CLOSE(r.video, test::load_f64(f, "out.video"), tol.chain, "out.video (VAE decode, clamped)");
}

TEST(PipelineMoe, GoldenI2VA14B) {
    const MoeFixture x = open_moe("pipeline_moe_i2v.safetensors");
    const SafeTensorsFile& f = *x.f;
    std::shared_ptr<Backend> be = test_backend();
    const test::ChainTols tol = test::chain_tols(*be, x.opt.sample_steps);
    std::printf("[pipeline moe i2v] on %s\n", be->description().c_str());
    ASSERT_EQ(x.dit.model_type, "i2v");
    ASSERT_FALSE(x.dit.has_clip()) << "the I2V-A14B experts have no CLIP branch";
    T5Encoder t5 = T5Encoder::load(x.f, *be, "t5.");
    DitModel high(x.dit, x.f, *be, "high_noise_model.");
    DitModel low(x.dit, x.f, *be, "low_noise_model.");
    auto vae = WanVae::load(x.f, x.vae, be, "vae.");

    T2VOptions opt = x.opt;
    const nlohmann::json run = test::meta_json(f, "run");
    opt.width = run.at("max_area").get<int64_t>();  // --size W*H is max_area = W·H
    opt.height = 1;
    const int64_t h0 = run.at("image_h").get<int64_t>(), w0 = run.at("image_w").get<int64_t>();
    const I2VLatentShape shape = i2v_latent_shape(h0, w0, opt, x.dit, x.vae);
    EXPECT_EQ(shape.size.lat_h, run.at("lat_h").get<int64_t>());
    EXPECT_EQ(shape.size.lat_w, run.at("lat_w").get<int64_t>());
    EXPECT_EQ(shape.size.h, run.at("h").get<int64_t>());
    EXPECT_EQ(shape.size.w, run.at("w").get<int64_t>());
    EXPECT_EQ(shape.seq_len, run.at("seq_len").get<int64_t>());
    EXPECT_EQ(shape.latent, test::stored(f, "in.noise").shape);

    const std::vector<double> u8 = test::load_f64(f, "in.image_u8");  // [h0, w0, 3]
    std::vector<float> img(size_t(3 * h0 * w0));
    for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t i = 0; i < h0 * w0; ++i)
            img[size_t(ch * h0 * w0 + i)] = float(u8[size_t(i * 3 + ch)] / 255.0 * 2.0 - 1.0);
    EXPECT_CLOSE(std::vector<double>(img.begin(), img.end()), test::load_f64(f, "in.image"), 1e-7,
                 "in.image from in.image_u8");
    const Tensor image = ops::from_host(*be, DType::F32, {3, h0, w0}, img.data());
    const Tensor vin = i2v_vae_input(*be, image, opt.frame_num, shape.size.h, shape.size.w);
    EXPECT_CLOSE(vin.select(1, 0), test::load_f64(f, "mid.image_resized"), 1e-6, "mid.image_resized");
    EXPECT_CLOSE(i2v_mask(*be, shape.latent[1], shape.size.lat_h, shape.size.lat_w), test::load_f64(f, "mid.msk"), 0.0,
                 "mid.msk (exact)");

    StepChecks c{f, tol};
    const MoeResult r = generate_moe_i2v(
        t5, high, low, *vae, real_ids(f, "in.ids", "in.mask"), real_ids(f, "in.neg_ids", "in.neg_mask"), image,
        test::load_f32(*be, f, "in.noise"), opt, x.moe, c.on_step(), c.on_latent(), c.on_preds());
    EXPECT_EQ(c.steps, opt.sample_steps);
    check_schedule(x, r);
    EXPECT_EQ(r.y.shape(), test::stored(f, "mid.y").shape);
    EXPECT_CLOSE(r.y, test::load_f64(f, "mid.y"), tol.y, "mid.y (mask + VAE latent)");
    EXPECT_CLOSE(r.context, test::load_f64(f, "mid.context"), tol.t5, "mid.context (T5, prompt)");
    EXPECT_CLOSE(r.latent, test::load_f64(f, "out.latent"), tol.chain, "out.latent");
    EXPECT_EQ(r.video.shape(), test::stored(f, "out.video").shape);
    EXPECT_CLOSE(r.video, test::load_f64(f, "out.video"), tol.chain, "out.video (VAE decode, clamped)");
}

// One expert for every step is the single-model loop: a boundary that puts every step on the
// high-noise expert, with both experts the same model and g_high = g, equals cfg_denoise of that model.
// And the switch is real: swapping the experts changes the result.
TEST(PipelineMoe, SwitchAndSingleModelEquivalence) {
    const MoeFixture x = open_moe("pipeline_moe.safetensors");
    const SafeTensorsFile& f = *x.f;
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    DitModel high(x.dit, x.f, *be, "high_noise_model.");
    DitModel low(x.dit, x.f, *be, "low_noise_model.");
    T2VOptions opt = x.opt;
    const nlohmann::json run = test::meta_json(f, "run");
    opt.width = run.at("size").at(0).get<int64_t>();
    opt.height = run.at("size").at(1).get<int64_t>();
    opt.sample_steps = 3;
    const T2VLatentShape shape = t2v_latent_shape(opt, x.dit, x.vae);
    const Tensor noise = test::load_f32(*be, f, "in.noise");
    const Tensor ctx = test::load_f32(*be, f, "mid.context"), ctx_null = test::load_f32(*be, f, "mid.context_null");
    const DitSample c{{}, {}, ctx, {}, 0}, u{{}, {}, ctx_null, {}, 0};

    MoeOptions all_high = x.moe;
    all_high.boundary = 1e-9;  // every t ≥ 0 → high
    all_high.guide_scale_high = opt.guide_scale;
    const Tensor single = cfg_denoise(high, c, u, noise, opt, shape.seq_len);
    std::vector<bool> switches;
    const Tensor moe1 = cfg_denoise(moe_step_selector(
                                        all_high, opt, [&](bool h) -> const DitModel& { return h ? high : low; },
                                        [&](bool h) { switches.push_back(h); }),
                                    c, u, noise, opt, shape.seq_len);
    EXPECT_EQ(test::compare(moe1, test::to_f64(single)).max_abs, 0.0);
    EXPECT_EQ(switches, std::vector<bool>{true});

    const Tensor normal =
        cfg_denoise(moe_step_selector(x.moe, opt, [&](bool h) -> const DitModel& { return h ? high : low; }), c, u,
                    noise, opt, shape.seq_len);
    const Tensor swapped =
        cfg_denoise(moe_step_selector(x.moe, opt, [&](bool h) -> const DitModel& { return h ? low : high; }), c, u,
                    noise, opt, shape.seq_len);
    EXPECT_GT(test::compare(swapped, test::to_f64(normal)).rel_l2, 1e-3) << "swapping the experts changed nothing";
}

TEST(PipelineMoe, BadInputIsOneLineError) {
    DitConfig t2v = DitConfig::preset("t2v-14B"), i2v = DitConfig::preset("i2v-14B");
    MoeOptions moe;
    moe_check(moe, t2v, t2v);
    i2v.clip_branch = false;
    moe_check(moe, i2v, i2v);
    test::expect_error([&] { moe_check(moe, t2v, i2v); }, {"[moe]", "experts differ"});
    DitConfig deep = t2v;
    deep.num_layers = 30;
    test::expect_error([&] { moe_check(moe, t2v, deep); }, {"[moe]", "experts differ"});
    test::expect_error([&] { moe_check(moe, DitConfig::preset("i2v-14B"), DitConfig::preset("i2v-14B")); },
                       {"[moe]", "CLIP"});
    for (double b : {0.0, -0.5, 1.5, std::nan("")}) {
        moe.boundary = b;
        test::expect_error([&] { moe_check(moe, t2v, t2v); }, {"[moe]", "boundary"});
    }
    // The boundary is inclusive (t.item() >= boundary), in float64.
    EXPECT_TRUE(moe_high_noise(875, 0.875));
    EXPECT_FALSE(moe_high_noise(874, 0.875));
    EXPECT_TRUE(moe_high_noise(900, 0.9));
    EXPECT_FALSE(moe_high_noise(899, 0.9));
}

// The staged run (the CLI's path: one expert resident at a time, or both) gives exactly the video of
// the loaded models, for T2V and I2V on the demo A14B models.
TEST(PipelineMoe, StagedRunEqualsLoadedModels) {
    std::shared_ptr<Backend> be = test::test_device();
    if (!be) be = make_cpu_backend(2);
    for (const bool i2v : {false, true}) {
        const T2VModelParts m = demo_moe_model_parts(i2v);
        ASSERT_TRUE(m.moe());
        T2VOptions opt;
        opt.width = 48;
        opt.height = 32;
        opt.frame_num = 5;
        opt.sample_steps = 4;
        opt.sample_shift = 12;
        MoeOptions moe;
        moe.boundary = 0.875;
        moe.guide_scale_high = 4.0;
        opt.guide_scale = 3.0;
        const std::vector<float> pix = test::randn(3 * 30 * 40, 5, 0.5f);
        const Tensor image = i2v ? ops::from_host(*be, DType::F32, {3, 30, 40}, pix.data()) : Tensor();
        const std::string prompt = "two cats boxing", neg = "blurry";
        std::vector<std::string> stages;
        const I2VStagedResult staged =
            run_moe_staged(m, be, prompt, neg, image, 17, opt, moe, [&](const std::string& s) { stages.push_back(s); });
        MoeOptions resident = moe;
        resident.offload = false;
        const I2VStagedResult staged2 = run_moe_staged(m, be, prompt, neg, image, 17, opt, resident);
        // Offload: the high-noise expert loads first, the low-noise one at the switch (inside the loop).
        std::string order;
        for (const std::string& s : stages) order += s + "; ";
        EXPECT_NE(order.find("denoise; load DiT (high-noise expert); load DiT (low-noise expert)"), std::string::npos)
            << order;

        text::T5Tokenizer tok(m.tokenizer, m.dit_config.text_len);
        T5Encoder t5 = T5Encoder::load(m.t5_weights(), *be);
        DitModel high(m.dit_config, m.high_noise_weights(), *be), low(m.dit_config, m.dit_weights(), *be);
        auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
        const Shape latent = i2v ? i2v_latent_shape(30, 40, opt, m.dit_config, m.vae_config).latent
                                 : t2v_latent_shape(opt, m.dit_config, m.vae_config).latent;
        const Tensor noise = t2v_noise(*be, latent, 17);
        const auto ids = tok.tokenize(prompt).real_ids(), neg_ids = tok.tokenize(neg).real_ids();
        const MoeResult loaded = i2v ? generate_moe_i2v(t5, high, low, *vae, ids, neg_ids, image, noise, opt, moe)
                                     : generate_moe_t2v(t5, high, low, *vae, ids, neg_ids, noise, opt, moe);
        EXPECT_EQ(loaded.experts, (std::vector<int>{1, 1, 1, 0})) << "4 steps at shift 12: 3 high-noise steps";
        const double tol = on_cpu(*be) ? 0.0 : 1e-6;
        EXPECT_CLOSE(staged.video, test::to_f64(loaded.video), tol,
                     std::string(i2v ? "i2v" : "t2v") + " staged vs loaded");
        EXPECT_CLOSE(staged2.video, test::to_f64(loaded.video), tol,
                     std::string(i2v ? "i2v" : "t2v") + " resident vs loaded");
        // The experts differ (another seed): a run with the low-noise expert alone is another video.
        const Tensor low_only =
            cfg_denoise(low, DitSample{{}, loaded.y, loaded.context, {}, 0},
                        DitSample{{}, loaded.y, loaded.context_null, {}, 0}, noise, opt, low.tokens_for(latent));
        EXPECT_GT(test::compare(low_only, test::to_f64(loaded.latent)).rel_l2, 1e-3);
    }
}
