// The staged TI2V-5B run (contract in ti2v_staged.h).
#include "pipeline/ti2v_staged.h"

#include <chrono>

#include "core/error.h"
#include "core/timer.h"
#include "ops/clamp.h"

namespace wanrt {

TI2VStagedResult run_ti2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                 const std::string& neg_prompt, const TI2VImage& image, uint64_t seed,
                                 const T2VOptions& opt, const StageFn& on_stage, const T2VStepCallback& on_step) {
    using clock = std::chrono::steady_clock;
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    WANRT_CHECK(m.ti2v(), "ti2v", m.name, " holds a ", m.dit_config.model_type, " model, not Wan2.2 TI2V-5B");
    TI2VStagedResult r;
    r.shape = ti2v_shape(image, opt, m.dit_config, m.vae22_config);  // options and models before any weights
    T2VStagedTimes& tm = r.times;

    TextStageTimes text;
    std::vector<Tensor> contexts = run_text_stage(m, *be, {prompt, neg_prompt}, text, on_stage);
    tm.tokenize = text.tokenize;
    tm.t5_load = text.t5_load;
    tm.text = text.text;
    tm.prompt_tokens = text.tokens[0];
    tm.neg_prompt_tokens = text.tokens[1];
    Tensor context = contexts[0], context_null = contexts[1];
    contexts.clear();

    Tensor z;  // i2v: the picture's latent [48, 1, h, w]
    if (r.shape.i2v) {
        auto t0 = clock::now();
        stage("load VAE");
        auto vae = Vae22Model::load(m.vae_weights(), m.vae22_config, be);
        tm.vae_load = seconds_since(t0);
        t0 = clock::now();
        stage("encode image (VAE)");
        z = vae->encode(ti2v_image_input(*be, image.rgb, image.height, image.width, r.shape.image));
        be->synchronize();
        r.vae_encode = seconds_since(t0);
    }

    Tensor latent;
    {
        const std::shared_ptr<const DitModel> dit = run_dit_load_stage(m, *be, {}, tm.dit_load, on_stage);
        const auto t0 = clock::now();
        stage("denoise");
        const Tensor noise = t2v_noise(*be, r.shape.latent, seed);
        latent = ti2v_denoise(*dit, context, context_null, noise, z, opt, r.shape.seq_len, [&](const T2VStepInfo& s) {
            tm.step_seconds.push_back(s.step_seconds);
            if (on_step) on_step(s);
        });
        be->synchronize();
        tm.denoise = seconds_since(t0);
    }
    context = context_null = z = Tensor();

    auto t0 = clock::now();
    stage("load VAE");
    auto vae = Vae22Model::load(m.vae_weights(), m.vae22_config, be);
    tm.vae_load += seconds_since(t0);
    t0 = clock::now();
    stage("decode");
    r.video = ops::clamp(vae->decode(latent), -1.0f, 1.0f);  // Wan2_2_VAE.decode clamps
    be->synchronize();
    tm.decode = seconds_since(t0);
    return r;
}

}  // namespace wanrt
