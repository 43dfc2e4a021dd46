// Image-to-video: the chain of the official WanI2V.generate (wan/image2video.py, Wan2.1).
//
//   image [3, h0, w0] in [−1, 1] (TF.to_tensor(pic)·2 − 1), max_area = --size W·H
//   0. size      lat_h, lat_w = i2v_size(h0, w0, max_area): the video is 8·lat_h × 8·lat_w, rounded down
//                to even latent sizes (so smaller than max_area, and not exactly the image's aspect)
//   1. context      = T5(prompt ids), context_null = T5(negative ids)        as T2V (t2v.h)
//   2. clip_fea     = CLIP.visual(image)  [tokens, 1280]   on the ORIGINAL image (CLIP resizes it to S×S)
//   3. y            = concat(mask [4, T, lat_h, lat_w],
//                            VAE.encode([bicubic(image, h×w), F − 1 zero frames]) [16, T, lat_h, lat_w])
//                     the bicubic resize is torch's (align_corners=False, no antialias, not clamped);
//                     the zero frames are mid-grey in [−1, 1]; the mask is 1 on latent frame 0
//   4. noise [16, T, lat_h, lat_w]; for each timestep:
//        v_c = DiT(x, t, context, clip_fea, y), v_u = DiT(x, t, context_null, clip_fea, y)
//        v = v_u + g·(v_c − v_u); x = scheduler.step(v, i, x)        (cfg_denoise, t2v.h)
//   5. video = clamp(VAE.decode(x), −1, 1)  [3, F, 8·lat_h, 8·lat_w]
//
// The mask (official): pixel-frame mask [F] = (1, 0, …, 0), frame 0 repeated 4 times → 4T entries,
// viewed [T, 4] and transposed to [4, T]: 1 in all 4 channels of latent frame 0, 0 elsewhere.
// The DiT prepends img_emb(clip_fea) to the text and splits the context again at L − 512 (the official
// constant, whatever text_len is): with the released text_len 512 the image part is exactly the CLIP
// tokens; a model with another text_len would get the official (wrong) split, as model.py does.
//
// Bad input (wanrt::Error "[i2v] ..."): frame_num not 4n+1, an image so small (or max_area so small)
// that a latent side is 0, a DiT that is not an i2v model or whose widths do not fit the VAE, an image
// that is not f32 [3, h, w].
#pragma once

#include <cstdint>
#include <functional>

#include "models/clip.h"
#include "pipeline/model_folder.h"
#include "pipeline/t2v.h"

namespace wanrt {

// The official size arithmetic (numpy float64; `//` is Python's float floor division):
//   ar = h0/w0; lat_h = round(√(max_area·ar) // stride // patch · patch); lat_w likewise with √(max_area/ar)
//   h = stride·lat_h, w = stride·lat_w. Pure; lat_h or lat_w may come out 0 (i2v_latent_shape refuses it).
struct I2VSize {
    int64_t lat_h = 0, lat_w = 0, h = 0, w = 0;
};
I2VSize i2v_size(int64_t image_h, int64_t image_w, int64_t max_area, int64_t vae_stride = 8, int64_t patch = 2);

struct I2VLatentShape {
    I2VSize size;
    Shape latent;         // [z_dim, T, lat_h, lat_w], T = (F − 1)/4 + 1
    int64_t seq_len = 0;  // T·lat_h·lat_w/(ph·pw)
};
// Validates the options (max_area = opt.width·opt.height) and the models.
I2VLatentShape i2v_latent_shape(int64_t image_h, int64_t image_w, const T2VOptions& opt, const DitConfig& dit,
                                const VaeConfig& vae);

// The official mask [4, T, lat_h, lat_w] f32 (4 = the VAE's temporal factor).
Tensor i2v_mask(Backend& be, int64_t T, int64_t lat_h, int64_t lat_w, int64_t temporal_factor = 4);
// The VAE's input: [bicubic(image, h×w), F − 1 zero frames] → [3, F, h, w] f32 on be. The resize runs
// on the host in float64 (bicubic_resize, models/clip.h).
Tensor i2v_vae_input(Backend& be, const Tensor& image, int64_t frame_num, int64_t h, int64_t w);
// y = concat(mask, VAE.encode(i2v_vae_input(...))) → [4 + z_dim, T, lat_h, lat_w].
Tensor i2v_condition(const WanVae& vae, const Tensor& image, int64_t frame_num, const I2VSize& size);
// clip_fea = CLIP(image) → [tokens, dim] (batch 1, the batch dimension dropped as the DiT takes it).
Tensor i2v_clip_features(const ClipVisionEncoder& clip, const Tensor& image);

// The denoising loop: cond and uncond share clip_fea and y.
Tensor i2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& clip_fea,
                   const Tensor& y, const Tensor& noise, const T2VOptions& opt, int64_t seq_len,
                   const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                   const CfgPredCallback& on_preds = {});

struct I2VResult {
    I2VLatentShape shape;
    Tensor context, context_null;  // T5 outputs
    Tensor clip_fea;               // [tokens, 1280]
    Tensor y;                      // [4 + z_dim, T, lat_h, lat_w]
    Tensor latent;                 // final latent
    Tensor video;                  // [3, F, h, w] in [−1, 1]
};
// Every stage with loaded models (the golden test's entry; the CLI uses run_i2v_staged, which loads
// one model at a time). image: f32 [3, h0, w0] in [−1, 1]; noise must have
// i2v_latent_shape(...).latent.
I2VResult generate_i2v(const T5Encoder& t5, const ClipVisionEncoder& clip, const DitModel& dit, const WanVae& vae,
                       const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                       const Tensor& image, const Tensor& noise, const T2VOptions& opt,
                       const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                       const CfgPredCallback& on_preds = {});

// The whole staged run on a model folder (or the demo): tokenizer → T5 (both prompts, freed) → CLIP
// (image features, freed) → VAE (the conditioning latent y, freed) → DiT (denoise, freed) → VAE
// (decode). Peak memory is the largest model, not the sum; the VAE is loaded twice (it is small) so
// it is not resident while the DiT runs. image: f32 [3, h0, w0] in [−1, 1] on any backend. Every
// option is checked before any weights load.
struct I2VStagedTimes : T2VStagedTimes {
    double clip_load = 0, clip = 0, vae_encode = 0;  // vae_load counts both VAE loads
};
struct I2VStagedResult {
    Tensor video;  // [3, F, h, w] f32 in [−1, 1]
    I2VSize size;
    I2VStagedTimes times;
};
I2VStagedResult run_i2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, const Tensor& image, uint64_t seed,
                               const T2VOptions& opt, const StageFn& on_stage = {},
                               const T2VStepCallback& on_step = {});

// The same stages with the image conditioning left to the caller (I2V and FLF2V share them): shape
// must already be checked against the options and models; clip_features(clip) gives clip_fea and
// condition(vae) gives y, each called once with the model loaded for it.
using ImageFeaturesFn = std::function<Tensor(const ClipVisionEncoder&)>;
using ImageConditionFn = std::function<Tensor(const WanVae&)>;
I2VStagedResult run_image_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const I2VLatentShape& shape, uint64_t seed,
                                 const T2VOptions& opt, const ImageFeaturesFn& clip_features,
                                 const ImageConditionFn& condition, const StageFn& on_stage = {},
                                 const T2VStepCallback& on_step = {});
// The VAE stage of the image runners: loads the VAE for this call only (freed on return), y = condition(vae);
// records the load and encode seconds.
Tensor run_condition_stage(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const ImageConditionFn& condition,
                           double& load_seconds, double& encode_seconds, const StageFn& on_stage = {});

}  // namespace wanrt
