// The Wan2.2 A14B mixture-of-experts pipelines (contract in moe.h).
#include "pipeline/moe.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/timer.h"
#include "sched/scheduler.h"

namespace wanrt {

bool moe_high_noise(int64_t t, double boundary) {
    return double(t) >= boundary * 1000.0;
}

void moe_check(const MoeOptions& moe, const DitConfig& high, const DitConfig& low) {
    WANRT_CHECK(std::isfinite(moe.boundary) && moe.boundary > 0 && moe.boundary <= 1, "moe", "boundary ", moe.boundary,
                " must be in (0, 1] (a fraction of the 1000 training timesteps; T2V-A14B 0.875, I2V-A14B 0.9)");
    WANRT_CHECK(std::isfinite(moe.guide_scale_high), "moe", "the high-noise guide scale must be a finite number");
    WANRT_CHECK(high.to_json() == low.to_json() && high.clip_branch == low.clip_branch &&
                    high.text_dim == low.text_dim && high.patch_t == low.patch_t && high.patch_h == low.patch_h &&
                    high.patch_w == low.patch_w,
                "moe", "the two experts differ (high-noise: ", high.model_type, " dim ", high.dim, ", ",
                high.num_layers, " blocks; low-noise: ", low.model_type, " dim ", low.dim, ", ", low.num_layers,
                " blocks); both must come from one Wan2.2 A14B release");
    WANRT_CHECK(high.model_type == "t2v" || (high.model_type == "i2v" && !high.has_clip()), "moe", "the experts are ",
                high.model_type, high.has_clip() ? " with a CLIP branch (Wan2.1)" : "",
                " models; A14B experts are t2v, or i2v without CLIP (Wan2.2 I2V-A14B)");
}

StepModelFn moe_step_selector(const MoeOptions& moe, const T2VOptions& opt, ExpertFn expert,
                              std::function<void(bool)> on_switch) {
    auto current = std::make_shared<int>(-1);  // the expert of the previous step (−1: none yet)
    const double g_low = opt.guide_scale, g_high = moe.guide_scale_high, boundary = moe.boundary;
    return [=](int, int64_t t) {
        const bool high = moe_high_noise(t, boundary);
        if (*current != int(high)) {
            *current = int(high);
            if (on_switch) on_switch(high);
        }
        return StepModel{&expert(high), high ? g_high : g_low};
    };
}

namespace {

// The steps' experts (1 = high-noise), as the fixtures record them.
std::vector<int> expert_list(const T2VOptions& opt, const MoeOptions& moe) {
    std::vector<int> out;
    const auto sched = make_scheduler(opt.solver, opt.sample_steps, opt.sample_shift);  // timesteps() is a view
    for (int64_t t : sched->timesteps()) out.push_back(moe_high_noise(t, moe.boundary) ? 1 : 0);
    return out;
}

ExpertFn loaded_experts(const DitModel& high, const DitModel& low) {
    return [&high, &low](bool h) -> const DitModel& { return h ? high : low; };
}

}  // namespace

MoeResult generate_moe_t2v(const T5Encoder& t5, const DitModel& high, const DitModel& low, const WanVae& vae,
                           const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                           const Tensor& noise, const T2VOptions& opt, const MoeOptions& moe,
                           const T2VStepCallback& on_step, const T2VLatentCallback& on_latent,
                           const CfgPredCallback& on_preds) {
    moe_check(moe, high.config(), low.config());
    const T2VLatentShape shape = t2v_latent_shape(opt, high.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == shape.latent, "moe", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(shape.latent));
    MoeResult r;
    r.context = t2v_encode_prompt(t5, prompt_ids, high.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, high.config().text_len);
    r.experts = expert_list(opt, moe);
    r.latent =
        cfg_denoise(moe_step_selector(moe, opt, loaded_experts(high, low)), DitSample{{}, {}, r.context, {}, 0},
                    DitSample{{}, {}, r.context_null, {}, 0}, noise, opt, shape.seq_len, on_step, on_latent, on_preds);
    r.video = t2v_decode(vae, r.latent);
    return r;
}

MoeResult generate_moe_i2v(const T5Encoder& t5, const DitModel& high, const DitModel& low, const WanVae& vae,
                           const std::vector<int32_t>& prompt_ids, const std::vector<int32_t>& neg_prompt_ids,
                           const Tensor& image, const Tensor& noise, const T2VOptions& opt, const MoeOptions& moe,
                           const T2VStepCallback& on_step, const T2VLatentCallback& on_latent,
                           const CfgPredCallback& on_preds) {
    moe_check(moe, high.config(), low.config());
    WANRT_CHECK(image.defined() && image.ndim() == 3, "moe", "image must be f32 [3, h, w], got ",
                image.defined() ? image.describe() : std::string("none"));
    const I2VLatentShape shape = i2v_latent_shape(image.size(1), image.size(2), opt, high.config(), vae.config());
    WANRT_CHECK(noise.defined() && noise.shape() == shape.latent, "moe", "noise ",
                noise.defined() ? noise.describe() : std::string("none"), " does not match the latent shape ",
                shape_str(shape.latent));
    MoeResult r;
    r.context = t2v_encode_prompt(t5, prompt_ids, high.config().text_len);
    r.context_null = t2v_encode_prompt(t5, neg_prompt_ids, high.config().text_len);
    r.y = i2v_condition(vae, image, opt.frame_num, shape.size);
    r.experts = expert_list(opt, moe);
    // No clip_fea: the A14B experts have no CLIP branch.
    r.latent =
        cfg_denoise(moe_step_selector(moe, opt, loaded_experts(high, low)), DitSample{{}, r.y, r.context, {}, 0},
                    DitSample{{}, r.y, r.context_null, {}, 0}, noise, opt, shape.seq_len, on_step, on_latent, on_preds);
    r.video = t2v_decode(vae, r.latent);
    return r;
}

I2VStagedResult run_moe_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, const Tensor& image, uint64_t seed, const T2VOptions& opt,
                               const MoeOptions& moe, const StageFn& on_stage, const T2VStepCallback& on_step) {
    using clock = std::chrono::steady_clock;
    WANRT_CHECK(m.moe(), "moe", m.name, " has one DiT, not the two experts of a Wan2.2 A14B model");
    // Options and models before any weights are touched.
    moe_check(moe, m.dit_config, m.dit_config);
    const bool i2v = image.defined();
    WANRT_CHECK(i2v == m.dit_config.is_i2v(), "moe", m.name, " holds ", m.dit_config.model_type,
                " experts: ", i2v ? "image-to-video needs I2V-A14B" : "pass an image (I2V-A14B)");
    Shape latent_shape;
    int64_t seq_len = 0;
    I2VStagedResult r;
    if (i2v) {
        WANRT_CHECK(image.dtype() == DType::F32 && image.ndim() == 3 && image.size(0) == 3, "moe",
                    "image must be f32 [3, h, w] in [-1, 1], got ", image.describe());
        const I2VLatentShape s = i2v_latent_shape(image.size(1), image.size(2), opt, m.dit_config, m.vae_config);
        latent_shape = s.latent;
        seq_len = s.seq_len;
        r.size = s.size;
    } else {
        const T2VLatentShape s = t2v_latent_shape(opt, m.dit_config, m.vae_config);
        latent_shape = s.latent;
        seq_len = s.seq_len;
        r.size = {latent_shape[2], latent_shape[3], opt.height, opt.width};
    }
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

    Tensor y;
    if (i2v)
        y = run_condition_stage(
            m, be, [&](const WanVae& vae) { return i2v_condition(vae, image, opt.frame_num, r.size); }, tm.vae_load,
            tm.vae_encode, on_stage);

    Tensor latent;
    {
        // The experts, loaded on first use. With offload the other one is freed first (the switch
        // happens once: high → low), so one expert is resident at a time.
        std::shared_ptr<const DitModel> experts[2];  // [0] low-noise, [1] high-noise
        auto load = [&](bool high) {
            double s = 0;
            const CausalDitSource src{high ? m.high_noise_weights() : nullptr, ""};
            if (on_stage) on_stage(high ? "load DiT (high-noise expert)" : "load DiT (low-noise expert)");
            experts[high] = run_dit_load_stage(m, *be, src, s);
            tm.dit_load += s;
        };
        if (!moe.offload) {
            load(true);
            load(false);
        }
        const ExpertFn expert = [&](bool high) -> const DitModel& {
            if (!experts[high]) {
                if (moe.offload) experts[!high].reset();
                load(high);
            }
            return *experts[high];
        };
        const auto t0 = clock::now();
        if (on_stage) on_stage("denoise");
        const Tensor noise = t2v_noise(*be, latent_shape, seed);
        latent = cfg_denoise(moe_step_selector(moe, opt, expert), DitSample{{}, y, context, {}, 0},
                             DitSample{{}, y, context_null, {}, 0}, noise, opt, seq_len, [&](const T2VStepInfo& s) {
                                 tm.step_seconds.push_back(s.step_seconds);
                                 if (on_step) on_step(s);
                             });
        be->synchronize();
        tm.denoise = seconds_since(t0) - tm.dit_load * (moe.offload ? 1 : 0);
    }
    context = context_null = y = Tensor();
    double second_load = 0;
    r.video = run_decode_stage(m, be, latent, second_load, tm.decode, on_stage);
    tm.vae_load += second_load;
    return r;
}

}  // namespace wanrt
