// Wan2.2 TI2V-5B: the chain of the official WanTI2V.generate (wan/textimage2video.py), text-to-video
// and image-to-video with one model (a 'ti2v' DiT with 48 channels and the Wan2.2 VAE, vae22.h).
//
//   t2v: latent [48, T, H/16, W/16] with T = (F−1)/4 + 1 from --size W*H;
//        seq_len = ⌈h·w/4 · T⌉.
//   i2v: (ow, oh) = best_output_size(iw, ih, 32, 32, max_area = W·H); the uint8 picture is resized
//        with PIL LANCZOS to (round(iw·s), round(ih·s)), s = max(ow/iw, oh/ih), centre-cropped to
//        ow × oh (aspect kept by cropping, unlike Wan2.1's stretching I2V) and encoded as one frame:
//        z = VAE.encode([3, 1, oh, ow]) [48, 1, oh/16, ow/16]; seq_len = T·h·w // 4.
//   1. context = T5(prompt), context_null = T5(negative prompt)           (t2v.h)
//   2. latent = noise (t2v), or noise with latent frame 0 replaced by z (i2v)
//   3. for each scheduler timestep t: per-token timesteps = t on every token (t2v); 0 on the h/2·w/2
//        tokens of latent frame 0 and t on the rest and the padding (i2v);
//        v = u + g·(c − u) of two batch-1 DiT forwards; latent = scheduler.step(v, i, latent), and
//        (i2v) its frame 0 replaced by z again after every step — the scheduler keeps its own
//        history of the whole latent, only its result is overwritten.
//   4. video = clamp(VAE.decode(latent), −1, 1)  [3, F, 16h, 16w]
// The DiT gets the 48-channel latent only: no y, no mask channels, no CLIP.
//
// Bad input (wanrt::Error "[ti2v] ..."): frame_num not 4n+1, a size that is not a multiple of 32, an
// image so small or max_area so small that a side is 0, a DiT that is not a 48-channel 'ti2v' or
// 't2v' model, a VAE that is not the Wan2.2 one, a noise tensor of the wrong shape.
#pragma once

#include <cstdint>
#include <vector>

#include "models/dit.h"
#include "models/t5.h"
#include "models/vae22.h"
#include "pipeline/t2v.h"

namespace wanrt {

// best_output_size(w, h, dw, dh, max_area) of wan/utils/utils.py (float64) and the resize + crop the
// i2v mode derives from it.
struct TI2VImageSize {
    int64_t out_w = 0, out_h = 0;          // the video size
    double scale = 0;                      // max(out_w/iw, out_h/ih)
    int64_t resized_w = 0, resized_h = 0;  // round(iw·scale), round(ih·scale) (Python's round: half to even)
    int64_t crop_x = 0, crop_y = 0;        // (resized − out) // 2
};
TI2VImageSize ti2v_image_size(int64_t image_w, int64_t image_h, int64_t max_area, int64_t dw = 32, int64_t dh = 32);

struct TI2VLatentShape {
    bool i2v = false;
    TI2VImageSize image;  // i2v only
    Shape latent;         // [z_dim, T, h, w]
    int64_t seq_len = 0;
};
// t2v: the size is opt.width × opt.height. Validates options and models.
TI2VLatentShape ti2v_t2v_shape(const T2VOptions& opt, const DitConfig& dit, const Vae22Config& vae);
// i2v: max_area = opt.width · opt.height, the size comes from the image's.
TI2VLatentShape ti2v_i2v_shape(int64_t image_w, int64_t image_h, const T2VOptions& opt, const DitConfig& dit,
                               const Vae22Config& vae);

// The VAE input of i2v: PIL LANCZOS resize of rgb (h × w × 3 uint8), centre crop, u8/255·2 − 1
// → [3, 1, out_h, out_w] f32 on be.
Tensor ti2v_image_input(Backend& be, const uint8_t* rgb, int64_t h, int64_t w, const TI2VImageSize& size);

// The per-token timesteps the DiT gets at timestep t: seq_len values, 0 on the first `fixed_tokens`
// (the tokens of latent frame 0 in i2v; 0 in t2v) and t elsewhere, the padding included.
std::vector<double> ti2v_token_timesteps(double t, int64_t fixed_tokens, int64_t seq_len);

// Called at step i with the per-token timesteps and the two DiT outputs before guidance.
using TI2VPredCallback =
    std::function<void(int index, const std::vector<double>& t_tokens, const Tensor& v_cond, const Tensor& v_uncond)>;

// The denoising loop. z: i2v's encoded image [z_dim, 1, h, w], or undefined for t2v.
Tensor ti2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& noise,
                    const Tensor& z, const T2VOptions& opt, int64_t seq_len, const T2VStepCallback& on_step = {},
                    const T2VLatentCallback& on_latent = {}, const TI2VPredCallback& on_preds = {});

// An 8-bit RGB picture for i2v (row-major h × w × 3, e.g. read_image's frame 0).
struct TI2VImage {
    const uint8_t* rgb = nullptr;
    int64_t height = 0, width = 0;
};

struct TI2VResult {
    TI2VLatentShape shape;
    Tensor context, context_null;  // T5 outputs
    Tensor image;                  // i2v: the VAE input [3, 1, oh, ow]
    Tensor z;                      // i2v: [z_dim, 1, h, w]
    Tensor latent;                 // final latent
    Tensor video;                  // [3, F, H, W] in [−1, 1]
    double text_seconds = 0, encode_seconds = 0, denoise_seconds = 0, decode_seconds = 0;
};

// The latent shape for a run: i2v when image.rgb is set, else t2v.
TI2VLatentShape ti2v_shape(const TI2VImage& image, const T2VOptions& opt, const DitConfig& dit,
                           const Vae22Config& vae);

// WanTI2V.generate with loaded models: i2v when image.rgb is set, else t2v. noise must have
// ti2v_shape(...).latent (t2v_noise draws one from a seed).
TI2VResult generate_ti2v(const T5Encoder& t5, const DitModel& dit, const Vae22Model& vae,
                         const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                         const TI2VImage& image, const Tensor& noise, const T2VOptions& opt,
                         const T2VStepCallback& on_step = {}, const T2VLatentCallback& on_latent = {},
                         const TI2VPredCallback& on_preds = {});

}  // namespace wanrt
