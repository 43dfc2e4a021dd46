// wanrt info DIR: what a model folder holds — kind, config, each part's files, sizes, dtypes,
// parameter counts, and what is missing. A broken part is reported on its line, not fatal.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
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

// A ComfyUI source as stored (nothing decoded: scaled fp8 would otherwise be decoded to f32 just to
// be counted); other sources as they are.
std::shared_ptr<TensorSource> as_stored(std::shared_ptr<TensorSource> src) {
    if (auto* c = dynamic_cast<const ComfyTensorSource*>(src.get())) return c->stored_view();
    // GGUF: Q4_1 / Q5_0 / Q5_1 would be decoded to f32 on lookup; the view decodes nothing.
    if (auto* g = dynamic_cast<const GgufTensorSource*>(src.get())) return g->stored_view();
    return src;
}

// "GGUF v3, file_type 15, Q4_K x60, Q6_K x30, F32 x120, 4.87 bits/weight" for a GGUF source (the
// types as stored, which the dtype summary cannot all name: Q4_1, Q5_0, Q5_1 load as f32), else "".
std::string gguf_summary(const TensorSource& src) {
    const auto* g = dynamic_cast<const GgufTensorSource*>(&src);
    if (!g) return "";
    const GgufFile& f = g->file();
    std::map<std::string, int> types;
    uint64_t bytes = 0;
    int64_t n = 0;
    for (const GgufTensorInfo& t : f.tensors()) {
        ++types[t.type->name];
        bytes += t.nbytes;
        n += shape_numel(t.shape);
    }
    std::string s = cat("GGUF v", f.version());
    if (const GgufValue* ft = f.find_kv("general.file_type")) s += cat(", file_type ", ft->u);
    if (!g->prefix().empty()) s += cat(", prefix '", g->prefix(), "'");
    for (auto& [k, v] : types) s += cat(", ", k, " x", v);
    char bpw[48];
    std::snprintf(bpw, sizeof bpw, ", %.2f bits/weight", n ? 8.0 * double(bytes) / double(n) : 0.0);
    return s + bpw;
}

// "N tensors, P params, bf16 ×240, f32 ×2"; a tensor that is not f32/f16/bf16 (every Wan part is
// floating point) is a problem: wanrt would refuse it at load time.
std::string summarize(const TensorSource& src, int64_t* total, std::vector<std::string>& problems,
                      const std::string& role) {
    std::map<std::string, int> dtypes;
    int64_t n = 0;
    const auto names = src.names();
    std::string odd;
    for (const std::string& name : names) {
        const StoredTensor* t = src.find(name);
        n += shape_numel(t->shape);
        ++dtypes[dtype_name(t->dtype)];
        if (odd.empty() && t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16 &&
            t->dtype != DType::F8E4M3 && t->dtype != DType::F8E5M2 && !dtype_is_block(t->dtype))
            odd = cat(name, " is ", dtype_name(t->dtype));
    }
    if (!odd.empty()) problems.push_back(cat(role, ": tensor ", odd, ", not f32/f16/bf16/fp8 or a GGUF block type"));
    if (total) *total = n;
    std::string d;
    for (auto& [k, v] : dtypes) d += cat(d.empty() ? "" : ", ", k, " x", v);
    return cat(names.size(), " tensors, ", params(n), " parameters, ", d);
}

// The end of both reports: "complete" (exit 0), or "cannot run: N problem(s)" and one error naming
// the first problem and how many there are (exit 1), so scripts can check a download with `wanrt info DIR`.
void conclude(const std::string& dir, std::vector<std::string>& problems, const std::vector<std::string>& miss) {
    for (const std::string& m : miss) problems.push_back(cat("missing ", m));
    if (problems.empty()) {
        std::printf("\ncomplete: `wanrt generate --ckpt_dir DIR` can run it\n");
        return;
    }
    std::printf("\ncannot run: %zu problem(s)%s\n", problems.size(),
                miss.empty() ? "" : cat(", ", miss.size(), " part(s) missing").c_str());
    std::fflush(stdout);
    fail("info", dir, " cannot run: ", problems.front(),
         problems.size() > 1 ? cat(" (and ", problems.size() - 1, " more problem(s) listed above)") : std::string(),
         "; re-download the broken or missing files");
}

// A diffusers folder (model_index.json): the same report per component, tensors under their official names.
void run_diffusers(const std::string& dir) {
    std::vector<std::string> problems;
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
        problems.push_back(cat("transformer: ", e.what()));
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
                std::printf("                %s\n",
                            summarize(*open_diffusers_transformer(f, sub).weights, nullptr, problems, p->role).c_str());
            } else if (p == &f.vae && f.expand_timesteps) {  // TI2V-5B: the Wan2.2 VAE
                const Vae22Config v = diffusers_vae22_config(f);
                std::printf("                %s\n", summarize(*open_diffusers_vae(f), nullptr, problems, p->role).c_str());
                std::printf("                Wan2.2 VAE: dim %lld, dec_dim %lld, z_dim %lld, %lld residual blocks per stage\n",
                            (long long)v.dim, (long long)v.dec_dim, (long long)v.z_dim, (long long)v.num_res_blocks);
            } else if (p == &f.vae) {
                const VaeConfig v = diffusers_vae_config(f);
                std::printf("                %s\n", summarize(*open_diffusers_vae(f), nullptr, problems, p->role).c_str());
                std::printf("                Wan VAE: dim %lld, z_dim %lld, %lld residual blocks per stage\n",
                            (long long)v.dim, (long long)v.z_dim, (long long)v.num_res_blocks);
            } else if (p == &f.text_encoder) {
                auto src = open_diffusers_text_encoder(f);
                std::printf("                %s\n", summarize(*src, nullptr, problems, p->role).c_str());
                std::printf("                umT5 encoder: %s\n", t5_config_from_source(*src).to_json().c_str());
            } else if (p == &f.image_encoder) {
                const ClipVisionConfig c = diffusers_clip_config(f);
                std::printf("                %s\n",
                            summarize(*open_diffusers_image_encoder(f), nullptr, problems, p->role).c_str());
                std::printf("                CLIP ViT: dim %lld, %lld layers, %lld heads\n", (long long)c.dim,
                            (long long)c.layers, (long long)c.heads);
            } else if (p == &f.tokenizer) {
                text::T5Tokenizer tok(p->path);
                std::printf("                SentencePiece vocabulary of %lld pieces\n", (long long)tok.vocab_size());
            }
        } catch (const Error& e) {
            std::printf("                BROKEN: %s\n", e.what());
            problems.push_back(cat(p->role, ": ", e.what()));
        }
    }
    conclude(dir, problems, f.missing());
}

// A single DiT file (a ComfyUI diffusion model such as wan2.1_t2v_1.3B_fp8_e4m3fn.safetensors, a GGUF
// such as wan2.1-t2v-14b-Q4_K_M.gguf, or a lone official .safetensors): layout, kind and config (config.json beside it, else derived from the
// shapes), tensors as stored. A file that does not load is one error (exit 1).
void run_file(const std::string& path) {
    std::vector<std::string> problems;
    std::printf("DiT file %s, %s\n", fs::absolute(path).string().c_str(), gb(fs::file_size(path)).c_str());
    const DitCheckpoint ck = open_dit_checkpoint(path);
    if (auto* c = dynamic_cast<const ComfyTensorSource*>(ck.weights.get()))
        std::printf("layout          ComfyUI (prefix '%s', %zu weights with a per-tensor scale%s)\n", c->prefix().c_str(),
                    c->scaled_count(), c->has_marker() ? ", scaled_fp8 marker" : "");
    if (const std::string g = gguf_summary(*ck.weights); !g.empty()) std::printf("layout          %s\n", g.c_str());
    const std::shared_ptr<TensorSource> stored = as_stored(ck.weights);  // dtypes as stored
    std::printf("kind            %s\n", describe_kind(ck.config).c_str());
    std::printf("config          %s (%s)\n", nlohmann::json::parse(ck.config.to_json()).dump().c_str(),
                ck.config_origin.c_str());
    std::printf("weights         %s\n", summarize(*stored, nullptr, problems, "DiT weights").c_str());
    for (const std::string& w : dit_weight_problems(ck.config, *stored)) {
        std::printf("                BROKEN: %s\n", w.c_str());
        problems.push_back(cat("DiT weights: ", w));
    }
    if (problems.empty()) {
        std::printf("\ncomplete: a loadable Wan DiT\n");
        return;
    }
    std::fflush(stdout);
    fail("info", path, " cannot run: ", problems.front(),
         problems.size() > 1 ? cat(" (and ", problems.size() - 1, " more problem(s) listed above)") : std::string(),
         "; re-download or re-convert the file");
}

// Prints the report of an official-layout folder; ends as conclude() says.
void run(const std::string& dir) {
    if (is_diffusers_folder(dir)) return run_diffusers(dir);
    if (fs::is_regular_file(dir)) return run_file(dir);
    std::vector<std::string> problems;
    const ModelFolder f = scan_model_folder(dir);
    std::printf("model folder %s\n", fs::absolute(dir).string().c_str());

    // Config and kind.
    DitConfig cfg;
    bool have_cfg = false;
    if (f.config.found() || f.dit.found()) {
        try {
            std::string origin;
            if (!f.config.found()) {  // derived from the weights' shapes
                const DitCheckpoint ck = open_dit_checkpoint(dir);
                cfg = ck.config;
                origin = ck.config_origin;
            } else {  // read on its own, so a problem with the weights is reported on their line below
                std::ifstream in(f.config.path);
                const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
                cfg = DitConfig::from_json(text, f.config.path);
                origin = f.config.path;
            }
            have_cfg = true;
            std::printf("kind            %s\n", describe_kind(cfg).c_str());
            std::printf("config          %s (%s)\n", nlohmann::json::parse(cfg.to_json()).dump().c_str(),
                        origin.c_str());
        } catch (const Error& e) {
            std::printf("kind            unknown: %s\n", e.what());
            problems.push_back(cat("config: ", e.what()));
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
                const std::shared_ptr<TensorSource> weights = open_dit_checkpoint(dir).weights;
                auto src = as_stored(weights);
                int64_t n = 0;
                std::printf("                %s\n", summarize(*src, &n, problems, p->role).c_str());
                if (const std::string g = gguf_summary(*weights); !g.empty()) std::printf("                %s\n", g.c_str());
                if (have_cfg && n != dit_param_count(cfg))
                    std::printf("                note: config.json implies %s parameters\n", params(dit_param_count(cfg)).c_str());
                if (have_cfg)
                    for (const std::string& w : dit_weight_problems(cfg, *src)) {
                        std::printf("                BROKEN: %s\n", w.c_str());
                        problems.push_back(cat(p->role, ": ", w));
                    }
            } else if (p == &f.vae) {
                auto src = open_weights_file(p->path);
                std::printf("                %s\n", summarize(*src, nullptr, problems, p->role).c_str());
                const VaeConfig v = vae_config_from_weights(*src);
                std::printf("                Wan VAE: dim %lld, z_dim %lld, %lld residual blocks per stage\n",
                            (long long)v.dim, (long long)v.z_dim, (long long)v.num_res_blocks);
            } else if (p == &f.t5) {
                auto src = as_stored(open_weights_file(p->path));
                std::printf("                %s\n", summarize(*src, nullptr, problems, p->role).c_str());
                const T5Config t = t5_config_from_source(*src);
                std::printf("                umT5 encoder: %s\n", t.to_json().c_str());
                if (have_cfg && t.dim != cfg.text_dim) {
                    std::printf("                MISMATCH: width %lld but the DiT's text_dim is %lld\n", (long long)t.dim,
                                (long long)cfg.text_dim);
                    problems.push_back(cat(p->role, ": width ", t.dim, " but the DiT's text_dim is ", cfg.text_dim));
                }
            } else if (p == &f.tokenizer) {
                text::T5Tokenizer tok(p->path);
                std::printf("                SentencePiece vocabulary of %lld pieces\n", (long long)tok.vocab_size());
            }
        } catch (const Error& e) {
            std::printf("                BROKEN: %s\n", e.what());
            problems.push_back(cat(p->role, ": ", e.what()));
        }
    }
    conclude(dir, problems, f.missing());
}

void setup(CLI::App& app) {
    auto dir = std::make_shared<std::string>();
    CLI::App* c = app.add_subcommand("info", "Show what a Wan2.1 model folder (or one DiT file) holds (kind, files, dtypes, parameters, missing parts)");
    c->add_option("dir", *dir, "Model folder, or a single DiT .safetensors or .gguf (e.g. a ComfyUI fp8 file)")->required();
    c->callback([dir] { run(*dir); });
}

Command reg("info", setup);

}  // namespace
}  // namespace wanrt::cli
