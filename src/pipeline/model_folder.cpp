// Official model folders and the staged T2V run (contract in model_folder.h).
#include "pipeline/model_folder.h"

#include <algorithm>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/timer.h"
#include "io/pth.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
#include "io/gguf_dit.h"
#include "io/safetensors.h"
#include "models/dit_fp8.h"
#include "models/taehv.h"
#include "ops/ops.h"
#include "pipeline/diffusers_folder.h"
#include "text/tokenizer.h"

namespace wanrt {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// The first of names that exists under dir (files, or folders when want_dir).
ModelPart find_part(const fs::path& dir, std::string role, std::vector<std::string> names, bool want_dir = false) {
    ModelPart p;
    p.role = std::move(role);
    p.looked_for = std::move(names);
    std::error_code ec;
    for (const std::string& n : p.looked_for) {
        const fs::path q = dir / n;
        if (want_dir ? fs::is_directory(q, ec) : fs::is_regular_file(q, ec)) {
            p.path = q.string();
            break;
        }
    }
    return p;
}

// config.json's model_type ("" when the file is missing or does not parse: the DiT loader reports that).
std::string read_model_type(const fs::path& config) {
    std::ifstream in(config);
    if (!in) return "";
    std::stringstream ss;
    ss << in.rdbuf();
    const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    return j.is_object() && j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>()
                                                                                     : "";
}

// An A14B expert subfolder: found when it holds config.json and the DiT weights.
ModelPart find_expert(const fs::path& dir, const std::string& sub, std::string role) {
    ModelPart p;
    p.role = std::move(role);
    p.looked_for = {sub + "/ with config.json and diffusion_pytorch_model.safetensors[.index.json]"};
    std::error_code ec;
    const fs::path q = dir / sub;
    if (fs::is_regular_file(q / "config.json", ec) &&
        (fs::is_regular_file(q / "diffusion_pytorch_model.safetensors.index.json", ec) ||
         fs::is_regular_file(q / "diffusion_pytorch_model.safetensors", ec)))
        p.path = q.string();
    return p;
}

}  // namespace

std::vector<std::string> ModelFolder::missing() const {
    std::vector<std::string> out;
    for (const ModelPart* p : parts()) {
        if (p->found()) continue;
        std::string names;
        for (const std::string& n : p->looked_for) names += (names.empty() ? "" : " or ") + n;
        out.push_back(cat(p->role, " (", names, ")"));
    }
    return out;
}

ModelFolder scan_model_folder(const std::string& dir) {
    std::error_code ec;
    WANRT_CHECK(fs::exists(dir, ec), "model", "model folder ", dir,
                " does not exist; pass the downloaded Wan2.1 folder (e.g. Wan2.1-T2V-1.3B) as --ckpt_dir");
    WANRT_CHECK(fs::is_directory(dir, ec), "model", dir,
                " is a file, not a model folder; pass the folder that holds config.json and the weights");
    ModelFolder f;
    f.dir = dir;
    const fs::path d(dir);
    f.config = find_part(d, "DiT config", {"config.json"});
    f.dit = find_part(d, "DiT weights",
                      {"diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors"});
    f.dit.looked_for.push_back("a Wan DiT .gguf");
    if (!f.dit.found()) {  // a quantized DiT (ComfyUI-style folder): one .gguf of architecture "wan"
        f.dit.path = find_dit_gguf(dir);
        f.dit_gguf = f.dit.found();
    }
    f.vae = find_part(d, "VAE", {"Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"});
    f.t5 = find_part(d, "text encoder",
                     {"models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors"});
    // The tokenizer folder counts as present only with the SentencePiece model inside.
    f.tokenizer = find_part(d, "tokenizer", {"google/umt5-xxl/spiece.model"});
    if (f.tokenizer.found()) f.tokenizer.path = (d / "google/umt5-xxl").string();
    f.clip = find_part(d, "CLIP image encoder",
                       {"models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
                        "models_clip_open-clip-xlm-roberta-large-vit-huge-14.safetensors"});
    f.vae22 = find_part(d, "Wan2.2 VAE", {"Wan2.2_VAE.pth", "Wan2.2_VAE.safetensors"});
    f.high_noise = find_expert(d, "high_noise_model", "high-noise expert");
    f.low_noise = find_expert(d, "low_noise_model", "low-noise expert");
    f.moe = fs::is_directory(d / "high_noise_model", ec) || fs::is_directory(d / "low_noise_model", ec);
    // Whether the CLIP is needed: config.json's model_type (a config that does not parse is reported
    // by the DiT loader, with its own message). A14B: the experts' (no CLIP whatever it says).
    if (f.moe) {
        for (const ModelPart* e : {&f.high_noise, &f.low_noise})
            if (e->found() && f.model_type.empty()) f.model_type = read_model_type(fs::path(e->path) / "config.json");
    } else if (f.config.found()) {
        f.model_type = read_model_type(f.config.path);
        f.image_model = f.model_type == "i2v" || f.model_type == "flf2v";
    } else if (f.dit_gguf) {
        // No config.json: the model type from the GGUF's tensors. A file that does not open, or whose
        // config cannot be inferred, is reported by the DiT loader with its own message.
        try {
            const DitConfig c = infer_dit_config(*GgufFile::open(f.dit.path), 1);
            f.model_type = c.model_type;
            f.image_model = c.has_clip();
        } catch (const Error&) {
        }
    }
    return f;
}

void require_complete(const ModelFolder& f) {
    // Mixed generations first: with the wrong VAE present the missing list would name the wrong file.
    const std::string dir = f.dir;
    if (f.moe) {
        WANRT_CHECK(f.model_type != "ti2v" && f.model_type != "flf2v", "model", "model folder ", dir,
                    " has A14B expert folders holding a ", f.model_type,
                    " model; the experts of Wan2.2-T2V-A14B / I2V-A14B are t2v or i2v models: the folder mixes releases");
        WANRT_CHECK(f.vae.found() || !f.vae22.found(), "model", "model folder ", dir,
                    " holds the A14B experts with Wan2.2_VAE.pth (TI2V-5B's VAE); the A14B models use Wan2.1_VAE.pth: "
                    "the folder mixes generations, put the release's Wan2.1_VAE.pth there");
        WANRT_CHECK(!f.config.found() && !f.dit.found(), "model", "model folder ", dir,
                    " holds both A14B expert folders and a top-level DiT (config.json / diffusion_pytorch_model*); "
                    "keep one release per folder");
    } else if (f.model_type == "ti2v") {
        WANRT_CHECK(f.vae22.found() || !f.vae.found(), "model", "model folder ", dir,
                    " holds a Wan2.2 TI2V-5B DiT (model_type ti2v, 48 latent channels) with Wan2.1_VAE.pth (16 "
                    "channels): the folder mixes generations; TI2V-5B needs its Wan2.2_VAE.pth");
    } else if (f.config.found() || f.dit_gguf) {
        // A TI2V-5B GGUF has the t2v structure: only its config.json says ti2v.
        WANRT_CHECK(f.config.found() || f.vae.found() || !f.vae22.found(), "model", "model folder ", dir, " holds ",
                    fs::path(f.dit.path).filename().string(),
                    " without config.json beside Wan2.2_VAE.pth: a GGUF's shapes cannot tell Wan2.2 TI2V-5B from a "
                    "Wan2.1 model; put the release's config.json (model_type ti2v) in the folder");
        WANRT_CHECK(f.vae.found() || !f.vae22.found(), "model", "model folder ", dir, " holds a Wan2.1 DiT (model_type ",
                    f.model_type.empty() ? std::string("t2v") : f.model_type,
                    ", 16 latent channels) with Wan2.2_VAE.pth (48 channels, TI2V-5B's): the folder mixes generations; "
                    "use the release's Wan2.1_VAE.pth");
    }
    const std::vector<std::string> miss = f.missing();
    if (miss.empty()) return;
    std::string list;
    for (const std::string& m : miss) list += (list.empty() ? "" : "; ") + m;
    fail("model", "model folder ", f.dir, " is incomplete: missing ", list, "; download the whole ",
         f.moe ? "Wan2.2 A14B" : f.model_type == "ti2v" ? "Wan2.2 TI2V-5B" : "Wan2.1",
         " release folder (or write a synthetic one with `wanrt synth --full_folder`)");
}

std::string official_kind(const DitConfig& c) {
    for (const std::string& name : DitConfig::preset_names()) {
        const DitConfig p = DitConfig::preset(name);
        if (p.model_type == c.model_type && p.has_clip() == c.has_clip() && p.dim == c.dim && p.ffn_dim == c.ffn_dim &&
            p.num_heads == c.num_heads &&
            p.in_dim == c.in_dim && p.out_dim == c.out_dim && p.text_dim == c.text_dim &&
            c.num_layers <= p.num_layers)
            return name;
    }
    return "";
}

std::string describe_kind(const DitConfig& c) {
    const std::string k = official_kind(c);
    if (k.empty()) return cat("custom ", c.model_type, " (dim ", c.dim, ", ", c.num_layers, " blocks)");
    const int64_t full = DitConfig::preset(k).num_layers;
    return c.num_layers == full ? k : cat(k, " (", c.num_layers, " of ", full, " blocks)");
}

std::string official_moe_kind(const DitConfig& c) {
    for (const char* name : {"t2v-A14B", "i2v-A14B"}) {
        DitConfig p = DitConfig::preset(name[0] == 't' ? "t2v-14B" : "i2v-14B");  // one expert's widths
        p.clip_branch = false;
        if (p.model_type == c.model_type && p.has_clip() == c.has_clip() && p.dim == c.dim && p.ffn_dim == c.ffn_dim &&
            p.num_heads == c.num_heads && p.in_dim == c.in_dim && p.out_dim == c.out_dim && p.text_dim == c.text_dim &&
            c.num_layers <= p.num_layers)
            return name;
    }
    return "";
}

std::string describe_moe_kind(const DitConfig& c) {
    const std::string k = official_moe_kind(c);
    if (k.empty()) return cat("custom ", c.model_type, "-A14B (dim ", c.dim, ", ", c.num_layers, " blocks per expert)");
    return c.num_layers == 40 ? k : cat(k, " (", c.num_layers, " of 40 blocks per expert)");
}

std::shared_ptr<TensorSource> open_weights_file(const std::string& path) {
    if (ends_with(path, ".pth")) return open_pth(path);
    if (ends_with(path, ".gguf")) return GgufTensorSource::open(path);
    return wrap_if_comfy(open_safetensors(path));  // ComfyUI fp8 layouts: io/comfy_source.h
}

VaeConfig vae_config_from_weights(const TensorSource& src) {
    const StoredTensor* c1 = src.find("encoder.conv1.weight");
    const StoredTensor* c2 = src.find("conv2.weight");
    WANRT_CHECK(c1 && c2 && c1->shape.size() == 5 && c2->shape.size() == 5, "model", src.origin(),
                " is not a Wan2.1 VAE state dict (no encoder.conv1.weight / conv2.weight 5-D tensors); use Wan2.1_VAE.pth");
    VaeConfig cfg;
    cfg.dim = c1->shape[0];
    cfg.z_dim = c2->shape[0];
    const std::vector<std::string> names = src.names();
    // Wan2.1 uses 2 residual blocks per stage; fewer or more only in synthetic/test models.
    for (int64_t blocks : {2, 1, 3, 4}) {
        cfg.num_res_blocks = blocks;
        const auto manifest = vae_weight_manifest(cfg);
        if (manifest.size() != names.size()) continue;
        bool ok = true;
        for (const auto& [name, shape] : manifest) {
            const StoredTensor* t = src.find(name);
            if (!t || t->shape != shape) {
                ok = false;
                break;
            }
        }
        if (ok) return cfg;
    }
    fail("model", src.origin(), " does not hold the weights of a Wan2.1 VAE (dim ", cfg.dim, ", z_dim ", cfg.z_dim,
         ", dim_mult [1,2,4,4], 1-4 residual blocks per stage, no attention stages); use the release's Wan2.1_VAE.pth");
}

ClipVisionConfig clip_config_from_weights(const TensorSource& src) {
    const StoredTensor* pe = src.find("visual.patch_embedding.weight");
    const StoredTensor* pos = src.find("visual.pos_embedding");
    const StoredTensor* mlp = src.find("visual.transformer.0.mlp.0.weight");
    WANRT_CHECK(pe && pos && mlp && pe->shape.size() == 4 && pos->shape.size() == 3 && mlp->shape.size() == 2, "model",
                src.origin(), " is not an open-clip ViT state dict (no visual.patch_embedding / pos_embedding / "
                "transformer.0 tensors); use the release's models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth");
    ClipVisionConfig c;
    c.dim = pe->shape[0];
    c.patch_size = pe->shape[2];
    const int64_t tokens = pos->shape[1];
    int64_t g = 0;
    while ((g + 1) * (g + 1) <= tokens - 1) ++g;
    WANRT_CHECK(g * g == tokens - 1, "model", src.origin(), ": visual.pos_embedding has ", tokens,
                " positions, not 1 + a square grid");
    c.image_size = g * c.patch_size;
    c.mlp_dim = mlp->shape[0];
    c.heads = c.dim % 80 == 0 ? c.dim / 80 : 1;
    c.layers = 0;
    while (src.find("visual.transformer." + std::to_string(c.layers) + ".norm1.weight")) ++c.layers;
    c.validate(src.origin());
    return c;
}

T2VModelParts open_model_folder(const std::string& dir) {
    if (is_diffusers_folder(dir)) return open_diffusers_folder(dir);  // model_index.json: diffusers layout
    const ModelFolder f = scan_model_folder(dir);
    require_complete(f);
    T2VModelParts m;
    m.name = cat("model folder ", dir);
    // Reads config.json (and the weights' header); weights are mmapped, not read.
    const bool ti2v = f.model_type == "ti2v";
    const std::string dit_path = f.moe ? f.low_noise.path : f.dir, vae_path = ti2v ? f.vae22.path : f.vae.path,
                      t5_path = f.t5.path;
    const DitCheckpoint ck = open_dit_checkpoint(dit_path);
    m.dit_config = ck.config;
    m.kind = describe_kind(ck.config);
    if (f.moe) {
        const std::string high_path = f.high_noise.path;
        const DitConfig high = open_dit_checkpoint(high_path).config;
        WANRT_CHECK(high.to_json() == ck.config.to_json() && high.clip_branch == ck.config.clip_branch, "model",
                    "the experts of ", dir, " differ (high_noise_model: ", describe_kind(high),
                    "; low_noise_model: ", describe_kind(ck.config), "); both must come from one A14B release");
        WANRT_CHECK(ck.config.model_type == "t2v" || !ck.config.has_clip(), "model", "the experts of ", dir,
                    " are Wan2.1 ", describe_kind(ck.config),
                    " models (with the CLIP image branch); Wan2.2 I2V-A14B experts have none: the folder mixes "
                    "generations");
        m.kind = describe_moe_kind(ck.config);
        m.high_noise_weights = [high_path] { return open_dit_checkpoint(high_path).weights; };
    }
    m.dit_weights = [dit_path] { return open_dit_checkpoint(dit_path).weights; };
    m.t5_weights = [t5_path] { return open_weights_file(t5_path); };
    m.vae_weights = [vae_path] { return open_weights_file(vae_path); };
    if (ti2v) {
        m.vae22_config = vae22_config_from_weights(*open_weights_file(vae_path));
        WANRT_CHECK(m.vae22_config.z_dim == m.dit_config.in_dim && m.dit_config.in_dim == m.dit_config.out_dim, "model",
                    "the Wan2.2 VAE of ", dir, " has ", m.vae22_config.z_dim, " latent channels but the DiT takes ",
                    m.dit_config.in_dim, "; the model files do not belong together");
    } else {
        m.vae_config = vae_config_from_weights(*open_weights_file(vae_path));
    }
    m.tokenizer = f.tokenizer.path;
    if (m.dit_config.has_clip()) {
        WANRT_CHECK(f.clip.found(), "model", "model folder ", dir, " holds an image-to-video DiT but no ",
                    f.clip.looked_for[0], "; download the whole Wan2.1-", m.dit_config.is_flf2v() ? "FLF2V" : "I2V",
                    " release folder");
        const std::string clip_path = f.clip.path;
        m.clip_config = clip_config_from_weights(*open_weights_file(clip_path));
        m.clip_weights = [clip_path] { return open_weights_file(clip_path); };
    }
    return m;
}

T2VStagedResult run_t2v_staged(const T2VModelParts& m, std::shared_ptr<Backend> be, const std::string& prompt,
                               const std::string& neg_prompt, uint64_t seed, const T2VOptions& opt,
                               const std::function<void(const std::string&)>& on_stage,
                               const T2VStepCallback& on_step) {
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    // Validate the options before any weights are touched.
    const T2VLatentShape shape = t2v_latent_shape(opt, m.dit_config, m.vae_config);
    T2VStagedResult r;
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

    Tensor latent;
    {
        const std::shared_ptr<const DitModel> dit = run_dit_load_stage(m, *be, {}, tm.dit_load, on_stage);
        auto t0 = std::chrono::steady_clock::now();
        stage("denoise");
        const Tensor noise = t2v_noise(*be, shape.latent, seed);
        latent = t2v_denoise(*dit, context, context_null, noise, opt, shape.seq_len, [&](const T2VStepInfo& s) {
            tm.step_seconds.push_back(s.step_seconds);
            if (on_step) on_step(s);
        });
        be->synchronize();
        tm.denoise = seconds_since(t0);
    }
    context = Tensor();
    context_null = Tensor();
    r.video = run_decode_stage(m, be, latent, tm.vae_load, tm.decode, on_stage);
    return r;
}

std::vector<Tensor> run_text_stage(const T2VModelParts& m, Backend& be, const std::vector<std::string>& prompts,
                                   TextStageTimes& tm, const StageFn& on_stage) {
    auto stage = [&](const char* s) {
        if (on_stage) on_stage(s);
    };
    auto t0 = std::chrono::steady_clock::now();
    stage("tokenize");
    std::vector<std::vector<int32_t>> ids;
    {
        text::T5Tokenizer tok(m.tokenizer, m.dit_config.text_len);
        for (const std::string& p : prompts) ids.push_back(tok.tokenize(p).real_ids());
    }
    tm.tokens.clear();
    for (auto& v : ids) tm.tokens.push_back(int64_t(v.size()));
    tm.tokenize = seconds_since(t0);

    // The text encoder lives only in this scope: its weights (and mapping) are released before
    // the DiT loads, as the official offload does for a single GPU.
    t0 = std::chrono::steady_clock::now();
    stage("load text encoder");
    // --t5_cpu (generate.py's flag): umT5 on the CPU, its outputs uploaded; the device never holds it.
    const std::shared_ptr<Backend> cpu = m.t5_cpu && !be.host_visible() ? make_cpu_backend() : nullptr;
    Backend& t5_be = cpu ? *cpu : be;
    T5Encoder t5 = T5Encoder::load(m.t5_weights(), t5_be);
    WANRT_CHECK(t5.config.dim == m.dit_config.text_dim, "model", "the text encoder's width ", t5.config.dim,
                " differs from the DiT's text_dim ", m.dit_config.text_dim, " (", m.name,
                "); the T5 file does not belong to this model");
    tm.t5_load = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    stage("encode text");
    std::vector<Tensor> contexts;
    for (auto& v : ids) {
        Tensor c = t2v_encode_prompt(t5, v, m.dit_config.text_len);
        if (cpu) c = ops::from_host(be, DType::F32, c.shape(), ops::to_host_f32(c).data());  // [len, text_dim]
        contexts.push_back(c);
    }
    be.synchronize();
    tm.text = seconds_since(t0);
    return contexts;
}

std::shared_ptr<const DitModel> run_dit_load_stage(const T2VModelParts& m, Backend& be, CausalDitSource dit,
                                                   double& load_seconds, const StageFn& on_stage) {
    be.release_cached_memory();  // the text encoder's (and image encoders') blocks
    const auto t0 = std::chrono::steady_clock::now();
    if (on_stage)
        on_stage(m.lora.files.empty() ? std::string("load DiT")
                                      : "load DiT with " + std::to_string(m.lora.files.size()) + " LoRA file" +
                                            (m.lora.files.size() == 1 ? "" : "s") + " (--lora_mode " +
                                            lora_mode_name(m.lora.mode) + ")");
    if (m.linear_fp8 && m.offload.enabled)
        fail("generate", "--linear_dtype fp8 and --offload do not combine yet (the streamed blocks are kept bf16); drop one");
    std::shared_ptr<DitModel> model =
        dit.src ? load_dit_with_lora(m.dit_config, dit.src, be, dit.prefix, m.lora, nullptr, m.offload)
                : load_dit_with_lora(m.dit_config, m.dit_weights(), be, "", m.lora, nullptr, m.offload);
    if (m.linear_fp8) quantize_dit_linears_fp8(*model);  // after LoRA merging
    load_seconds = seconds_since(t0);
    return model;
}

Tensor run_decode_stage(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const Tensor& latent,
                        double& vae_load_seconds, double& decode_seconds, const StageFn& on_stage) {
    be->release_cached_memory();  // the DiT's blocks: its weights and activations are freed by now
    auto t0 = std::chrono::steady_clock::now();
    if (m.tae_weights) {  // TAEHV decodes the DiT's latents as they are, to [0, 1]
        if (on_stage) on_stage("load VAE (TAEHV)");
        auto tae = Taehv::load(m.tae_weights(), be);
        vae_load_seconds = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        if (on_stage) on_stage("decode");
        Tensor y = tae->decode(latent);  // [3, 4T − 3, 8h, 8w]
        const Tensor* in[1] = {&y};
        const float two = 2.0f;
        ops::lincomb(in, &two, 1, y);
        Tensor video = ops::add(y, ops::full(*be, DType::F32, {1}, -1.0f));  // [0, 1] → [−1, 1]
        be->synchronize();
        decode_seconds = seconds_since(t0);
        return video;
    }
    if (on_stage) on_stage("load VAE");
    auto vae = WanVae::load(m.vae_weights(), m.vae_config, be);
    vae_load_seconds = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (on_stage) on_stage("decode");
    Tensor video = t2v_decode(*vae, latent);
    be->synchronize();
    decode_seconds = seconds_since(t0);
    return video;
}

}  // namespace wanrt
