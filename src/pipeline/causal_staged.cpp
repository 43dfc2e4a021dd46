#include "pipeline/causal_staged.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/timer.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "models/causal_dit.h"

namespace wanrt {

CausalDitSource open_generator(const std::string& path) {
    // CausVid / Self-Forcing save model.pt (a torch.save zip, as .pth); open_weights_file goes by .pth.
    const bool pt = path.size() > 3 && path.compare(path.size() - 3, 3, ".pt") == 0;
    CausalDitSource g;
    // Not open_weights_file: generator checkpoints hold their DiT under any prefix beside other
    // networks (find_dit_prefix picks it), which the ComfyUI adapter would refuse as mixed prefixes.
    const bool pth = pt || (path.size() > 4 && path.compare(path.size() - 4, 4, ".pth") == 0);
    g.src = pth ? open_pth(path) : open_safetensors(path);
    g.prefix = find_dit_prefix(*g.src);
    return g;
}

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
    TextStageTimes text;
    Tensor context = run_text_stage(m, *be, {prompt}, text, on_stage)[0];
    tm.tokenize = text.tokenize;
    tm.t5_load = text.t5_load;
    tm.text = text.text;
    tm.prompt_tokens = text.tokens[0];

    Tensor latent;
    {
        // The model holds what it needs; our handle on the file goes with the moved-from source.
        CausalDitModel model(run_dit_load_stage(m, *be, std::move(dit_src), tm.dit_load, on_stage));

        auto t0 = clock::now();
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
    r.video = run_decode_stage(m, be, latent, tm.vae_load, tm.decode, on_stage);
    return r;
}

}  // namespace wanrt
