// wanrt synth: write a full-size random-weight model folder with the official names and shapes.
// --full_folder adds the other parts of a release (Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth,
// google/umt5-xxl/spiece.model: pipeline/demo.h), so `wanrt generate --ckpt_dir` runs on it;
// --model demo (demo-i2v, demo-flf2v) writes the built-in demo (i2v, flf2v demo) model in that layout.
// Image-to-video and first-last-frame folders (i2v-14B, flf2v-14B, demo-i2v, demo-flf2v) also get
// models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (the visual tower; the release's xlm-roberta-large/ tokenizer
// is for CLIP's text tower, which nothing runs, and is not written).
// Wan2.2 A14B (t2v-A14B, i2v-A14B, demo-t2v-A14B, demo-i2v-A14B) folders get the release's layout: two
// experts in high_noise_model/ and low_noise_model/ (other seeds; the i2v experts without the CLIP branch),
// and with --full_folder Wan2.1_VAE.pth, the umT5 and the tokenizer beside them (no CLIP).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "io/pth_writer.h"
#include "models/synth.h"
#include "models/taehv.h"
#include "models/vae22.h"
#include "pipeline/demo.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string model, out, dtype = "f32";
    int layers = 0;
    uint64_t seed = 0;
    double shard_gb = 10;
    bool full_folder = false, tae = false;
};

// A .pth the way madebyollin/taehv ships taew2_1.pth / taew2_2.pth: the names and shapes TAEHV loads.
void write_tae(const std::filesystem::path& file, int64_t latent_channels, uint64_t seed) {
    auto w = synthetic_taehv_weights(latent_channels, uint32_t(seed));
    PthWriter pw(file.string());
    for (const std::string& name : w->names()) {
        const StoredTensor* t = w->find(name);
        pw.add(name, t->dtype, t->shape, t->data);
    }
    pw.finish();
}

void run(const Opts& o) {
    const bool moe = o.model == "t2v-A14B" || o.model == "i2v-A14B" || o.model == "demo-t2v-A14B" ||
                     o.model == "demo-i2v-A14B";
    const bool moe_i2v = moe && o.model.find("i2v") != std::string::npos;
    const bool ti2v = o.model == "ti2v-5B" || o.model == "demo-ti2v-5B";
    const bool demo = o.model == "demo" || o.model == "demo-i2v" || o.model == "demo-flf2v" || o.model == "demo-t2v-A14B" ||
                      o.model == "demo-i2v-A14B" || o.model == "demo-ti2v-5B";
    const DemoConfig dc = moe                       ? demo_moe_config(moe_i2v)
                          : o.model == "demo-i2v"   ? demo_i2v_config()
                          : o.model == "demo-flf2v" ? demo_flf2v_config()
                          : ti2v                    ? demo_ti2v_config()
                                                    : demo_config();
    DitConfig cfg = demo ? dc.dit : moe ? DitConfig::preset(moe_i2v ? "i2v-14B" : "t2v-14B") : DitConfig::preset(o.model);
    cfg.clip_branch = !moe;
    Vae22Config vae22;  // TI2V-5B's Wan2.2 VAE; the demo's at tiny widths
    if (ti2v) {
        cfg.model_type = "ti2v";
        cfg.in_dim = cfg.out_dim = 48;
        if (demo) vae22 = dc.vae22;  // the built-in TI2V demo's
    }
    if (o.layers < 0) fail("synth", "--layers must be ≥ 0 (0 = the preset's ", cfg.num_layers, ")");
    if (o.layers > 0) cfg.num_layers = o.layers;
    DType t;
    if (o.dtype == "f32") t = DType::F32;
    else if (o.dtype == "bf16") t = DType::BF16;
    else if (o.dtype == "f16") t = DType::F16;
    else fail("synth", "unknown --dtype \"", o.dtype, "\"; use f32 (as released), bf16 or f16");
    if (o.shard_gb <= 0) fail("synth", "--shard_gb must be positive");
    std::filesystem::path out(o.out);
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) fail("synth", "cannot create ", o.out, ": ", ec.message());
    const bool tty = isatty(fileno(stderr));
    int last = -1;
    std::fprintf(stderr, "synth: %s, %ld blocks, %s linear weights, %.2f B parameters -> %s\n", o.model.c_str(),
                 long(cfg.num_layers), o.dtype.c_str(), double(dit_param_count(cfg)) * 1e-9, o.out.c_str());
    const auto progress = [&](uint64_t done, uint64_t total) {
        int pct = int(100.0 * double(done) / double(total));
        if (pct == last || (!tty && pct % 10)) return;
        last = pct;
        std::fprintf(stderr, tty ? "\r  %3d%% of %.2f GB" : "  %3d%% of %.2f GB\n", pct, double(total) * 1e-9);
    };
    if (moe) {  // the high-noise expert with another seed, so the two experts differ
        for (const char* sub : {"high_noise_model", "low_noise_model"}) {
            if (tty && last >= 0) std::fprintf(stderr, "\n");
            std::fprintf(stderr, "  %s/\n", sub);
            last = -1;
            write_synth_dit((out / sub).string(), cfg, t, sub[0] == 'h' ? o.seed + 1 : o.seed,
                            uint64_t(o.shard_gb * 1e9), progress);
        }
    } else {
        write_synth_dit(o.out, cfg, t, o.seed, uint64_t(o.shard_gb * 1e9), progress);
    }
    if (tty) std::fprintf(stderr, "\n");
    if (o.full_folder) {
        const T5Config t5 = demo ? dc.t5 : T5Config::umt5_xxl();
        const VaeConfig vae = demo ? dc.vae : VaeConfig{};
        auto say = [](const std::string& what) { std::fprintf(stderr, "  writing %s\n", what.c_str()); };
        write_t2v_extras(o.out, t5, vae, o.seed, say);
        if (ti2v) {  // Wan2.2_VAE.pth in place of the Wan2.1 one
            say("Wan2.2_VAE.pth");
            std::filesystem::remove(out / "Wan2.1_VAE.pth");
            auto w = synthetic_vae22_weights(vae22, uint32_t(o.seed));
            PthWriter pw((out / "Wan2.2_VAE.pth").string());
            for (const std::string& name : w->names()) {
                const StoredTensor* t = w->find(name);
                pw.add(name, t->dtype, t->shape, t->data);
            }
            pw.finish();
        }
        if (cfg.has_clip()) {
            say("models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
            write_i2v_clip(o.out, demo ? dc.clip : ClipVisionConfig::vit_h_14(), o.seed);
        }
    }
    if (o.tae) {  // the tiny decoder for `generate --vae tae --vae_checkpoint <out>/taew2_x.pth`
        const char* name = ti2v ? "taew2_2.pth" : "taew2_1.pth";
        std::fprintf(stderr, "  writing %s\n", name);
        write_tae(out / name, ti2v ? 48 : 16, o.seed);
    }
    std::fprintf(stderr, "synth: wrote %s\n", o.out.c_str());
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = app.add_subcommand("synth", "Write a random-weight model folder with official names, shapes and config.json");
    c->add_option("--model", o->model,
                  "t2v-1.3B, t2v-14B, i2v-14B, flf2v-14B, t2v-A14B, i2v-A14B (Wan2.2: two experts), ti2v-5B, demo, demo-i2v, "
                  "demo-flf2v, demo-t2v-A14B or demo-i2v-A14B (the built-in demo models); ti2v-5B, demo-ti2v-5B (Wan2.2_VAE.pth)")
        ->required();
    c->add_option("--out", o->out, "Output folder")->required();
    c->add_option("--layers", o->layers, "Blocks to write (0 = all)")->capture_default_str();
    c->add_option("--dtype", o->dtype, "Linear weight dtype: f32 (as released), bf16, f16")->capture_default_str();
    c->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    c->add_option("--shard_gb", o->shard_gb, "Split into shards of at most this size with an index (as the 14B releases)")
        ->capture_default_str();
    c->add_flag("--full_folder", o->full_folder,
                "Also write the VAE and T5 .pth files and a tokenizer (i2v, flf2v: the CLIP .pth): a complete release "
                "folder for `wanrt generate`");
    c->add_flag("--tae", o->tae, "Also write a random TAEHV decoder, taew2_1.pth (ti2v: taew2_2.pth), for --vae tae");
    c->callback([o] { run(*o); });
}

Command reg("synth", setup);

}  // namespace
}  // namespace wanrt::cli
