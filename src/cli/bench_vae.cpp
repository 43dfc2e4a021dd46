// wanrt bench vae: whole-clip encode and decode of the Wan VAE at a chosen size, with the real
// widths (dim 96) and random weights by default, or a checkpoint (.pth / .safetensors). Reports the
// process's peak resident memory too (decode memory is O(1) in the number of frames).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/taehv.h"
#include "models/vae.h"
#include "models/vae22.h"
#include "ops/ops.h"
#include "runtime/device.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string checkpoint, config_json, mode = "both", conv_dtype = "f32", tile = "off", model = "wan21", vae = "wan",
                tae_layout = "auto";
    int height = 128, width = 128, latent_frames = 2;
    int64_t dim = 96, num_res_blocks = 2;
    bool profile = false, tile_compare = false, whole_chunks = false, dim_given = false, f32_activations = false;
    int64_t split_min_pixels = VaeConfig().split_min_pixels;
    RunOpts run{"cpu", "", 1, 3, 0};
};

Tensor random_input(Backend& be, const Shape& s, uint32_t seed) {
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(shape_numel(s)));
    for (auto& x : v) x = u(g);
    return ops::from_host(be, DType::F32, s, v.data());
}

// ", f16 activations" / ", f32 activations" after the conv precision (nothing for f32 convs).
std::string acts(DType conv, bool half_activations) {
    if (conv == DType::F32) return "";
    return cat(", ", dtype_name(half_activations ? conv : DType::F32), " activations");
}

// --tile_compare: "rel-L2 …, max abs …" of a tiled result against the untiled one.
std::string tile_difference(const Tensor& tiled, const Tensor& untiled) {
    const std::vector<float> a = ops::to_host_f32(tiled), b = ops::to_host_f32(untiled);
    WANRT_ASSERT(a.size() == b.size());
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = double(a[i]) - double(b[i]);
        num += d * d, den += double(b[i]) * b[i], mx = std::max(mx, std::fabs(d));
    }
    return cat("rel-L2 ", std::sqrt(num / std::max(den, 1e-300)), ", max abs ", mx);
}

// --model wan22: the Wan2.2 VAE of TI2V-5B (vae22.h), whole-clip (optionally tiled) or stream.
void run_wan22(const Opts& o) {
    Vae22Config cfg;  // TI2V-5B: dim 160, dec_dim 256, z 48
    if (!o.config_json.empty()) cfg = Vae22Config::from_json(o.config_json);
    if (o.dim_given) cfg.dim = o.dim;
    if (o.config_json.empty()) cfg.num_res_blocks = o.num_res_blocks;
    cfg.conv_dtype = parse_float_dtype("--conv_dtype", o.conv_dtype);
    cfg.half_activations = !o.f32_activations;
    cfg.split_frames = !o.whole_chunks;
    cfg.validate();
    const int64_t f = cfg.spatial_factor(), T = 1 + cfg.temporal_factor() * (o.latent_frames - 1);
    if (o.height % f != 0 || o.width % f != 0)
        fail("bench", "--height ", o.height, " and --width ", o.width, " must be multiples of ", f, " for --model wan22");
    auto base = make_backend(o.run.device, o.run.threads);
    std::shared_ptr<Backend> be = base;
    const std::string& p = o.checkpoint;
    std::shared_ptr<TensorSource> weights = p.empty() ? synthetic_vae22_weights(cfg, 1234)
                                            : p.size() > 4 && p.compare(p.size() - 4, 4, ".pth") == 0
                                                ? std::shared_ptr<TensorSource>(open_pth(p))
                                                : std::shared_ptr<TensorSource>(open_safetensors(p));
    const auto t0 = std::chrono::steady_clock::now();
    std::shared_ptr<Vae22Model> vae = Vae22Model::load(weights, cfg, be);
    const VaeTiling tiling = VaeTiling::parse(o.tile);
    vae->set_tiling(tiling);  // tile and stride multiples of 16
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const Shape vshape{3, T, o.height, o.width}, zshape{cfg.z_dim, o.latent_frames, o.height / f, o.width / f};

    BenchReport rep;
    rep.bench = "vae";
    rep.device = base->description();
    rep.config = {
        {"weights", p.empty() ? "random (seed 1234)" : p},
        {"config", cat("Wan2.2, dim ", cfg.dim, ", dec_dim ", cfg.dec_dim, ", z_dim ", cfg.z_dim, ", num_res_blocks ",
                       cfg.num_res_blocks, ", ", dtype_name(cfg.conv_dtype), " convs",
                       acts(cfg.conv_dtype, cfg.half_activations), cfg.split_frames ? "" : ", whole chunks")},
        {"video", shape_str(vshape)},
        {"latent", shape_str(zshape)},
        {"load_ms", cat(load_ms)},
        {"tiling", tiling.enabled() ? cat(tiling.tile, " px tiles every ", tiling.stride_px(f), " px") : "off"},
        {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    auto compare_untiled = [&](const std::string& what, const Tensor& tiled, const std::function<Tensor()>& fn) {
        if (!o.tile_compare || !tiling.enabled()) return;
        vae->set_tiling({});
        rep.config.push_back({cat(what, " tiled vs untiled"), tile_difference(tiled, fn())});
        vae->set_tiling(tiling);
    };
    auto profile_rows = [&](const std::string& what, const std::function<void()>& fn) {
        if (!o.profile) return;
        std::vector<BenchRow> ops = profile_ops(*base, fn);
        double total = 0;
        for (const BenchRow& r : ops) total += r.ms[0];
        rep.rows.push_back({cat("profiled ", what, " (sum of ops, each synchronised)"), {total}, 0});
        for (BenchRow& r : ops) rep.rows.push_back(std::move(r));
    };
    auto peak_row = [&](const std::string& what) {
        if (const MemoryStats mem = base->memory_stats(); mem.reserved > 0)
            rep.config.push_back({cat(what, " peak memory"), cat(double(mem.peak) / double(1 << 30), " GiB")});
    };
    if (o.mode == "stream") {
        Vae22StreamEncoder enc(vae);
        Vae22StreamDecoder dec(vae);
        Tensor first = random_input(*be, {3, 1, o.height, o.width}, 1), four = random_input(*be, {3, 4, o.height, o.width}, 2);
        Tensor z = random_input(*be, {cfg.z_dim, 1, o.height / f, o.width / f}, 3);
        enc.push(first);
        dec.push(z);
        rep.rows.push_back({"stream encode: 4 frames -> 1 latent", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { enc.push(four); }), 0});
        rep.rows.push_back({"stream decode: 1 latent -> 4 frames", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { dec.push(z); }), 0});
        profile_rows("stream encode", [&] { enc.push(four); });
        profile_rows("stream decode", [&] { dec.push(z); });
    }
    if (o.mode != "decode" && o.mode != "stream") {
        Tensor video = random_input(*be, vshape, 1);
        base->reset_peak_memory();
        rep.rows.push_back(
            {cat("encode ", T, " frames"), time_repeats(*be, o.run.warmup, o.run.repeats, [&] { vae->encode(video); }), 0});
        peak_row("encode");
        profile_rows("encode", [&] { vae->encode(video); });
        compare_untiled("encode", vae->encode(video), [&] { return vae->encode(video); });
    }
    if (o.mode != "encode" && o.mode != "stream") {
        Tensor z = random_input(*be, zshape, 2);
        base->reset_peak_memory();
        rep.rows.push_back({cat("decode ", o.latent_frames, " latent frames"),
                            time_repeats(*be, o.run.warmup, o.run.repeats, [&] { vae->decode(z); }), 0});
        peak_row("decode");
        profile_rows("decode", [&] { vae->decode(z); });
        compare_untiled("decode", vae->decode(z), [&] { return vae->decode(z); });
    }
    rep.config.push_back({"peak_rss_gib", cat(peak_rss_gib())});
    rep.print();
    rep.write_json(o.run.json);
}

// TAEHV: whole-clip encode of 4T − 3 frames and decode of T latents, or (stream) 4 frames → 1 latent
// and 1 latent → 4 frames with the per-block memory warm.
void run_tae(const Opts& o) {
    const DType conv = parse_float_dtype("--conv_dtype", o.conv_dtype);
    auto be = make_backend(o.run.device, o.run.threads);
    std::shared_ptr<TensorSource> weights;
    if (o.checkpoint.empty()) {
        weights = synthetic_taehv_weights(16, 1234);
    } else {
        const std::string& p = o.checkpoint;
        weights = p.size() > 4 && p.compare(p.size() - 4, 4, ".pth") == 0 ? open_pth(p) : open_safetensors(p);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const TaehvLayout layout = o.tae_layout == "ncdhw"   ? TaehvLayout::Ncdhw
                               : o.tae_layout == "ndhwc" ? TaehvLayout::Ndhwc
                                                         : TaehvLayout::Auto;
    std::shared_ptr<const Taehv> tae = Taehv::load(weights, be, conv, layout);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const TaehvConfig& cfg = tae->config();
    const int64_t f = cfg.space_scale(), T = 4 * o.latent_frames - 3;
    tae->check_video({3, T, o.height, o.width});
    const Shape vshape{3, T, o.height, o.width}, zshape{cfg.latent_channels, o.latent_frames, o.height / f, o.width / f};
    BenchReport rep;
    rep.bench = "vae";
    rep.device = be->description();
    rep.config = {{"model", "TAEHV"},
                  {"weights", o.checkpoint.empty() ? "random (seed 1234)" : o.checkpoint},
                  {"config", cat("latent channels ", cfg.latent_channels, ", patch ", cfg.patch_size, ", ",
                                 dtype_name(conv), " convs, encoder ",
                                 cfg.encoder_channels_last ? "channels last" : "NCDHW", ", decoder ",
                                 cfg.decoder_channels_last ? "channels last" : "NCDHW")},
                  {"video", shape_str(vshape)},
                  {"latent", shape_str(zshape)},
                  {"load_ms", cat(load_ms)},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    auto profile_rows = [&](const std::string& what, const std::function<void()>& fn) {
        if (!o.profile) return;
        std::vector<BenchRow> ops = profile_ops(*be, fn);
        double total = 0;
        for (const BenchRow& r : ops) total += r.ms[0];
        rep.rows.push_back({cat("profiled ", what, " (sum of ops, each synchronised)"), {total}, 0});
        for (BenchRow& r : ops) rep.rows.push_back(std::move(r));
    };
    if (o.mode == "stream") {
        TaehvStreamEncoder enc(tae);
        TaehvStreamDecoder dec(tae);
        Tensor four = random_input(*be, {3, 4, o.height, o.width}, 2);
        Tensor z = random_input(*be, {cfg.latent_channels, 1, o.height / f, o.width / f}, 3);
        enc.push(four);
        dec.push(z);
        rep.rows.push_back({"stream encode: 4 frames -> 1 latent", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { enc.push(four); }), 0});
        rep.rows.push_back({"stream decode: 1 latent -> 4 frames", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { dec.push(z); }), 0});
        profile_rows("stream encode", [&] { enc.push(four); });
        profile_rows("stream decode", [&] { dec.push(z); });
    }
    if (o.mode == "encode" || o.mode == "both") {
        Tensor video = random_input(*be, vshape, 1);
        rep.rows.push_back({cat("encode ", T, " frames"), time_repeats(*be, o.run.warmup, o.run.repeats, [&] { tae->encode(video); }), 0});
        profile_rows("encode", [&] { tae->encode(video); });
    }
    if (o.mode == "decode" || o.mode == "both") {
        Tensor z = random_input(*be, zshape, 2);
        rep.rows.push_back({cat("decode ", o.latent_frames, " latent frames"),
                            time_repeats(*be, o.run.warmup, o.run.repeats, [&] { tae->decode(z); }), 0});
        profile_rows("decode", [&] { tae->decode(z); });
    }
    rep.config.push_back({"peak_rss_gib", cat(peak_rss_gib())});
    rep.print();
    rep.write_json(o.run.json);
}

void run(const Opts& o) {
    if (o.mode != "both" && o.mode != "encode" && o.mode != "decode" && o.mode != "stream")
        fail("bench", "--mode ", o.mode, " must be encode, decode, both or stream");
    o.run.validate();
    if (o.latent_frames < 1) fail("bench", "--latent_frames must be ≥ 1");
    if (o.vae != "wan" && o.vae != "tae") fail("bench", "--vae ", o.vae, " must be wan or tae");
    if (o.tae_layout != "auto" && o.tae_layout != "ncdhw" && o.tae_layout != "ndhwc")
        fail("bench", "--tae_layout ", o.tae_layout, " must be auto, ncdhw or ndhwc");
    if (o.vae != "tae" && o.tae_layout != "auto") fail("bench", "--tae_layout is for --vae tae");
    if (o.vae == "tae") return run_tae(o);
    if (o.model == "wan22") return run_wan22(o);
    if (o.model != "wan21")
        fail("bench", "--model ", o.model, " must be wan21 (Wan2.1 VAE) or wan22 (Wan2.2 VAE of TI2V-5B)");
    VaeConfig cfg;
    if (!o.config_json.empty()) {
        cfg = VaeConfig::from_json(o.config_json);
    } else {
        cfg.dim = o.dim;
        cfg.num_res_blocks = o.num_res_blocks;
    }
    cfg.conv_dtype = parse_float_dtype("--conv_dtype", o.conv_dtype);
    cfg.half_activations = !o.f32_activations;
    cfg.split_min_pixels = o.split_min_pixels;
    cfg.validate();
    auto base = make_backend(o.run.device, o.run.threads);
    std::shared_ptr<Backend> be = base;
    std::shared_ptr<TensorSource> weights;
    if (o.checkpoint.empty()) {
        weights = synthetic_vae_weights(cfg, 1234);
    } else {
        const std::string& p = o.checkpoint;
        weights = p.size() > 4 && p.compare(p.size() - 4, 4, ".pth") == 0 ? open_pth(p) : open_safetensors(p);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto vae = WanVae::load(weights, cfg, be);
    const VaeTiling tiling = VaeTiling::parse(o.tile);
    vae->set_tiling(tiling);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    const int64_t f = cfg.spatial_factor();
    const int64_t T = 1 + cfg.temporal_factor() * (o.latent_frames - 1);
    vae->check_video({3, T, o.height, o.width});
    const Shape vshape{3, T, o.height, o.width}, zshape{cfg.z_dim, o.latent_frames, o.height / f, o.width / f};

    BenchReport rep;
    rep.bench = "vae";
    rep.device = base->description();
    rep.config = {
        {"weights", o.checkpoint.empty() ? "random (seed 1234)" : o.checkpoint},
        {"config", cat("dim ", cfg.dim, ", z_dim ", cfg.z_dim, ", num_res_blocks ", cfg.num_res_blocks, ", ",
                       dtype_name(cfg.conv_dtype), " convs", acts(cfg.conv_dtype, cfg.half_activations),
                       o.height * o.width >= cfg.split_min_pixels ? ", split frames" : "")},
        {"video", shape_str(vshape)},
        {"latent", shape_str(zshape)},
        {"load_ms", cat(load_ms)},
        {"tiling", tiling.enabled() ? cat(tiling.tile, " px tiles every ", tiling.stride_px(), " px") : "off"},
        {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    // Per-op breakdown of one more call (synchronised after each op), after the timed ones.
    auto profile_rows = [&](const std::string& what, const std::function<void()>& fn) {
        if (!o.profile) return;
        std::vector<BenchRow> ops = profile_ops(*base, fn);
        double total = 0;
        for (const BenchRow& r : ops) total += r.ms[0];
        rep.rows.push_back({cat("profiled ", what, " (sum of ops, each synchronised)"), {total}, 0});
        for (BenchRow& r : ops) rep.rows.push_back(std::move(r));
    };
    if (o.mode == "stream") {
        // StreamDiffusionV2's use: 4 pixel frames in → 1 latent frame, 1 latent frame → 4 pixel
        // frames, caches warm (the first chunks of a clip are pushed before timing).
        VaeStreamEncoder enc(vae);
        VaeStreamDecoder dec(vae);
        Tensor first = random_input(*be, {3, 1, o.height, o.width}, 1), four = random_input(*be, {3, 4, o.height, o.width}, 2);
        Tensor z = random_input(*be, {cfg.z_dim, 1, o.height / f, o.width / f}, 3);
        enc.push(first);
        dec.push(z);
        rep.rows.push_back({"stream encode: 4 frames -> 1 latent", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { enc.push(four); }), 0});
        rep.rows.push_back({"stream decode: 1 latent -> 4 frames", time_repeats(*be, o.run.warmup, o.run.repeats, [&] { dec.push(z); }), 0});
        profile_rows("stream encode", [&] { enc.push(four); });
        profile_rows("stream decode", [&] { dec.push(z); });
    }
    // Peak device memory of one direction (backends that track it), inputs and weights included.
    auto peak_row = [&](const std::string& what) {
        if (const MemoryStats mem = base->memory_stats(); mem.reserved > 0)
            rep.config.push_back({cat(what, " peak memory"), cat(double(mem.peak) / double(1 << 30), " GiB")});
    };
    // --tile_compare: the tiled result against the untiled one (which must fit in memory).
    auto compare_untiled = [&](const std::string& what, const Tensor& tiled, const std::function<Tensor()>& fn) {
        if (!o.tile_compare || !tiling.enabled()) return;
        vae->set_tiling({});
        rep.config.push_back({cat(what, " tiled vs untiled"), tile_difference(tiled, fn())});
        vae->set_tiling(tiling);
    };
    if (o.mode != "decode" && o.mode != "stream") {
        Tensor video = random_input(*be, vshape, 1);
        base->reset_peak_memory();
        rep.rows.push_back(
            {cat("encode ", T, " frames"), time_repeats(*be, o.run.warmup, o.run.repeats, [&] { vae->encode(video); }), 0});
        peak_row("encode");
        profile_rows("encode", [&] { vae->encode(video); });
        compare_untiled("encode", vae->encode(video), [&] { return vae->encode(video); });
    }
    if (o.mode != "encode" && o.mode != "stream") {
        Tensor z = random_input(*be, zshape, 2);
        base->reset_peak_memory();
        rep.rows.push_back({cat("decode ", o.latent_frames, " latent frames"),
                            time_repeats(*be, o.run.warmup, o.run.repeats, [&] { vae->decode(z); }), 0});
        peak_row("decode");
        profile_rows("decode", [&] { vae->decode(z); });
        compare_untiled("decode", vae->decode(z), [&] { return vae->decode(z); });
    }
    rep.config.push_back({"peak_rss_gib", cat(peak_rss_gib())});
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c =
        bench.add_subcommand("vae", "Time whole-clip VAE encode/decode (real widths, random weights by default)");
    c->add_option("--height", o->height, "Pixel height (multiple of 8)")->capture_default_str();
    c->add_option("--width", o->width, "Pixel width (multiple of 8)")->capture_default_str();
    c->add_option("--latent_frames", o->latent_frames, "Latent frames (encode takes 1 + 4(n−1) pixel frames)")
        ->capture_default_str();
    c->add_option("--mode", o->mode, "encode, decode, both, or stream (4-frame chunks through the stream encoder/decoder)")
        ->capture_default_str();
    c->add_flag("--profile", o->profile, "Add a per-op breakdown of one more call");
    c->add_option("--vae", o->vae, "wan (the Wan2.1 VAE) or tae (TAEHV)")->capture_default_str();
    c->add_option("--tae_layout", o->tae_layout,
                  "TAEHV's layout inside the network: auto (the backend's choice: channels last on CUDA), ncdhw or "
                  "ndhwc (channels last)")
        ->capture_default_str();
    c->add_option("--model", o->model, "wan21 (Wan2.1 VAE) or wan22 (Wan2.2 VAE of TI2V-5B: dim 160, dec_dim 256, z 48, 16x spatial)")
        ->capture_default_str();
    c->add_option("--dim", o->dim, "Base width of random-weight models (wan22: the encoder's; default 160)")
        ->capture_default_str()
        ->each([o](const std::string&) { o->dim_given = true; });
    c->add_option("--num_res_blocks", o->num_res_blocks, "Residual blocks per stage of random-weight models")
        ->capture_default_str();
    c->add_option("--config", o->config_json, "VAE config JSON (overrides --dim/--num_res_blocks)");
    c->add_option("--checkpoint", o->checkpoint, "Wan2.1_VAE.pth / Wan2.2_VAE.pth or a .safetensors of the same names");
    c->add_option("--conv_dtype", o->conv_dtype, "Conv precision: f32 (TF32 on CUDA), f16 or bf16")
        ->capture_default_str();
    c->add_flag("--f32_activations", o->f32_activations,
                "With --conv_dtype f16/bf16 (wan21/wan22): widen every conv output to f32 instead of keeping the "
                "activations in half (the earlier path, to compare)");
    c->add_option("--tile", o->tile,
                  "Spatial tiling: off, N or N:S (tile and stride in pixels, e.g. 256:192; multiples of 16 for wan22)")
        ->capture_default_str();
    c->add_option("--split_min_pixels", o->split_min_pixels,
                  "Frames of at least this many pixels run the full-resolution layers frame by frame (same result, "
                  "less memory; 0 = always)")
        ->capture_default_str();
    c->add_flag("--tile_compare", o->tile_compare, "With --tile: also report the difference from the untiled result");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("vae", setup);

}  // namespace
}  // namespace wanrt::cli
