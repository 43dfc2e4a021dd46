// WanFLF2V.generate's conditioning (contract in flf2v.h).
#include "pipeline/flf2v.h"

#include <algorithm>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

void check_image(const Tensor& t, const char* which) {
    WANRT_CHECK(t.defined() && t.dtype() == DType::F32 && t.ndim() == 3 && t.size(0) == 3, "flf2v", "the ", which,
                " frame must be f32 [3, h, w] in [-1, 1], got ", t.defined() ? t.describe() : std::string("none"));
}

}  // namespace

I2VLatentShape flf2v_latent_shape(const Shape& first, const Shape& last, const T2VOptions& opt, const DitConfig& dit,
                                  const VaeConfig& vae) {
    WANRT_CHECK(first.size() == 3 && last.size() == 3 && first[0] == 3 && last[0] == 3, "flf2v",
                "first and last frames must be [3, h, w], got ", shape_str(first), " and ", shape_str(last));
    WANRT_CHECK(first == last, "flf2v", "the last frame is ", last[2], "x", last[1], " but the first is ", first[2], "x",
                first[1], "; resize the last frame to the first's size (the official code's crop for this case is broken)");
    const int64_t tf = vae.temporal_factor();
    WANRT_CHECK(opt.frame_num >= 1 + tf && (opt.frame_num - 1) % tf == 0, "flf2v", "frame_num ", opt.frame_num,
                " must be ", tf, "n+1 and at least ", 1 + tf, " (the official model: 81); pass --frame_num accordingly");
    WANRT_CHECK(dit.model_type == "flf2v", "flf2v", "the DiT is a ", dit.model_type,
                " model; first-last-frame-to-video needs an flf2v checkpoint (Wan2.1-FLF2V-14B-720P)");
    // The size arithmetic and model-width checks are those of I2V (same 36-channel input).
    DitConfig as_i2v = dit;
    as_i2v.model_type = "i2v";
    return i2v_latent_shape(first[1], first[2], opt, as_i2v, vae);
}

Tensor flf2v_mask(Backend& be, int64_t T, int64_t lat_h, int64_t lat_w, int64_t tf) {
    // Pixel mask (1, 0, …, 0, 1) over F = tf·(T − 1) + 1 frames; frame 0 repeated tf times → tf·T
    // entries, viewed [T, tf] and transposed: latent frame 0 in every channel, the last pixel frame
    // (entry tf·T − 1) in channel tf − 1 of latent frame T − 1.
    const int64_t plane = lat_h * lat_w;
    std::vector<float> m(size_t(tf * T * plane), 0.0f);  // [4, T, lat_h, lat_w]
    for (int64_t c = 0; c < tf; ++c) std::fill_n(m.begin() + c * T * plane, plane, 1.0f);
    std::fill_n(m.begin() + ((tf - 1) * T + (T - 1)) * plane, plane, 1.0f);
    return ops::from_host(be, DType::F32, {tf, T, lat_h, lat_w}, m.data());
}

Tensor flf2v_vae_input(Backend& be, const Tensor& first, const Tensor& last, int64_t frame_num, int64_t h, int64_t w) {
    check_image(first, "first");
    check_image(last, "last");
    WANRT_CHECK(frame_num >= 2, "flf2v", "frame_num ", frame_num, " leaves no room for a first and a last frame");
    // Both ends through the I2V resize (frame 0 of a 1-frame input), then placed at 0 and F − 1.
    const std::vector<float> a = ops::to_host_f32(i2v_vae_input(be, first, 1, h, w));  // [3, 1, h, w]
    const std::vector<float> b = ops::to_host_f32(i2v_vae_input(be, last, 1, h, w));
    const int64_t plane = h * w;
    std::vector<float> out(size_t(3 * frame_num * plane), 0.0f);  // [3, F, h, w]
    for (int64_t c = 0; c < 3; ++c) {
        std::copy_n(a.begin() + c * plane, plane, out.begin() + c * frame_num * plane);
        std::copy_n(b.begin() + c * plane, plane, out.begin() + (c * frame_num + frame_num - 1) * plane);
    }
    return ops::from_host(be, DType::F32, {3, frame_num, h, w}, out.data());
}

Tensor flf2v_condition(const WanVae& vae, const Tensor& first, const Tensor& last, int64_t frame_num,
                       const I2VSize& size) {
    Backend& be = vae.backend();
    Tensor z = vae.encode(flf2v_vae_input(be, first, last, frame_num, size.h, size.w));  // [z_dim, T, lat_h, lat_w]
    Tensor m = flf2v_mask(be, z.size(1), size.lat_h, size.lat_w, vae.config().temporal_factor());
    return ops::concat({m, z}, 0);  // [4 + z_dim, T, lat_h, lat_w]
}

Tensor flf2v_clip_features(const ClipVisionEncoder& clip, const Tensor& first, const Tensor& last) {
    check_image(first, "first");
    check_image(last, "last");
    WANRT_CHECK(first.shape() == last.shape(), "flf2v", "first ", first.describe(), " and last ", last.describe(),
                " frames differ in size");
    Tensor batch = ops::concat({first.unsqueeze(0), last.unsqueeze(0)}, 0);  // [2, 3, h, w]
    Tensor f = clip.encode(batch);                                          // [2, tokens, dim]
    return ops::contiguous(f).reshape({2 * f.size(1), f.size(2)});          // [2·tokens, dim]
}

I2VResult generate_flf2v(const T5Encoder& t5, const ClipVisionEncoder& clip, const DitModel& dit, const WanVae& vae,
                         const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                         const Tensor& first, const Tensor& last, const Tensor& noise, const T2VOptions& opt,
                         const T2VStepCallback& on_step, const T2VLatentCallback& on_latent,
                         const CfgPredCallback& on_preds) {
    check_image(first, "first");
    check_image(last, "last");
    I2VResult r;
    r.shape = flf2v_latent_shape(first.shape(), last.shape(), opt, dit.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == r.shape.latent, "flf2v", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(r.shape.latent));
    r.context = t2v_encode_prompt(t5, prompt_ids, dit.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, dit.config().text_len);
    r.clip_fea = flf2v_clip_features(clip, first, last);
    r.y = flf2v_condition(vae, first, last, opt.frame_num, r.shape.size);
    r.latent = i2v_denoise(dit, r.context, r.context_null, r.clip_fea, r.y, noise, opt, r.shape.seq_len, on_step,
                           on_latent, on_preds);
    r.video = t2v_decode(vae, r.latent);
    return r;
}

I2VStagedResult run_flf2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const Tensor& first, const Tensor& last, uint64_t seed,
                                 const T2VOptions& opt, const StageFn& on_stage, const T2VStepCallback& on_step) {
    check_image(first, "first");
    check_image(last, "last");
    WANRT_CHECK(m.clip_weights != nullptr, "flf2v", m.name,
                " has no CLIP image encoder; use a first-last-frame model (Wan2.1-FLF2V-14B-720P)");
    // Options, sizes and models before any weights are touched.
    const I2VLatentShape shape = flf2v_latent_shape(first.shape(), last.shape(), opt, m.dit_config, m.vae_config);
    return run_image_staged(
        m, std::move(be), prompt, neg_prompt, shape, seed, opt,
        [&](const ClipVisionEncoder& clip) { return flf2v_clip_features(clip, first, last); },
        [&](const WanVae& vae) { return flf2v_condition(vae, first, last, opt.frame_num, shape.size); }, on_stage,
        on_step);
}

}  // namespace wanrt
