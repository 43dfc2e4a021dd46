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
#include "io/safetensors.h"
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
    f.vae = find_part(d, "VAE", {"Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"});
    f.t5 = find_part(d, "text encoder",
                     {"models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors"});
    // The tokenizer folder counts as present only with the SentencePiece model inside.
    f.tokenizer = find_part(d, "tokenizer", {"google/umt5-xxl/spiece.model"});
    if (f.tokenizer.found()) f.tokenizer.path = (d / "google/umt5-xxl").string();
    f.clip = find_part(d, "CLIP image encoder",
                       {"models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
                        "models_clip_open-clip-xlm-roberta-large-vit-huge-14.safetensors"});
    // Whether the CLIP is needed: config.json's model_type (a config that does not parse is reported
    // by the DiT loader, with its own message).
    if (f.config.found()) {
        std::ifstream in(f.config.path);
        std::stringstream ss;
        ss << in.rdbuf();
        const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
        f.image_model =
            j.is_object() && j.contains("model_type") && (j["model_type"] == "i2v" || j["model_type"] == "flf2v");
    }
    return f;
}

void require_complete(const ModelFolder& f) {
    const std::vector<std::string> miss = f.missing();
    if (miss.empty()) return;
    std::string list;
    for (const std::string& m : miss) list += (list.empty() ? "" : "; ") + m;
    fail("model", "model folder ", f.dir, " is incomplete: missing ", list,
         "; download the whole Wan2.1 release folder (or write a synthetic one with `wanrt synth --full_folder`)");
}

std::string official_kind(const DitConfig& c) {
    for (const std::string& name : DitConfig::preset_names()) {
        const DitConfig p = DitConfig::preset(name);
        if (p.model_type == c.model_type && p.dim == c.dim && p.ffn_dim == c.ffn_dim && p.num_heads == c.num_heads &&
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

std::shared_ptr<TensorSource> open_weights_file(const std::string& path) {
    if (ends_with(path, ".pth")) return open_pth(path);
    return open_safetensors(path);
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
    const DitCheckpoint ck = open_dit_checkpoint(dir);  // reads config.json; weights are mmapped, not read
    m.dit_config = ck.config;
    m.kind = describe_kind(ck.config);
    const std::string dit_path = f.dir, vae_path = f.vae.path, t5_path = f.t5.path;
    m.dit_weights = [dit_path] { return open_dit_checkpoint(dit_path).weights; };
    m.t5_weights = [t5_path] { return open_weights_file(t5_path); };
    m.vae_weights = [vae_path] { return open_weights_file(vae_path); };
    m.vae_config = vae_config_from_weights(*open_weights_file(vae_path));
    m.tokenizer = f.tokenizer.path;
    if (m.dit_config.is_i2v()) {
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
    T5Encoder t5 = T5Encoder::load(m.t5_weights(), be);
    WANRT_CHECK(t5.config.dim == m.dit_config.text_dim, "model", "the text encoder's width ", t5.config.dim,
                " differs from the DiT's text_dim ", m.dit_config.text_dim, " (", m.name,
                "); the T5 file does not belong to this model");
    tm.t5_load = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    stage("encode text");
    std::vector<Tensor> contexts;
    for (auto& v : ids) contexts.push_back(t2v_encode_prompt(t5, v, m.dit_config.text_len));
    be.synchronize();
    tm.text = seconds_since(t0);
    return contexts;
}

std::shared_ptr<const DitModel> run_dit_load_stage(const T2VModelParts& m, Backend& be, CausalDitSource dit,
                                                   double& load_seconds, const StageFn& on_stage) {
    const auto t0 = std::chrono::steady_clock::now();
    if (on_stage) on_stage("load DiT");
    std::shared_ptr<const DitModel> model = dit.src ? std::make_shared<DitModel>(m.dit_config, dit.src, be, dit.prefix)
                                                    : std::make_shared<DitModel>(m.dit_config, m.dit_weights(), be);
    load_seconds = seconds_since(t0);
    return model;
}

Tensor run_decode_stage(const T2VModelParts& m, const std::shared_ptr<Backend>& be, const Tensor& latent,
                        double& vae_load_seconds, double& decode_seconds, const StageFn& on_stage) {
    auto t0 = std::chrono::steady_clock::now();
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
