// wanrt info DIR: what a model folder holds — kind, config, each part's files, sizes, dtypes,
// parameter counts, and what is missing. A broken part is reported on its line, not fatal.
#include <cstdio>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "pipeline/diffusers_folder.h"
#include "pipeline/model_folder.h"
#include "text/tokenizer.h"

namespace wanrt::cli {

namespace {

namespace fs = std::filesystem;

std::string gb(uint64_t bytes) {
    char b[32];
    if (bytes >= 1000000000ull) std::snprintf(b, sizeof b, "%.2f GB", double(bytes) * 1e-9);
    else std::snprintf(b, sizeof b, "%.1f MB", double(bytes) * 1e-6);
    return b;
}

std::string params(int64_t n) {
    char b[32];
    if (n >= 1000000000) std::snprintf(b, sizeof b, "%.3f B", double(n) * 1e-9);
    else std::snprintf(b, sizeof b, "%.2f M", double(n) * 1e-6);
    return cat(b, " (", n, ")");
}

// Bytes on disk of a part: the file, or for a DiT index every shard in the folder.
uint64_t disk_bytes(const ModelPart& p) {
    std::error_code ec;
    if (fs::is_directory(p.path, ec)) {
        uint64_t s = 0;
        for (auto& e : fs::recursive_directory_iterator(p.path, ec))
            if (e.is_regular_file(ec)) s += e.file_size(ec);
        return s;
    }
    const fs::path f(p.path);
    if (f.filename().string().find(".index.json") == std::string::npos) return fs::file_size(f, ec);
    uint64_t s = fs::file_size(f, ec);
    for (auto& e : fs::directory_iterator(f.parent_path(), ec)) {
        const std::string n = e.path().filename().string();
        if (n.rfind("diffusion_pytorch_model-", 0) == 0 && n.size() > 12 && n.substr(n.size() - 12) == ".safetensors")
            s += e.file_size(ec);
    }
    return s;
}

// "N tensors, P params, bf16 ×240, f32 ×2"
std::string summarize(const TensorSource& src, int64_t* total = nullptr) {
    std::map<std::string, int> dtypes;
    int64_t n = 0;
    const auto names = src.names();
    for (const std::string& name : names) {
        const StoredTensor* t = src.find(name);
        n += shape_numel(t->shape);
        ++dtypes[dtype_name(t->dtype)];
    }
    if (total) *total = n;
    std::string d;
    for (auto& [k, v] : dtypes) d += cat(d.empty() ? "" : ", ", k, " x", v);
    return cat(names.size(), " tensors, ", params(n), " parameters, ", d);
}

// A diffusers folder (model_index.json): the same report per component, tensors under their official names.
void run_diffusers(const std::string& dir) {
    const DiffusersFolder f = scan_diffusers_folder(dir);
    std::printf("model folder %s (diffusers, %s)\n", fs::absolute(dir).string().c_str(), f.pipeline.c_str());
    DitConfig cfg;
    try {
        const DitCheckpoint ck = open_diffusers_transformer(f);
        cfg = ck.config;
        std::printf("kind            %s\n", describe_kind(cfg).c_str());
        std::printf("config          %s (%s)\n", nlohmann::json::parse(cfg.to_json()).dump().c_str(),
                    ck.config_origin.c_str());
    } catch (const Error& e) {
        std::printf("kind            unknown: %s\n", e.what());
    }
    for (const ModelPart* p : f.parts()) {
        std::printf("\n%-15s ", p->role.c_str());
        if (!p->found()) {
            std::printf("MISSING (looked for %s and %s in %s)\n", p->looked_for[0].c_str(),
                        p->looked_for.back().c_str(), dir.c_str());
            continue;
        }
        std::printf("%s, %s\n", fs::relative(p->path, dir).string().c_str(), gb(disk_bytes(*p)).c_str());
        try {
            if (p == &f.transformer || p == &f.transformer_2) {
                const char* sub = p == &f.transformer ? "transformer" : "transformer_2";
                std::printf("                %s\n", summarize(*open_diffusers_transformer(f, sub).weights).c_str());
            } else if (p == &f.vae) {
                const VaeConfig v = diffusers_vae_config(f);
                std::printf("                %s\n", summarize(*open_diffusers_vae(f)).c_str());
                std::printf("                Wan VAE: dim %lld, z_dim %lld, %lld residual blocks per stage\n",
                            (long long)v.dim, (long long)v.z_dim, (long long)v.num_res_blocks);
            } else if (p == &f.text_encoder) {
                auto src = open_diffusers_text_encoder(f);
                std::printf("                %s\n", summarize(*src).c_str());
                std::printf("                umT5 encoder: %s\n", t5_config_from_source(*src).to_json().c_str());
            } else if (p == &f.image_encoder) {
                const ClipVisionConfig c = diffusers_clip_config(f);
                std::printf("                %s\n", summarize(*open_diffusers_image_encoder(f)).c_str());
                std::printf("                CLIP ViT: dim %lld, %lld layers, %lld heads\n", (long long)c.dim,
                            (long long)c.layers, (long long)c.heads);
            } else if (p == &f.tokenizer) {
                text::T5Tokenizer tok(p->path);
                std::printf("                SentencePiece vocabulary of %lld pieces\n", (long long)tok.vocab_size());
            }
        } catch (const Error& e) {
            std::printf("                BROKEN: %s\n", e.what());
        }
    }
    const auto miss = f.missing();
    std::printf("\n%s\n", miss.empty() ? "complete: `wanrt generate --ckpt_dir DIR` can run it"
                                        : cat("incomplete: ", miss.size(), " part(s) missing").c_str());
}

void run(const std::string& dir) {
    if (is_diffusers_folder(dir)) return run_diffusers(dir);
    const ModelFolder f = scan_model_folder(dir);
    std::printf("model folder %s\n", fs::absolute(dir).string().c_str());

    // Config and kind.
    DitConfig cfg;
    bool have_cfg = false;
    if (f.config.found() || f.dit.found()) {
        try {
            const DitCheckpoint ck = open_dit_checkpoint(dir);
            cfg = ck.config;
            have_cfg = true;
            std::printf("kind            %s\n", describe_kind(cfg).c_str());
            std::printf("config          %s (%s)\n", nlohmann::json::parse(cfg.to_json()).dump().c_str(),
                        ck.config_origin.c_str());
        } catch (const Error& e) {
            std::printf("kind            unknown: %s\n", e.what());
        }
    }

    for (const ModelPart* p : f.parts()) {
        std::printf("\n%-15s ", p->role.c_str());
        if (!p->found()) {
            std::string names;
            for (const std::string& n : p->looked_for) names += (names.empty() ? "" : " or ") + n;
            std::printf("MISSING (looked for %s in %s)\n", names.c_str(), dir.c_str());
            continue;
        }
        std::printf("%s, %s\n", fs::relative(p->path, dir).string().c_str(), gb(disk_bytes(*p)).c_str());
        try {
            if (p == &f.dit) {
                auto src = open_dit_checkpoint(dir).weights;
                int64_t n = 0;
                std::printf("                %s\n", summarize(*src, &n).c_str());
                if (have_cfg && n != dit_param_count(cfg))
                    std::printf("                note: config.json implies %s parameters\n", params(dit_param_count(cfg)).c_str());
            } else if (p == &f.vae) {
                auto src = open_weights_file(p->path);
                std::printf("                %s\n", summarize(*src).c_str());
                const VaeConfig v = vae_config_from_weights(*src);
                std::printf("                Wan VAE: dim %lld, z_dim %lld, %lld residual blocks per stage\n",
                            (long long)v.dim, (long long)v.z_dim, (long long)v.num_res_blocks);
            } else if (p == &f.t5) {
                auto src = open_weights_file(p->path);
                std::printf("                %s\n", summarize(*src).c_str());
                const T5Config t = t5_config_from_source(*src);
                std::printf("                umT5 encoder: %s\n", t.to_json().c_str());
                if (have_cfg && t.dim != cfg.text_dim)
                    std::printf("                MISMATCH: width %lld but the DiT's text_dim is %lld\n", (long long)t.dim,
                                (long long)cfg.text_dim);
            } else if (p == &f.tokenizer) {
                text::T5Tokenizer tok(p->path);
                std::printf("                SentencePiece vocabulary of %lld pieces\n", (long long)tok.vocab_size());
            }
        } catch (const Error& e) {
            std::printf("                BROKEN: %s\n", e.what());
        }
    }
    const auto miss = f.missing();
    std::printf("\n%s\n", miss.empty() ? "complete: `wanrt generate --ckpt_dir DIR` can run it"
                                        : cat("incomplete: ", miss.size(), " part(s) missing").c_str());
}

void setup(CLI::App& app) {
    auto dir = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("info", "Show what a Wan2.1 model folder holds (kind, files, dtypes, parameters, missing parts)");
    c->add_option("dir", *dir, "Model folder")->required();
    c->callback([dir] { run(*dir); });
}

Command reg("info", setup);

}  // namespace
}  // namespace wanrt::cli
