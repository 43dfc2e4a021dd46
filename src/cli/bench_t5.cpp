// wanrt bench t5: one umT5 encode of a prompt of N real tokens (the way the pipeline runs it:
// real tokens only, batch 1), from a checkpoint or the full-size synthetic file, with load time and
// the process's peak resident memory (the weights are mapped and used in place as bf16).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "runtime/device.h"
#include "core/error.h"
#include "models/t5.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string checkpoint, synth_dir;
    int tokens = 100;
    RunOpts run{"cpu", "", 0, 1, 0};
};

void run(const Opts& o) {
    if (o.tokens < 1 || o.tokens > 512) fail("bench", "--tokens ", o.tokens, " must be in [1, 512]");
    o.run.validate();
    std::string path = o.checkpoint;
    if (!o.synth_dir.empty()) {
        const auto file = std::filesystem::path(o.synth_dir) / "models_t5_umt5-xxl-enc-bf16.safetensors";
        if (!std::filesystem::exists(file)) {
            std::printf("writing the full-size synthetic umT5-XXL (11.4 GB) to %s ...\n", file.c_str());
            std::fflush(stdout);
            const auto t0 = std::chrono::steady_clock::now();
            write_synthetic_t5(o.synth_dir, T5Config::umt5_xxl(), 0);
            std::printf("  written in %.1f s\n",
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        path = file.string();
    }
    if (path.empty()) fail("bench", "`wanrt bench t5` needs --checkpoint PATH or --synth DIR");

    auto be = make_backend(o.run.device, o.run.threads);
    const auto t0 = std::chrono::steady_clock::now();
    T5Encoder enc = T5Encoder::load_file(path, *be);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

    std::mt19937 rng(1234);
    std::vector<int32_t> ids(static_cast<size_t>(o.tokens));
    for (auto& id : ids) id = int32_t(3 + rng() % uint32_t(enc.config.vocab - 3));
    ids.back() = 1;  // EOS

    // The first encode touches every mapped weight page (reads the file); timed separately.
    std::vector<double> first = time_repeats(*be, 0, 1, [&] { enc.encode(ids); });
    std::vector<double> ms = time_repeats(*be, o.run.warmup, o.run.repeats, [&] { enc.encode(ids); });
    const double L = o.tokens;
    const auto& c = enc.config;
    // Matrix FLOP: 4 attention projections, 3 FFN matrices; attention scores and values.
    const double flop = c.num_layers * (2 * L * (4.0 * c.dim * c.dim_attn + 3.0 * c.dim * c.dim_ffn) + 4 * L * L * c.dim_attn);

    BenchReport rep;
    rep.bench = "t5";
    rep.device = be->description();
    rep.config = {{"checkpoint", path},
                  {"model", c.to_json()},
                  {"tokens", std::to_string(o.tokens)},
                  {"load_ms", cat(load_ms)},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    rep.rows.push_back({"first encode (cold pages)", first, flop});
    rep.rows.push_back({"encode", ms, flop});
    rep.config.push_back({"peak_rss_gib", cat(peak_rss_gib())});
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("t5", "Time one umT5 encode of N real tokens; reports load time and peak RSS");
    c->add_option("--checkpoint", o->checkpoint, "models_t5_umt5-xxl-enc-bf16.{pth,safetensors} or its folder");
    c->add_option("--synth", o->synth_dir, "Folder for the full-size synthetic checkpoint (written if absent, 11.4 GB)");
    c->add_option("--tokens", o->tokens, "Real prompt tokens incl. EOS")->capture_default_str();
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("t5", setup);

}  // namespace
}  // namespace wanrt::cli
