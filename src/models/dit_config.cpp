// DitConfig: parsing, presets, validation, and the table of every tensor the model holds.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
#include "io/gguf_dit.h"
#include "io/json_config.h"
#include "io/safetensors.h"
#include "models/dit.h"

namespace wanrt {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Upper bounds on every config number: about ten times the largest released Wan model (14B: dim
// 5120, ffn 13824, 40 heads, 40 layers), so a hostile or corrupt config is refused before anything
// is sized from it and every product below stays far from int64 overflow.
namespace {
constexpr int64_t kMaxDim = 65536, kMaxFfn = 262144, kMaxHeads = 1024, kMaxLayers = 1024, kMaxTextLen = 65536;
constexpr int64_t kMaxChannels = 4096, kMaxPatch = 64, kMaxWindow = 1 << 20;
}  // namespace

DitConfig DitConfig::from_json(const std::string& text, const std::string& origin) {
    const JsonConfig j(text, "dit", origin, "fix config.json or use the official one");
    DitConfig c;
    j.string("model_type", c.model_type);
    if (j.has("patch_size")) {
        std::vector<int64_t> p;
        j.integers("patch_size", p, 3, 3, 1, kMaxPatch);
        c.patch_t = int(p[0]);
        c.patch_h = int(p[1]);
        c.patch_w = int(p[2]);
    }
    j.integer("text_len", c.text_len, 1, kMaxTextLen);
    j.integer("in_dim", c.in_dim, 1, kMaxChannels);
    j.integer("dim", c.dim, 1, kMaxDim);
    j.integer("ffn_dim", c.ffn_dim, 1, kMaxFfn);
    j.integer("freq_dim", c.freq_dim, 1, kMaxDim);
    j.integer("text_dim", c.text_dim, 1, kMaxDim);
    j.integer("out_dim", c.out_dim, 1, kMaxChannels);
    j.integer("num_heads", c.num_heads, 1, kMaxHeads);
    j.integer("num_layers", c.num_layers, 1, kMaxLayers);
    if (j.has("window_size")) {
        std::vector<int64_t> w;
        j.integers("window_size", w, 2, 2, -1, kMaxWindow);
        c.window_left = int(w[0]);
        c.window_right = int(w[1]);
    }
    j.boolean("qk_norm", c.qk_norm);
    j.boolean("cross_attn_norm", c.cross_attn_norm);
    j.number("eps", c.eps, 1e-30, 1.0);
    c.validate(origin);
    return c;
}

void DitConfig::validate(const std::string& origin) const {
    auto bad = [&](const auto&... msg) { fail("dit", origin, ": ", msg..., "; fix config.json or use the official one"); };
    if (model_type != "t2v" && model_type != "i2v" && model_type != "flf2v" && model_type != "ti2v")
        bad("model_type \"", model_type, "\" is not supported (t2v, i2v, flf2v, ti2v)");
    if (patch_t < 1 || patch_h < 1 || patch_w < 1) bad("patch_size must be positive");
    if (patch_t > kMaxPatch || patch_h > kMaxPatch || patch_w > kMaxPatch) bad("patch_size must be at most ", kMaxPatch);
    for (auto [name, v, hi] : {std::tuple{"dim", dim, kMaxDim}, {"ffn_dim", ffn_dim, kMaxFfn},
                               {"freq_dim", freq_dim, kMaxDim}, {"text_dim", text_dim, kMaxDim},
                               {"in_dim", in_dim, kMaxChannels}, {"out_dim", out_dim, kMaxChannels},
                               {"num_heads", num_heads, kMaxHeads}, {"num_layers", num_layers, kMaxLayers},
                               {"text_len", text_len, kMaxTextLen}}) {
        if (v <= 0) bad(name, " = ", v, " must be positive");
        if (v > hi) bad(name, " = ", v, " is larger than any Wan model (limit ", hi, ")");
    }
    if (dim % num_heads) bad("dim ", dim, " is not divisible by num_heads ", num_heads);
    if (head_dim() % 2) bad("head dim ", head_dim(), " must be even for RoPE");
    if (head_dim() / 2 < 3) bad("head dim ", head_dim(), " is too small for the 3-axis RoPE");
    if (freq_dim % 2) bad("freq_dim ", freq_dim, " must be even");
    if (is_flf2v() && !clip_branch) bad("an flf2v model needs the CLIP image branch (img_emb.proj, img_emb.emb_pos)");
    if (is_i2v() && in_dim <= 16) bad("an i2v model needs in_dim > 16 (noise + conditioning), got ", in_dim);
    if (!(eps > 0)) bad("eps must be positive");
}

std::string DitConfig::to_json() const {
    json j;
    j["_class_name"] = "WanModel";
    j["_diffusers_version"] = "0.30.0";
    j["dim"] = dim;
    j["eps"] = eps;
    j["ffn_dim"] = ffn_dim;
    j["freq_dim"] = freq_dim;
    j["in_dim"] = in_dim;
    j["model_type"] = model_type;
    j["num_heads"] = num_heads;
    j["num_layers"] = num_layers;
    j["out_dim"] = out_dim;
    j["text_len"] = text_len;
    return j.dump(2);
}

DitConfig DitConfig::preset(const std::string& name) {
    DitConfig c;
    c.text_len = 512;
    c.freq_dim = 256;
    c.text_dim = 4096;
    c.out_dim = 16;
    if (name == "t2v-1.3B") {
        c.model_type = "t2v";
        c.in_dim = 16;
        c.dim = 1536;
        c.ffn_dim = 8960;
        c.num_heads = 12;
        c.num_layers = 30;
    } else if (name == "t2v-14B" || name == "i2v-14B" || name == "flf2v-14B") {
        c.model_type = name == "t2v-14B" ? "t2v" : name == "i2v-14B" ? "i2v" : "flf2v";
        c.in_dim = name == "t2v-14B" ? 16 : 36;
        c.dim = 5120;
        c.ffn_dim = 13824;
        c.num_heads = 40;
        c.num_layers = 40;
    } else if (name == "ti2v-5B") {  // Wan2.2 TI2V-5B: per-token timesteps, the Wan2.2 VAE's 48 channels
        c.model_type = "ti2v";
        c.in_dim = c.out_dim = 48;
        c.dim = 3072;
        c.ffn_dim = 14336;
        c.num_heads = 24;
        c.num_layers = 30;
    } else {
        fail("dit", "unknown model \"", name, "\"; choose one of t2v-1.3B, t2v-14B, i2v-14B, flf2v-14B, ti2v-5B");
    }
    return c;
}

std::vector<std::string> DitConfig::preset_names() { return {"t2v-1.3B", "t2v-14B", "i2v-14B", "flf2v-14B", "ti2v-5B"}; }

DitConfig DitConfig::from_weights(const TensorSource& src, const std::string& prefix) {
    auto shape_of = [&](const std::string& n) -> const Shape& {
        const StoredTensor* t = src.find(prefix + n);
        if (!t)
            fail("dit", src.origin(), ": no config.json and no tensor '", prefix + n,
                 "' to derive the config from; this is not a Wan2.1 DiT checkpoint");
        return t->shape;
    };
    DitConfig c;
    const Shape& pe = shape_of("patch_embedding.weight");
    if (pe.size() != 5) fail("dit", src.origin(), ": patch_embedding.weight must be 5-D, got ", shape_str(pe));
    c.dim = pe[0];
    c.in_dim = pe[1];
    c.patch_t = int(pe[2]);
    c.patch_h = int(pe[3]);
    c.patch_w = int(pe[4]);
    c.ffn_dim = shape_of("blocks.0.ffn.0.weight")[0];
    c.text_dim = shape_of("text_embedding.0.weight")[1];
    c.freq_dim = shape_of("time_embedding.0.weight")[1];
    c.out_dim = shape_of("head.head.weight")[0] / c.patch_volume();
    c.model_type = src.find(prefix + "img_emb.emb_pos")          ? "flf2v"
                   : src.find(prefix + "img_emb.proj.0.weight") ? "i2v"
                   : c.in_dim > c.out_dim                       ? "i2v"  // Wan2.2 I2V-A14B: y without CLIP
                                                                : "t2v";
    c.clip_branch = src.find(prefix + "img_emb.proj.0.weight") != nullptr;
    c.qk_norm = src.find(prefix + "blocks.0.self_attn.norm_q.weight") != nullptr;
    c.cross_attn_norm = src.find(prefix + "blocks.0.norm3.weight") != nullptr;
    int64_t layers = 0;
    while (src.find(prefix + "blocks." + std::to_string(layers) + ".modulation")) ++layers;
    c.num_layers = layers;
    c.num_heads = c.dim % 128 == 0 ? c.dim / 128 : 1;
    c.validate(src.origin() + " (config derived from weights)");
    return c;
}

std::vector<ParamSpec> dit_param_table(const DitConfig& c) {
    const int64_t D = c.dim;
    std::vector<ParamSpec> t;
    auto lin = [&](const std::string& n, int64_t out, int64_t in) {
        t.push_back({n + ".weight", {out, in}, true});
        t.push_back({n + ".bias", {out}, false});
    };
    auto vec = [&](const std::string& n, Shape s) { t.push_back({n, std::move(s), false}); };
    vec("patch_embedding.weight", {D, c.in_dim, c.patch_t, c.patch_h, c.patch_w});
    vec("patch_embedding.bias", {D});
    lin("text_embedding.0", D, c.text_dim);
    lin("text_embedding.2", D, D);
    lin("time_embedding.0", D, c.freq_dim);
    lin("time_embedding.2", D, D);
    lin("time_projection.1", 6 * D, D);
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string b = "blocks." + std::to_string(i) + ".";
        vec(b + "modulation", {1, 6, D});
        for (const char* a : {"self_attn", "cross_attn"}) {
            for (const char* p : {"q", "k", "v", "o"}) lin(b + a + "." + p, D, D);
            if (c.qk_norm) {
                vec(b + a + ".norm_q.weight", {D});
                vec(b + a + ".norm_k.weight", {D});
            }
        }
        if (c.has_clip()) {
            lin(b + "cross_attn.k_img", D, D);
            lin(b + "cross_attn.v_img", D, D);
            if (c.qk_norm) vec(b + "cross_attn.norm_k_img.weight", {D});
        }
        if (c.cross_attn_norm) {
            vec(b + "norm3.weight", {D});
            vec(b + "norm3.bias", {D});
        }
        lin(b + "ffn.0", c.ffn_dim, D);
        lin(b + "ffn.2", D, c.ffn_dim);
    }
    vec("head.modulation", {1, 2, D});
    lin("head.head", c.out_dim * c.patch_volume(), D);
    if (c.has_clip()) {
        vec("img_emb.proj.0.weight", {1280});
        vec("img_emb.proj.0.bias", {1280});
        lin("img_emb.proj.1", 1280, 1280);
        lin("img_emb.proj.3", D, 1280);
        vec("img_emb.proj.4.weight", {D});
        vec("img_emb.proj.4.bias", {D});
        if (c.is_flf2v()) vec("img_emb.emb_pos", {1, 514, 1280});
    }
    return t;
}

int64_t dit_param_count(const DitConfig& c) {
    int64_t n = 0;
    for (auto& p : dit_param_table(c)) n = checked_add(n, shape_numel(p.shape), "dit", "the parameter count");
    return n;
}

void check_rope_grid(const DitConfig& c, int64_t T, int64_t h, int64_t w, int64_t tf, int64_t sf, const char* module) {
    const int64_t ft = T / c.patch_t, fh = h / c.patch_h, fw = w / c.patch_w;
    WANRT_CHECK(ft <= kRopePositions, module, T, " latent frames make ", ft, " frame positions; the model's RoPE table has ",
                kRopePositions, ": pass --frame_num at most ", (kRopePositions * c.patch_t - 1) * tf + 1);
    WANRT_CHECK(fh <= kRopePositions && fw <= kRopePositions, module, "size ", w * sf, "*", h * sf, " makes a ", fw,
                "x", fh, " patch grid; the model's RoPE table has ", kRopePositions,
                " positions per side: pass --size with width at most ", kRopePositions * c.patch_w * sf,
                " and height at most ", kRopePositions * c.patch_h * sf);
}

std::vector<std::string> dit_weight_problems(const DitConfig& c, const TensorSource& src, const std::string& prefix,
                                             size_t limit) {
    std::vector<std::string> out;
    size_t more = 0;
    auto add = [&](std::string s) {
        if (out.size() < limit) out.push_back(std::move(s));
        else ++more;
    };
    for (const ParamSpec& p : dit_param_table(c)) {
        const StoredTensor* t = src.find(prefix + p.name);
        if (!t) {
            add(cat("tensor ", prefix + p.name, " is missing"));
            continue;
        }
        if (t->shape != p.shape)
            add(cat("tensor ", t->name, " has shape ", shape_str(t->shape), ", config.json implies ", shape_str(p.shape)));
        if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16 && t->dtype != DType::F8E4M3 &&
            t->dtype != DType::F8E5M2 && !dtype_is_block(t->dtype))
            add(cat("tensor ", t->name, " is ", dtype_name(t->dtype), ", not f32/f16/bf16/fp8 or a GGUF block type"));
    }
    if (more) out.push_back(cat("and ", more, " more"));
    return out;
}

std::vector<double> rope_table_f64(int64_t d, int64_t max_pos) {
    const int64_t half = d / 2, hw = half / 3, fpairs = half - 2 * hw;
    // Axis dims as in the model: d − 4⌊d/6⌋ for frames, 2⌊d/6⌋ for height and width.
    const int64_t axis_dim[3] = {d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)};
    const int64_t axis_pairs[3] = {fpairs, hw, hw};
    std::vector<double> tab(size_t(max_pos * half * 2));
    for (int64_t p = 0; p < max_pos; ++p) {
        int64_t k = 0;
        for (int a = 0; a < 3; ++a) {
            for (int64_t j = 0; j < axis_pairs[a]; ++j, ++k) {
                // rope_params: p · 1/10000^(2j/dim), evaluated in float64 like torch.
                double freq = 1.0 / std::pow(10000.0, double(2 * j) / double(axis_dim[a]));
                double ang = double(p) * freq;
                tab[(p * half + k) * 2] = std::cos(ang);
                tab[(p * half + k) * 2 + 1] = std::sin(ang);
            }
        }
    }
    return tab;
}

std::vector<double> sinusoidal_embedding_f64(const std::vector<double>& pos, int64_t dim) {
    const int64_t half = dim / 2;
    std::vector<double> out(pos.size() * size_t(dim));
    for (size_t i = 0; i < pos.size(); ++i) {
        for (int64_t j = 0; j < half; ++j) {
            double a = pos[i] * std::pow(10000.0, -double(j) / double(half));
            out[i * dim + j] = std::cos(a);
            out[i * dim + half + j] = std::sin(a);
        }
    }
    return out;
}

namespace {

// A GGUF DiT (city96's Wan2.1-*-gguf, ComfyUI-GGUF's tools, `wanrt convert`): official names
// (ComfyUI's prefix removed), torch shapes, no config in the file. The source keeps each quantized
// tensor in its block dtype where wanrt has one (GgufBlocks::Keep): WeightLoader then holds the linear
// weights quantized on a backend that takes them (the CPU, cpu/qmatmul.h; CUDA, cuda_linear_quant.cpp)
// and decodes them per tensor, straight to the backend's matrix dtype, elsewhere — never a whole-model
// f32 copy.
// Types without a DType (Q4_1, Q5_0, Q5_1: Q4_0/Q5_0 files' ffn.2) are decoded to f32 per tensor on
// lookup, because the quantized linear has no kernel for them.
DitCheckpoint open_gguf_dit(const std::string& weights, const fs::path& config) {
    DitCheckpoint ck;
    const std::shared_ptr<const GgufFile> file = GgufFile::open(weights);
    std::string prefix;
    DitConfig inferred;
    bool have_inferred = false;
    if (!fs::exists(config)) {
        inferred = infer_dit_config(*file, 0, &prefix);  // checks the architecture too
        have_inferred = true;
    } else {
        // The architecture and prefix checks of infer_dit_config, the heads taken from config.json.
        infer_dit_config(*file, 1, &prefix);
    }
    auto src = std::make_shared<GgufTensorSource>(file, GgufBlocks::Keep, prefix);
    ck.weights = src;
    if (have_inferred) {
        ck.config = inferred;
        ck.config_origin = "inferred from the GGUF's tensor shapes: no config.json, num_heads = dim/128";
        return ck;
    }
    std::ifstream in(config);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ck.config = DitConfig::from_json(text, config.string());
    ck.config_origin = config.string();
    ck.config.clip_branch = src->stored_view()->find("img_emb.proj.0.weight") != nullptr;
    ck.config.validate(config.string());
    return ck;
}

}  // namespace

DitCheckpoint open_dit_checkpoint(const std::string& path) {
    DitCheckpoint ck;
    fs::path p(path);
    if (!fs::exists(p)) fail("dit", "model path ", path, " does not exist; pass the Wan2.1 model folder (--ckpt_dir)");
    std::string weights;
    fs::path config;
    if (fs::is_directory(p)) {
        const char* single = "diffusion_pytorch_model.safetensors";
        const char* index = "diffusion_pytorch_model.safetensors.index.json";
        const std::string gguf = find_dit_gguf(path);
        if (fs::exists(p / index))
            weights = (p / index).string();
        else if (fs::exists(p / single))
            weights = (p / single).string();
        else if (!gguf.empty())
            weights = gguf;
        else
            fail("dit", "no DiT weights in ", path, ": looked for ", single, ", ", index,
                 " and a DiT .gguf; download the model folder completely");
        if (!gguf.empty() && weights != gguf)
            fail("dit", "folder ", path, " holds two DiTs, ", fs::path(weights).filename().string(), " and ",
                 fs::path(gguf).filename().string(), "; keep one (move the other out of the folder)");
        config = p / "config.json";
    } else {
        weights = path;
        config = p.parent_path() / "config.json";
    }
    if (weights.size() > 5 && weights.compare(weights.size() - 5, 5, ".gguf") == 0) return open_gguf_dit(weights, config);
    // A ComfyUI file (model.diffusion_model. prefix, scaled fp8) reads through its adapter: official
    // names, scaled weights decoded (io/comfy_source.h).
    ck.weights = wrap_if_comfy(open_safetensors(weights));
    // Shapes and names only: a ComfyUI source's stored view decodes nothing.
    const auto* comfy = dynamic_cast<const ComfyTensorSource*>(ck.weights.get());
    const std::shared_ptr<TensorSource> shapes = comfy ? comfy->stored_view() : ck.weights;
    if (fs::exists(config)) {
        std::ifstream in(config);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ck.config = DitConfig::from_json(text, config.string());
        ck.config_origin = config.string();
        // config.json does not say whether an i2v model has Wan2.1's CLIP branch (Wan2.2 I2V-A14B's
        // equals Wan2.1 I2V-14B's); the tensor names do.
        ck.config.clip_branch = shapes->find("img_emb.proj.0.weight") != nullptr;
        ck.config.validate(config.string());
    } else {
        ck.config = DitConfig::from_weights(*shapes);
        ck.config_origin = "derived from weights (no config.json; num_heads = dim/128)";
    }
    return ck;
}

}  // namespace wanrt
