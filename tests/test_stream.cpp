// Streaming V2V (StreamDiffusionV2 loop) with a tiny random VAE and the causal fixture's DiT:
//   * one step: the stream equals a hand-written encode → noise → causal DiT → decode loop;
//   * the stream batch's latency and frame counts (1 + 4, then 4; n − 1 chunks in flight; flush);
//   * the motion controller's arithmetic (docs/streaming.md §4.4 examples);
//   * a soak: thousands of frames in constant memory;
//   * bad input → one-line errors.
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>

#include "models/causal_dit.h"
#include "pipeline/demo.h"
#include "pipeline/stream.h"
#include "pipeline/stream_staged.h"
#include "test_util.h"
#include "video/video_writer.h"

namespace wanrt::test {

namespace {

struct Models {
    std::shared_ptr<Backend> be;
    std::shared_ptr<CausalDitModel> dit;
    std::shared_ptr<WanVae> vae;
    Tensor context;
};

Models load_models() {
    Models m;
    m.be = make_cpu_backend(2);
    auto f = open_fixture("causal.safetensors");
    DitConfig cfg = DitConfig::from_json(f->metadata().at("config"), f->origin());
    auto weights = std::make_shared<MemoryTensorSource>(f->origin());
    for (const std::string& n : f->names()) {
        if (n.rfind("in.", 0) == 0 || n.rfind("out.", 0) == 0 || n.rfind("mid.", 0) == 0) continue;
        const StoredTensor& t = *f->find(n);
        weights->add(n, t.dtype, t.shape, t.data);
    }
    m.dit = std::make_shared<CausalDitModel>(std::make_shared<DitModel>(cfg, weights, *m.be));
    VaeConfig vc;
    vc.dim = 8;
    vc.z_dim = cfg.in_dim;
    vc.num_res_blocks = 1;
    m.vae = WanVae::load(synthetic_vae_weights(vc, 3), vc, m.be);
    m.context = load_f32(*m.be, *f, "in.context0");
    return m;
}

// Draws keyed by index (so a reference loop can take the same ε in the same order).
NoiseSource keyed_noise() {
    return [](Backend& be, const Shape& s, int64_t k) { return randn_tensor(be, s, 5000 + uint64_t(k)); };
}

// A smooth moving pattern in [−1, 1]: frame f of [3, T, H, W].
Tensor test_video(Backend& be, int64_t T, int64_t H, int64_t W, double speed = 0.3) {
    std::vector<float> v(size_t(3 * T * H * W));
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x)
                    v[size_t(((c * T + t) * H + y) * W + x)] =
                        float(0.8 * std::sin(0.4 * double(x) + 0.3 * double(y) + speed * double(t) + double(c)));
    return ops::from_host(be, DType::F32, {3, T, H, W}, v.data());
}

// Runs the wanrt binary (shell words, output to `log`) and returns its exit code and peak resident
// memory in KiB (wait4's ru_maxrss; `exec` makes the shell the binary). Under AddressSanitizer the
// quarantine is turned off for it: freed blocks would otherwise wait there and RSS would grow with
// every free (test_util.h, held_memory_kb).
std::pair<int, long> run_cli_peak(const std::string& args, const std::string& log) {
    const std::string cmd = "ASAN_OPTIONS=\"${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0\" exec " +
                            wanrt_binary() + " " + args + " >" + log + " 2>&1";
    const pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    int status = 0;
    struct rusage ru {};
    if (pid < 0 || wait4(pid, &status, 0, &ru) != pid) return {-1, 0};
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ru.ru_maxrss};
}

}  // namespace

TEST(Stream, OneStepEqualsReferenceLoop) {
    Models m = load_models();
    StreamOptions o;
    o.steps = {700};
    o.motion_aware = false;
    const int64_t H = 16, W = 32, T = 13;
    Tensor video = test_video(*m.be, T, H, W);
    StreamV2V s(m.dit, m.vae, m.context, o, keyed_noise());
    Tensor out = stream_video(s, video);
    ASSERT_EQ(out.shape(), (Shape{3, T, H, W}));

    // Reference: offline chunks through fresh stream encoder/decoder, one causal call per chunk at its
    // stream frame, raw latents (mu = z·std + mean), x̂₀ = x − σ(700)·v.
    FlowMatchTable table(o.shift);
    VaeStreamEncoder enc(m.vae);
    VaeStreamDecoder dec(m.vae);
    Tensor mean = ops::from_host(*m.be, DType::F32, {16, 1, 1, 1}, wan21_latent_mean().data());
    Tensor stdv = ops::from_host(*m.be, DType::F32, {16, 1, 1, 1}, wan21_latent_std().data());
    KvCache cache = m.dit->make_cache(1, o.cache_frames, H / 8, W / 8, o.sink_frames, o.refresh_frame, o.adapt_sink_threshold);
    CrossKvCache cross = m.dit->make_cross_cache(m.context);
    NoiseSource eps = keyed_noise();
    std::vector<Tensor> frames;
    int64_t draw = 0, frame = 0;
    for (int64_t k = 0; k < (T - 1) / 4; ++k) {
        Tensor z = k == 0 ? ops::concat({enc.push(ops::contiguous(video.slice(1, 0, 1))),
                                         enc.push(ops::contiguous(video.slice(1, 1, 5)))}, 1)
                          : enc.push(ops::contiguous(video.slice(1, 1 + 4 * k, 5 + 4 * k)));
        z = ops::add(ops::mul(z, stdv), mean);
        Tensor x = add_noise(z, eps(*m.be, z.shape(), draw++), float(o.noise_scale));
        Tensor v = m.dit->forward({{x, {700}, frame}}, cache, cross)[0];
        frame += x.size(1);
        Tensor x0 = flow_to_x0(v, x, table.sigma(700));
        for (int64_t i = 0; i < x0.size(1); ++i) frames.push_back(dec.push(ops::contiguous(x0.slice(1, i, i + 1))));
    }
    std::vector<double> ref = to_f64(ops::concat(frames, 1));
    for (double& r : ref) r = std::clamp(r, -1.0, 1.0);
    EXPECT_CLOSE(out, ref, 1e-6, "stream (1 step) vs reference loop");
}

TEST(Stream, StreamBatchLatencyAndCounts) {
    Models m = load_models();
    StreamOptions o;
    o.steps = {700, 500, 400};  // n = 3: two chunks in flight
    const int64_t H = 16, W = 16;
    Tensor video = test_video(*m.be, 1 + 4 * 6, H, W);
    StreamV2V s(m.dit, m.vae, m.context, o, keyed_noise());
    std::vector<int64_t> got;
    for (int64_t k = 0; k < 6; ++k) {
        const int64_t a = k == 0 ? 0 : 1 + 4 * k;
        EXPECT_EQ(s.next_chunk_frames(), k == 0 ? 5 : 4);
        Tensor o1 = s.push(ops::contiguous(video.slice(1, a, 5 + 4 * k)));
        got.push_back(o1.defined() ? o1.size(1) : 0);
    }
    EXPECT_EQ(got, (std::vector<int64_t>{5, 0, 0, 4, 4, 4}));
    Tensor rest = s.flush();
    ASSERT_TRUE(rest.defined());
    EXPECT_EQ(rest.size(1), 8);  // chunks 4 and 5
    EXPECT_EQ(s.stats().frames_out, 5 + 4 * 5);
    EXPECT_EQ(s.stats().dit_calls, 3 + 5 + 2);  // prepare (3 steps) + 5 stream calls + 2 flush calls
    for (float v : ops::to_host_f32(rest)) ASSERT_TRUE(std::isfinite(v));
    // Same input, same noise → same output (determinism), and a reset stream starts over.
    s.reset();
    Tensor again = s.push(ops::contiguous(video.slice(1, 0, 5)));
    EXPECT_EQ(again.size(1), 5);
}

TEST(Stream, StreamBatchEqualsSequentialPerStepCaches) {
    // The stream batch (one call carrying n chunks at n noise levels, cache row j for slot j) equals
    // running each chunk through its n steps in turn, step j against its own single-row cache j
    // (rows never mix, §4.7); the ε indices follow the stream's draw order.
    Models m = load_models();
    StreamOptions o;
    o.steps = {700, 500, 300};
    o.motion_aware = false;
    o.cache_frames = 4;  // small, so the ring wraps within the clip
    o.sink_frames = 2;
    // Off here: rows j ≥ 1 also measure the sink similarity on their warm-up placeholders (as SD),
    // which this chunk-by-chunk emulation does not replay; the adaptive sink is tested in test_causal.
    o.adapt_sink_threshold = -1;
    const int64_t H = 16, W = 16, n = 3, chunks = 7, T = 1 + 4 * chunks;
    Tensor video = test_video(*m.be, T, H, W);
    StreamV2V s(m.dit, m.vae, m.context, o, keyed_noise());
    Tensor out = stream_video(s, video);
    ASSERT_EQ(out.size(1), T);

    FlowMatchTable table(o.shift);
    VaeStreamEncoder enc(m.vae);
    VaeStreamDecoder dec(m.vae);
    Tensor mean = ops::from_host(*m.be, DType::F32, {16, 1, 1, 1}, wan21_latent_mean().data());
    Tensor stdv = ops::from_host(*m.be, DType::F32, {16, 1, 1, 1}, wan21_latent_std().data());
    std::vector<KvCache> caches;
    for (int64_t j = 0; j < n; ++j) caches.push_back(m.dit->make_cache(1, o.cache_frames, H / 8, W / 8, o.sink_frames, o.refresh_frame,
                                           o.adapt_sink_threshold));
    CrossKvCache cross = m.dit->make_cross_cache(m.context);
    NoiseSource eps = keyed_noise();
    std::vector<Tensor> frames;
    auto decode = [&](const Tensor& x0) {
        for (int64_t i = 0; i < x0.size(1); ++i) frames.push_back(dec.push(ops::contiguous(x0.slice(1, i, i + 1))));
    };
    // chunk 0: draws 0 (noise) and 1 … n−1 (prepare re-noising); every cache sees all n passes.
    Tensor z = ops::add(ops::mul(ops::concat({enc.push(ops::contiguous(video.slice(1, 0, 1))),
                                              enc.push(ops::contiguous(video.slice(1, 1, 5)))}, 1), stdv), mean);
    Tensor x = add_noise(z, eps(*m.be, z.shape(), 0), float(o.noise_scale)), x0;
    for (int64_t j = 0; j < n; ++j) {
        for (int64_t r = 0; r < n; ++r) {
            Tensor v = m.dit->forward({{x, {o.steps[size_t(j)]}, 0}}, caches[size_t(r)], cross)[0];
            if (r == 0) x0 = flow_to_x0(v, x, table.sigma(o.steps[size_t(j)]));
        }
        if (j + 1 < n) x = add_noise(x0, eps(*m.be, x0.shape(), j + 1), table.sigma(o.steps[size_t(j + 1)]));
    }
    decode(x0);
    // chunk k ≥ 1 enters at call k: its noise is draw n + (k−1)·n, its step-j re-noising happens at
    // call k + j as draw n + (k + j − 1)·n + 1 + j.
    for (int64_t k = 1; k < chunks; ++k) {
        z = ops::add(ops::mul(enc.push(ops::contiguous(video.slice(1, 1 + 4 * k, 5 + 4 * k))), stdv), mean);
        x = add_noise(z, eps(*m.be, z.shape(), n + (k - 1) * n), float(o.noise_scale));
        for (int64_t j = 0; j < n; ++j) {
            Tensor v = m.dit->forward({{x, {o.steps[size_t(j)]}, k + 1}}, caches[size_t(j)], cross)[0];
            x0 = flow_to_x0(v, x, table.sigma(o.steps[size_t(j)]));
            if (j + 1 < n) x = add_noise(x0, eps(*m.be, x0.shape(), n + (k + j - 1) * n + 1 + j), table.sigma(o.steps[size_t(j + 1)]));
        }
        decode(x0);
    }
    std::vector<double> ref = to_f64(ops::concat(frames, 1));
    for (double& r : ref) r = std::clamp(r, -1.0, 1.0);
    EXPECT_CLOSE(out, ref, 1e-5, "stream batch (3 steps) vs per-step caches");
}

TEST(Stream, MotionController) {
    Models m = load_models();
    StreamOptions o;
    o.steps = {700};
    const int64_t H = 16, W = 16;
    StreamV2V s(m.dit, m.vae, m.context, o, keyed_noise());
    Tensor still = test_video(*m.be, 9, H, W, 0.0);
    s.push(ops::contiguous(still.slice(1, 0, 5)));
    EXPECT_EQ(s.stats().last_t0, 700);
    s.push(ops::contiguous(still.slice(1, 5, 9)));  // d = 0 → ns = 0.8 → τ₀ = 700
    EXPECT_DOUBLE_EQ(s.stats().last_noise_scale, 0.8);
    EXPECT_EQ(s.stats().last_t0, 700);
    // Frames alternating between −1 and +1: rms difference 2 → d = 1 → ns = 0.71 → τ₀ = 610.
    std::vector<float> flip(size_t(3 * 4 * H * W));
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t t = 0; t < 4; ++t)
            for (int64_t i = 0; i < H * W; ++i) flip[size_t((c * 4 + t) * H * W + i)] = t % 2 ? -1.0f : 1.0f;
    s.push(ops::from_host(*m.be, DType::F32, {3, 4, H, W}, flip.data()));
    EXPECT_NEAR(s.stats().last_noise_scale, 0.71, 1e-12);
    EXPECT_EQ(s.stats().last_t0, 610);
}

TEST(Stream, SoakConstantMemory) {
    // Thousands of frames (tiny frames, one step) with the rolling cache and the position wrap.
    Models m = load_models();
    StreamOptions o;
    o.steps = {600};
    const int64_t H = 16, W = 16;
    StreamV2V s(m.dit, m.vae, m.context, o, keyed_noise());
    Tensor clip = test_video(*m.be, 9, H, W);
    s.push(ops::contiguous(clip.slice(1, 0, 5)));
    Tensor chunk = ops::contiguous(clip.slice(1, 5, 9));
    const int64_t bytes = s.cache().bytes();
    const void* k0 = s.cache().k[0].raw();
    for (int i = 0; i < 100; ++i) s.push(chunk);  // warm-up: allocator pools reach steady state
    const int64_t rss0 = held_memory_kb();
    const int64_t chunks = 400;
    for (int64_t i = 0; i < chunks; ++i) ASSERT_EQ(s.push(chunk).size(1), 4);
    const int64_t rss1 = held_memory_kb();
    std::printf("  soak: %ld frames streamed, cache %ld bytes, RSS %ld → %ld KiB, dit %.2f s, vae %.2f s\n",
                long(s.stats().frames_in), long(bytes), long(rss0), long(rss1), s.stats().dit_s,
                s.stats().encode_s + s.stats().decode_s);
    EXPECT_GE(s.stats().frames_in, 2000);
    EXPECT_EQ(s.cache().bytes(), bytes);
    EXPECT_EQ(s.cache().k[0].raw(), k0);
    EXPECT_LE(rss1 - rss0, 2048) << "RSS grew from " << rss0 << " to " << rss1 << " KiB";
}

TEST(Stream, BadInput) {
    Models m = load_models();
    StreamOptions o;
    StreamV2V s(m.dit, m.vae, m.context, o);
    Tensor v = test_video(*m.be, 9, 16, 16);
    expect_error([&] { s.push(ops::contiguous(v.slice(1, 0, 4))); }, {"[stream]", "[3, 5, H, W]"});
    Tensor odd = test_video(*m.be, 5, 24, 16);
    expect_error([&] { s.push(odd); }, {"[stream]", "multiple of 16"});
    s.push(ops::contiguous(v.slice(1, 0, 5)));
    expect_error([&] { s.push(ops::contiguous(v.slice(1, 0, 5))); }, {"[stream]", "[3, 4, H, W]"});
    expect_error([&] { s.push(test_video(*m.be, 4, 32, 16)); }, {"[stream]", "started at"});
    s.flush();
    expect_error([&] { s.push(ops::contiguous(v.slice(1, 5, 9))); }, {"[stream]", "reset"});
    StreamOptions bad;
    bad.steps = {};
    expect_error([&] { StreamV2V(m.dit, m.vae, m.context, bad); }, {"[stream]", "empty"});
    bad.steps = {700};
    bad.sink_frames = 6;
    expect_error([&] { StreamV2V(m.dit, m.vae, m.context, bad); }, {"[stream]", "sink"});
    bad.sink_frames = 3;
    bad.noise_scale = 1.5;
    expect_error([&] { StreamV2V(m.dit, m.vae, m.context, bad); }, {"[stream]", "noise scale"});
    expect_error([&] { stream_video(s, test_video(*m.be, 3, 16, 16)); }, {"[stream]", "at least 5 frames"});
}

TEST(Stream, CommandLine) {
    // `wanrt stream` with the built-in demo model: 14 frames in → 13 out (the 14th is not a whole
    // chunk); bad input gives one line and exit code 1.
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/wanrt_stream_XXXXXX";
    const fs::path dir = mkdtemp(tmpl);
    auto be = make_cpu_backend(1);
    const std::string in = (dir / "in.y4m").string(), out = (dir / "out.y4m").string();
    write_video(in, test_video(*be, 14, 32, 48));
    CliRun r = run_cli("stream --input " + in + " --output " + out + " --prompt 'ink wash' --threads 2 --steps 700,500");
    EXPECT_EQ(r.code, 0) << r.out;
    Rgb24Video v = read_video(out);
    EXPECT_EQ(v.frames, 13);
    EXPECT_EQ(v.width, 48);
    EXPECT_EQ(v.height, 32);
    write_video(in, test_video(*be, 9, 24, 48));
    r = run_cli("stream --input " + in + " --output " + out + " --prompt x");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("[stream]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("multiple of 16"), std::string::npos) << r.out;
    r = run_cli("stream --input " + in + " --output " + out + " --prompt x --steps 700,abc");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.out.find("bad --steps"), std::string::npos) << r.out;
    fs::remove_all(dir);
}

// `wanrt stream` reads and writes its files chunk by chunk: a 121-frame input peaks at the memory of a
// 21-frame one (the whole-video path held every input and output frame, ≈ 0.87 MB a frame here:
// +87 MB), and the output is byte for byte what the whole-video run_stream_staged gives. --max_frames
// stops the input; a write that fails mid-stream (a file-size limit) leaves nothing behind.
TEST(Stream, CommandLineStreamsFilesInBoundedMemory) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/wanrt_stream_XXXXXX";
    const fs::path dir = mkdtemp(tmpl);
    auto be = make_cpu_backend(2);
    const std::string shortv = (dir / "short.y4m").string(), longv = (dir / "long.y4m").string();
    write_video(shortv, test_video(*be, 21, 128, 128));
    write_video(longv, test_video(*be, 121, 128, 128));
    const std::string log = (dir / "log.txt").string();
    auto stream = [&](const std::string& in, const std::string& out, const std::string& extra = "") {
        return run_cli_peak(
            "stream --input " + in + " --output " + out + " --prompt 'ink wash' --device cpu --threads 2" + extra, log);
    };
    const auto [code_s, peak_s] = stream(shortv, (dir / "short_out.y4m").string());
    ASSERT_EQ(code_s, 0) << read_file(log);
    const auto [code_l, peak_l] = stream(longv, (dir / "long_out.y4m").string());
    ASSERT_EQ(code_l, 0) << read_file(log);
    EXPECT_NE(read_file(log).find("chunk 30/30:"), std::string::npos) << read_file(log);
    std::printf("  peak RSS: 21 frames %ld KiB, 121 frames %ld KiB\n", peak_s, peak_l);
    EXPECT_LT(peak_l - peak_s, 16 * 1024) << "the long input held " << (peak_l - peak_s) / 1024 << " MiB more";
    EXPECT_EQ(read_video((dir / "long_out.y4m").string()).frames, 121);

    const StreamStagedResult r = run_stream_staged(demo_model_parts(), be, "ink wash",
                                                   rgb24_to_video(read_video(shortv), *be), StreamOptions{}, 0);
    write_video((dir / "whole.y4m").string(), r.video);
    EXPECT_TRUE(read_file(dir / "whole.y4m") == read_file(dir / "short_out.y4m"))
        << "streamed file differs from the whole-video path";

    ASSERT_EQ(stream(longv, (dir / "max.y4m").string(), " --max_frames 15").first, 0) << read_file(log);
    EXPECT_EQ(read_video((dir / "max.y4m").string()).frames, 13);  // 5 + 4 + 4; the 2 left are no chunk

    const std::string limited = (dir / "limited.y4m").string();
    const CliRun f = run_shell("ulimit -f 200; " + wanrt_binary() + " stream --input " + longv + " --output " +
                               limited + " --prompt x --device cpu --threads 2");
    EXPECT_EQ(f.code, 1) << f.out;
    EXPECT_NE(f.out.find("file size limit"), std::string::npos) << f.out;
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"log.txt", "long.y4m", "long_out.y4m", "max.y4m", "short.y4m",
                                               "short_out.y4m", "whole.y4m"}));
    fs::remove_all(dir);
}

TEST(Stream, CommandLineChecksTheTextEncoderAndGenerator) {
    // `wanrt stream` runs the shared text stage, so a text encoder whose width is not the DiT's
    // text_dim is refused there (one line, exit 1, no output), not later as a DiT weight error; a
    // --generator that is not a file is refused before anything loads.
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/wanrt_stream_XXXXXX";
    const fs::path dir = mkdtemp(tmpl);
    const std::string folder = (dir / "tiny").string();
    CliRun r = run_cli("synth --model demo --full_folder --out " + folder);
    ASSERT_EQ(r.code, 0) << r.out;
    auto be = make_cpu_backend(1);
    const std::string in = (dir / "in.y4m").string(), out = (dir / "out.y4m").string();
    write_video(in, test_video(*be, 5, 32, 48));
    const std::string args = "stream --input " + in + " --output " + out + " --prompt x --threads 2 --device cpu";

    r = run_cli(args + " --ckpt_dir " + folder + " --generator " + (dir / "none.pt").string());
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("is not a file"), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;

    nlohmann::json cfg;
    std::ifstream(fs::path(folder) / "config.json") >> cfg;
    ASSERT_NE(cfg.value("text_dim", int64_t(4096)), 2048);
    cfg["text_dim"] = 2048;
    std::ofstream(fs::path(folder) / "config.json") << cfg.dump(2);
    r = run_cli(args + " --ckpt_dir " + folder);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find("differs from the DiT's text_dim 2048"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("wanrt: [model]"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out));
    fs::remove_all(dir);
}

}  // namespace wanrt::test
