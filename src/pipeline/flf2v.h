// First-last-frame-to-video: the conditioning of the official WanFLF2V.generate
// (wan/first_last_frame2video.py, Wan2.1), on top of the I2V stages (i2v.h).
//
//   first, last [3, h0, w0] in [−1, 1], the same size; max_area = --size W·H
//   0. size      from the FIRST frame, as I2V: i2v_size(h0, w0, max_area)
//   1. context, context_null = T5(prompt), T5(negative)                       as T2V
//   2. clip_fea  = CLIP.visual([first, last]) as one batch of 2 → [2, tokens, 1280], handed to the DiT
//                  as [2·tokens, 1280] (first's tokens, then last's: the DiT's img_emb views it as
//                  [1, 2·tokens, 1280] and adds emb_pos)
//   3. y         = concat(mask [4, T, lat_h, lat_w],
//                         VAE.encode([bicubic(first), F − 2 zero frames, bicubic(last)]))
//      mask: pixel frames (1, 0, …, 0, 1), frame 0 repeated 4 times, folded [T, 4] → [4, T]: all 4
//      channels of latent frame 0, and channel 3 only of the last latent frame (pixel frame F − 1 is the
//      last of its group of 4)
//   4. the I2V denoising loop (cond and uncond share clip_fea and y), 5. VAE decode, clamped.
//
// Frame counts: the official code builds the mask for 81 frames whatever frame_num is, so any other F
// fails there; here the mask follows F (for F = 81 it is the official one), and F must be 4n+1 ≥ 5.
// A last frame of another size is refused: the official code computes a ratio for it but then calls
// TF.center_crop with (width, height) where torchvision expects (height, width), zero-padding the
// picture; resize the last frame to the first's size instead.
//
// The DiT side is model_type "flf2v" (models/dit.h): the i2v blocks plus img_emb.emb_pos [1, 514, 1280]
// added to the clip features before img_emb's MLP.
//
// run_flf2v_staged is the CLI's entry (`wanrt generate --task flf2v-14B --first_frame a.png
// --last_frame b.png`): the stages of run_i2v_staged (i2v.h), one model at a time, with this file's
// CLIP batch of two and conditioning.
//
// Bad input (wanrt::Error "[flf2v] ..."): frame_num not 4n+1 or < 5, first and last of different
// sizes, images that are not f32 [3, h, w], a DiT that is not an flf2v model.
#pragma once

#include "pipeline/i2v.h"

namespace wanrt {

// Validates the options and models; the size comes from the first frame.
I2VLatentShape flf2v_latent_shape(const Shape& first, const Shape& last, const T2VOptions& opt, const DitConfig& dit,
                                  const VaeConfig& vae);

// The mask [4, T, lat_h, lat_w] f32 (see above).
Tensor flf2v_mask(Backend& be, int64_t T, int64_t lat_h, int64_t lat_w, int64_t temporal_factor = 4);
// The VAE's input [bicubic(first), F − 2 zero frames, bicubic(last)] → [3, F, h, w] f32 on be.
Tensor flf2v_vae_input(Backend& be, const Tensor& first, const Tensor& last, int64_t frame_num, int64_t h, int64_t w);
// y = concat(mask, VAE.encode(flf2v_vae_input(...))) → [4 + z_dim, T, lat_h, lat_w].
Tensor flf2v_condition(const WanVae& vae, const Tensor& first, const Tensor& last, int64_t frame_num,
                       const I2VSize& size);
// CLIP on [first, last] as one batch → [2·tokens, dim] (first's rows, then last's).
Tensor flf2v_clip_features(const ClipVisionEncoder& clip, const Tensor& first, const Tensor& last);

// Every stage with loaded models; dit must be an flf2v model (see above). noise has the latent shape.
I2VResult generate_flf2v(const T5Encoder& t5, const ClipVisionEncoder& clip, const DitModel& dit, const WanVae& vae,
                         const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                         const Tensor& first, const Tensor& last, const Tensor& noise, const T2VOptions& opt,
                         const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                         const CfgPredCallback& on_preds = {});

// The staged run on a model folder (or the demo): tokenizer → T5 (both prompts, freed) → CLIP on
// [first, last] (freed) → VAE encode of [first, zeros, last] (freed) → DiT (denoise, freed) → VAE
// decode. first, last: f32 [3, h0, w0] in [−1, 1], the same size. Every option is checked before any
// weights load.
I2VStagedResult run_flf2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const Tensor& first, const Tensor& last, uint64_t seed,
                                 const T2VOptions& opt, const StageFn& on_stage = {},
                                 const T2VStepCallback& on_step = {});

}  // namespace wanrt
