// WanT2V.generate as stages (contract in t2v.h).
#include "pipeline/t2v.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/timer.h"
#include "ops/clamp.h"
#include "ops/ops.h"
#include "pipeline/step_cache.h"
#include "sched/scheduler.h"

namespace wanrt {

const char* const kWanDefaultNegPrompt =
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，"
    "手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

T2VLatentShape t2v_latent_shape(const T2VOptions& opt, const DitConfig& dit, const VaeConfig& vae) {
    const int64_t tf = vae.temporal_factor(), sf = vae.spatial_factor();
    WANRT_CHECK(opt.frame_num >= 1 && (opt.frame_num - 1) % tf == 0, "t2v", "frame_num ", opt.frame_num,
                " must be ", tf, "n+1 (e.g. ", std::max<int64_t>(1, (opt.frame_num - 1) / tf * tf + 1), " or ",
                (std::max<int64_t>(opt.frame_num - 1, 0) / tf + 1) * tf + 1, "); pass --frame_num accordingly");
    const int64_t mh = sf * dit.patch_h, mw = sf * dit.patch_w;
    WANRT_CHECK(opt.width >= mw && opt.height >= mh && opt.width % mw == 0 && opt.height % mh == 0, "t2v",
                "size ", opt.width, "*", opt.height, " must have width a multiple of ", mw, " and height a multiple of ",
                mh, " (e.g. 832*480); pass --size W*H accordingly");
    T2VLatentShape s;
    const int64_t T = (opt.frame_num - 1) / tf + 1, h = opt.height / sf, w = opt.width / sf;
    s.latent = {vae.z_dim, T, h, w};
    WANRT_CHECK(T % dit.patch_t == 0, "t2v", "latent frame count ", T, " is not a multiple of the DiT's temporal patch ",
                dit.patch_t);
    // math.ceil(h·w/(ph·pw) · T / sp) · sp with sp = 1; exact in integers since h, w are patch multiples.
    s.seq_len = (h / dit.patch_h) * (w / dit.patch_w) * (T / dit.patch_t);
    WANRT_CHECK(vae.z_dim == dit.in_dim && dit.out_dim == dit.in_dim, "t2v", "the VAE's latent has ", vae.z_dim,
                " channels but the DiT takes ", dit.in_dim, " and returns ", dit.out_dim,
                "; the model files do not belong together");
    WANRT_CHECK(!dit.is_i2v(), "t2v", "the DiT is an image-to-video model; use a t2v checkpoint (or the i2v task)");
    return s;
}

Tensor t2v_encode_prompt(const T5Encoder& t5, const std::vector<int32_t>& ids, int64_t text_len) {
    WANRT_CHECK(!ids.empty(), "t2v", "empty token list for a prompt (even an empty prompt has its EOS token)");
    WANRT_CHECK(int64_t(ids.size()) <= text_len, "t2v", "prompt of ", ids.size(), " tokens exceeds text_len ",
                text_len, "; the tokenizer must truncate to text_len");
    return t5.encode(ids);
}

Tensor gaussian_noise(Backend& be, const Shape& shape, std::mt19937_64& rng) {
    const int64_t n = shape_numel(shape);
    std::vector<float> v(static_cast<size_t>(n));
    auto uniform = [&] {  // (0, 1]: 53 random bits, never 0 so the log is finite
        return (double(rng() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    };
    constexpr double kTwoPi = 6.283185307179586476925;
    for (int64_t i = 0; i < n; i += 2) {  // Box–Muller, both outputs used
        const double r = std::sqrt(-2.0 * std::log(uniform())), th = kTwoPi * uniform();
        v[size_t(i)] = float(r * std::cos(th));
        if (i + 1 < n) v[size_t(i) + 1] = float(r * std::sin(th));
    }
    return ops::from_host(be, DType::F32, shape, v.data());
}

Tensor t2v_noise(Backend& be, const Shape& shape, uint64_t seed) {
    std::mt19937_64 rng(seed);
    return gaussian_noise(be, shape, rng);
}

Tensor t2v_denoise(const DitModel& dit, const Tensor& context, const Tensor& context_null, const Tensor& noise,
                   const T2VOptions& opt, int64_t seq_len, const T2VStepCallback& on_step,
                   const T2VLatentCallback& on_latent) {
    const DitConfig& c = dit.config();
    WANRT_CHECK(noise.defined() && noise.dtype() == DType::F32 && noise.ndim() == 4 && noise.size(0) == c.in_dim,
                "t2v", "noise must be f32 [", c.in_dim, ", T, h, w], got ",
                noise.defined() ? noise.describe() : std::string("none"));
    for (const Tensor* ctx : {&context, &context_null})
        WANRT_CHECK(ctx->defined() && ctx->ndim() == 2 && ctx->size(1) == c.text_dim && ctx->size(0) <= c.text_len,
                    "t2v", "text context must be [≤ ", c.text_len, ", ", c.text_dim, "], got ",
                    ctx->defined() ? ctx->describe() : std::string("none"),
                    "; the text encoder does not match the DiT");
    WANRT_CHECK(dit.tokens_for(noise.shape()) <= seq_len, "t2v", "seq_len ", seq_len, " is smaller than the ",
                dit.tokens_for(noise.shape()), " tokens of latent ", noise.describe());

    return cfg_denoise(dit, DitSample{{}, {}, context, {}, 0}, DitSample{{}, {}, context_null, {}, 0}, noise, opt, seq_len,
                       on_step, on_latent);
}

Tensor cfg_denoise(const DitModel& dit, DitSample cond, DitSample uncond, const Tensor& noise, const T2VOptions& opt,
                   int64_t seq_len, const T2VStepCallback& on_step, const T2VLatentCallback& on_latent,
                   const CfgPredCallback& on_preds) {
    auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);
    const auto& ts = sched->timesteps();
    const float g = float(opt.guide_scale);
    Tensor x = ops::contiguous(noise);
    const auto t_loop = std::chrono::steady_clock::now();
    StepCache* cache = opt.cache.get();
    if (cache) cache->begin(dit.config(), sched->num_steps(), x.shape());
    // One DiT call (branch 0 = cond, 1 = uncond), through the step cache when there is one.
    auto dit_call = [&](const DitSample& s, int i, int branch) {
        return cache ? cache->forward(dit, s, seq_len, i, branch) : dit.forward({s}, seq_len)[0];
    };
    for (int i = 0; i < sched->num_steps(); ++i) {
        const auto t_step = std::chrono::steady_clock::now();
        // The DiT receives the scheduler's integer timestep (as a float tensor in the model).
        const float t = float(ts[size_t(i)]);
        cond.x = uncond.x = x;
        cond.t = uncond.t = t;
        Tensor v_c = dit_call(cond, i, 0);
        Tensor v_u = dit_call(uncond, i, 1);
        if (on_preds) on_preds(i, v_c, v_u);
        // noise_pred = u + g·(c − u), one f32 linear combination.
        Tensor v = dit.backend().empty(DType::F32, v_u.shape());
        const Tensor* in[2] = {&v_u, &v_c};
        const float coef[2] = {1.0f - g, g};
        ops::lincomb(in, coef, 2, v);
        x = sched->step(v, i, x);
        if (on_latent) on_latent(i, x);
        if (on_step) {
            dit.backend().synchronize();
            on_step({i, sched->num_steps(), ts[size_t(i)], seconds_since(t_step), seconds_since(t_loop)});
        }
    }
    return x;
}

Tensor t2v_decode(const WanVae& vae, const Tensor& latent) {
    vae.check_latent(latent.shape());
    Tensor video = vae.decode(latent);
    // The official generate returns the raw decode and cache_video clamps it; clamping here gives
    // the video the fixture records (out.video) and the writers clamp again harmlessly.
    return ops::clamp(video, -1.0f, 1.0f);
}

T2VResult generate_t2v(const T5Encoder& t5, const DitModel& dit, const WanVae& vae,
                       const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                       const Tensor& noise, const T2VOptions& opt, const T2VStepCallback& on_step,
                       const T2VLatentCallback& on_latent) {
    const T2VLatentShape shape = t2v_latent_shape(opt, dit.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == shape.latent, "t2v", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(shape.latent), " of ", opt.width, "*", opt.height, " with ", opt.frame_num, " frames");
    T2VResult r;
    auto t0 = std::chrono::steady_clock::now();
    r.context = t2v_encode_prompt(t5, prompt_ids, dit.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, dit.config().text_len);
    dit.backend().synchronize();
    r.text_seconds = seconds_since(t0);

    t0 = std::chrono::steady_clock::now();
    r.latent = t2v_denoise(dit, r.context, r.context_null, noise, opt, shape.seq_len, on_step, on_latent);
    dit.backend().synchronize();
    r.denoise_seconds = seconds_since(t0);
    r.timesteps = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift)->timesteps();

    t0 = std::chrono::steady_clock::now();
    r.video = t2v_decode(vae, r.latent);
    r.decode_seconds = seconds_since(t0);
    return r;
}

}  // namespace wanrt
