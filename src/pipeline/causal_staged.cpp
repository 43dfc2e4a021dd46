#include "pipeline/causal_staged.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "models/causal_dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "text/tokenizer.h"

namespace wanrt {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

CausalStagedResult run_causal_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     uint64_t seed, const T2VOptions& opt, const CausalOptions& copt,
                                     CausalDitSource dit_src, const std::function<void(const std::string&)>& on_stage,
                                     const CausalBlockCallback& on_block) {
    using clock = std::chrono::steady_clock;
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    // Validate everything cheap before any weights are touched.
    const T2VLatentShape shape = t2v_latent_shape(opt, m.dit_config, m.vae_config);
    const int64_t F = shape.latent[1], fpb = copt.frames_per_block;
    if (fpb < 1 || F % fpb) fail("causal", F, " latent frames are not a multiple of frames_per_block ", fpb);
    const int64_t nsteps = int64_t(copt.step_list(FlowMatchTable(copt.shift)).size());
    const int64_t nblocks = F / fpb;

    CausalStagedResult r;
    CausalStagedTimes& tm = r.times;
    auto t0 = clock::now();
    stage("tokenize");
    std::vector<int32_t> ids;
    {
        text::T5Tokenizer tok(m.tokenizer, m.dit_config.text_len);
        ids = tok.tokenize(prompt).real_ids();
    }
    tm.prompt_tokens = int64_t(ids.size());
    tm.tokenize = seconds_since(t0);

    Tensor context;
    {
        // The text encoder lives only in this scope (freed before the DiT loads).
        t0 = clock::now();
        stage("load text encoder");
        T5Encoder t5 = T5Encoder::load(m.t5_weights(), *be);
        WANRT_CHECK(t5.config.dim == m.dit_config.text_dim, "model", "the text encoder's width ", t5.config.dim,
                    " differs from the DiT's text_dim ", m.dit_config.text_dim, " (", m.name,
                    "); the T5 file does not belong to this model");
        tm.t5_load = seconds_since(t0);
        t0 = clock::now();
        stage("encode text");
        context = t2v_encode_prompt(t5, ids, m.dit_config.text_len);
        be->synchronize();
        tm.text = seconds_since(t0);
    }

    Tensor latent;
    {
        t0 = clock::now();
        stage("load DiT");
        std::shared_ptr<const DitModel> dit =
            dit_src.src ? std::make_shared<DitModel>(m.dit_config, dit_src.src, *be, dit_src.prefix)
                        : std::make_shared<DitModel>(m.dit_config, m.dit_weights(), *be);
        dit_src = {};  // the model holds what it needs; drop our handle on the file
        CausalDitModel model(dit);
        tm.dit_load = seconds_since(t0);

        t0 = clock::now();
        stage("denoise");
        NoiseSource rng = seeded_noise(seed);
        const Tensor noise = rng(*be, shape.latent, -1);  // first draw of the stream = t2v_noise(seed)
        const int64_t S = model.tokens_per_frame(shape.latent);
        const int64_t capacity = copt.cache_frames > 0 ? std::min(copt.cache_frames, F) : F;
        tm.kv_cache_bytes = 2 * m.dit_config.num_layers * capacity * S * m.dit_config.dim * int64_t(sizeof(float));

        auto t_block = clock::now();
        int64_t in_block = 0, current = -1;
        latent = generate_causal(model, context, noise, copt, rng, {}, [&](const CausalCall& c, const Tensor&) {
            ++tm.dit_calls;
            if (c.block != current) current = c.block, in_block = 0;
            if (!c.clean) ++in_block;
            const bool last = c.block + 1 == nblocks;
            const bool done = c.clean || (last && copt.skip_last_clean_pass && in_block == nsteps);
            if (!done) return;
            be->synchronize();
            const double sec = seconds_since(t_block);
            t_block = clock::now();
            tm.block_seconds.push_back(sec);
            if (on_block) on_block({c.block, nblocks, tm.dit_calls, sec, seconds_since(t0)});
        });
        be->synchronize();
        tm.denoise = seconds_since(t0);
    }
    context = Tensor();

    t0 = clock::now();
    stage("load VAE");
    auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
    tm.vae_load = seconds_since(t0);
    t0 = clock::now();
    stage("decode");
    r.video = t2v_decode(*vae, latent);
    be->synchronize();
    tm.decode = seconds_since(t0);
    return r;
}

}  // namespace wanrt
