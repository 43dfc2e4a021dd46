// One entry point for text-, image- and first-last-frame-to-video and causal generation (contract in generate.h).
#include "pipeline/generate.h"

#include <new>
#include <utility>

#include "core/error.h"
#include "ops/ops.h"

namespace wanrt {

namespace {
GenerateResult run_stages(const T2VModelParts& m, std::shared_ptr<Backend> be, GenerateRequest req,
                          const GenerateProgress& p) {
    GenerateResult out;
    GenerateTimes& tm = out.times;
    req.opt.seed = req.seed;  // the lcm sampler's re-noising stream (t2v.h)
    if (req.causal) {
        CausalStagedResult r = run_causal_staged(m, std::move(be), req.prompt, req.seed, req.opt, *req.causal,
                                                 std::move(req.generator), p.on_stage, p.on_block);
        const CausalStagedTimes& c = r.times;
        tm = {c.tokenize, c.t5_load, c.text, c.dit_load, c.denoise, c.vae_load, c.decode, 0, 0, 0,
              c.block_seconds, {c.prompt_tokens}, c.dit_calls, c.kv_cache_bytes};
        out.video = std::move(r.video);
        return out;
    }
    if (m.ti2v()) {
        const TI2VImage img{req.image_rgb.empty() ? nullptr : req.image_rgb.data(), req.image_rgb_h, req.image_rgb_w};
        TI2VStagedResult r = run_ti2v_staged(m, std::move(be), req.prompt, req.neg_prompt, img, req.seed, req.opt,
                                             p.on_stage, p.on_step);
        const T2VStagedTimes& t = r.times;
        tm = {t.tokenize, t.t5_load, t.text, t.dit_load, t.denoise, t.vae_load, t.decode, 0, 0, r.vae_encode,
              t.step_seconds, {t.prompt_tokens, t.neg_prompt_tokens}, 0, 0};
        out.video = std::move(r.video);
        return out;
    }
    if (req.image.defined() || m.moe()) {
        I2VStagedResult r = m.moe() ? run_moe_staged(m, std::move(be), req.prompt, req.neg_prompt, req.image, req.seed,
                                                      req.opt, req.moe, p.on_stage, p.on_step)
                            : req.last_frame.defined()
                                ? run_flf2v_staged(m, std::move(be), req.prompt, req.neg_prompt, req.image,
                                                   req.last_frame, req.seed, req.opt, p.on_stage, p.on_step)
                                : run_i2v_staged(m, std::move(be), req.prompt, req.neg_prompt, req.image, req.seed,
                                                 req.opt, p.on_stage, p.on_step);
        const I2VStagedTimes& t = r.times;
        tm = {t.tokenize, t.t5_load, t.text, t.dit_load, t.denoise, t.vae_load, t.decode, t.clip_load, t.clip,
              t.vae_encode, t.step_seconds, {t.prompt_tokens, t.neg_prompt_tokens}, 0, 0};
        out.video = std::move(r.video);
        return out;
    }
    T2VStagedResult r = run_t2v_staged(m, std::move(be), req.prompt, req.neg_prompt, req.seed, req.opt, p.on_stage,
                                       p.on_step);
    const T2VStagedTimes& t = r.times;
    tm = {t.tokenize, t.t5_load, t.text, t.dit_load, t.denoise, t.vae_load, t.decode, 0, 0, 0,
          t.step_seconds, {t.prompt_tokens, t.neg_prompt_tokens}, 0, 0};
    out.video = std::move(r.video);
    return out;
}
}  // namespace

GenerateResult run_generate(const T2VModelParts& m, std::shared_ptr<Backend> be, GenerateRequest req,
                            const GenerateProgress& p) {
    // The stage boundary for memory: an allocation that fails anywhere below (the CUDA allocator,
    // a library workspace, the host) becomes one error naming the stage reached and what to try.
    std::string stage = "setup";
    GenerateProgress q = p;
    q.on_stage = [&stage, &p](const std::string& s) {
        stage = s;
        if (p.on_stage) p.on_stage(s);
    };
    const std::string device = be ? be->name() : std::string("?");
    const bool gpu = be && !be->host_visible();
    auto hint = [&] {
        return cat("; try a smaller --size or fewer --frame_num",
                   gpu ? ", or --device cpu (slower, uses host memory)" : ", or close other programs");
    };
    try {
        return run_stages(m, std::move(be), std::move(req), q);
    } catch (const OutOfMemory& e) {
        throw OutOfMemory(cat("[generate] out of ", gpu ? "GPU" : "host", " memory during the ", stage, " stage on ",
                              device, " (", e.what(), ")", hint()));
    } catch (const std::bad_alloc&) {
        throw OutOfMemory(
            cat("[generate] out of host memory during the ", stage, " stage on ", device, hint()));
    }
}

ImageTask image_task_of(const T2VModelParts& m) {
    ImageTask t;
    t.ti2v = m.ti2v();
    t.image = m.dit_config.is_i2v();
    t.flf2v = m.dit_config.is_flf2v();
    return t;
}

I2VSize image_video_size(const ImageTask& t, const Rgb24Video& image, const Rgb24Video& last, const T2VOptions& opt,
                         const DitConfig& dit, const VaeConfig& vae, const Vae22Config& vae22) {
    if (t.ti2v) {
        const TI2VImage img{image.frames > 0 ? image.rgb.data() : nullptr, image.height, image.width};
        const TI2VLatentShape s = ti2v_shape(img, opt, dit, vae22);
        return {s.latent[2], s.latent[3], s.latent[2] * 16, s.latent[3] * 16};
    }
    if (t.flf2v)
        return flf2v_latent_shape({3, image.height, image.width}, {3, last.height, last.width}, opt, dit, vae).size;
    if (t.image) return i2v_latent_shape(image.height, image.width, opt, dit, vae).size;
    t2v_latent_shape(opt, dit, vae);
    return {};
}

void set_request_images(GenerateRequest& req, const ImageTask& t, Rgb24Video image, Rgb24Video last, Backend& be) {
    if (t.ti2v) {
        if (image.frames == 0) return;  // text-to-video
        req.image_rgb = std::move(image.rgb);
        req.image_rgb_h = image.height;
        req.image_rgb_w = image.width;
        return;
    }
    if (!t.image) return;
    req.image = ops::contiguous(rgb24_to_video(image, be).select(1, 0));  // [3, 1, h0, w0] → [3, h0, w0]
    if (t.flf2v) req.last_frame = ops::contiguous(rgb24_to_video(last, be).select(1, 0));  // [3, h0, w0]
}

}  // namespace wanrt
