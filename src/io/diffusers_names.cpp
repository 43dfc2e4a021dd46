// The official ↔ diffusers name and config maps (contract in diffusers_names.h; the tables follow
// diffusers' scripts/convert_wan_to_diffusers.py and transformers' UMT5 / CLIP module names).
#include "io/diffusers_names.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace wanrt::diffusers {

namespace {

using json = nlohmann::json;

// A module path (official, diffusers) whose parameters keep their names (weight, bias, gamma).
struct Rename {
    const char* official;
    const char* diffusers;
};

bool starts_with(const std::string& s, const std::string& p) {
    return s.rfind(p, 0) == 0;
}

// "<prefix><int>.<rest>" → index and rest.
bool split_indexed(const std::string& name, const std::string& prefix, int64_t* index, std::string* rest) {
    if (!starts_with(name, prefix)) return false;
    size_t p = prefix.size(), q = p;
    while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
    if (q == p || q >= name.size() || name[q] != '.' || (name[p] == '0' && q - p > 1)) return false;
    *index = std::stoll(name.substr(p, q - p));
    *rest = name.substr(q + 1);
    return true;
}

// name = module + "." + param with param in params, module mapped by the table (either direction).
std::optional<std::string> rename_module(const std::string& name, const std::vector<Rename>& table, bool forward,
                                         std::initializer_list<const char*> params) {
    const size_t dot = name.rfind('.');
    if (dot == std::string::npos) return std::nullopt;
    const std::string module = name.substr(0, dot), param = name.substr(dot + 1);
    bool param_ok = false;
    for (const char* p : params) param_ok |= param == p;
    if (!param_ok) return std::nullopt;
    for (const Rename& r : table)
        if (module == (forward ? r.official : r.diffusers)) return cat(forward ? r.diffusers : r.official, ".", param);
    return std::nullopt;
}

// Whole names (no parameter suffix) mapped by the table.
std::optional<std::string> rename_whole(const std::string& name, const std::vector<Rename>& table, bool forward) {
    for (const Rename& r : table)
        if (name == (forward ? r.official : r.diffusers)) return std::string(forward ? r.diffusers : r.official);
    return std::nullopt;
}

// ------------------------------------------------------------------------------------- transformer

const std::vector<Rename> kDitTop = {
    {"patch_embedding", "patch_embedding"},
    {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
    {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
    {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
    {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
    {"time_projection.1", "condition_embedder.time_proj"},
    {"img_emb.proj.0", "condition_embedder.image_embedder.norm1"},
    {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"},
    {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"},
    {"img_emb.proj.4", "condition_embedder.image_embedder.norm2"},
    {"head.head", "proj_out"},
};
const std::vector<Rename> kDitTopWhole = {
    {"head.modulation", "scale_shift_table"},
    {"img_emb.emb_pos", "condition_embedder.image_embedder.pos_embed"},
};
// Inside "blocks.N.". The official block applies norm1, norm3 (cross-attention, with weights when
// cross_attn_norm) and norm2 (FFN, no weights); diffusers numbers them in order, so 2 and 3 swap.
const std::vector<Rename> kDitBlock = {
    {"self_attn.q", "attn1.to_q"},
    {"self_attn.k", "attn1.to_k"},
    {"self_attn.v", "attn1.to_v"},
    {"self_attn.o", "attn1.to_out.0"},
    {"self_attn.norm_q", "attn1.norm_q"},
    {"self_attn.norm_k", "attn1.norm_k"},
    {"cross_attn.q", "attn2.to_q"},
    {"cross_attn.k", "attn2.to_k"},
    {"cross_attn.v", "attn2.to_v"},
    {"cross_attn.o", "attn2.to_out.0"},
    {"cross_attn.norm_q", "attn2.norm_q"},
    {"cross_attn.norm_k", "attn2.norm_k"},
    {"cross_attn.k_img", "attn2.add_k_proj"},
    {"cross_attn.v_img", "attn2.add_v_proj"},
    {"cross_attn.norm_k_img", "attn2.norm_added_k"},
    {"ffn.0", "ffn.net.0.proj"},
    {"ffn.2", "ffn.net.2"},
    {"norm3", "norm2"},
    {"norm2", "norm3"},
};
const std::vector<Rename> kDitBlockWhole = {{"modulation", "scale_shift_table"}};

std::optional<std::string> dit_name(const std::string& n, bool forward) {
    int64_t i = 0;
    std::string rest;
    if (split_indexed(n, "blocks.", &i, &rest)) {
        auto r = rename_whole(rest, kDitBlockWhole, forward);
        if (!r) r = rename_module(rest, kDitBlock, forward, {"weight", "bias"});
        if (!r) return std::nullopt;
        return cat("blocks.", i, ".", *r);
    }
    if (auto r = rename_whole(n, kDitTopWhole, forward)) return r;
    return rename_module(n, kDitTop, forward, {"weight", "bias"});
}

// --------------------------------------------------------------------------------------------- VAE

// Inside a residual block.
const std::vector<Rename> kVaeResidual = {
    {"residual.0", "norm1"}, {"residual.2", "conv1"},       {"residual.3", "norm2"},
    {"residual.6", "conv2"}, {"shortcut", "conv_shortcut"},
};
// Inside a resample (up/down) module: the same names on both sides.
const std::vector<Rename> kVaeResample = {{"resample.1", "resample.1"}, {"time_conv", "time_conv"}};
const std::vector<Rename> kVaeAttention = {{"norm", "norm"}, {"to_qkv", "to_qkv"}, {"proj", "proj"}};
// Per side ("encoder." / "decoder.").
const std::vector<Rename> kVaeSide = {{"conv1", "conv_in"}, {"head.0", "norm_out"}, {"head.2", "conv_out"}};
const std::vector<Rename> kVaeTop = {{"conv1", "quant_conv"}, {"conv2", "post_quant_conv"}};
constexpr std::initializer_list<const char*> kVaeParams = {"weight", "bias", "gamma"};

std::optional<std::string> vae_inner(const std::string& rest, const std::vector<Rename>& t, bool fwd) {
    return rename_module(rest, t, fwd, kVaeParams);
}

std::optional<std::string> vae_name(const std::string& n, bool fwd, int64_t R) {
    if (auto r = rename_module(n, kVaeTop, fwd, kVaeParams)) return r;
    for (const char* side : {"encoder.", "decoder."}) {
        if (!starts_with(n, side)) continue;
        const std::string s = n.substr(std::char_traits<char>::length(side));
        int64_t i = 0;
        std::string rest;
        if (auto r = rename_module(s, kVaeSide, fwd, kVaeParams)) return side + *r;
        // Middle: resnet, attention, resnet.
        if (fwd && split_indexed(s, "middle.", &i, &rest)) {
            if (i == 0 || i == 2) {
                if (auto r = vae_inner(rest, kVaeResidual, true))
                    return cat(side, "mid_block.resnets.", i / 2, ".", *r);
            } else if (i == 1) {
                if (auto r = vae_inner(rest, kVaeAttention, true)) return cat(side, "mid_block.attentions.0.", *r);
            }
            return std::nullopt;
        }
        if (!fwd && split_indexed(s, "mid_block.resnets.", &i, &rest)) {
            if (i > 1) return std::nullopt;
            if (auto r = vae_inner(rest, kVaeResidual, false)) return cat(side, "middle.", 2 * i, ".", *r);
            return std::nullopt;
        }
        if (!fwd && split_indexed(s, "mid_block.attentions.", &i, &rest)) {
            if (i != 0) return std::nullopt;
            if (auto r = vae_inner(rest, kVaeAttention, false)) return cat(side, "middle.1.", *r);
            return std::nullopt;
        }
        // Encoder: one flat list of residual blocks and downsamples on both sides.
        if (std::string(side) == "encoder.") {
            const char* from = fwd ? "downsamples." : "down_blocks.";
            const char* to = fwd ? "down_blocks." : "downsamples.";
            if (!split_indexed(s, from, &i, &rest)) return std::nullopt;
            auto r = vae_inner(rest, kVaeResidual, fwd);
            if (!r) r = vae_inner(rest, kVaeResample, fwd);
            if (!r) return std::nullopt;
            return cat(side, to, i, ".", *r);
        }
        // Decoder: the flat official list (per stage R+1 residual blocks, then an upsample except
        // after the last stage) regroups into up_blocks.B.resnets.j / up_blocks.B.upsamplers.0.
        if (fwd) {
            if (!split_indexed(s, "upsamples.", &i, &rest)) return std::nullopt;
            const int64_t b = i / (R + 2), j = i % (R + 2);
            if (j <= R) {
                if (auto r = vae_inner(rest, kVaeResidual, true))
                    return cat(side, "up_blocks.", b, ".resnets.", j, ".", *r);
            } else if (auto r = vae_inner(rest, kVaeResample, true)) {
                return cat(side, "up_blocks.", b, ".upsamplers.0.", *r);
            }
            return std::nullopt;
        }
        int64_t b = 0;
        std::string in_block;
        if (!split_indexed(s, "up_blocks.", &b, &in_block)) return std::nullopt;
        if (split_indexed(in_block, "resnets.", &i, &rest)) {
            if (i > R) return std::nullopt;
            if (auto r = vae_inner(rest, kVaeResidual, false)) return cat(side, "upsamples.", b * (R + 2) + i, ".", *r);
            return std::nullopt;
        }
        if (split_indexed(in_block, "upsamplers.", &i, &rest) && i == 0) {
            if (auto r = vae_inner(rest, kVaeResample, false))
                return cat(side, "upsamples.", b * (R + 2) + R + 1, ".", *r);
        }
        return std::nullopt;
    }
    return std::nullopt;
}

// The Wan2.2 VAE (AutoencoderKLWan with is_residual; convert_vae_22 in diffusers' script): each stage
// is a module of its own. Official encoder.downsamples.I.downsamples.J (J < R residual blocks, then the
// resample at J = R) ↔ encoder.down_blocks.I.resnets.J / encoder.down_blocks.I.downsampler; decoder
// likewise with upsamples / up_blocks / upsampler and R + 1 residual blocks per stage. The top convs,
// conv_in, the middle and the head are named as in Wan2.1.
std::optional<std::string> vae22_name(const std::string& n, bool fwd, int64_t R) {
    for (const std::string side : {"encoder.", "decoder."}) {
        if (!starts_with(n, side)) continue;
        const std::string s = n.substr(side.size());
        const bool enc = side == "encoder.";
        const std::string list = enc ? "downsamples." : "upsamples.", block = enc ? "down_blocks." : "up_blocks.",
                          sampler = enc ? "downsampler." : "upsampler.";
        const int64_t nres = enc ? R : R + 1;  // residual blocks per stage; the resample follows them
        int64_t i = 0, j = 0;
        std::string rest, inner;
        if (fwd && split_indexed(s, list, &i, &rest)) {
            if (!split_indexed(rest, list, &j, &inner)) return std::nullopt;
            if (j < nres) {
                if (auto r = vae_inner(inner, kVaeResidual, true)) return cat(side, block, i, ".resnets.", j, ".", *r);
            } else if (j == nres) {
                if (auto r = vae_inner(inner, kVaeResample, true)) return cat(side, block, i, ".", sampler, *r);
            }
            return std::nullopt;
        }
        if (!fwd && split_indexed(s, block, &i, &rest)) {
            if (split_indexed(rest, "resnets.", &j, &inner)) {
                if (j >= nres) return std::nullopt;
                if (auto r = vae_inner(inner, kVaeResidual, false)) return cat(side, list, i, ".", list, j, ".", *r);
            } else if (starts_with(rest, sampler)) {
                if (auto r = vae_inner(rest.substr(sampler.size()), kVaeResample, false))
                    return cat(side, list, i, ".", list, nres, ".", *r);
            }
            return std::nullopt;
        }
    }
    return vae_name(n, fwd, R);
}

// ------------------------------------------------------------------------------------------ umT5

// Inside "blocks.N." / "encoder.block.N.". transformers' T5DenseGatedActDense computes
// wo(act(wi_0(x)) * wi_1(x)): wi_0 is the GELU branch (official ffn.gate.0), wi_1 the linear one (fc1).
const std::vector<Rename> kT5Block = {
    {"norm1", "layer.0.layer_norm"},
    {"attn.q", "layer.0.SelfAttention.q"},
    {"attn.k", "layer.0.SelfAttention.k"},
    {"attn.v", "layer.0.SelfAttention.v"},
    {"attn.o", "layer.0.SelfAttention.o"},
    {"pos_embedding.embedding", "layer.0.SelfAttention.relative_attention_bias"},
    {"norm2", "layer.1.layer_norm"},
    {"ffn.gate.0", "layer.1.DenseReluDense.wi_0"},
    {"ffn.fc1", "layer.1.DenseReluDense.wi_1"},
    {"ffn.fc2", "layer.1.DenseReluDense.wo"},
};
const std::vector<Rename> kT5Top = {{"token_embedding", "shared"}, {"norm", "encoder.final_layer_norm"}};

std::optional<std::string> t5_name(const std::string& n, bool fwd) {
    int64_t i = 0;
    std::string rest;
    if (split_indexed(n, fwd ? "blocks." : "encoder.block.", &i, &rest)) {
        auto r = rename_module(rest, kT5Block, fwd, {"weight"});
        if (!r) return std::nullopt;
        return cat(fwd ? "encoder.block." : "blocks.", i, ".", *r);
    }
    // transformers ties encoder.embed_tokens to shared; files may hold either or both.
    if (!fwd && n == "encoder.embed_tokens.weight") return std::string("token_embedding.weight");
    return rename_module(n, kT5Top, fwd, {"weight"});
}

// ------------------------------------------------------------------------------------------- CLIP

const std::vector<Rename> kClipTop = {
    {"visual.patch_embedding", "vision_model.embeddings.patch_embedding"},
    {"visual.pre_norm", "vision_model.pre_layrnorm"},
    {"visual.post_norm", "vision_model.post_layernorm"},
};
const std::vector<Rename> kClipBlock = {
    {"norm1", "layer_norm1"}, {"norm2", "layer_norm2"}, {"attn.proj", "self_attn.out_proj"},
    {"mlp.0", "mlp.fc1"},     {"mlp.2", "mlp.fc2"},
};
const char* const kQkv[3] = {"q_proj", "k_proj", "v_proj"};

std::optional<std::vector<DiffusersKey>> clip_to(const std::string& n) {
    using V = std::vector<DiffusersKey>;
    if (starts_with(n, "textual.") || n == "log_scale") return V{};  // the text tower: no diffusers counterpart
    if (n == "visual.cls_embedding") return V{{"vision_model.embeddings.class_embedding", Layout::Reshape, 0, 1, 2}};
    if (n == "visual.pos_embedding")
        return V{{"vision_model.embeddings.position_embedding.weight", Layout::Reshape, 0, 1, 1}};
    if (n == "visual.head") return V{{"visual_projection.weight", Layout::Transpose}};
    if (auto r = rename_module(n, kClipTop, true, {"weight", "bias"})) return V{{*r}};
    int64_t i = 0;
    std::string rest;
    if (!split_indexed(n, "visual.transformer.", &i, &rest)) return std::nullopt;
    const std::string b = cat("vision_model.encoder.layers.", i, ".");
    for (const char* p : {"weight", "bias"}) {
        if (rest == cat("attn.to_qkv.", p)) {
            V v;
            for (int k = 0; k < 3; ++k) v.push_back({cat(b, "self_attn.", kQkv[k], ".", p), Layout::RowSlice, k, 3});
            return v;
        }
    }
    if (auto r = rename_module(rest, kClipBlock, true, {"weight", "bias"})) return V{{b + *r}};
    return std::nullopt;
}

std::optional<OfficialKey> clip_from(const std::string& n) {
    // transformers' position id buffer (older files store it): not a weight.
    if (n == "vision_model.embeddings.position_ids") return OfficialKey{};
    if (n == "vision_model.embeddings.class_embedding")
        return OfficialKey{"visual.cls_embedding", Layout::Reshape, 0, 1, 2};
    if (n == "vision_model.embeddings.position_embedding.weight")
        return OfficialKey{"visual.pos_embedding", Layout::Reshape, 0, 1, 1};
    if (n == "visual_projection.weight") return OfficialKey{"visual.head", Layout::Transpose};
    if (auto r = rename_module(n, kClipTop, false, {"weight", "bias"})) return OfficialKey{*r};
    int64_t i = 0;
    std::string rest;
    if (!split_indexed(n, "vision_model.encoder.layers.", &i, &rest)) return std::nullopt;
    const std::string b = cat("visual.transformer.", i, ".");
    for (int k = 0; k < 3; ++k)
        for (const char* p : {"weight", "bias"})
            if (rest == cat("self_attn.", kQkv[k], ".", p))
                return OfficialKey{cat(b, "attn.to_qkv.", p), Layout::RowSlice, k, 3};
    if (auto r = rename_module(rest, kClipBlock, false, {"weight", "bias"})) return OfficialKey{b + *r};
    return std::nullopt;
}

// ------------------------------------------------------------------------------------ config helpers

// Reads the keys of a config object: each key must be in `known` (or start with "_": diffusers'
// bookkeeping, e.g. _class_name, _diffusers_version, _name_or_path).
void check_keys(const json& j, const std::string& origin, const std::set<std::string>& known, const char* what) {
    if (!j.is_object()) fail("diffusers", origin, ": ", what, " config is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (!it.key().empty() && it.key()[0] != '_' && !known.count(it.key()))
            fail("diffusers", origin, ": unknown ", what, " config key \"", it.key(), "\" (", it.value().dump(),
                 "); wanrt reads only the Wan2.1 keys, so this is another model or a newer format");
}

int64_t get_int(const json& j, const char* key, const std::string& origin, std::optional<int64_t> def = std::nullopt) {
    if (!j.contains(key) || j[key].is_null()) {
        if (def) return *def;
        fail("diffusers", origin, ": config lacks \"", key, "\"");
    }
    if (!j[key].is_number_integer())
        fail("diffusers", origin, ": \"", key, "\" must be an integer, got ", j[key].dump());
    return j[key].get<int64_t>();
}

// An optional key that, when present, must have one value wanrt runs.
void require_value(const json& j, const char* key, const json& want, const std::string& origin, const char* why) {
    if (!j.contains(key) || j[key].is_null()) return;
    const json& v = j[key];
    // Numbers compare to float precision: configs written from float fields (eps) differ in the last digits.
    const bool eq = (v.is_number() && want.is_number())
                        ? std::fabs(v.get<double>() - want.get<double>()) <= 1e-6 * std::fabs(want.get<double>())
                        : v == want;
    if (!eq)
        fail("diffusers", origin, ": \"", key, "\" is ", v.dump(), ", wanrt runs only ", want.dump(), " (", why, ")");
}

}  // namespace

const char* component_name(Component c) {
    switch (c) {
        case Component::Transformer:
            return "transformer";
        case Component::Vae:
            return "vae";
        case Component::TextEncoder:
            return "text_encoder";
        case Component::ImageEncoder:
            return "image_encoder";
    }
    return "?";
}

std::optional<std::vector<DiffusersKey>> to_diffusers(Component c, const std::string& official,
                                                      const NameContext& ctx) {
    std::optional<std::string> r;
    switch (c) {
        case Component::Transformer:
            r = dit_name(official, true);
            break;
        case Component::Vae:
            r = ctx.vae22 ? vae22_name(official, true, ctx.vae_num_res_blocks)
                          : vae_name(official, true, ctx.vae_num_res_blocks);
            break;
        case Component::TextEncoder:
            r = t5_name(official, true);
            break;
        case Component::ImageEncoder:
            return clip_to(official);
    }
    if (!r) return std::nullopt;
    return std::vector<DiffusersKey>{{*r}};
}

std::optional<OfficialKey> from_diffusers(Component c, const std::string& name, const NameContext& ctx) {
    std::optional<std::string> r;
    switch (c) {
        case Component::Transformer: {
            // Early I2V conversions stored an image-query norm the model never had; diffusers lists it in
            // _keys_to_ignore_on_load_unexpected, so files in circulation may hold it: known, not needed.
            int64_t i = 0;
            std::string rest;
            if (split_indexed(name, "blocks.", &i, &rest) && rest == "attn2.norm_added_q.weight") return OfficialKey{};
            r = dit_name(name, false);
            break;
        }
        case Component::Vae:
            r = ctx.vae22 ? vae22_name(name, false, ctx.vae_num_res_blocks) : vae_name(name, false, ctx.vae_num_res_blocks);
            break;
        case Component::TextEncoder:
            r = t5_name(name, false);
            break;
        case Component::ImageEncoder:
            return clip_from(name);
    }
    if (!r) return std::nullopt;
    return OfficialKey{*r};
}

Shape official_shape(const OfficialKey& k, const Shape& d) {
    switch (k.layout) {
        case Layout::Same:
            return d;
        case Layout::Reshape: {
            Shape s(size_t(k.ones), 1);
            s.insert(s.end(), d.begin(), d.end());
            return s;
        }
        case Layout::Transpose:
            return d.size() == 2 ? Shape{d[1], d[0]} : d;
        case Layout::RowSlice: {
            Shape s = d;
            if (!s.empty()) s[0] *= k.parts;
            return s;
        }
    }
    return d;
}

Shape diffusers_shape(const DiffusersKey& k, const Shape& o) {
    switch (k.layout) {
        case Layout::Same:
            return o;
        case Layout::Reshape:
            return Shape(o.begin() + std::min<size_t>(size_t(k.ones), o.size()), o.end());
        case Layout::Transpose:
            return o.size() == 2 ? Shape{o[1], o[0]} : o;
        case Layout::RowSlice: {
            Shape s = o;
            if (!s.empty()) s[0] /= k.parts;
            return s;
        }
    }
    return o;
}

// ------------------------------------------------------------------------------------------ configs

json dit_config_to_diffusers(const DitConfig& c) {
    WANRT_CHECK(c.window_left == -1 && c.window_right == -1, "diffusers", "windowed attention (window_size [",
                c.window_left, ", ", c.window_right, "]) has no diffusers form; only full attention converts");
    WANRT_CHECK(c.text_len == 512, "diffusers", "text_len ", c.text_len,
                " has no diffusers form (diffusers pipelines pad prompts to 512 tokens)");
    json j;
    j["_class_name"] = "WanTransformer3DModel";
    j["_diffusers_version"] = "0.35.0";
    j["patch_size"] = {c.patch_t, c.patch_h, c.patch_w};
    j["num_attention_heads"] = c.num_heads;
    j["attention_head_dim"] = c.head_dim();
    j["in_channels"] = c.in_dim;
    j["out_channels"] = c.out_dim;
    j["text_dim"] = c.text_dim;
    j["freq_dim"] = c.freq_dim;
    j["ffn_dim"] = c.ffn_dim;
    j["num_layers"] = c.num_layers;
    j["cross_attn_norm"] = c.cross_attn_norm;
    j["qk_norm"] = c.qk_norm ? json("rms_norm_across_heads") : json(nullptr);
    j["eps"] = c.eps;
    // Wan2.2 I2V-A14B experts are i2v without the CLIP branch: no image_dim (in_channels 36 tells them apart).
    j["image_dim"] = c.has_clip() ? json(1280) : json(nullptr);
    j["added_kv_proj_dim"] = c.has_clip() ? json(c.dim) : json(nullptr);
    j["rope_max_seq_len"] = 1024;
    j["pos_embed_seq_len"] = c.is_flf2v() ? json(514) : json(nullptr);
    return j;
}

DitConfig dit_config_from_diffusers(const json& j, const std::string& origin, bool expand_timesteps) {
    check_keys(j, origin,
               {"patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim",
                "freq_dim", "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "image_dim",
                "added_kv_proj_dim", "rope_max_seq_len", "pos_embed_seq_len"},
               "transformer");
    if (j.contains("_class_name") && j["_class_name"] != "WanTransformer3DModel")
        fail("diffusers", origin, ": _class_name ", j["_class_name"].dump(),
             " is not WanTransformer3DModel; wanrt reads the plain Wan transformer only");
    DitConfig c;
    if (j.contains("patch_size")) {
        const json& p = j["patch_size"];
        if (!p.is_array() || p.size() != 3 || !p[0].is_number_integer() || !p[1].is_number_integer() ||
            !p[2].is_number_integer())
            fail("diffusers", origin, ": \"patch_size\" must be a list of 3 integers, got ", p.dump());
        c.patch_t = p[0].get<int>();
        c.patch_h = p[1].get<int>();
        c.patch_w = p[2].get<int>();
    }
    c.num_heads = get_int(j, "num_attention_heads", origin);
    c.dim = c.num_heads * get_int(j, "attention_head_dim", origin);
    c.in_dim = get_int(j, "in_channels", origin);
    c.out_dim = get_int(j, "out_channels", origin);
    c.text_dim = get_int(j, "text_dim", origin);
    c.freq_dim = get_int(j, "freq_dim", origin);
    c.ffn_dim = get_int(j, "ffn_dim", origin);
    c.num_layers = get_int(j, "num_layers", origin);
    c.text_len = 512;
    if (j.contains("cross_attn_norm")) {
        if (!j["cross_attn_norm"].is_boolean())
            fail("diffusers", origin, ": \"cross_attn_norm\" must be true or false");
        c.cross_attn_norm = j["cross_attn_norm"].get<bool>();
    }
    c.qk_norm = false;
    if (j.contains("qk_norm") && !j["qk_norm"].is_null()) {
        if (j["qk_norm"] != "rms_norm_across_heads")
            fail("diffusers", origin, ": qk_norm ", j["qk_norm"].dump(),
                 " is not supported; Wan uses \"rms_norm_across_heads\" (or null for none)");
        c.qk_norm = true;
    }
    if (j.contains("eps")) {
        if (!j["eps"].is_number()) fail("diffusers", origin, ": \"eps\" must be a number");
        c.eps = j["eps"].get<float>();
    }
    require_value(j, "rope_max_seq_len", 1024, origin, "the official RoPE table length");
    const bool image = j.contains("image_dim") && !j["image_dim"].is_null();
    if (image) {
        require_value(j, "image_dim", 1280, origin, "the CLIP ViT-H/14 width the official img_emb takes");
        require_value(j, "added_kv_proj_dim", c.dim, origin, "the image keys/values have the model width");
    } else if (j.contains("added_kv_proj_dim") && !j["added_kv_proj_dim"].is_null()) {
        fail("diffusers", origin, ": added_kv_proj_dim is set but image_dim is not; the image branch needs both");
    }
    const bool flf = j.contains("pos_embed_seq_len") && !j["pos_embed_seq_len"].is_null();
    if (flf) {
        require_value(j, "pos_embed_seq_len", 514, origin, "two CLIP token sets of 257, as FLF2V");
        WANRT_CHECK(image, "diffusers", origin, ": pos_embed_seq_len is set without image_dim");
    }
    if (expand_timesteps) {
        WANRT_CHECK(!image, "diffusers", origin, ": a Wan2.2 TI2V transformer (expand_timesteps) has no image_dim");
        c.model_type = "ti2v";
    } else if (image) {
        c.model_type = flf ? "flf2v" : "i2v";
    } else if (c.in_dim != c.out_dim) {
        // Noise + conditioning channels without the image branch: a Wan2.2 I2V-A14B expert.
        c.model_type = "i2v";
        c.clip_branch = false;
    } else {
        c.model_type = "t2v";
    }
    c.validate(origin);
    return c;
}

json vae_config_to_diffusers(const VaeConfig& c) {
    json j;
    j["_class_name"] = "AutoencoderKLWan";
    j["_diffusers_version"] = "0.35.0";
    j["base_dim"] = c.dim;
    j["z_dim"] = c.z_dim;
    j["dim_mult"] = c.dim_mult;
    j["num_res_blocks"] = c.num_res_blocks;
    j["attn_scales"] = c.attn_scales;
    j["temperal_downsample"] = c.temperal_downsample;
    j["dropout"] = 0.0;
    if (c.z_dim == 16) {
        j["latents_mean"] = wan21_latent_mean();
        j["latents_std"] = wan21_latent_std();
    }
    j["is_residual"] = false;
    return j;
}

VaeConfig vae_config_from_diffusers(const json& j, const std::string& origin) {
    check_keys(j, origin,
               {"base_dim", "decoder_base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales",
                "temperal_downsample", "dropout", "latents_mean", "latents_std", "is_residual", "in_channels",
                "out_channels", "patch_size", "scale_factor_temporal", "scale_factor_spatial", "clip_output"},
               "vae");
    if (is_vae22_config(j))
        fail("diffusers", origin,
             ": this is the Wan2.2 VAE (is_residual, z_dim 48, TI2V-5B's) but the transformer beside it is a Wan2.1 "
             "or A14B model (16 latent channels): the folder mixes generations; use the release's Wan2.1 vae/");
    VaeConfig c;
    c.dim = get_int(j, "base_dim", origin, 96);
    c.z_dim = get_int(j, "z_dim", origin, 16);
    c.num_res_blocks = get_int(j, "num_res_blocks", origin, 2);
    if (j.contains("decoder_base_dim") && !j["decoder_base_dim"].is_null())
        require_value(j, "decoder_base_dim", c.dim, origin, "the Wan2.1 decoder has the encoder's width");
    require_value(j, "dim_mult", json{1, 2, 4, 4}, origin, "the Wan2.1 VAE stages");
    require_value(j, "attn_scales", json::array(), origin, "no attention stages in the Wan2.1 VAE");
    require_value(j, "temperal_downsample", json{false, true, true}, origin, "the Wan2.1 temporal compression");
    require_value(j, "in_channels", 3, origin, "RGB in");
    require_value(j, "out_channels", 3, origin, "RGB out");
    if (j.contains("patch_size") && !j["patch_size"].is_null())
        fail("diffusers", origin, ": patch_size ", j["patch_size"].dump(),
             " is the Wan2.2 VAE's patchify; the Wan2.1 VAE has none");
    if (c.z_dim == 16) {
        require_value(j, "latents_mean", wan21_latent_mean(), origin, "the Wan2.1 latent statistics");
        require_value(j, "latents_std", wan21_latent_std(), origin, "the Wan2.1 latent statistics");
    }
    c.validate();
    return c;
}

bool is_vae22_config(const json& j) {
    return j.is_object() && ((j.contains("is_residual") && j["is_residual"] == true) ||
                             (j.contains("z_dim") && j["z_dim"].is_number_integer() && j["z_dim"].get<int64_t>() == 48));
}

json vae22_config_to_diffusers(const Vae22Config& c) {
    json j;
    j["_class_name"] = "AutoencoderKLWan";
    j["_diffusers_version"] = "0.35.0";
    j["base_dim"] = c.dim;
    j["decoder_base_dim"] = c.dec_dim;
    j["z_dim"] = c.z_dim;
    j["dim_mult"] = c.dim_mult;
    j["num_res_blocks"] = c.num_res_blocks;
    j["attn_scales"] = json::array();
    j["temperal_downsample"] = c.temperal_downsample;
    j["dropout"] = 0.0;
    j["is_residual"] = true;
    j["in_channels"] = 12;
    j["out_channels"] = 12;
    j["patch_size"] = 2;
    j["scale_factor_temporal"] = c.temporal_factor();
    j["scale_factor_spatial"] = c.spatial_factor();
    if (c.z_dim == 48) {
        j["latents_mean"] = wan22_latent_mean();
        j["latents_std"] = wan22_latent_std();
    }
    j["clip_output"] = false;
    return j;
}

Vae22Config vae22_config_from_diffusers(const json& j, const std::string& origin) {
    check_keys(j, origin,
               {"base_dim", "decoder_base_dim", "z_dim", "dim_mult", "num_res_blocks", "attn_scales",
                "temperal_downsample", "dropout", "latents_mean", "latents_std", "is_residual", "in_channels",
                "out_channels", "patch_size", "scale_factor_temporal", "scale_factor_spatial", "clip_output"},
               "vae");
    require_value(j, "is_residual", true, origin, "the Wan2.2 VAE's AvgDown3D / DupUp3D shortcuts");
    Vae22Config c;
    c.dim = get_int(j, "base_dim", origin, 160);
    c.dec_dim = get_int(j, "decoder_base_dim", origin, 256);
    c.z_dim = get_int(j, "z_dim", origin, 48);
    c.num_res_blocks = get_int(j, "num_res_blocks", origin, 2);
    require_value(j, "dim_mult", json{1, 2, 4, 4}, origin, "the Wan2.2 VAE stages");
    require_value(j, "attn_scales", json::array(), origin, "no attention stages in the Wan2.2 VAE");
    require_value(j, "temperal_downsample", json{false, true, true}, origin, "the Wan2.2 temporal compression");
    require_value(j, "in_channels", 12, origin, "RGB patchified 2×2");
    require_value(j, "out_channels", 12, origin, "RGB patchified 2×2");
    require_value(j, "patch_size", 2, origin, "the Wan2.2 VAE's 2×2 patchify");
    require_value(j, "scale_factor_temporal", 4, origin, "the Wan2.2 temporal compression");
    require_value(j, "scale_factor_spatial", 16, origin, "the Wan2.2 spatial compression");
    require_value(j, "clip_output", false, origin, "Wan2_2_VAE.decode clamps in the pipeline");
    // The latent statistics: the diffusers config rounds nothing (4 decimals, as vae2_2.py), compared
    // to float precision.
    for (auto [key, want] : {std::pair{"latents_mean", &wan22_latent_mean()}, {"latents_std", &wan22_latent_std()}}) {
        if (!j.contains(key) || j[key].is_null()) continue;
        const json& v = j[key];
        bool eq = v.is_array() && v.size() == want->size() && c.z_dim == 48;
        for (size_t i = 0; eq && i < want->size(); ++i)
            eq = v[i].is_number() && std::fabs(v[i].get<double>() - double((*want)[i])) <= 1e-6;
        if (!eq)
            fail("diffusers", origin, ": \"", key, "\" differs from the Wan2.2 VAE's latent statistics (",
                 want->size(), " values of vae2_2.py); wanrt runs only those");
    }
    c.validate();
    return c;
}

json t5_config_to_diffusers(const T5Config& c) {
    json j;
    j["architectures"] = {"UMT5EncoderModel"};
    j["model_type"] = "umt5";
    j["vocab_size"] = c.vocab;
    j["d_model"] = c.dim;
    j["d_kv"] = c.head_dim();
    j["d_ff"] = c.dim_ffn;
    j["num_heads"] = c.num_heads;
    j["num_layers"] = c.num_layers;
    j["relative_attention_num_buckets"] = c.num_buckets;
    j["relative_attention_max_distance"] = c.max_distance;
    j["feed_forward_proj"] = "gated-gelu";
    j["dense_act_fn"] = "gelu_new";
    j["is_gated_act"] = true;
    j["layer_norm_epsilon"] = c.eps;
    j["tie_word_embeddings"] = false;
    return j;
}

// transformers configs carry many generation/tokenizer keys wanrt has no use for, so only the keys
// that shape the encoder are read, and each must agree with what wanrt runs.
T5Config t5_config_from_diffusers(const json& j, const std::string& origin) {
    if (!j.is_object()) fail("diffusers", origin, ": text encoder config is not a JSON object");
    require_value(j, "model_type", "umt5", origin, "the umT5 encoder");
    require_value(j, "feed_forward_proj", "gated-gelu", origin, "umT5's gated GELU feed-forward");
    T5Config c;
    c.vocab = get_int(j, "vocab_size", origin);
    c.dim = get_int(j, "d_model", origin);
    c.num_heads = get_int(j, "num_heads", origin);
    c.dim_attn = get_int(j, "d_kv", origin) * c.num_heads;
    c.dim_ffn = get_int(j, "d_ff", origin);
    c.num_layers = get_int(j, "num_layers", origin);
    c.num_buckets = get_int(j, "relative_attention_num_buckets", origin, 32);
    require_value(j, "relative_attention_max_distance", 128, origin, "the official T5RelativeEmbedding");
    require_value(j, "layer_norm_epsilon", 1e-6, origin, "the official T5LayerNorm");
    return c;
}

json clip_config_to_diffusers(const ClipVisionConfig& c, int64_t projection_dim) {
    json j;
    j["architectures"] = {projection_dim > 0 ? "CLIPVisionModelWithProjection" : "CLIPVisionModel"};
    j["model_type"] = "clip_vision_model";
    j["hidden_size"] = c.dim;
    j["intermediate_size"] = c.mlp_dim;
    j["num_hidden_layers"] = c.layers;
    j["num_attention_heads"] = c.heads;
    j["patch_size"] = c.patch_size;
    j["image_size"] = c.image_size;
    j["num_channels"] = 3;
    j["hidden_act"] = "gelu";
    j["layer_norm_eps"] = c.eps;
    if (projection_dim > 0) j["projection_dim"] = projection_dim;
    return j;
}

ClipVisionConfig clip_config_from_diffusers(const json& j, const std::string& origin) {
    if (!j.is_object()) fail("diffusers", origin, ": image encoder config is not a JSON object");
    require_value(j, "hidden_act", "gelu", origin, "open-clip ViT-H/14's exact GELU");
    require_value(j, "num_channels", 3, origin, "RGB images");
    ClipVisionConfig c;
    c.dim = get_int(j, "hidden_size", origin);
    c.mlp_dim = get_int(j, "intermediate_size", origin);
    c.layers = get_int(j, "num_hidden_layers", origin);
    c.heads = get_int(j, "num_attention_heads", origin);
    c.patch_size = get_int(j, "patch_size", origin);
    c.image_size = get_int(j, "image_size", origin);
    if (j.contains("layer_norm_eps")) {
        if (!j["layer_norm_eps"].is_number()) fail("diffusers", origin, ": \"layer_norm_eps\" must be a number");
        c.eps = j["layer_norm_eps"].get<float>();
    }
    c.validate(origin);
    return c;
}

}  // namespace wanrt::diffusers
