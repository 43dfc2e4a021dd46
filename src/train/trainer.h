// The training run behind `wanrt train` (issue 23): LoRA or full fine-tuning of a T2V DiT on cached
// latents and text embeddings (train_data.h) with Wan's flow-matching objective (flow_match.h),
// AdamW (adamw.h), a learning-rate schedule, gradient clipping, checkpoints that resume exactly.
//
// One step: B samples (the data in a per-epoch shuffled order), for each a table entry k uniform in
// [0, 1000), Gaussian noise and (with caption_dropout) whether its context is the empty prompt's;
// x_t and target from flow_match_pair; the DiT runs the B samples as one batch (padded to the
// longest); loss = (1/B)·Σ w_k·mse; backward; clip_grad_norm; AdamW at the step's learning rate.
// Schedules: constant, or cosine decay to 0 at --steps; --warmup steps of linear rise
// (lr·(s + 1)/warmup) come first in both.
//
// Randomness is counter-based: the data order, k and the noise of step s, sample j are drawn from
// splitmix64 streams seeded by (seed, s, j), so the generator's state is (seed, step) and a resumed
// run draws what the uninterrupted run would. On the CPU the arithmetic is deterministic for a given
// thread count, so resuming is bit for bit.
//
// Output folder (--out):
//   lora.safetensors                    LoRA (kohya/ComfyUI names, lora_train.h) at the end
//   lora-step-NNNNNN.safetensors        the same at each --save_every
//   diffusion_pytorch_model.safetensors + config.json   --full: the fine-tuned DiT (f32, official names)
//   checkpoint-step-NNNNNN.safetensors  at each --save_every and at the end: param.<name> (the f32
//                                       masters), adamw.m.<name>, adamw.v.<name>; metadata
//                                       "wanrt_train" (JSON: step, seed, generator, mode, LoRA shape,
//                                       the DiT config, hyper-parameters)
//   loss.csv                            step,loss,lr,grad_norm,seconds (rewritten at each save)
//   eval.csv                            step,sigma,loss,swap_ratio (with --eval_clips; at each save)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backend.h"
#include "pipeline/model_folder.h"
#include "train/adamw.h"
#include "train/flow_match.h"
#include "train/lora_train.h"
#include "train/train_data.h"

namespace wanrt {

struct TrainOptions {
    TrainDataOptions data;
    std::string out;     // output folder
    std::string resume;  // a checkpoint-step-*.safetensors to continue from ("" = start)
    bool full = false;   // full fine-tuning instead of LoRA
    LoraTrainConfig lora;
    int64_t steps = 100, batch = 1, warmup = 0, save_every = 0;
    double lr = 1e-4, weight_decay = 0.01, grad_clip = 1.0;  // grad_clip ≤ 0: off
    std::string schedule = "constant";                       // constant | cosine
    uint64_t seed = 0;
    double shift = 5.0;  // of the flow-matching table (DiffSynth's Wan training)
    // Probability that a sample trains on the empty prompt's context instead of its caption's
    // (ai-toolkit's caption_dropout_rate): the model then has an unconditional prediction, which
    // classifier-free guidance at generation (--sample_guide_scale > 1, an empty negative prompt) needs.
    double caption_dropout = 0;
    // The part of the timestep table a step draws from, as fractions of its 1,000 rows counted from
    // σ = 1 (DiffSynth's --min/--max_timestep_boundary): rows [⌊min·1000⌋, ⌊max·1000⌋). Wan2.2 A14B
    // trains its high-noise expert on [0, 0.358) (t ≥ 900 at shift 5) and its low-noise one on the rest.
    double min_timestep_boundary = 0, max_timestep_boundary = 1;
    // A fixed evaluation (at the start, at each --save_every and at the end; eval.csv): eval_clips
    // training items spread evenly over the data (item ⌊i·n/N⌋), each with fixed noise, scored by the
    // unweighted v-prediction MSE at each σ of eval_sigmas (x_t = (1 − σ)·x0 + σ·noise, t = 1000·σ).
    // With eval_swap (word pairs "a:b"), each clip whose caption a swap changes is scored again with
    // the swapped caption: the ratio swapped / own says how much the model uses those words (≈ 1:
    // not at all; the demo's "left:right,right:left,up:down,down:up" asks whether motion is learned).
    int64_t eval_clips = 0;
    std::vector<double> eval_sigmas = {0.95, 0.85, 0.7, 0.5};
    std::vector<std::pair<std::string, std::string>> eval_swap;
    // Keep the blocks' checkpoints in page-locked host memory between the forward and the backward
    // (dit_backward.h): 3.1 GB less device memory for the 1.3B model at 480p, 81 frames, medium.
    bool offload_checkpoints = false;
};

// The caption with each whole word (split at spaces) that is the first of a swap pair replaced by
// the second; each word is replaced at most once ("left:right,right:left" exchanges them).
std::string train_caption_swap(const std::string& caption,
                               const std::vector<std::pair<std::string, std::string>>& swap);

// "a:b,c:d" → {{a, b}, {c, d}}; a malformed pair is the one-line [train] error naming it.
std::vector<std::pair<std::string, std::string>> parse_caption_swap(const std::string& s);

// The learning rate of step s (counted from 0).
double train_lr_at(const TrainOptions& o, int64_t step);

// The timestep-table row of a draw (a 64-bit stream value) for a table of n rows, within the
// options' boundaries; with the defaults it is draw mod n.
int64_t train_timestep_row(const TrainOptions& o, uint64_t draw, int64_t n);

// One optimizer step on a prepared batch (the trainer's loop and `wanrt bench train`): the DiT on
// the batch (padded to seq_len) with its tape, loss = Σ_j weight_j·mse_j / B, the backward, the
// gradient's global norm clipped to grad_clip (≤ 0: off; the norm is returned either way), one AdamW
// step on the full model's weights (full) or on the LoRA pairs (lora) at opt's current rate;
// offload: the checkpoints in this host memory (TrainOptions::offload_checkpoints), null: on the device.
struct TrainStepOut {
    double loss = 0, grad_norm = 0;
};
TrainStepOut train_step(const DitModel& model, const std::vector<DitSample>& batch,
                        const std::vector<FlowMatchPair>& pairs, int64_t seq_len, bool full,
                        const std::vector<LoraParam>& lora, double grad_clip, AdamW& opt,
                        HostCheckpoints* offload = nullptr);

// One progress report per step.
struct TrainProgress {
    int64_t step = 0, steps = 0;  // step just done (from 1), of
    double loss = 0, lr = 0, grad_norm = 0, seconds = 0, its = 0, eta = 0;
};

struct TrainResult {
    int64_t first_step = 0, last_step = 0;  // steps run this call: (first_step, last_step]
    std::vector<double> losses;             // of those steps
    std::vector<std::string> files;         // written
    // The evaluations of this call (TrainOptions::eval_clips), in order: per σ of eval_sigmas.
    struct Eval {
        int64_t step = 0;
        std::vector<double> loss, swap_ratio;  // swap_ratio: NaN without a swapped clip
    };
    std::vector<Eval> evals;
};

// Checks the options, scans and caches the data, loads the DiT, trains, writes the outputs. say()
// gets the setup lines, progress() every step. Errors ([train] one line) come before any output is
// written: options out of range, an unwritable --out, bad data (train_data.h), a model that is not
// text-to-video, a checkpoint of another run shape.
TrainResult run_training(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const TrainOptions& o,
                         const std::function<void(const std::string&)>& say = {},
                         const std::function<void(const TrainProgress&)>& progress = {});

}  // namespace wanrt
