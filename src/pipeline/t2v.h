// Text-to-video: the chain of the official WanT2V.generate (wan/text2video.py, docs/wan21.md §6.6).
//
//   1. context      = T5(prompt ids)          [L_c, text_dim]   (real tokens incl. EOS, trimmed)
//      context_null = T5(negative prompt ids) [L_n, text_dim]   (default: the official Chinese one)
//   2. noise [z_dim, (F−1)/4 + 1, H/8, W/8] f32 (given, or from a seed; see t2v_noise)
//   3. scheduler (unipc | dpm++ | euler, steps, shift); for each integer timestep t_i:
//        v_c = DiT(x, t_i, context), v_u = DiT(x, t_i, context_null)   (two batch-1 forwards)
//        v   = v_u + g·(v_c − v_u);  x = scheduler.step(v, i, x)
//   4. video = clamp(VAE.decode(x), −1, 1)    [3, F, H, W]
//
// The stages are separate functions so a caller can release the text encoder before the DiT runs
// (the 1.3B model with a bf16 T5 must fit 24 GB): encode both prompts, drop the T5, then denoise and
// decode. generate_t2v() runs all four with models already loaded. All tensors live on the models'
// backend (one backend for all three).
//
// Bad input (wanrt::Error "[t2v] ..."): frame_num not 1 + 4n, width/height not multiples of 16
// (VAE stride × patch), steps ≤ 0 or an unknown solver (from the scheduler), empty or over-long
// token lists, a noise tensor of the wrong shape, mismatched model dimensions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"

namespace wanrt {

class StepCache;

// config.sample_neg_prompt of the official shared config (UTF-8; full-width commas).
extern const char* const kWanDefaultNegPrompt;

struct T2VOptions {
    // Optional step caching (pipeline/step_cache.h): cfg_denoise calls begin() and runs every DiT
    // call through it; its decisions stay in it for the caller's summary.
    std::shared_ptr<StepCache> cache;
    int64_t width = 1280, height = 720;  // --size W*H (official default 1280*720)
    int64_t frame_num = 81;              // 1 + 4n
    int sample_steps = 50;
    double sample_shift = 5.0;
    double guide_scale = 5.0;
    std::string solver = "unipc";        // unipc | dpm++ | euler
};

// The latent grid and DiT sequence length of WanT2V.generate for these options and models:
// latent [z_dim, (F−1)/4 + 1, H/8, W/8], seq_len = ceil(h·w/(ph·pw) · T). Validates the options.
struct T2VLatentShape {
    Shape latent;
    int64_t seq_len = 0;
};
T2VLatentShape t2v_latent_shape(const T2VOptions& opt, const DitConfig& dit, const VaeConfig& vae);

// Stage 1: one prompt's token ids (real tokens incl. EOS, 1 ≤ n ≤ dit text_len) → [n, text_dim].
Tensor t2v_encode_prompt(const T5Encoder& t5, const std::vector<int32_t>& ids, int64_t text_len);

// Stage 2: standard normal noise of `shape`, f32 on be, deterministic per seed (64-bit Mersenne
// Twister, Box–Muller in float64). It is not PyTorch's CUDA Philox stream, so a seed does not
// reproduce the official noise; load the noise tensor to compare with PyTorch bit for bit.
Tensor t2v_noise(Backend& be, const Shape& shape, uint64_t seed);
// The same draw from a generator the caller keeps (causal generation draws its re-noising from
// the stream that made the initial noise).
Tensor gaussian_noise(Backend& be, const Shape& shape, std::mt19937_64& rng);

struct T2VStepInfo {
    int index = 0, total = 0;
    int64_t timestep = 0;
    double step_seconds = 0;     // this step (both DiT forwards + scheduler)
    double elapsed_seconds = 0;  // since the loop started
};
using T2VStepCallback = std::function<void(const T2VStepInfo&)>;
// Called after step i with the new latent (tests compare every step; debugging dumps).
using T2VLatentCallback = std::function<void(int index, const Tensor& latent)>;

// Called at step i with the two DiT outputs before guidance (tests compare step 0).
using CfgPredCallback = std::function<void(int index, const Tensor& v_cond, const Tensor& v_uncond)>;

// The denoising loop with classifier-free guidance that every CFG pipeline shares (T2V, I2V):
// cond and uncond are the DiT samples without x (context; I2V adds y and clip_fea, shared by both);
// at each step x is set in both, v = u + g·(c − u), x = scheduler.step(v, i, x). The inputs are
// checked by the DiT's own forward. Returns the final latent.
Tensor cfg_denoise(const DitModel& dit, DitSample cond, DitSample uncond, const Tensor& noise, const T2VOptions& opt,
                   int64_t seq_len, const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                   const CfgPredCallback& on_preds = {});

// Stage 3: the denoising loop with classifier-free guidance → the final latent.
Tensor t2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& noise,
                   const T2VOptions& opt, int64_t seq_len, const T2VStepCallback& on_step = {},
                   const T2VLatentCallback& on_latent = {});

// Stage 4: VAE decode, clamped to [−1, 1] → [3, F, H, W] f32.
Tensor t2v_decode(const WanVae& vae, const Tensor& latent);

struct T2VResult {
    Tensor context, context_null;  // T5 outputs
    std::vector<int64_t> timesteps;
    Tensor latent;                 // final latent
    Tensor video;                  // [3, F, H, W] in [−1, 1]
    double text_seconds = 0, denoise_seconds = 0, decode_seconds = 0;
};

// All four stages with loaded models; noise must have t2v_latent_shape(opt, …).latent.
T2VResult generate_t2v(const T5Encoder& t5, const DitModel& dit, const WanVae& vae,
                       const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                       const Tensor& noise, const T2VOptions& opt, const T2VStepCallback& on_step = {},
                       const T2VLatentCallback& on_latent = {});

}  // namespace wanrt
