// WanI2V.generate as stages (contract in i2v.h).
#include "pipeline/i2v.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// Python's float `a // b` (CPython float_floor_div): floor of the exact quotient, computed through
// fmod so it agrees with the official numpy/Python arithmetic where a/b rounds up to an integer.
double py_floordiv(double a, double b) {
    const double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
    if (div == 0) return std::copysign(0.0, a / b);
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return fl;
}

// Python's round() of a float: half to even.
int64_t py_round(double x) { return int64_t(std::nearbyint(x)); }

}  // namespace

I2VSize i2v_size(int64_t image_h, int64_t image_w, int64_t max_area, int64_t vae_stride, int64_t patch) {
    WANRT_CHECK(image_h > 0 && image_w > 0, "i2v", "image size ", image_w, "x", image_h, " is empty");
    WANRT_CHECK(max_area > 0, "i2v", "max_area ", max_area, " must be positive; pass --size W*H");
    const double ar = double(image_h) / double(image_w), s = double(vae_stride), p = double(patch);
    I2VSize r;
    r.lat_h = py_round(py_floordiv(py_floordiv(std::sqrt(double(max_area) * ar), s), p) * p);
    r.lat_w = py_round(py_floordiv(py_floordiv(std::sqrt(double(max_area) / ar), s), p) * p);
    r.h = r.lat_h * vae_stride;
    r.w = r.lat_w * vae_stride;
    return r;
}

I2VLatentShape i2v_latent_shape(int64_t image_h, int64_t image_w, const T2VOptions& opt, const DitConfig& dit,
                                const VaeConfig& vae) {
    const int64_t tf = vae.temporal_factor(), sf = vae.spatial_factor();
    WANRT_CHECK(opt.frame_num >= 1 && (opt.frame_num - 1) % tf == 0, "i2v", "frame_num ", opt.frame_num, " must be ",
                tf, "n+1 (e.g. ", std::max<int64_t>(1, (opt.frame_num - 1) / tf * tf + 1), " or ",
                (std::max<int64_t>(opt.frame_num - 1, 0) / tf + 1) * tf + 1, "); pass --frame_num accordingly");
    WANRT_CHECK(dit.model_type == "i2v", "i2v", "the DiT is a ", dit.model_type,
                " model; image-to-video needs an i2v checkpoint (e.g. Wan2.1-I2V-14B-480P)");
    WANRT_CHECK(dit.patch_h == dit.patch_w, "i2v", "the DiT's patch ", dit.patch_h, "x", dit.patch_w,
                " is not square; the official size arithmetic assumes one patch size");
    WANRT_CHECK(vae.z_dim == dit.out_dim && dit.in_dim == 2 * vae.z_dim + tf, "i2v", "the VAE's latent has ", vae.z_dim,
                " channels, so an i2v DiT takes ", 2 * vae.z_dim + tf, " (noise + mask + image latent) and returns ",
                vae.z_dim, ", but this one takes ", dit.in_dim, " and returns ", dit.out_dim,
                "; the model files do not belong together");
    WANRT_CHECK(opt.width > 0 && opt.height > 0, "i2v", "size ", opt.width, "*", opt.height,
                " must be positive (it is the max_area W·H)");
    I2VLatentShape s;
    s.size = i2v_size(image_h, image_w, opt.width * opt.height, sf, dit.patch_h);
    WANRT_CHECK(s.size.lat_h >= dit.patch_h && s.size.lat_w >= dit.patch_w, "i2v", "a ", image_w, "x", image_h,
                " image in max_area ", opt.width, "*", opt.height, " gives a ", s.size.w, "x", s.size.h,
                " video: too small (the aspect ratio is too extreme or --size too small); pass a larger --size");
    const int64_t T = (opt.frame_num - 1) / tf + 1;
    WANRT_CHECK(T % dit.patch_t == 0, "i2v", "latent frame count ", T, " is not a multiple of the DiT's temporal patch ",
                dit.patch_t);
    check_rope_grid(dit, T, s.size.lat_h, s.size.lat_w, tf, sf, "i2v");
    s.latent = {vae.z_dim, T, s.size.lat_h, s.size.lat_w};
    // max_seq_len = T·lat_h·lat_w // (ph·pw), rounded up to sp_size = 1: exact (lat sides are patch multiples).
    s.seq_len = T * s.size.lat_h * s.size.lat_w / (int64_t(dit.patch_h) * dit.patch_w) / dit.patch_t;
    return s;
}

Tensor i2v_mask(Backend& be, int64_t T, int64_t lat_h, int64_t lat_w, int64_t tf) {
    // msk = ones(1, F, h, w); msk[:, 1:] = 0; frame 0 repeated tf times → [tf·T]; view [T, tf] → [tf, T]:
    // every channel of latent frame 0 is 1, the rest 0.
    const int64_t plane = lat_h * lat_w;
    std::vector<float> m(size_t(tf * T * plane), 0.0f);  // [4, T, lat_h, lat_w]
    for (int64_t c = 0; c < tf; ++c) std::fill_n(m.begin() + c * T * plane, plane, 1.0f);
    return ops::from_host(be, DType::F32, {tf, T, lat_h, lat_w}, m.data());
}

Tensor i2v_vae_input(Backend& be, const Tensor& image, int64_t frame_num, int64_t h, int64_t w) {
    WANRT_CHECK(image.defined() && image.dtype() == DType::F32 && image.ndim() == 3 && image.size(0) == 3, "i2v",
                "image must be f32 [3, h, w] in [-1, 1], got ", image.defined() ? image.describe() : std::string("none"));
    const int64_t H = image.size(1), W = image.size(2);
    const std::vector<float> host = ops::to_host_f32(image);
    const std::vector<double> img(host.begin(), host.end());
    // F.interpolate(img[None], (h, w), mode='bicubic'): align_corners=False, no antialias, not clamped.
    const std::vector<double> r = bicubic_resize(img, 3, H, W, h, w);
    std::vector<float> out(size_t(3 * frame_num * h * w), 0.0f);  // [3, F, h, w]; frames 1… are zeros
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < h * w; ++i) out[size_t(c * frame_num * h * w + i)] = float(r[size_t(c * h * w + i)]);
    return ops::from_host(be, DType::F32, {3, frame_num, h, w}, out.data());
}

Tensor i2v_condition(const WanVae& vae, const Tensor& image, int64_t frame_num, const I2VSize& size) {
    Backend& be = vae.backend();
    Tensor z = vae.encode(i2v_vae_input(be, image, frame_num, size.h, size.w));  // [z_dim, T, lat_h, lat_w]
    const int64_t T = z.size(1);
    WANRT_CHECK(z.size(2) == size.lat_h && z.size(3) == size.lat_w, "i2v", "the VAE encoded ", size.w, "x", size.h,
                " to ", z.describe(), ", expected ", size.lat_w, "x", size.lat_h);
    Tensor m = i2v_mask(be, T, size.lat_h, size.lat_w, vae.config().temporal_factor());
    return ops::concat({m, z}, 0);  // [4 + z_dim, T, lat_h, lat_w]
}

Tensor i2v_clip_features(const ClipVisionEncoder& clip, const Tensor& image) {
    WANRT_CHECK(image.defined() && image.dtype() == DType::F32 && image.ndim() == 3 && image.size(0) == 3, "i2v",
                "image must be f32 [3, h, w] in [-1, 1], got ", image.defined() ? image.describe() : std::string("none"));
    // clip.visual([img[:, None]]): batch 1 of the original image; CLIP resizes it itself.
    return ops::contiguous(clip.encode(image.unsqueeze(0)).select(0, 0));  // [tokens, dim]
}

Tensor i2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& clip_fea,
                   const Tensor& y, const Tensor& noise, const T2VOptions& opt, int64_t seq_len,
                   const T2VStepCallback& on_step, const T2VLatentCallback& on_latent, const CfgPredCallback& on_preds) {
    WANRT_CHECK(noise.defined() && noise.dtype() == DType::F32 && noise.ndim() == 4, "i2v", "noise must be f32 [",
                dit.config().out_dim, ", T, h, w], got ", noise.defined() ? noise.describe() : std::string("none"));
    WANRT_CHECK(dit.tokens_for(noise.shape()) <= seq_len, "i2v", "seq_len ", seq_len, " is smaller than the ",
                dit.tokens_for(noise.shape()), " tokens of latent ", noise.describe());
    // x, y, context and clip_fea are checked by the DiT's forward.
    return cfg_denoise(dit, DitSample{{}, y, context, clip_fea, 0}, DitSample{{}, y, context_null, clip_fea, 0}, noise,
                       opt, seq_len, on_step, on_latent, on_preds);
}

I2VResult generate_i2v(const T5Encoder& t5, const ClipVisionEncoder& clip, const DitModel& dit, const WanVae& vae,
                       const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                       const Tensor& image, const Tensor& noise, const T2VOptions& opt, const T2VStepCallback& on_step,
                       const T2VLatentCallback& on_latent, const CfgPredCallback& on_preds) {
    WANRT_CHECK(image.defined() && image.ndim() == 3, "i2v", "image must be f32 [3, h, w], got ",
                image.defined() ? image.describe() : std::string("none"));
    I2VResult r;
    r.shape = i2v_latent_shape(image.size(1), image.size(2), opt, dit.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == r.shape.latent, "i2v", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(r.shape.latent));
    r.context = t2v_encode_prompt(t5, prompt_ids, dit.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, dit.config().text_len);
    r.clip_fea = i2v_clip_features(clip, image);
    r.y = i2v_condition(vae, image, opt.frame_num, r.shape.size);
    r.latent = i2v_denoise(dit, r.context, r.context_null, r.clip_fea, r.y, noise, opt, r.shape.seq_len, on_step,
                           on_latent, on_preds);
    r.video = t2v_decode(vae, r.latent);
    return r;
}

I2VStagedResult run_i2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, const Tensor& image, uint64_t seed,
                               const T2VOptions& opt, const StageFn& on_stage, const T2VStepCallback& on_step) {
    WANRT_CHECK(image.defined() && image.dtype() == DType::F32 && image.ndim() == 3 && image.size(0) == 3, "i2v",
                "image must be f32 [3, h, w] in [-1, 1], got ", image.defined() ? image.describe() : std::string("none"));
    WANRT_CHECK(m.clip_weights != nullptr, "i2v", m.name, " has no CLIP image encoder; use an image-to-video model");
    // Options and models before any weights are touched.
    const I2VLatentShape shape = i2v_latent_shape(image.size(1), image.size(2), opt, m.dit_config, m.vae_config);
    return run_image_staged(
        m, std::move(be), prompt, neg_prompt, shape, seed, opt,
        [&](const ClipVisionEncoder& clip) { return i2v_clip_features(clip, image); },
        [&](const WanVae& vae) { return i2v_condition(vae, image, opt.frame_num, shape.size); }, on_stage, on_step);
}

I2VStagedResult run_image_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const I2VLatentShape& shape, uint64_t seed,
                                 const T2VOptions& opt, const ImageFeaturesFn& clip_features,
                                 const ImageConditionFn& condition, const StageFn& on_stage,
                                 const T2VStepCallback& on_step) {
    using clock = std::chrono::steady_clock;
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    WANRT_CHECK(m.clip_weights != nullptr, "i2v", m.name, " has no CLIP image encoder; use an image-to-video model");
    I2VStagedResult r;
    r.size = shape.size;
    I2VStagedTimes& tm = r.times;

    TextStageTimes text;
    std::vector<Tensor> contexts = run_text_stage(m, *be, {prompt, neg_prompt}, text, on_stage);
    tm.tokenize = text.tokenize;
    tm.t5_load = text.t5_load;
    tm.text = text.text;
    tm.prompt_tokens = text.tokens[0];
    tm.neg_prompt_tokens = text.tokens[1];
    Tensor context = contexts[0], context_null = contexts[1];
    contexts.clear();

    Tensor clip_fea;
    {
        auto t0 = clock::now();
        stage("load CLIP");
        const ClipVisionEncoder clip(m.clip_config, m.clip_weights(), *be);
        tm.clip_load = seconds_since(t0);
        t0 = clock::now();
        stage("encode image (CLIP)");
        clip_fea = clip_features(clip);
        be->synchronize();
        tm.clip = seconds_since(t0);
    }

    Tensor y = run_condition_stage(m, be, condition, tm.vae_load, tm.vae_encode, on_stage);

    Tensor latent;
    {
        const std::shared_ptr<const DitModel> dit = run_dit_load_stage(m, *be, {}, tm.dit_load, on_stage);
        const auto t0 = clock::now();
        stage("denoise");
        const Tensor noise = t2v_noise(*be, shape.latent, seed);
        latent = i2v_denoise(*dit, context, context_null, clip_fea, y, noise, opt, shape.seq_len,
                             [&](const T2VStepInfo& s) {
                                 tm.step_seconds.push_back(s.step_seconds);
                                 if (on_step) on_step(s);
                             });
        be->synchronize();
        tm.denoise = seconds_since(t0);
    }
    context = context_null = clip_fea = y = Tensor();
    double second_load = 0;
    r.video = run_decode_stage(m, be, latent, second_load, tm.decode, on_stage);
    tm.vae_load += second_load;
    return r;
}

Tensor run_condition_stage(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const ImageConditionFn& condition,
                           double& load_seconds, double& encode_seconds, const StageFn& on_stage) {
    auto t0 = std::chrono::steady_clock::now();
    if (on_stage) on_stage("load VAE");
    auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
    load_seconds = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (on_stage) on_stage("encode image (VAE)");
    Tensor y = condition(*vae);
    be->synchronize();
    encode_seconds = seconds_since(t0);
    return y;
}

}  // namespace wanrt
