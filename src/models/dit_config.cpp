// DitConfig: parsing, presets, validation, and the table of every tensor the model holds.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/dit.h"

namespace wanrt {

namespace fs = std::filesystem;
using json = nlohmann::json;

DitConfig DitConfig::from_json(const std::string& text, const std::string& origin) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("dit", origin, ": not valid JSON (", e.what(), ")");
    }
    if (!j.is_object()) fail("dit", origin, ": config is not a JSON object");
    DitConfig c;
    auto get_int = [&](const char* key, int64_t& v) {
        if (!j.contains(key)) return;
        if (!j[key].is_number_integer()) fail("dit", origin, ": \"", key, "\" must be an integer, got ", j[key].dump());
        v = j[key].get<int64_t>();
    };
    auto get_pair = [&](const char* key, int& a, int& b) {
        if (!j.contains(key)) return;
        const json& v = j[key];
        if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer())
            fail("dit", origin, ": \"", key, "\" must be a list of 2 integers, got ", v.dump());
        a = v[0].get<int>();
        b = v[1].get<int>();
    };
    if (j.contains("model_type")) {
        if (!j["model_type"].is_string()) fail("dit", origin, ": \"model_type\" must be a string");
        c.model_type = j["model_type"].get<std::string>();
    }
    if (j.contains("patch_size")) {
        const json& v = j["patch_size"];
        if (!v.is_array() || v.size() != 3) fail("dit", origin, ": \"patch_size\" must be a list of 3 integers");
        c.patch_t = v[0].get<int>();
        c.patch_h = v[1].get<int>();
        c.patch_w = v[2].get<int>();
    }
    get_int("text_len", c.text_len);
    get_int("in_dim", c.in_dim);
    get_int("dim", c.dim);
    get_int("ffn_dim", c.ffn_dim);
    get_int("freq_dim", c.freq_dim);
    get_int("text_dim", c.text_dim);
    get_int("out_dim", c.out_dim);
    get_int("num_heads", c.num_heads);
    get_int("num_layers", c.num_layers);
    get_pair("window_size", c.window_left, c.window_right);
    if (j.contains("qk_norm")) c.qk_norm = j["qk_norm"].get<bool>();
    if (j.contains("cross_attn_norm")) c.cross_attn_norm = j["cross_attn_norm"].get<bool>();
    if (j.contains("eps")) {
        if (!j["eps"].is_number()) fail("dit", origin, ": \"eps\" must be a number");
        c.eps = j["eps"].get<float>();
    }
    c.validate(origin);
    return c;
}

void DitConfig::validate(const std::string& origin) const {
    auto bad = [&](const auto&... msg) { fail("dit", origin, ": ", msg..., "; fix config.json or use the official one"); };
    if (model_type != "t2v" && model_type != "i2v" && model_type != "flf2v" && model_type != "ti2v")
        bad("model_type \"", model_type, "\" is not supported (t2v, i2v, flf2v, ti2v)");
    if (patch_t < 1 || patch_h < 1 || patch_w < 1) bad("patch_size must be positive");
    for (auto [name, v] : {std::pair{"dim", dim}, {"ffn_dim", ffn_dim}, {"freq_dim", freq_dim}, {"text_dim", text_dim},
                           {"in_dim", in_dim}, {"out_dim", out_dim}, {"num_heads", num_heads},
                           {"num_layers", num_layers}, {"text_len", text_len}})
        if (v <= 0) bad(name, " = ", v, " must be positive");
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
    } else {
        fail("dit", "unknown model \"", name, "\"; choose one of t2v-1.3B, t2v-14B, i2v-14B, flf2v-14B");
    }
    return c;
}

std::vector<std::string> DitConfig::preset_names() { return {"t2v-1.3B", "t2v-14B", "i2v-14B", "flf2v-14B"}; }

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
    for (auto& p : dit_param_table(c)) n += shape_numel(p.shape);
    return n;
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

DitCheckpoint open_dit_checkpoint(const std::string& path) {
    DitCheckpoint ck;
    fs::path p(path);
    if (!fs::exists(p)) fail("dit", "model path ", path, " does not exist; pass the Wan2.1 model folder (--ckpt_dir)");
    std::string weights;
    fs::path config;
    if (fs::is_directory(p)) {
        const char* single = "diffusion_pytorch_model.safetensors";
        const char* index = "diffusion_pytorch_model.safetensors.index.json";
        if (fs::exists(p / index))
            weights = (p / index).string();
        else if (fs::exists(p / single))
            weights = (p / single).string();
        else
            fail("dit", "no DiT weights in ", path, ": looked for ", single, " and ", index,
                 "; download the model folder completely");
        config = p / "config.json";
    } else {
        weights = path;
        config = p.parent_path() / "config.json";
    }
    ck.weights = open_safetensors(weights);
    if (fs::exists(config)) {
        std::ifstream in(config);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        ck.config = DitConfig::from_json(text, config.string());
        ck.config_origin = config.string();
        // config.json does not say whether an i2v model has Wan2.1's CLIP branch (Wan2.2 I2V-A14B's
        // equals Wan2.1 I2V-14B's); the tensor names do.
        ck.config.clip_branch = ck.weights->find("img_emb.proj.0.weight") != nullptr;
        ck.config.validate(config.string());
    } else {
        ck.config = DitConfig::from_weights(*ck.weights);
        ck.config_origin = "derived from weights (no config.json; num_heads = dim/128)";
    }
    return ck;
}

}  // namespace wanrt
