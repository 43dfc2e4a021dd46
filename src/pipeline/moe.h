// Wan2.2 A14B: text-to-video and image-to-video with two DiT experts, the chains of the official
// WanT2V.generate (wan/text2video.py) and WanI2V.generate (wan/image2video.py) of Wan2.2.
//
//   the T2V / I2V chain of Wan2.1 (t2v.h, i2v.h), except that at each step i with timestep t_i
//     expert = high-noise model if t_i ≥ boundary·1000 (num_train_timesteps; inclusive), else low-noise
//     g      = guide_scale[1] (high) if t_i ≥ boundary·1000, else guide_scale[0] (low)
//     v_c, v_u = expert(x, t_i, context), expert(x, t_i, context_null)      (cond and uncond: one expert)
//     v = v_u + g·(v_c − v_u); x = scheduler.step(v, i, x)
//   with ONE scheduler and multistep history across the switch (cfg_denoise with a per-step model
//   choice, t2v.h). The experts share one config (released: dim 5120, 40 layers, 40 heads).
//   I2V: the experts are model_type "i2v" (in_dim 36: noise 16 + mask 4 + image latent 16) WITHOUT
//   Wan2.1's CLIP branch (DitConfig::clip_branch false): y = concat(mask, VAE.encode(bicubic frame +
//   F − 1 zeros)) and the size arithmetic are Wan2.1 I2V's (i2v.h), the context is the text alone.
//   Official settings (wan/configs): T2V-A14B boundary 0.875, guide (3.0, 4.0), shift 12, 40 steps;
//   I2V-A14B boundary 0.900, guide (3.5, 3.5), shift 5, 40 steps; a single float g means (g, g).
//
// Expert residency: the timesteps fall monotonically, so the high-noise expert runs first and the
// switch happens once. With MoeOptions::offload (the default of the staged run, as generate.py's
// --offload_model on one GPU) only the active expert is resident: the high-noise one is freed before
// the low-noise one loads, so peak memory is one expert and the total load work is the same. Without
// it both are loaded before the loop and stay resident.
//
// Bad input (wanrt::Error "[moe] ..."): a boundary outside (0, 1], experts whose configs differ, an
// expert that is not a t2v (i2v) model; the rest as t2v.h / i2v.h.
#pragma once

#include <functional>
#include <memory>

#include "pipeline/i2v.h"

namespace wanrt {

struct MoeOptions {
    double boundary = 0.875;        // fraction of the 1000 training timesteps where the experts switch
    double guide_scale_high = 4.0;  // the high-noise expert's g; T2VOptions::guide_scale is the low-noise one's
    bool offload = true;            // staged run: only the active expert resident (see above)
};

// The official defaults of a task (wan/configs/wan_{t2v,i2v}_A14B.py): steps, shift, guide pair (low, high),
// boundary; `wanrt generate` and the Python Model.generate start from them.
struct MoeDefaults {
    int steps;
    double shift, guide_low, guide_high, boundary;
};
inline MoeDefaults moe_defaults(bool i2v) {
    return i2v ? MoeDefaults{40, 5.0, 3.5, 3.5, 0.900} : MoeDefaults{40, 12.0, 3.0, 4.0, 0.875};
}

// Whether timestep t belongs to the high-noise expert: t ≥ boundary·1000 (float64, as t.item() >= boundary).
bool moe_high_noise(int64_t t, double boundary);

// Validates the options and that the two experts belong together (same config) and fit the task.
void moe_check(const MoeOptions& moe, const DitConfig& high, const DitConfig& low);

// The per-step model choice of cfg_denoise: expert(high) gives the expert for a step (it may load it);
// on_switch(high), if set, is called when the chosen expert changes (and for the first step).
using ExpertFn = std::function<const DitModel&(bool high)>;
StepModelFn moe_step_selector(const MoeOptions& moe, const T2VOptions& opt, ExpertFn expert,
                              std::function<void(bool high)> on_switch = {});

struct MoeResult {
    Tensor context, context_null;  // T5 outputs
    Tensor y;                      // I2V: [4 + z_dim, T, lat_h, lat_w]
    std::vector<int> experts;      // per step: 1 = high-noise, 0 = low-noise
    Tensor latent;                 // final latent
    Tensor video;                  // [3, F, H, W] in [−1, 1]
};

// Every stage with loaded models (the golden tests' entries). T2V: noise has t2v_latent_shape(...).latent.
MoeResult generate_moe_t2v(const T5Encoder& t5, const DitModel& high, const DitModel& low, const WanVae& vae,
                           const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                           const Tensor& noise, const T2VOptions& opt, const MoeOptions& moe,
                           const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                           const CfgPredCallback& on_preds = {});
// I2V: image f32 [3, h0, w0] in [−1, 1]; noise has i2v_latent_shape(...).latent.
MoeResult generate_moe_i2v(const T5Encoder& t5, const DitModel& high, const DitModel& low, const WanVae& vae,
                           const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                           const Tensor& image, const Tensor& noise, const T2VOptions& opt, const MoeOptions& moe,
                           const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                           const CfgPredCallback& on_preds = {});

// The staged run on an A14B folder (m.moe(): m.high_noise_weights and m.dit_weights, the low-noise
// expert): tokenizer → T5 (freed) → [I2V: VAE encode of the conditioning (freed)] → experts (see
// residency above) → VAE decode. image undefined: text-to-video. Every option is checked before any
// weights load.
I2VStagedResult run_moe_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, const Tensor& image, uint64_t seed, const T2VOptions& opt,
                               const MoeOptions& moe, const StageFn& on_stage = {},
                               const T2VStepCallback& on_step = {});

}  // namespace wanrt
