// wanrt bench train: one training step (train/trainer.h's train_step: forward with its tape, the
// flow-matching loss, the backward with per-block recomputation, gradient clipping, AdamW) at real
// widths on random weights and inputs: issue 23's LoRA step of the 1.3B DiT at 480p, 81 frames, rank
// 32, and full fine-tuning with --lora_rank 0. The peer is PyTorch running the same step on the
// official modules (docs/training.md, "Speed").
#include <cstdio>

#include "cli/bench_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "models/dit.h"
#include "models/synth.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "train/trainer.h"

namespace wanrt::cli {

namespace {

struct Opts {
    std::string model = "t2v-1.3B", targets = "q,k,v,o,ffn", matmul_precision = "medium";
    int layers = 0, frames = 81, height = 480, width = 832, text_tokens = 120, lora_rank = 32, batch = 1;
    bool profile = true, offload_checkpoints = false;
    RunOpts run{"auto", "", 1, 3, 0};
};

void run(const Opts& o) {
    o.run.validate();
    WANRT_CHECK(o.lora_rank >= 0, "bench", "--lora_rank ", o.lora_rank, " must be ≥ 0 (0 = full fine-tuning)");
    WANRT_CHECK(o.batch >= 1 && o.batch <= 64, "bench", "--batch ", o.batch, " must be in [1, 64]");
    WANRT_CHECK(o.frames >= 1 && (o.frames - 1) % 4 == 0, "bench", "--frames ", o.frames, " must be 4n+1");
    WANRT_CHECK(o.height > 0 && o.width > 0 && o.height % 16 == 0 && o.width % 16 == 0, "bench",
                "--height/--width must be positive multiples of 16, got ", o.width, "x", o.height);
    auto be = make_backend(o.run.device, o.run.threads);
    be->set_matmul_precision(parse_matmul_precision(o.matmul_precision, "--matmul_precision"));
    DitConfig cfg = DitConfig::preset(o.model);
    WANRT_CHECK(cfg.model_type == "t2v", "bench", "--model ", o.model,
                " is not text-to-video; wanrt train trains T2V models (t2v-1.3B, t2v-14B)");
    if (o.layers > 0) cfg.num_layers = o.layers;
    // Full fine-tuning updates the weights in place: a memory source owns its copy already.
    DitModel model(cfg, synth_dit_memory(cfg, DType::F32, 0), *be);
    const bool full = o.lora_rank == 0;
    std::vector<LoraParam> lora;
    std::vector<Tensor> params;
    if (full) {
        for (auto& [n, t] : dit_named_params(cfg, model.mutable_weights())) params.push_back(t);
    } else {
        LoraTrainConfig lc;
        lc.rank = o.lora_rank, lc.alpha = o.lora_rank, lc.targets = o.targets;
        lora = attach_trainable_lora(model, lc, 0);
        params = lora_param_list(lora);
    }
    int64_t n_params = 0;
    for (const Tensor& t : params) n_params += t.numel();
    AdamWHyper h;
    h.lr = 1e-5;  // small: the timed steps must stay finite on random weights
    AdamW opt(params, h);

    const int64_t lat_f = (o.frames - 1) / 4 + 1, lat_h = o.height / 8, lat_w = o.width / 8;
    const FlowMatchTrainTable tab = flow_match_table(5.0, 1000);
    std::vector<DitSample> batch;
    std::vector<FlowMatchPair> pairs;
    for (int j = 0; j < o.batch; ++j) {
        const Tensor x0 = random_normal(*be, {cfg.in_dim, lat_f, lat_h, lat_w}, 10 + uint64_t(j));
        const Tensor noise = random_normal(*be, x0.shape(), 100 + uint64_t(j));
        pairs.push_back(flow_match_pair(tab, 500, x0, noise));
        DitSample s;
        s.x = pairs.back().x_t, s.t = float(pairs.back().timestep);
        s.context =
            random_normal(*be, {std::min<int64_t>(o.text_tokens, cfg.text_len), cfg.text_dim}, 200 + uint64_t(j));
        batch.push_back(s);
    }
    const int64_t seq_len = model.tokens_for(batch[0].x.shape());
    const MemoryStats load_mem = be->memory_stats();
    be->reset_peak_memory();

    BenchReport rep;
    rep.bench = "train";
    rep.device = be->description();
    rep.config = {
        {"model", cat("synthetic ", o.model, " widths, ", cfg.num_layers, " blocks")},
        {"mode", full ? std::string("full fine-tuning (f32 masters)")
                      : cat("LoRA rank ", o.lora_rank, " alpha ", o.lora_rank, " on ", o.targets)},
        {"trainable", cat(n_params, " parameters in ", params.size(), " tensors")},
        {"latent", cat(cfg.in_dim, "x", lat_f, "x", lat_h, "x", lat_w, " (", o.frames, " frames ", o.width, "x",
                       o.height, "), batch ", o.batch)},
        {"tokens", std::to_string(seq_len)},
        {"matmul precision", matmul_precision_name(be->matmul_precision())},
        {"checkpoints", o.offload_checkpoints ? "in host memory with the self-attention outputs (--offload_checkpoints)"
                                              : "on the device"},
        {"text_tokens", std::to_string(batch[0].context.size(0))},
        {"warmup+repeats", cat(o.run.warmup, "+", o.run.repeats)}};
    double loss = 0;
    HostCheckpoints host;
    auto step = [&] {
        loss = train_step(model, batch, pairs, seq_len, full, lora, 1.0, opt, o.offload_checkpoints ? &host : nullptr)
                   .loss;
    };
    std::vector<BenchRow> per_op;
    const std::vector<double> ms = time_repeats(*be, o.run.warmup, o.run.repeats, step);
    // Profiled after the timed steps, so that its rows hold no one-time costs (cuDNN's runtime-compiled
    // attention plans, cuBLASLt's heuristics, first allocations), whatever --warmup is.
    if (o.profile) per_op = profile_ops(*be, step);
    double flop = 0;
    for (const BenchRow& r : per_op) flop += r.flop;
    rep.rows.push_back({cat(full ? "full" : "LoRA", " training step (", cfg.num_layers, " blocks)"), ms, flop});
    rep.config.push_back({"loss", cat(loss, " (the last step's; random weights)")});
    if (const MemoryStats mem = be->memory_stats(); mem.reserved > 0)
        rep.config.push_back({"peak memory", cat(double(mem.peak) / double(1 << 30), " GiB in use during the steps ",
                                                 "(weights, optimizer state and activations); ",
                                                 double(load_mem.in_use) / double(1 << 30), " GiB after loading")});
    else
        rep.config.push_back({"peak RSS", cat(peak_rss_gib(), " GiB")});
    rep.rows.insert(rep.rows.end(), per_op.begin(), per_op.end());
    rep.print();
    rep.write_json(o.run.json);
}

void setup(CLI::App& bench) {
    auto o = std::make_shared<Opts>();
    CLI::App* c = bench.add_subcommand("train",
                                       "Time one training step (default: LoRA rank 32 of the 1.3B DiT at "
                                       "480p, 81 frames = 32,760 tokens; --lora_rank 0: full fine-tuning)");
    c->add_option("--model", o->model, "Synthetic model widths: t2v-1.3B or t2v-14B")->capture_default_str();
    c->add_option("--layers", o->layers, "Blocks (0 = all of the preset)")->capture_default_str();
    c->add_option("--frames", o->frames, "Pixel frames (4n+1)")->capture_default_str();
    c->add_option("--height", o->height, "Pixel height")->capture_default_str();
    c->add_option("--width", o->width, "Pixel width")->capture_default_str();
    c->add_option("--text_tokens", o->text_tokens, "Real text tokens")->capture_default_str();
    c->add_option("--lora_rank", o->lora_rank, "LoRA rank (alpha = rank); 0 = full fine-tuning")->capture_default_str();
    c->add_option("--lora_targets", o->targets, "LoRA targets (wanrt train's --lora_targets)")->capture_default_str();
    c->add_option("--batch", o->batch, "Clips per step")->capture_default_str();
    c->add_option("--matmul_precision", o->matmul_precision,
                  "medium = bf16 GEMMs, attention and checkpoints, high = TF32, highest = f32 (CUDA; as wanrt train)")
        ->check(CLI::IsMember({"medium", "high", "highest"}))
        ->capture_default_str();
    c->add_flag("!--no_profile", o->profile, "Skip the per-op breakdown rows");
    c->add_flag("--offload_checkpoints", o->offload_checkpoints, "As wanrt train's: checkpoints in host memory");
    add_run_options(c, o->run);
    c->callback([o] { run(*o); });
}

Bench reg("train", setup);

}  // namespace
}  // namespace wanrt::cli
