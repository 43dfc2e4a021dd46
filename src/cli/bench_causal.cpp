// wanrt bench causal: the causal KV-cache DiT at real widths on random weights (issue 6's table):
//   block3_kv21  CausVid: one 3-frame block against a full 21-frame cache
//   frame1_kv6   StreamDiffusionV2: one 1-frame step against a 6-frame cache (3 sinks, rolling)
//   batch2_kv6   the 2-step stream batch: 2 rows × 1 frame, 6-frame caches, adaptive sink
//   v2v          (--v2v) streaming video-to-video end to end with the full-size Wan VAE or TAEHV
//                (--vae tae): frames per second, and the first output frame's latency (issue 17)
// Each DiT case: one profiled call (per-op breakdown), then warm-up and timed repeats without
// per-op synchronisation. Every timed call is a real stream step (new frame, cache rolling).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/timer.h"
#include "models/causal_dit.h"
#include "models/synth.h"
#include "models/taehv.h"
#include "models/vae.h"
#include "ops/ops.h"
#include "pipeline/stream.h"
#include "runtime/device.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string model = "t2v-1.3B", cases = "block3_kv21,frame1_kv6,batch2_kv6", vae_dtype = "f32", vae = "wan";
    int layers = 0, height = 480, width = 832, chunks = 12;
    bool profile = true, v2v = false;
    std::vector<double> steps{700, 500};
    RunOpts run{"auto", "", 2, 10, 0};
};

void run(const Opts& o) {
    o.run.validate();
    if (o.height % 16 || o.width % 16 || o.height <= 0 || o.width <= 0)
        fail("bench", "--height/--width must be positive multiples of 16, got ", o.height, "x", o.width);
    if (o.chunks < 1) fail("bench", "--chunks must be ≥ 1, got ", o.chunks);
    if (o.vae != "wan" && o.vae != "tae") fail("bench", "--vae ", o.vae, " must be wan (the Wan2.1 VAE) or tae (TAEHV)");
    if (o.vae == "tae" && !o.v2v) fail("bench", "--vae is for --v2v; add --v2v");
    auto base = make_backend(o.run.device, o.run.threads);

    DitConfig cfg = DitConfig::preset(o.model);
    if (o.layers > 0) cfg.num_layers = o.layers;
    const auto t_load = std::chrono::steady_clock::now();
    auto dit = std::make_shared<DitModel>(cfg, synth_dit_memory(cfg, DType::BF16, 1), *base);
    auto model = std::make_shared<CausalDitModel>(dit);
    const double load_s = seconds_since(t_load);
    const int64_t h = o.height / 8, w = o.width / 8;
    const Tensor context = random_normal(*base, {40, cfg.text_dim}, 2, 0.1f);
    CrossKvCache cross = model->make_cross_cache(context);

    BenchReport rep;
    rep.bench = "causal";
    rep.device = base->description();
    rep.config = {{"model", cat("synthetic ", o.model, " widths, ", cfg.num_layers, " blocks, bf16 weights")},
                  {"frame", cat(o.width, "x", o.height, " (", model->tokens_per_frame({cfg.in_dim, 1, h, w}),
                                " tokens per latent frame)")},
                  {"load_s", cat(load_s)},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};

    std::vector<std::string> cases;
    for (size_t p = 0; p < o.cases.size();) {
        const size_t e = std::min(o.cases.find(',', p), o.cases.size());
        cases.push_back(o.cases.substr(p, e - p));
        if (cases.back() != "block3_kv21" && cases.back() != "frame1_kv6" && cases.back() != "batch2_kv6")
            fail("bench", "unknown causal case \"", cases.back(), "\" in --cases; use block3_kv21, frame1_kv6, batch2_kv6");
        p = e + 1;
    }
    auto wanted = [&](const std::string& n) { return std::find(cases.begin(), cases.end(), n) != cases.end(); };

    auto time_case = [&](const std::string& name, const std::string& what, const std::function<void()>& step) {
        std::vector<BenchRow> per_op;
        if (o.profile) {  // one profiled call for the breakdown, after a warm-up (cuDNN builds its engines on first use)
            step();
            per_op = profile_ops(*base, step);
        }
        // Host time until the call returns (ops queued, not finished): close to the total means the
        // GPU waits for the host (launch-bound); well below it means the GPU is the limit.
        std::vector<double> issue;
        const std::vector<double> ms = time_repeats(*base, o.run.warmup, o.run.repeats, [&] {
            const auto t0 = std::chrono::steady_clock::now();
            step();
            issue.push_back(1e3 * seconds_since(t0));
        });
        issue.erase(issue.begin(), issue.begin() + o.run.warmup);
        rep.rows.push_back({cat(name, ": ", what), ms, 0});
        rep.rows.push_back({"  host time to issue the call", issue, 0});
        for (BenchRow& r : per_op) rep.rows.push_back(std::move(r));
    };

    if (wanted("block3_kv21")) {
        // CausVid's last block of 21 latent frames (81 pixel frames): 18 cached frames + the block.
        KvCache cache = model->make_cache(1, 21, h, w);
        Tensor x3 = random_normal(*base, {cfg.in_dim, 3, h, w}, 3);
        for (int64_t b = 0; b < 6; ++b) model->forward({{x3, {0}, b * 3}}, cache, cross, false);
        // Re-running the same chunk re-writes its slots (a denoising step of the last block).
        time_case("block3_kv21", "3-frame block vs 21-frame cache",
                  [&] { model->forward({{x3, {757}, 18}}, cache, cross); });
    }
    if (wanted("frame1_kv6")) {
        KvCache cache = model->make_cache(1, 6, h, w, 3, 50);
        Tensor x1 = random_normal(*base, {cfg.in_dim, 1, h, w}, 4);
        for (int64_t f = 0; f < 6; ++f) model->forward({{x1, {0}, f}}, cache, cross, false);
        int64_t next = 6;
        time_case("frame1_kv6", "1-frame step vs 6-frame cache",
                  [&] { model->forward({{x1, {700}, next++}}, cache, cross); });
    }
    if (wanted("batch2_kv6")) {
        KvCache cache = model->make_cache(2, 6, h, w, 3, 50, 0.2);
        Tensor x1 = random_normal(*base, {cfg.in_dim, 1, h, w}, 4);
        for (int64_t f = 0; f < 6; ++f) model->forward({{x1, {0}, f}, {x1, {0}, f}}, cache, cross, false);
        int64_t next = 6;
        time_case("batch2_kv6", "2 rows x 1 frame, 6-frame caches, adaptive sink", [&] {
            model->forward({{x1, {610}, next}, {x1, {500}, next - 1}}, cache, cross);
            ++next;
        });
    }

    if (o.v2v) {
        // Streaming V2V: chunk 0 (5 frames) and 3 more warm the pipeline and fill the stream batch,
        // then `chunks` 4-frame chunks are timed wall to wall. The first chunk's push returns its
        // first frames (chunk 0 runs the whole step list at once), so its wall time is the latency
        // from the first input chunk to the first output frame: once cold (the process's first
        // chunk: cuDNN plans, allocations) and once warm (a new stream on the same model).
        const DType vae_dtype = parse_float_dtype("--vae_dtype", o.vae_dtype);
        auto vmodel = std::make_shared<CausalDitModel>(std::make_shared<DitModel>(cfg, synth_dit_memory(cfg, DType::BF16, 1), *base));
        StreamOptions so;
        so.steps = o.steps;
        const Tensor ctx = random_normal(*base, {40, cfg.text_dim}, 2, 0.1f);
        std::unique_ptr<StreamV2V> sp;
        if (o.vae == "tae") {
            sp = std::make_unique<StreamV2V>(vmodel, Taehv::load(synthetic_taehv_weights(cfg.in_dim, 1234), base, vae_dtype), ctx, so);
        } else {
            VaeConfig vc;
            vc.conv_dtype = vae_dtype;
            sp = std::make_unique<StreamV2V>(vmodel, WanVae::load(synthetic_vae_weights(vc, 3), vc, base), ctx, so);
        }
        StreamV2V& s = *sp;
        const int64_t H = o.height, W = o.width;
        std::vector<float> px(size_t(3 * 9 * H * W));
        for (size_t i = 0; i < px.size(); ++i) px[i] = float(0.8 * std::sin(0.01 * double(i % 100003)));
        Tensor clip = ops::from_host(*base, DType::F32, {3, 9, H, W}, px.data());
        Tensor first = ops::contiguous(clip.slice(1, 0, 5)), next = ops::contiguous(clip.slice(1, 5, 9));
        auto first_chunk_ms = [&] {
            base->synchronize();
            const auto t0 = std::chrono::steady_clock::now();
            const Tensor out = s.push(first);
            base->synchronize();
            WANRT_CHECK(out.defined() && out.size(1) >= 1, "bench", "the first chunk gave no frame");
            return 1e3 * seconds_since(t0);
        };
        const double cold_ms = first_chunk_ms();
        for (int i = 0; i < 3; ++i) s.push(next);
        base->synchronize();
        const StreamStats before = s.stats();
        std::vector<double> ms;
        for (int i = 0; i < o.chunks; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            s.push(next);
            base->synchronize();
            ms.push_back(1e3 * seconds_since(t0));
        }
        const StreamStats a = s.stats();
        std::vector<double> warm_ms;
        for (int i = 0; i < 3; ++i) {
            s.reset();
            warm_ms.push_back(first_chunk_ms());
        }
        const double n = o.chunks, fps = 4.0 / (median(ms) / 1e3);
        const std::string vae_name = o.vae == "tae" ? "TAEHV" : "Wan VAE";
        rep.rows.push_back({cat("v2v (", vae_name, " ", o.vae_dtype, "): one 4-frame chunk, ", o.steps.size(), " steps (", fps,
                                " frames/s)"),
                            ms, 0});
        rep.rows.push_back({cat("  VAE stream encode (mean, ", vae_name, ")"), {1e3 * (a.encode_s - before.encode_s) / n}, 0});
        rep.rows.push_back({"  DiT stream-batch call (mean)", {1e3 * (a.dit_s - before.dit_s) / n}, 0});
        rep.rows.push_back({cat("  VAE stream decode (mean, ", vae_name, ")"), {1e3 * (a.decode_s - before.decode_s) / n}, 0});
        rep.rows.push_back({"v2v: first output frame after the first input chunk, warm (new stream)", warm_ms, 0});
        rep.rows.push_back({"v2v: the same, the process's first chunk (cold)", {cold_ms}, 0});
        rep.config.push_back({"v2v_fps", cat(fps)});
        rep.config.push_back({"v2v_vae", cat(vae_name, ", ", o.vae_dtype, " convs")});
    }
    if (const MemoryStats mem = base->memory_stats(); mem.reserved > 0)  // backends that track it
        rep.config.push_back({"peak memory", cat(double(mem.peak) / double(1 << 30), " GiB in use (weights included)")});
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("causal", "Time the causal KV-cache DiT (CausVid block, StreamDiffusionV2 steps) and streaming V2V");
    c->add_option("--model", o->model, "Synthetic model widths: t2v-1.3B, t2v-14B")->capture_default_str();
    c->add_option("--layers", o->layers, "Blocks (0 = all of the preset)")->capture_default_str();
    c->add_option("--height", o->height, "Pixel height")->capture_default_str();
    c->add_option("--vae_dtype", o->vae_dtype, "--v2v: VAE conv precision, f32 (TF32 on CUDA), f16 or bf16")
        ->capture_default_str();
    c->add_option("--width", o->width, "Pixel width")->capture_default_str();
    c->add_option("--cases", o->cases, "Comma-separated DiT cases (empty = none)")->capture_default_str();
    c->add_flag("--v2v", o->v2v, "Also time streaming V2V end to end (full-size random VAE)");
    c->add_option("--vae", o->vae, "--v2v: wan (the Wan2.1 VAE) or tae (TAEHV, random weights)")->capture_default_str();
    c->add_option("--steps", o->steps, "--v2v: denoising steps of the stream")->delimiter(',')->capture_default_str();
    c->add_option("--chunks", o->chunks, "--v2v: timed 4-frame chunks")->capture_default_str();
    c->add_flag("!--no_profile", o->profile, "Skip the per-op breakdown rows");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("causal", setup);

}  // namespace
}  // namespace wanrt::cli
