// The whole text-to-video chain against pipeline_t2v.safetensors (tiny T5 + DiT + VAE run by the
// official WanT2V.generate logic in float64): contexts, every step's latent, the final latent and the
// clamped video. Every config, size and sampler setting comes from the fixture.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "pipeline/demo.h"
#include "pipeline/generate.h"
#include "pipeline/stream_staged.h"
#include "pipeline/t2v.h"
#include "sched/scheduler.h"
#include "video/video_writer.h"
#include "test_util.h"

using namespace wanrt;
using test::meta;
using test::meta_int;
using test::real_ids;

namespace {

}  // namespace

TEST(PipelineT2V, GoldenOfficialGenerate) {
    auto f = test::open_fixture("pipeline_t2v.safetensors");
    std::shared_ptr<Backend> be = make_cpu_backend(0);
    const nlohmann::json cfgs = test::meta_json(*f, "configs");

    const T5Config t5cfg = T5Config::from_json(cfgs.at("t5").dump());
    const DitConfig ditcfg = DitConfig::from_json(cfgs.at("dit").dump(), f->origin());
    const VaeConfig vaecfg = VaeConfig::from_json(cfgs.at("vae").dump());
    T5Encoder t5 = T5Encoder::load(f, *be, "t5.");
    EXPECT_EQ(t5.config.dim, t5cfg.dim);
    EXPECT_EQ(t5.config.num_layers, t5cfg.num_layers);
    DitModel dit(ditcfg, f, *be, "dit.");
    auto vae = WanVae::load(f, vaecfg, be, "vae.");

    T2VOptions opt;
    opt.sample_steps = std::stoi(meta(*f, "steps"));
    opt.sample_shift = std::stod(meta(*f, "shift"));
    opt.guide_scale = std::stod(meta(*f, "guide_scale"));
    opt.solver = meta(*f, "solver");
    opt.frame_num = std::stoi(meta(*f, "frame_num"));
    opt.height = std::stoi(meta(*f, "height"));
    opt.width = std::stoi(meta(*f, "width"));

    const T2VLatentShape shape = t2v_latent_shape(opt, ditcfg, vaecfg);
    EXPECT_EQ(shape.seq_len, std::stoll(meta(*f, "seq_len")));
    EXPECT_EQ(shape.latent, test::stored(*f, "in.noise").shape);

    std::vector<double> ts_ref = test::load_f64(*f, "mid.timesteps");
    auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);
    ASSERT_EQ(sched->timesteps().size(), ts_ref.size());
    for (size_t i = 0; i < ts_ref.size(); ++i) EXPECT_EQ(double(sched->timesteps()[i]), ts_ref[i]) << i;

    Tensor noise = test::load_f32(*be, *f, "in.noise");
    std::printf("[pipeline] %s, %d steps, shift %g, guide %g, %lldx%lld, %lld frames, seq_len %lld\n",
                opt.solver.c_str(), opt.sample_steps, opt.sample_shift, opt.guide_scale,
                static_cast<long long>(opt.width), static_cast<long long>(opt.height),
                static_cast<long long>(opt.frame_num), static_cast<long long>(shape.seq_len));
    int steps_seen = 0;
    T2VResult r = generate_t2v(
        t5, dit, *vae, real_ids(*f, "in.ids", "in.mask"), real_ids(*f, "in.neg_ids", "in.neg_mask"), noise, opt,
        [&](const T2VStepInfo& s) {
            EXPECT_EQ(s.index, steps_seen);
            EXPECT_EQ(s.total, opt.sample_steps);
            ++steps_seen;
        },
        [&](int i, const Tensor& x) {
            const std::string k = std::to_string(i);
            EXPECT_CLOSE(x, test::load_f64(*f, "mid.latent" + k), 1e-4, "latent after step " + k);
        });
    EXPECT_EQ(steps_seen, opt.sample_steps);
    EXPECT_CLOSE(r.context, test::load_f64(*f, "mid.context"), 1e-4, "context (T5, prompt)");
    EXPECT_CLOSE(r.context_null, test::load_f64(*f, "mid.context_null"), 1e-4, "context_null (T5, negative)");
    EXPECT_CLOSE(r.latent, test::load_f64(*f, "out.latent"), 1e-4, "final latent");
    EXPECT_EQ(r.video.shape(), test::stored(*f, "out.video").shape);
    EXPECT_CLOSE(r.video, test::load_f64(*f, "out.video"), 1e-4, "video (VAE decode, clamped)");
    std::printf("[pipeline] text %.3f s, denoise %.3f s, decode %.3f s\n", r.text_seconds, r.denoise_seconds,
                r.decode_seconds);
}

TEST(PipelineT2V, BadOptionsAreOneLineErrors) {
    DitConfig dit = DitConfig::preset("t2v-1.3B");
    VaeConfig vae;
    T2VOptions ok;
    ok.width = 832;
    ok.height = 480;
    T2VLatentShape s = t2v_latent_shape(ok, dit, vae);
    EXPECT_EQ(s.latent, (Shape{16, 21, 60, 104}));
    EXPECT_EQ(s.seq_len, 32760);  // 832×480×81 frames: docs/wan21.md §1.11

    T2VOptions o = ok;
    o.frame_num = 80;
    test::expect_error([&] { t2v_latent_shape(o, dit, vae); }, {"[t2v]", "frame_num 80", "77", "81"});
    o = ok;
    o.width = 840;
    test::expect_error([&] { t2v_latent_shape(o, dit, vae); }, {"[t2v]", "840*480", "multiple of 16"});
    o = ok;
    o.height = 0;
    test::expect_error([&] { t2v_latent_shape(o, dit, vae); }, {"[t2v]", "832*0"});
    DitConfig i2v = DitConfig::preset("i2v-14B");
    test::expect_error([&] { t2v_latent_shape(ok, i2v, vae); }, {"[t2v]"});
}

TEST(PipelineT2V, NoiseIsDeterministicPerSeed) {
    std::shared_ptr<Backend> be = make_cpu_backend(1);
    const Shape shape = {16, 3, 5, 7};
    std::vector<float> a = ops::to_host_f32(t2v_noise(*be, shape, 42));
    std::vector<float> b = ops::to_host_f32(t2v_noise(*be, shape, 42));
    std::vector<float> c = ops::to_host_f32(t2v_noise(*be, shape, 43));
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    double mean = 0, var = 0;
    for (float v : a) mean += v;
    mean /= double(a.size());
    for (float v : a) var += (v - mean) * (v - mean);
    var /= double(a.size());
    EXPECT_NEAR(mean, 0.0, 0.15);
    EXPECT_NEAR(var, 1.0, 0.2);
}

// Same seed → bit-identical frames; the clip written as mp4 has 4n+1 frames at 16 fps.
TEST(PipelineT2V, SameSeedSameVideoAndPlayableMp4) {
    auto f = test::open_fixture("pipeline_t2v.safetensors");
    std::shared_ptr<Backend> be = make_cpu_backend(0);
    const nlohmann::json cfgs = test::meta_json(*f, "configs");
    const DitConfig ditcfg = DitConfig::from_json(cfgs.at("dit").dump(), f->origin());
    const VaeConfig vaecfg = VaeConfig::from_json(cfgs.at("vae").dump());
    T5Encoder t5 = T5Encoder::load(f, *be, "t5.");
    DitModel dit(ditcfg, f, *be, "dit.");
    auto vae = WanVae::load(f, vaecfg, be, "vae.");
    T2VOptions opt;
    opt.sample_steps = 3;
    opt.solver = "dpm++";
    opt.frame_num = std::stoi(meta(*f, "frame_num"));
    opt.height = std::stoi(meta(*f, "height"));
    opt.width = std::stoi(meta(*f, "width"));
    const Shape latent = t2v_latent_shape(opt, ditcfg, vaecfg).latent;
    const std::vector<int32_t> ids = {5, 9, 1}, neg = {7, 1};

    std::vector<std::vector<float>> runs;
    for (uint64_t seed : {7u, 7u, 8u}) {
        T2VResult r = generate_t2v(t5, dit, *vae, ids, neg, t2v_noise(*be, latent, seed), opt);
        runs.push_back(ops::to_host_f32(r.video));
        if (runs.size() == 1) {
            const std::string path = testing::TempDir() + "wanrt_t2v_" + std::to_string(getpid()) + ".mp4";
            write_video(path, r.video);
            FILE* p = popen(("ffprobe -v error -count_frames -select_streams v:0 -show_entries "
                             "stream=width,height,r_frame_rate,nb_read_frames -of csv=p=0 '" + path + "'").c_str(),
                            "r");
            char buf[256] = {0};
            size_t n = p ? fread(buf, 1, sizeof(buf) - 1, p) : 0;
            if (p) pclose(p);
            std::string out(buf, n);
            while (!out.empty() && out.back() == '\n') out.pop_back();
            EXPECT_EQ(out, std::to_string(opt.width) + "," + std::to_string(opt.height) + ",16/1," +
                               std::to_string(opt.frame_num));
            std::remove(path.c_str());
        }
    }
    EXPECT_TRUE(runs[0] == runs[1]) << "same seed, different frames";
    EXPECT_FALSE(runs[0] == runs[2]) << "different seeds, same frames";
}

// run_generate picks the staged runner (T2V with guidance, or causal) and returns its video bit for
// bit, with one shape of timings; the stages are announced in order.
TEST(PipelineStaged, RunGenerateIsTheStagedRunners) {
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    const T2VModelParts m = demo_model_parts();
    GenerateRequest req;
    req.prompt = "a cat";
    req.neg_prompt = "blur";
    req.seed = 5;
    req.opt.width = 64;
    req.opt.height = 48;
    req.opt.frame_num = 5;
    req.opt.sample_steps = 2;
    std::vector<std::string> stages;
    GenerateProgress progress;
    progress.on_stage = [&](const std::string& s) { stages.push_back(s); };

    const GenerateResult g = run_generate(m, be, req, progress);
    const T2VStagedResult t = run_t2v_staged(m, be, req.prompt, req.neg_prompt, req.seed, req.opt);
    EXPECT_TRUE(ops::to_host_f32(g.video) == ops::to_host_f32(t.video));
    EXPECT_EQ(g.times.prompt_tokens, (std::vector<int64_t>{t.times.prompt_tokens, t.times.neg_prompt_tokens}));
    EXPECT_EQ(g.times.step_seconds.size(), 2u);
    EXPECT_EQ(stages, (std::vector<std::string>{"tokenize", "load text encoder", "encode text", "load DiT", "denoise",
                                                "load VAE", "decode"}));

    CausalOptions copt;
    copt.frames_per_block = 1;
    copt.steps = {1000, 500};
    req.opt.frame_num = 9;  // 3 latent frames = 3 blocks of 1
    req.causal = copt;
    const GenerateResult gc = run_generate(m, be, req);
    const CausalStagedResult c = run_causal_staged(m, be, req.prompt, req.seed, req.opt, copt);
    EXPECT_TRUE(ops::to_host_f32(gc.video) == ops::to_host_f32(c.video));
    EXPECT_EQ(gc.times.prompt_tokens, (std::vector<int64_t>{c.times.prompt_tokens}));
    EXPECT_EQ(gc.times.step_seconds.size(), 3u);
    EXPECT_EQ(gc.times.dit_calls, c.times.dit_calls);
    EXPECT_GT(gc.times.kv_cache_bytes, 0);
    EXPECT_FALSE(ops::to_host_f32(gc.video) == ops::to_host_f32(g.video));
}

// run_stream_staged: the shared text stage, the DiT and the VAE, then the whole video through the
// stream (5 + 4 frames in, 9 out); the text encoder is checked against the DiT's text_dim.
TEST(PipelineStaged, RunStreamStaged) {
    std::shared_ptr<Backend> be = make_cpu_backend(2);
    T2VModelParts m = demo_model_parts();
    std::vector<float> v(size_t(3 * 9 * 32 * 48));
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(std::sin(0.37 * double(i)));
    const Tensor video = ops::from_host(*be, DType::F32, {3, 9, 32, 48}, v.data());
    std::vector<std::string> stages;
    std::vector<int64_t> chunks;
    const StreamStagedResult r = run_stream_staged(
        m, be, "ink wash", video, StreamOptions{}, 3, {}, [&](const std::string& s) { stages.push_back(s); },
        [&](int64_t k, int64_t n, double, const StreamStats& st) {
            chunks.push_back(k);
            EXPECT_EQ(n, 2);
            EXPECT_EQ(st.chunks_in, k + 1);
        });
    EXPECT_EQ(r.video.shape(), (Shape{3, 9, 32, 48}));
    EXPECT_EQ(r.stats.frames_out, 9);
    EXPECT_EQ(chunks, (std::vector<int64_t>{0, 1}));
    EXPECT_GT(r.kv_cache_bytes, 0);
    EXPECT_GT(r.times.load(), 0);
    EXPECT_EQ(stages, (std::vector<std::string>{"tokenize", "load text encoder", "encode text", "load DiT", "load VAE",
                                                "stream"}));

    m.dit_config.text_dim /= 2;  // a text encoder of another width: refused before the DiT loads
    test::expect_error([&] { run_stream_staged(m, be, "x", video, StreamOptions{}, 3); },
                       {"[model]", "differs from the DiT's text_dim"});
}
