// WanTI2V.generate as stages (contract in ti2v.h).
#include "pipeline/ti2v.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "ops/clamp.h"
#include "ops/ops.h"
#include "sched/scheduler.h"
#include "video/pil_resize.h"

namespace wanrt {

namespace {

// Python's float floor division a // b (CPython float_floor_div), for b > 0.
double py_floordiv(double a, double b) {
    const double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1.0;
    if (div == 0) return std::copysign(0.0, a / b);
    const double fl = std::floor(div);
    return div - fl > 0.5 ? fl + 1.0 : fl;
}

void check_models(const DitConfig& dit, const Vae22Config& vae) {
    WANRT_CHECK(!dit.is_i2v(), "ti2v", "the DiT is an image-to-video model (model_type '", dit.model_type,
                "', conditioning channels y); TI2V needs the TI2V-5B DiT (model_type 'ti2v')");
    WANRT_CHECK(vae.z_dim == dit.in_dim && dit.out_dim == dit.in_dim, "ti2v", "the VAE's latent has ", vae.z_dim,
                " channels but the DiT takes ", dit.in_dim, " and returns ", dit.out_dim,
                "; TI2V needs the Wan2.2 VAE (48 channels) with the TI2V-5B DiT");
}

void check_frames(int64_t frame_num, int64_t tf) {
    WANRT_CHECK(frame_num >= 1 && (frame_num - 1) % tf == 0, "ti2v", "frame_num ", frame_num, " must be ", tf,
                "n+1 (e.g. ", std::max<int64_t>(1, (frame_num - 1) / tf * tf + 1), " or ",
                (std::max<int64_t>(frame_num - 1, 0) / tf + 1) * tf + 1, "); pass --frame_num accordingly");
}

}  // namespace

TI2VImageSize ti2v_image_size(int64_t image_w, int64_t image_h, int64_t max_area, int64_t dw, int64_t dh) {
    WANRT_CHECK(image_w > 0 && image_h > 0, "ti2v", "image size ", image_w, "x", image_h, " is empty");
    WANRT_CHECK(max_area > 0, "ti2v", "max_area ", max_area, " must be positive; pass --size W*H");
    const double area = double(max_area), w = double(image_w), h = double(image_h);
    const double ratio = w / h;
    const double ow = std::sqrt(area * ratio), oh = area / ow;
    auto too_small = [&] {
        fail("ti2v", "max_area ", max_area, " is too small for a ", image_w, "x", image_h, " image: a side would be 0 (",
             "the video sides are multiples of ", dw, "x", dh, "); pass a larger --size");
    };
    // Width first.
    const int64_t ow1 = int64_t(py_floordiv(ow, double(dw)) * double(dw));
    if (ow1 <= 0) too_small();
    const int64_t oh1 = int64_t(py_floordiv(area / double(ow1), double(dh)) * double(dh));
    // Height first.
    const int64_t oh2 = int64_t(py_floordiv(oh, double(dh)) * double(dh));
    if (oh2 <= 0) too_small();
    const int64_t ow2 = int64_t(py_floordiv(area / double(oh2), double(dw)) * double(dw));
    if (oh1 <= 0 || ow2 <= 0) too_small();
    const double r1 = double(ow1) / double(oh1), r2 = double(ow2) / double(oh2);
    TI2VImageSize s;
    if (std::max(ratio / r1, r1 / ratio) < std::max(ratio / r2, r2 / ratio)) {
        s.out_w = ow1, s.out_h = oh1;
    } else {
        s.out_w = ow2, s.out_h = oh2;
    }
    s.scale = std::max(double(s.out_w) / w, double(s.out_h) / h);
    s.resized_w = int64_t(std::nearbyint(w * s.scale));  // Python's round(): half to even
    s.resized_h = int64_t(std::nearbyint(h * s.scale));
    s.crop_x = (s.resized_w - s.out_w) / 2;
    s.crop_y = (s.resized_h - s.out_h) / 2;
    WANRT_CHECK(s.crop_x >= 0 && s.crop_y >= 0, "ti2v", "resizing ", image_w, "x", image_h, " to ", s.resized_w,
                "x", s.resized_h, " does not cover the ", s.out_w, "x", s.out_h, " crop");
    return s;
}

TI2VLatentShape ti2v_t2v_shape(const T2VOptions& opt, const DitConfig& dit, const Vae22Config& vae) {
    check_models(dit, vae);
    const int64_t tf = vae.temporal_factor(), sf = vae.spatial_factor();
    check_frames(opt.frame_num, tf);
    const int64_t mh = sf * dit.patch_h, mw = sf * dit.patch_w;
    WANRT_CHECK(opt.width >= mw && opt.height >= mh && opt.width % mw == 0 && opt.height % mh == 0, "ti2v", "size ",
                opt.width, "*", opt.height, " must have width a multiple of ", mw, " and height a multiple of ", mh,
                " (e.g. 1280*704); pass --size W*H accordingly");
    TI2VLatentShape s;
    const int64_t T = (opt.frame_num - 1) / tf + 1, h = opt.height / sf, w = opt.width / sf;
    WANRT_CHECK(T % dit.patch_t == 0, "ti2v", "latent frame count ", T, " is not a multiple of the DiT's patch ",
                dit.patch_t);
    s.latent = {vae.z_dim, T, h, w};
    // math.ceil(h·w/(ph·pw) · T): exact in integers, h and w being patch multiples.
    s.seq_len = (h / dit.patch_h) * (w / dit.patch_w) * (T / dit.patch_t);
    return s;
}

TI2VLatentShape ti2v_i2v_shape(int64_t image_w, int64_t image_h, const T2VOptions& opt, const DitConfig& dit,
                               const Vae22Config& vae) {
    check_models(dit, vae);
    const int64_t tf = vae.temporal_factor(), sf = vae.spatial_factor();
    check_frames(opt.frame_num, tf);
    TI2VLatentShape s;
    s.i2v = true;
    s.image = ti2v_image_size(image_w, image_h, opt.width * opt.height, sf * dit.patch_w, sf * dit.patch_h);
    const int64_t T = (opt.frame_num - 1) / tf + 1, h = s.image.out_h / sf, w = s.image.out_w / sf;
    WANRT_CHECK(T % dit.patch_t == 0, "ti2v", "latent frame count ", T, " is not a multiple of the DiT's patch ",
                dit.patch_t);
    s.latent = {vae.z_dim, T, h, w};
    s.seq_len = T * h * w / (int64_t(dit.patch_h) * dit.patch_w);  // T·h·w // 4
    return s;
}

TI2VLatentShape ti2v_shape(const TI2VImage& image, const T2VOptions& opt, const DitConfig& dit,
                           const Vae22Config& vae) {
    return image.rgb ? ti2v_i2v_shape(image.width, image.height, opt, dit, vae) : ti2v_t2v_shape(opt, dit, vae);
}

Tensor ti2v_image_input(Backend& be, const uint8_t* rgb, int64_t h, int64_t w, const TI2VImageSize& s) {
    const std::vector<uint8_t> big = pil_resize_lanczos(rgb, h, w, s.resized_h, s.resized_w);
    // img.crop((x1, y1, x1 + ow, y1 + oh)), TF.to_tensor (u8/255 in f32), then (x − 0.5)/0.5.
    const int64_t oh = s.out_h, ow = s.out_w;
    std::vector<float> v(size_t(3 * oh * ow));
    for (int64_t y = 0; y < oh; ++y)
        for (int64_t x = 0; x < ow; ++x)
            for (int64_t c = 0; c < 3; ++c) {
                const uint8_t u = big[size_t(((y + s.crop_y) * s.resized_w + (x + s.crop_x)) * 3 + c)];
                v[size_t((c * oh + y) * ow + x)] = (float(u) / 255.0f - 0.5f) / 0.5f;
            }
    return ops::from_host(be, DType::F32, {3, 1, oh, ow}, v.data());
}

std::vector<double> ti2v_token_timesteps(double t, int64_t fixed_tokens, int64_t seq_len) {
    WANRT_ASSERT(fixed_tokens >= 0 && fixed_tokens <= seq_len);
    std::vector<double> ts(size_t(seq_len), t);
    std::fill(ts.begin(), ts.begin() + fixed_tokens, 0.0);
    return ts;
}

Tensor ti2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& noise,
                    const Tensor& z, const T2VOptions& opt, int64_t seq_len, const T2VStepCallback& on_step,
                    const T2VLatentCallback& on_latent, const TI2VPredCallback& on_preds) {
    const DitConfig& c = dit.config();
    Backend& be = dit.backend();
    WANRT_CHECK(noise.defined() && noise.dtype() == DType::F32 && noise.ndim() == 4 && noise.size(0) == c.in_dim,
                "ti2v", "noise must be f32 [", c.in_dim, ", T, h, w], got ",
                noise.defined() ? noise.describe() : std::string("none"));
    for (const Tensor* ctx : {&context, &context_null})
        WANRT_CHECK(ctx->defined() && ctx->ndim() == 2 && ctx->size(1) == c.text_dim && ctx->size(0) <= c.text_len,
                    "ti2v", "text context must be [≤ ", c.text_len, ", ", c.text_dim, "], got ",
                    ctx->defined() ? ctx->describe() : std::string("none"), "; the text encoder does not match the DiT");
    const Shape& ns = noise.shape();
    WANRT_CHECK(dit.tokens_for(ns) <= seq_len, "ti2v", "seq_len ", seq_len, " is smaller than the ",
                dit.tokens_for(ns), " tokens of latent ", noise.describe());
    const bool i2v = z.defined();
    if (i2v)
        WANRT_CHECK(z.shape() == (Shape{ns[0], 1, ns[2], ns[3]}), "ti2v", "image latent ", z.describe(),
                    " does not match the noise ", noise.describe(), " (expected [", ns[0], ", 1, ", ns[2], ", ", ns[3],
                    "])");
    // latent = (1 − mask)·z + mask·x with mask 0 on latent frame 0 and 1 elsewhere: with a 0/1 mask
    // this is x with frame 0 replaced by z, exactly.
    auto impose = [&](const Tensor& x) {
        Tensor y = be.empty(DType::F32, ns);
        ops::copy(x, y);
        if (i2v) ops::copy(z, y.slice(1, 0, 1));
        return y;
    };
    // Tokens of latent frame 0: (mask[0][0][:, ::2, ::2]·t).flatten() is 0 on them.
    const int64_t fixed = i2v ? (ns[2] / c.patch_h) * (ns[3] / c.patch_w) : 0;

    auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);
    const auto& ts = sched->timesteps();
    const float g = float(opt.guide_scale);
    DitSample cond{{}, {}, context, {}, 0}, uncond{{}, {}, context_null, {}, 0};
    Tensor x = impose(noise);
    const auto t_loop = std::chrono::steady_clock::now();
    for (int i = 0; i < sched->num_steps(); ++i) {
        const auto t_step = std::chrono::steady_clock::now();
        cond.x = uncond.x = x;
        cond.t_tokens = uncond.t_tokens = ti2v_token_timesteps(double(ts[size_t(i)]), fixed, seq_len);
        Tensor v_c = dit.forward({cond}, seq_len)[0];
        Tensor v_u = dit.forward({uncond}, seq_len)[0];
        if (on_preds) on_preds(i, cond.t_tokens, v_c, v_u);
        // noise_pred = u + g·(c − u), one f32 linear combination.
        Tensor v = be.empty(DType::F32, v_u.shape());
        const Tensor* in[2] = {&v_u, &v_c};
        const float coef[2] = {1.0f - g, g};
        ops::lincomb(in, coef, 2, v);
        // The scheduler steps the whole latent (frame 0 too) and keeps that in its history; only
        // the result it returns gets frame 0 re-imposed (a copy, so the history is untouched).
        x = i2v ? impose(sched->step(v, i, x)) : sched->step(v, i, x);
        if (on_latent) on_latent(i, x);
        if (on_step) {
            be.synchronize();
            on_step({i, sched->num_steps(), ts[size_t(i)], seconds_since(t_step), seconds_since(t_loop)});
        }
    }
    return x;
}

TI2VResult generate_ti2v(const T5Encoder& t5, const DitModel& dit, const Vae22Model& vae,
                         const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                         const TI2VImage& image, const Tensor& noise, const T2VOptions& opt,
                         const T2VStepCallback& on_step, const T2VLatentCallback& on_latent,
                         const TI2VPredCallback& on_preds) {
    TI2VResult r;
    r.shape = ti2v_shape(image, opt, dit.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == r.shape.latent, "ti2v", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(r.shape.latent));
    auto t0 = std::chrono::steady_clock::now();
    r.context = t2v_encode_prompt(t5, prompt_ids, dit.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, dit.config().text_len);
    dit.backend().synchronize();
    r.text_seconds = seconds_since(t0);

    if (r.shape.i2v) {
        t0 = std::chrono::steady_clock::now();
        r.image = ti2v_image_input(vae.backend(), image.rgb, image.height, image.width, r.shape.image);
        r.z = vae.encode(r.image);  // [z_dim, 1, h, w]
        vae.backend().synchronize();
        r.encode_seconds = seconds_since(t0);
    }

    t0 = std::chrono::steady_clock::now();
    r.latent = ti2v_denoise(dit, r.context, r.context_null, noise, r.z, opt, r.shape.seq_len, on_step, on_latent,
                            on_preds);
    dit.backend().synchronize();
    r.denoise_seconds = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    r.video = ops::clamp(vae.decode(r.latent), -1.0f, 1.0f);  // Wan2_2_VAE.decode clamps
    vae.backend().synchronize();
    r.decode_seconds = seconds_since(t0);
    return r;
}

}  // namespace wanrt
