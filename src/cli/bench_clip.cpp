// wanrt bench clip: the CLIP ViT-H/14 image encode of the I2V pipeline (one picture; --batch 2 is
// FLF2V's [first, last]) on synthetic weights of the released shapes (or the released .pth), median
// of the timed repeats after warm-up, device-synchronised.
//
// ClipVisionEncoder::encode runs the preprocessing (bicubic resize to 224², ·0.5 + 0.5, mean/std) on the
// host in float64, uploads the pixels, then runs patch embedding and 31 blocks on the device. The rows
// split one encode at the upload: the encoder's "pixels" dump point fires right after it, where the
// bench synchronises once (nothing else is queued on the device then), so
//   host preprocess = start → pixels on the device,  device = pixels → output synchronised,
// and the total is the sum (no extra work: the other dump points are ignored by name).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/clip.h"
#include "models/synth.h"
#include "runtime/device.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string checkpoint, weights_dtype = "f16";
    int batch = 1, height = 224, width = 224;
    bool profile = true;
    RunOpts run{"auto", "", 3, 10, 0};
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void run(const Opts& o) {
    if (o.batch < 1 || o.batch > 2) fail("bench", "--batch ", o.batch, " must be 1 (I2V) or 2 (FLF2V's first and last frame)");
    if (o.height < 1 || o.width < 1) fail("bench", "--height/--width must be positive, got ", o.height, "x", o.width);
    o.run.validate();
    auto be = make_backend(o.run.device, o.run.threads);
    const ClipVisionConfig cfg = ClipVisionConfig::vit_h_14();

    std::shared_ptr<TensorSource> src;
    std::string what;
    const auto t_load = Clock::now();
    if (!o.checkpoint.empty()) {
        if (!std::filesystem::exists(o.checkpoint))
            fail("bench", "--checkpoint ", o.checkpoint, " does not exist; pass models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
        src = o.checkpoint.ends_with(".safetensors") ? std::shared_ptr<TensorSource>(SafeTensorsFile::open(o.checkpoint))
                                                     : open_pth(o.checkpoint);
        what = o.checkpoint;
    } else {
        src = synth_clip_memory(cfg, parse_float_dtype("--weights_dtype", o.weights_dtype), 0);
        what = cat("synthetic ViT-H/14 (", cfg.layers, " blocks, ", cfg.layers - 1, " run), ", o.weights_dtype, " weights");
    }
    ClipVisionEncoder enc(cfg, src, *be);
    const double load_ms = ms_since(t_load);

    // Pictures in [−1, 1] as the pipelines hand them (values do not matter for the timing).
    const Tensor images = random_normal(*be, {o.batch, 3, o.height, o.width}, 1, 0.5f);  // [B, 3, H, W]

    // One encode split at the upload (see the top of the file).
    double host_ms = 0;
    Clock::time_point t0;
    const DumpFn split = [&](const std::string& name, const Tensor&) {
        if (name != "pixels") return;
        be->synchronize();
        host_ms = ms_since(t0);
    };
    std::vector<double> host, device, total;
    auto timed = [&] {
        be->synchronize();
        t0 = Clock::now();
        enc.encode(images, split);
        be->synchronize();
        const double all = ms_since(t0);
        host.push_back(host_ms);
        device.push_back(all - host_ms);
        total.push_back(all);
    };

    // Matrix FLOP of the device part per image: patch conv, then per block qkv, proj, the MLP's two
    // matrices and attention's scores and values.
    const double L = double(cfg.tokens()), D = double(cfg.dim), M = double(cfg.mlp_dim), g2 = double(cfg.grid() * cfg.grid());
    const double flop = o.batch * (2 * g2 * 3 * double(cfg.patch_size * cfg.patch_size) * D +
                                   double(cfg.layers - 1) * (2 * L * D * (4 * D + 2 * M) + 4 * L * L * D));

    // The first encode (cold caches: bf16 copies of the weights on the GPU) timed on its own, then the
    // per-op breakdown (one more warm-up), then warm-up and the timed repeats.
    std::vector<double> first = time_repeats(*be, 0, 1, [&] { enc.encode(images); });
    std::vector<BenchRow> per_op;
    if (o.profile) per_op = profile_ops(*be, [&] { enc.encode(images); });
    for (int i = 0; i < o.run.warmup; ++i) {
        enc.encode(images);
        be->synchronize();
    }
    for (int i = 0; i < o.run.repeats; ++i) timed();

    BenchReport rep;
    rep.bench = "clip";
    rep.device = be->description();
    rep.config = {{"model", what},
                  {"images", cat(o.batch, " x ", o.width, "x", o.height, " -> ", cfg.image_size, "x", cfg.image_size)},
                  {"tokens", cat(o.batch, " x ", cfg.tokens(), " x ", cfg.dim)},
                  {"load_ms", cat(load_ms)},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    rep.rows.push_back({"first encode (cold)", first, flop});
    rep.rows.push_back({"host preprocess (resize+up)", host, 0});
    rep.rows.push_back({cat("device (embed+", cfg.layers - 1, " blocks)"), device, flop});
    rep.rows.push_back({"encode total", total, flop});
    if (const MemoryStats mem = be->memory_stats(); mem.reserved > 0)  // backends that track it
        rep.config.push_back({"peak memory", cat(double(mem.peak) / double(1 << 30), " GiB in use (weights included)")});
    rep.config.push_back({"peak_rss_gib", cat(peak_rss_gib())});
    rep.rows.insert(rep.rows.end(), per_op.begin(), per_op.end());
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand(
        "clip", "Time the CLIP ViT-H/14 image encode (I2V: one 224x224 picture; --batch 2: FLF2V's two frames), host preprocessing and device part apart");
    c->add_option("--checkpoint", o->checkpoint,
                  "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (or .safetensors); default: synthetic weights in memory");
    c->add_option("--weights_dtype", o->weights_dtype, "Synthetic weights: f16, bf16, f32")->capture_default_str();
    c->add_option("--batch", o->batch, "Pictures per encode: 1 (I2V) or 2 (FLF2V)")->capture_default_str();
    c->add_option("--height", o->height, "Input picture height (resized to 224 on the host)")->capture_default_str();
    c->add_option("--width", o->width, "Input picture width")->capture_default_str();
    c->add_flag("!--no_profile", o->profile, "Skip the per-op breakdown rows");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("clip", setup);

}  // namespace
}  // namespace wanrt::cli
