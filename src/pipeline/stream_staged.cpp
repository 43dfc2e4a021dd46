// Staged streaming V2V (contract in stream_staged.h).
#include "pipeline/stream_staged.h"

#include <chrono>

#include "core/error.h"
#include "core/timer.h"
#include "ops/ops.h"

namespace wanrt {

StreamStagedResult run_stream_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     const StreamFrameIo& io, const StreamOptions& opt, uint64_t seed,
                                     CausalDitSource dit, const StageFn& on_stage,
                                     const StreamChunkCallback& on_chunk) {
    opt.validate();  // before any weights are touched
    WANRT_CHECK(!m.dit_config.is_i2v(), "stream", "the causal model needs a text-to-video DiT; ", m.name,
                " holds an image-to-video one");
    StreamStagedResult r;
    StreamStagedTimes& tm = r.times;

    TextStageTimes text;
    Tensor context = run_text_stage(m, *be, {prompt}, text, on_stage)[0];
    tm.tokenize = text.tokenize;
    tm.t5_load = text.t5_load;
    tm.text = text.text;
    tm.prompt_tokens = text.tokens[0];

    auto model = std::make_shared<CausalDitModel>(run_dit_load_stage(m, *be, std::move(dit), tm.dit_load, on_stage));
    auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<StreamV2V> sp;
    if (m.tae_weights) {  // TAEHV encodes and decodes; the Wan VAE is never loaded
        if (on_stage) on_stage("load VAE (TAEHV)");
        std::shared_ptr<const Taehv> tae = Taehv::load(m.tae_weights(), be);
        tm.vae_load = seconds_since(t0);
        sp = std::make_unique<StreamV2V>(model, tae, context, opt, seeded_noise(seed));
    } else {
        if (on_stage) on_stage("load VAE");
        std::shared_ptr<WanVae> vae = WanVae::load(m.vae_weights(), m.vae_config, be);
        tm.vae_load = seconds_since(t0);
        sp = std::make_unique<StreamV2V>(model, vae, context, opt, seeded_noise(seed));
    }
    StreamV2V& s = *sp;

    if (on_stage) on_stage("stream");
    t0 = std::chrono::steady_clock::now();
    stream_frames(s, io.read, io.write, [&](int64_t k, double sec) {
        if (on_chunk) on_chunk(k, io.chunks, sec, s.stats());
    });
    be->synchronize();
    tm.stream = seconds_since(t0);
    r.stats = s.stats();
    r.kv_cache_bytes = int64_t(s.cache().bytes());
    return r;
}

StreamStagedResult run_stream_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                                     const Tensor& video, const StreamOptions& opt, uint64_t seed, CausalDitSource dit,
                                     const StageFn& on_stage, const StreamChunkCallback& on_chunk) {
    std::vector<Tensor> outs;
    StreamFrameIo io;
    io.read = video_source(video);  // checks the video's shape before anything loads
    io.write = [&](const Tensor& o) { outs.push_back(o); };
    io.chunks = (video.size(1) - 1) / 4;
    StreamStagedResult r =
        run_stream_staged(m, std::move(be), prompt, io, opt, seed, std::move(dit), on_stage, on_chunk);
    r.video = outs.size() == 1 ? outs[0] : ops::concat(outs, 1);
    return r;
}

}  // namespace wanrt
