// One entry point for text-, image- and first-last-frame-to-video and causal generation (contract in generate.h).
#include "pipeline/generate.h"

#include <algorithm>
#include <new>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "ops/ops.h"
#include "pipeline/demo.h"

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
        return cat(gpu ? "; try --offload (the DiT's blocks in host memory, --max_vram to bound them), " : "; try ",
                   "a smaller --size or fewer --frame_num",
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

// ---------------------------------------------------------------- defaults and sizes

std::string official_model_kind(const T2VModelParts& m) {
    const DitConfig& c = m.dit_config;
    if (m.moe()) return official_moe_kind(c);
    if (m.ti2v())
        return c.model_type == "ti2v" && c.dim == 3072 && c.ffn_dim == 14336 && c.num_heads == 24 && c.in_dim == 48 &&
                       c.out_dim == 48 && c.text_dim == 4096 && c.num_layers <= 30
                   ? "ti2v-5B"
                   : "";
    return official_kind(c);
}

TaskDefaultsKey task_defaults_key(const T2VModelParts& m, bool demo, const std::string& ckpt_dir) {
    TaskDefaultsKey k;
    const ImageTask t = image_task_of(m);
    k.kind = demo ? "demo" : official_model_kind(m);
    k.demo = demo;
    k.image = t.image;
    k.flf2v = t.flf2v;
    k.ti2v = m.ti2v();
    k.moe = m.moe();
    k.folder_480p = ckpt_dir.find("480P") != std::string::npos;
    return k;
}

GenerateDefaults generate_defaults(const TaskDefaultsKey& k) {
    const DemoDefaults dd;
    const MoeDefaults md = moe_defaults(k.image);
    GenerateDefaults d;
    const bool t2v_demo = k.demo && !k.image && !k.ti2v && !k.moe && demo_dit_trained();  // the trained demo
    d.size = t2v_demo  ? std::to_string(dd.t2v_width) + "*" + std::to_string(dd.t2v_height)
             : k.demo  ? std::to_string(dd.width) + "*" + std::to_string(dd.height)
             : k.moe   ? "1280*720"  // generate.py's default, one of A14B's sizes
             : k.ti2v  ? "1280*704"  // generate.py's default 1280*720 is refused for ti2v-5B
             : k.flf2v ? "1280*720"  // the only FLF2V release is 720P
             : k.image ? (k.folder_480p ? "832*480" : "1280*720")
             : k.kind == "t2v-14B" ? "1280*720"
                                   : "832*480";  // t2v-1.3B's only sizes are 480p
    d.frame_num = k.t2i ? 1 : k.demo ? dd.frame_num : k.ti2v ? 121 : 81;
    d.sample_steps = k.demo ? dd.sample_steps : k.moe ? md.steps : k.image && !k.flf2v ? 40 : 50;
    d.guide = k.moe ? std::vector<double>{md.guide_low, md.guide_high} : std::vector<double>{t2v_demo ? dd.t2v_guide : 5.0};
    // The FLF2V config's sample_neg_prompt is "镜头切换，" ("shot change, ") + the default.
    d.neg_prompt = t2v_demo ? dd.t2v_neg_prompt
                   : k.flf2v ? std::string("镜头切换，") + kWanDefaultNegPrompt
                             : std::string(kWanDefaultNegPrompt);
    return d;
}

double default_sample_shift(const TaskDefaultsKey& k, const std::string& size) {
    if (k.causal) return 8.0;
    if (k.moe) return moe_defaults(k.image).shift;
    if (k.flf2v) return 16.0;
    if (k.image && (size == "832*480" || size == "480*832")) return 3.0;
    return 5.0;
}

std::vector<std::string> supported_sizes(const std::string& kind) {
    if (kind == "t2v-1.3B") return {"480*832", "832*480"};
    if (kind == "t2v-14B" || kind == "i2v-14B" || kind == "flf2v-14B" || kind == "t2v-A14B" || kind == "i2v-A14B")
        return {"720*1280", "1280*720", "480*832", "832*480"};
    if (kind == "ti2v-5B") return {"704*1280", "1280*704"};
    return {};
}

void parse_request_size(const std::string& s, int64_t* w, int64_t* h) {
    const size_t star = s.find('*');
    try {
        size_t a = 0, b = 0;
        if (star == std::string::npos) throw std::invalid_argument("no *");
        *w = std::stoll(s.substr(0, star), &a);
        *h = std::stoll(s.substr(star + 1), &b);
        if (a != star || b != s.size() - star - 1) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        fail("generate", "bad size \"", s, "\"; write it as WIDTH*HEIGHT, e.g. 832*480");
    }
    // Bounded before anything is sized from it (100000*100000 would be tried and run out of memory).
    WANRT_CHECK(*w <= 16384 && *h <= 16384, "generate", "size ", s,
                " is too large: width and height must be at most 16384 (official sizes: 832*480, 1280*720)");
    WANRT_CHECK(*w > 0 && *h > 0 && *w % 16 == 0 && *h % 16 == 0, "generate", "size ", s,
                " must have width and height positive multiples of 16 (e.g. 832*480)");
}

bool check_supported_size(const TaskDefaultsKey& k, const std::string& size) {
    const std::vector<std::string> sizes = supported_sizes(k.kind);
    const bool odd = !sizes.empty() && std::find(sizes.begin(), sizes.end(), size) == sizes.end();
    if (odd && (k.moe || k.ti2v)) {  // generate.py asserts; the Wan2.1 tasks only warn
        std::string list;
        for (const std::string& z : sizes) list += (list.empty() ? "" : ", ") + z;
        fail("generate", "size ", size, " is not one ", k.kind, " supports (", list, "); use ", sizes[1]);
    }
    return odd;
}

}  // namespace wanrt
