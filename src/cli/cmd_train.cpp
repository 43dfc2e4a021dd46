// wanrt train: LoRA or full fine-tuning of a text-to-video DiT on a folder of captioned clips
// (train/trainer.h; docs/training.md). Without --ckpt_dir the built-in demo model is trained.
//   wanrt train --data clips/ --out run/ --lora_rank 16 --lora_alpha 16 --steps 500 --lr 1e-4
//   wanrt train --data clips/ --out run/ --steps 1000 --resume run/checkpoint-step-000500.safetensors
#include <unistd.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "core/backend.h"
#include "core/error.h"
#include "pipeline/demo.h"
#include "pipeline/model_folder.h"
#include "runtime/device.h"
#include "train/trainer.h"

namespace wanrt::cli {

namespace {

struct Opts {
    TrainOptions t;
    std::string ckpt_dir, device = "cpu", demo_dit = "trained", eval_swap, matmul_precision = "medium";
    int threads = 0;
};

std::string hms(double s) {
    const long v = long(s + 0.5);
    char b[32];
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    return b;
}

void run(Opts o) {
    o.t.eval_swap = parse_caption_swap(o.eval_swap);
    const T2VModelParts m = !o.ckpt_dir.empty()        ? open_model_folder(o.ckpt_dir)
                            : o.demo_dit == "random" ? demo_model_parts(DemoDit::Random)
                                                     : demo_model_parts();
    auto be = make_backend(o.device, o.threads);
    be->set_matmul_precision(parse_matmul_precision(o.matmul_precision, "--matmul_precision"));
    std::fprintf(stderr, "train: %s (%s) on %s, --matmul_precision %s\n", m.name.c_str(), m.kind.c_str(),
                 be->description().c_str(), matmul_precision_name(be->matmul_precision()));
    const bool tty = isatty(fileno(stderr));
    const int64_t every = std::max<int64_t>(1, o.t.steps / 20);
    const TrainResult r = run_training(
        m, be, o.t, [](const std::string& s) { std::fprintf(stderr, "train: %s\n", s.c_str()); },
        [&](const TrainProgress& p) {
            if (!tty && p.step % every && p.step != p.steps) return;
            std::fprintf(stderr, "%sstep %lld/%lld  loss %.6f  lr %.3g  grad %.3g  %.2f it/s  ETA %s%s",
                         tty ? "\r" : "", static_cast<long long>(p.step), static_cast<long long>(p.steps), p.loss, p.lr,
                         p.grad_norm, p.its, hms(p.eta).c_str(), tty && p.step != p.steps ? "   " : "\n");
            std::fflush(stderr);
        });
    if (!r.losses.empty())
        std::fprintf(stderr, "train: steps %lld..%lld, loss %.6f -> %.6f\n", static_cast<long long>(r.first_step + 1),
                     static_cast<long long>(r.last_step), r.losses.front(), r.losses.back());
    for (const std::string& f : r.files) std::printf("%s\n", f.c_str());
}

void setup(CLI::App& app) {
    auto o = std::make_shared<Opts>();
    TrainOptions& t = o->t;
    CLI::App* c =
        app.add_subcommand("train", "LoRA or full fine-tuning of a T2V DiT on captioned clips (flow matching, AdamW)");
    c->add_option("--ckpt_dir", o->ckpt_dir, "Wan2.1 T2V model folder (default: the built-in demo model)");
    c->add_option("--demo_dit", o->demo_dit,
                  "Without --ckpt_dir: start from the demo's trained DiT, or from its random one (how "
                  "scripts/train_demo.sh makes the trained demo)")
        ->check(CLI::IsMember({"trained", "random"}))
        ->capture_default_str();
    c->add_option("--data", t.data.dir, "Folder of videos/images, each with a caption .txt beside it")->required();
    c->add_option("--cache_dir", t.data.cache_dir, "Latent/text-embedding cache (default: DATA/.wanrt_cache)");
    c->add_option("--frames", t.data.frames, "Frames per clip, 1 + 4k (0 = every 1 + 4k frames of each clip)")
        ->check(int_in(0, 100000))
        ->capture_default_str();
    c->add_option("--out", t.out, "Output folder: lora.safetensors (or the --full DiT), checkpoints, loss.csv")
        ->required();
    c->add_flag("--full", t.full, "Full fine-tuning of every DiT weight instead of LoRA");
    c->add_option("--lora_rank", t.lora.rank, "LoRA rank")->check(int_in(1, 4096))->capture_default_str();
    c->add_option("--lora_alpha", t.lora.alpha, "LoRA alpha (the branch scale is alpha / rank)")->capture_default_str();
    c->add_option("--lora_targets", t.lora.targets,
                  "Block Linears: q,k,v,o (self- and cross-attention), ffn, or names like self_attn.q, ffn.0")
        ->capture_default_str();
    c->add_option("--steps", t.steps, "Optimizer steps in all (a resumed run continues to this)")
        ->check(int_in(1, int64_t(1) << 40))
        ->capture_default_str();
    c->add_option("--lr", t.lr, "Peak learning rate")->capture_default_str();
    c->add_option("--weight_decay", t.weight_decay, "AdamW weight decay")->capture_default_str();
    c->add_option("--batch", t.batch, "Clips per step")->check(int_in(1, 4096))->capture_default_str();
    c->add_option("--seed", t.seed, "Seed of the LoRA init, data order, timesteps and noise")->capture_default_str();
    c->add_option("--schedule", t.schedule, "constant or cosine (to 0 at --steps)")->capture_default_str();
    c->add_option("--warmup", t.warmup, "Steps of linear learning-rate warm-up")
        ->check(int_in(0, int64_t(1) << 40))
        ->capture_default_str();
    c->add_option("--grad_clip", t.grad_clip, "Clip the gradient's global norm to this (0 = off)")
        ->capture_default_str();
    c->add_flag("--offload_checkpoints", t.offload_checkpoints,
                "Keep the blocks' checkpoints and self-attention outputs in host memory between forward and "
                "backward (less device memory, no attention recomputed; copied beside the compute)");
    c->add_option("--caption_dropout", t.caption_dropout,
                  "Probability that a clip trains on the empty prompt instead of its caption (for guidance)")
        ->capture_default_str();
    c->add_option("--shift", t.shift, "Shift of the training timestep table (sigma' = s*sigma/(1+(s-1)*sigma))")
        ->capture_default_str();
    c->add_option("--min_timestep_boundary", t.min_timestep_boundary,
                  "Draw timesteps from this fraction of the 1,000-step table on (0 = from sigma 1; DiffSynth's)")
        ->capture_default_str();
    c->add_option("--max_timestep_boundary", t.max_timestep_boundary,
                  "... up to this fraction (Wan2.2 A14B: high-noise expert 0 to 0.358, low-noise 0.358 to 1)")
        ->capture_default_str();
    c->add_option("--eval_clips", t.eval_clips,
                  "Score this many clips (spread over the data, fixed noise) at the start, each save and the end: eval.csv")
        ->check(int_in(0, 1 << 20))
        ->capture_default_str();
    c->add_option("--eval_sigmas", t.eval_sigmas, "Noise levels of the evaluation")
        ->delimiter(',')
        ->capture_default_str();
    c->add_option("--eval_swap", o->eval_swap,
                  "Also score each evaluated clip with these caption words swapped (WORD:WORD,...; e.g. "
                  "left:right,right:left): the loss ratio says how much the model uses them");
    c->add_option("--save_every", t.save_every, "Write a checkpoint (and LoRA) every N steps (0 = at the end only)")
        ->check(int_in(0, int64_t(1) << 40))
        ->capture_default_str();
    c->add_option("--resume", t.resume, "Continue from a checkpoint-step-*.safetensors (bit for bit on the CPU)");
    c->add_option("--device", o->device,
                  "cpu or cuda (on cuda the DiT's Linear weights are bf16, their f32 masters the optimizer's)")
        ->capture_default_str();
    c->add_option("--matmul_precision", o->matmul_precision,
                  "Matrix products of the training ops (PyTorch's set_float32_matmul_precision names): high = TF32 "
                  "GEMMs, medium = bf16 GEMMs, attention and checkpoints (PyTorch's bf16 autocast), highest = f32; CUDA only "
                  "(the CPU is always f32)")
        ->check(CLI::IsMember({"medium", "high", "highest"}))
        ->capture_default_str();
    c->add_option("--threads", o->threads, "CPU threads (0 = all cores)")
        ->check(threads_in_range())
        ->capture_default_str();
    c->callback([o] { run(*o); });
}

Command reg("train", setup);

}  // namespace
}  // namespace wanrt::cli
