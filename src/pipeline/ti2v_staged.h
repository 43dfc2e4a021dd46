// Wan2.2 TI2V-5B on a model folder, one model at a time (the CLI's path; the chain is ti2v.h):
// tokenizer → T5 (both prompts, freed) → [i2v: Wan2.2 VAE encode of the resized, cropped picture (freed)]
// → DiT (denoise, freed) → Wan2.2 VAE decode, clamped. Every option is checked before any weights load.
#pragma once

#include "pipeline/model_folder.h"
#include "pipeline/ti2v.h"

namespace wanrt {

// image.rgb null: text-to-video at opt.width × opt.height; else image-to-video (max_area W·H).
// Times: vae_load counts both VAE loads; the i2v encode is in decode's place of I2VStagedTimes' vae_encode.
struct TI2VStagedResult {
    Tensor video;  // [3, F, H, W] f32 in [−1, 1]
    TI2VLatentShape shape;
    T2VStagedTimes times;
    double vae_encode = 0;
};
TI2VStagedResult run_ti2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const TI2VImage& image, uint64_t seed,
                                 const T2VOptions& opt, const StageFn& on_stage = {},
                                 const T2VStepCallback& on_step = {});

}  // namespace wanrt
