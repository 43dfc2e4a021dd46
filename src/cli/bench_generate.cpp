// wanrt bench generate: one whole text-to-video generation timed per stage (tokenize, T5 load and
// encode, DiT load, every denoising step, VAE load and decode), on the demo model or a model folder.
// The default is a small CPU case: 256×256, 17 frames, 4 steps.
#include <cstdio>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "runtime/device.h"
#include "core/error.h"
#include "pipeline/demo.h"
#include "pipeline/model_folder.h"
#include "pipeline/step_cache.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string ckpt_dir, solver = "unipc", prompt = "A cat walks on the grass, realistic style.", cache;
    int width = 256, height = 256, frames = 17, steps = 4;
    RunOpts run{"auto", "", 0, 1, 0};
};

void run(const Opts& o) {
    o.run.validate();
    T2VOptions opt;
    opt.width = o.width;
    opt.height = o.height;
    opt.frame_num = o.frames;
    opt.sample_steps = o.steps;
    opt.solver = o.solver;
    if (o.steps < 1) fail("bench", "--sample_steps must be at least 1");
    if (!o.cache.empty()) {
        const StepCacheConfig cc = StepCacheConfig::parse(o.cache);
        if (cc.method != CacheMethod::None) opt.cache = std::make_shared<StepCache>(cc);
    }
    T2VModelParts m = o.ckpt_dir.empty() ? T2VModelParts{} : open_model_folder(o.ckpt_dir);
    if (o.ckpt_dir.empty()) {
        const DemoConfig dc = demo_config();
        t2v_latent_shape(opt, dc.dit, dc.vae);  // validate before building anything
        m = demo_model_parts();
    }
    const T2VLatentShape shape = t2v_latent_shape(opt, m.dit_config, m.vae_config);
    auto be = make_backend(o.run.device, o.run.threads);

    std::vector<double> tok, t5l, t5e, ditl, steps, den, vael, dec, total;
    int64_t ptok = 0, ntok = 0;
    for (int r = 0; r < o.run.warmup + o.run.repeats; ++r) {
        T2VStagedResult res = run_t2v_staged(m, be, o.prompt, kWanDefaultNegPrompt, 42, opt);
        if (r < o.run.warmup) continue;
        const T2VStagedTimes& t = res.times;
        tok.push_back(t.tokenize * 1e3);
        t5l.push_back(t.t5_load * 1e3);
        t5e.push_back(t.text * 1e3);
        ditl.push_back(t.dit_load * 1e3);
        for (double s : t.step_seconds) steps.push_back(s * 1e3);
        den.push_back(t.denoise * 1e3);
        vael.push_back(t.vae_load * 1e3);
        dec.push_back(t.decode * 1e3);
        total.push_back((t.tokenize + t.t5_load + t.text + t.dit_load + t.denoise + t.vae_load + t.decode) * 1e3);
        ptok = t.prompt_tokens;
        ntok = t.neg_prompt_tokens;
    }

    BenchReport rep;
    rep.bench = "generate";
    rep.device = be->description();
    rep.config = {{"model", cat(m.name, " (", m.kind, ")")},
                  {"video", cat(o.width, "x", o.height, ", ", o.frames, " frames")},
                  {"latent", shape_str(shape.latent)},
                  {"tokens", std::to_string(shape.seq_len)},
                  {"sampler", cat(o.solver, ", ", o.steps, " steps, CFG (2 DiT forwards per step)")},
                  {"text_tokens", cat(ptok, " prompt + ", ntok, " negative")},
                  {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    if (opt.cache) {  // the last repeat's decisions (every repeat runs seed 42, so they agree)
        const std::vector<std::string> lines = opt.cache->summary_lines();
        std::string steps;
        for (size_t i = 2; i < lines.size(); ++i) steps += (i > 2 ? " " : "") + lines[i];
        rep.config.push_back({"cache", lines[0]});
        rep.config.push_back({"cache_calls", lines.size() > 1 ? lines[1] : ""});
        rep.config.push_back({"cache_steps", steps});
    }
    rep.rows = {{"tokenize", tok},
                {"load T5", t5l},
                {"T5 encode (prompt + negative)", t5e},
                {"load DiT", ditl},
                {"denoise step (each)", steps},
                {cat("denoise (", o.steps, " steps)"), den},
                {"load VAE", vael},
                {"VAE decode", dec},
                {"total (without writing)", total}};
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand(
        "generate", "Time a whole text-to-video generation per stage (default: demo model, 256x256, 17 frames, 4 steps)");
    c->add_option("--ckpt_dir", o->ckpt_dir, "Wan2.1 model folder (default: the built-in demo model)");
    c->add_option("--width", o->width, "Pixel width (multiple of 16)")->capture_default_str();
    c->add_option("--height", o->height, "Pixel height (multiple of 16)")->capture_default_str();
    c->add_option("--frame_num", o->frames, "Frames (4n+1)")->capture_default_str();
    c->add_option("--sample_steps", o->steps, "Sampling steps")->capture_default_str();
    c->add_option("--sample_solver", o->solver, "unipc, dpm++ or euler")->capture_default_str();
    c->add_option("--prompt", o->prompt, "Prompt")->capture_default_str();
    c->add_option("--cache", o->cache, "Step caching, as generate --cache (teacache[:THRESH], magcache, easycache)");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("generate", setup);

}  // namespace
}  // namespace wanrt::cli
