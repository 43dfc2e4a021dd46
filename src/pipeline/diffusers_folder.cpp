// Diffusers-format model folders (contract in diffusers_folder.h).
#include "pipeline/diffusers_folder.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "io/safetensors.h"

namespace wanrt {

namespace fs = std::filesystem;
using json = nlohmann::json;
using diffusers::Component;
using diffusers::DiffusersKey;
using diffusers::Layout;
using diffusers::NameContext;
using diffusers::OfficialKey;

namespace {

json read_json(const fs::path& p, const char* what) {
    std::ifstream in(p);
    if (!in) fail("diffusers", "cannot read ", p.string(), " (", what, ")");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return json::parse(ss.str());
    } catch (const json::exception& e) {
        fail("diffusers", p.string(), ": not valid JSON (", e.what(), "); the ", what, " is damaged");
    }
}

bool listed(const json& index, const char* key) {
    return index.contains(key) && index[key].is_array() && index[key].size() == 2 && !index[key][0].is_null();
}

const char* stem_of(Component c) {
    return c == Component::Transformer || c == Component::Vae ? "diffusion_pytorch_model" : "model";
}

// A component folder counts as present with its config.json and weights.
ModelPart find_component(const fs::path& dir, std::string role, const std::string& sub, Component c) {
    ModelPart p;
    p.role = std::move(role);
    const std::string stem = stem_of(c);
    p.looked_for = {sub + "/config.json", sub + "/" + stem + ".safetensors[.index.json]"};
    std::error_code ec;
    if (fs::is_regular_file(dir / sub / "config.json", ec) && !diffusers_weights_file((dir / sub).string(), c).empty())
        p.path = (dir / sub).string();
    return p;
}

// "a, b, c (and N more)"
std::string some(const std::vector<std::string>& v, size_t n = 3) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < n; ++i) s += cat(i ? ", " : "", "'", v[i], "'");
    if (v.size() > n) s += cat(" (and ", v.size() - n, " more)");
    return s;
}

// Official names over a diffusers-named source.
class DiffusersView final : public TensorSource {
public:
    DiffusersView(std::shared_ptr<TensorSource> base, Component c, const NameContext& ctx) : base_(std::move(base)) {
        origin_ = cat(base_->origin(), " (diffusers ", diffusers::component_name(c), " names)");
        holder_ = std::make_shared<Holder>();
        holder_->base = base_->keepalive();
        std::vector<std::string> unknown;
        // official name → its pieces (one, or q/k/v for a fused tensor)
        std::map<std::string, std::vector<std::pair<OfficialKey, const StoredTensor*>>> pieces;
        for (const std::string& n : base_->names()) {
            const auto k = diffusers::from_diffusers(c, n, ctx);
            if (!k) {
                unknown.push_back(n);
                continue;
            }
            if (k->name.empty()) continue;  // known, not a weight (position_ids)
            pieces[k->name].push_back({*k, base_->find(n)});
        }
        if (!unknown.empty())
            fail("diffusers", base_->origin(), ": unknown ", diffusers::component_name(c), " tensor ", some(unknown),
                 "; it has no official Wan2.1 name, so this is not a Wan2.1 ", diffusers::component_name(c),
                 " in diffusers layout");
        for (auto& [name, ps] : pieces) {
            const OfficialKey& k = ps[0].first;
            const StoredTensor& st = *ps[0].second;
            if (k.layout == Layout::RowSlice) {
                join(name, ps);
                continue;
            }
            if (ps.size() > 1) {
                // transformers ties umT5's encoder.embed_tokens to shared: a file may store both.
                auto shared =
                    std::find_if(ps.begin(), ps.end(), [](auto& p) { return p.second->name == "shared.weight"; });
                if (c != Component::TextEncoder || shared == ps.end() || ps.size() != 2)
                    fail("diffusers", base_->origin(), ": tensors '", ps[0].second->name, "' and '", ps[1].second->name,
                         "' both map to official '", name, "'; the file is inconsistent");
                add(name, *shared->second, shared->second->shape);
                continue;
            }
            const Shape shape = diffusers::official_shape(k, st.shape);
            if (k.layout == Layout::Transpose) {
                WANRT_CHECK(st.shape.size() == 2, "diffusers", base_->origin(), ": '", st.name, "' must be 2-D, got ",
                            shape_str(st.shape));
                add(name, st, shape);
                pending_[name] = {k, {&st}};  // transposed on first use
            } else {
                add(name, st, shape);
            }
        }
    }

    std::string origin() const override { return origin_; }
    std::vector<std::string> names() const override {
        std::vector<std::string> v;
        for (auto& [n, t] : tensors_) v.push_back(n);
        return v;
    }
    // Tensors in another layout are built on first use, so opening a folder (names and shapes only,
    // as the config checks need) copies nothing.
    const StoredTensor* find(const std::string& name) const override {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = tensors_.find(name);
        if (it == tensors_.end()) return nullptr;
        auto p = pending_.find(name);
        if (p != pending_.end()) {
            materialize(it->second, p->second);
            pending_.erase(p);
        }
        return &it->second;
    }
    std::shared_ptr<const void> keepalive() const override { return holder_; }

private:
    struct Holder {
        std::shared_ptr<const void> base;
        std::vector<std::vector<uint8_t>> owned;  // joined / transposed tensors (moving the outer vector keeps data)
    };
    struct Pending {
        OfficialKey key;
        std::vector<const StoredTensor*> parts;  // in part order
    };

    void materialize(StoredTensor& t, const Pending& p) const {
        std::vector<uint8_t>& buf = holder_->owned.emplace_back(t.nbytes);
        if (p.key.layout == Layout::Transpose) {
            const StoredTensor& st = *p.parts[0];
            const size_t es = dtype_size(st.dtype);
            const int64_t R = st.shape[0], C = st.shape[1];
            const auto* src = static_cast<const uint8_t*>(st.data);
            for (int64_t r = 0; r < R; ++r)
                for (int64_t col = 0; col < C; ++col)
                    std::memcpy(&buf[size_t(col * R + r) * es], src + size_t(r * C + col) * es, es);
        } else {  // RowSlice: the parts' rows one after another
            size_t at = 0;
            for (const StoredTensor* st : p.parts) {
                std::memcpy(&buf[at], st->data, st->nbytes);
                at += st->nbytes;
            }
        }
        t.data = buf.data();
    }

    void add(const std::string& name, const StoredTensor& st, const Shape& shape, const void* data = nullptr) {
        StoredTensor t = st;
        t.name = name;
        t.shape = shape;
        if (data) t.data = data;
        tensors_[name] = t;
    }

    // q | k | v rows joined into the official fused tensor.
    void join(const std::string& name, std::vector<std::pair<OfficialKey, const StoredTensor*>>& ps) {
        const int parts = ps[0].first.parts;
        std::vector<const StoredTensor*> by_part(size_t(parts), nullptr);
        for (auto& [k, st] : ps) by_part[size_t(k.part)] = st;
        std::vector<std::string> absent;
        for (int i = 0; i < parts; ++i)
            if (!by_part[size_t(i)]) absent.push_back(cat("part ", i + 1, " of ", parts));
        WANRT_CHECK(absent.empty(), "diffusers", base_->origin(), ": official '", name, "' is split in ", parts,
                    " tensors but ", some(absent), " is missing (have '", ps[0].second->name, "')");
        const StoredTensor& first = *by_part[0];
        for (const StoredTensor* st : by_part)
            WANRT_CHECK(st->dtype == first.dtype && st->shape == first.shape, "diffusers", base_->origin(), ": '",
                        st->name, "' (", dtype_name(st->dtype), " ", shape_str(st->shape), ") differs from '",
                        first.name, "' (", dtype_name(first.dtype), " ", shape_str(first.shape), "); the parts of '",
                        name, "' must match");
        add(name, first, diffusers::official_shape(ps[0].first, first.shape));
        tensors_[name].data = nullptr;
        tensors_[name].nbytes = first.nbytes * size_t(parts);
        pending_[name] = {ps[0].first, by_part};  // joined on first use
    }

    std::shared_ptr<TensorSource> base_;
    std::string origin_;
    std::shared_ptr<Holder> holder_;
    mutable std::mutex mu_;
    mutable std::map<std::string, StoredTensor> tensors_;
    mutable std::map<std::string, Pending> pending_;
};

std::shared_ptr<TensorSource> open_component(const ModelPart& p, Component c, const NameContext& ctx = {}) {
    WANRT_CHECK(p.found(), "diffusers", "the ", p.role, " is missing (looked for ", p.looked_for[0], " and ",
                p.looked_for[1], ")");
    return diffusers_view(open_safetensors(diffusers_weights_file(p.path, c)), c, ctx);
}

// "config.json says X, the weights hold Y": the one mismatch message of every component.
[[noreturn]] void mismatch(const std::string& dir, const std::string& what) {
    fail("diffusers", dir, "/config.json does not match the weights beside it: ", what,
         "; the folder mixes files of different models");
}

}  // namespace

bool is_diffusers_folder(const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(fs::path(dir) / "model_index.json", ec);
}

std::string diffusers_weights_file(const std::string& component_dir, Component c) {
    const fs::path d(component_dir);
    const std::string stem = stem_of(c);
    std::error_code ec;
    for (const std::string& n : {stem + ".safetensors.index.json", stem + ".safetensors"})
        if (fs::is_regular_file(d / n, ec)) return (d / n).string();
    return "";
}

std::vector<const ModelPart*> DiffusersFolder::parts() const {
    std::vector<const ModelPart*> v{&transformer};
    if (moe) v.push_back(&transformer_2);
    for (const ModelPart* p : {&vae, &text_encoder, &tokenizer}) v.push_back(p);
    if (image_model) v.push_back(&image_encoder);
    return v;
}

std::vector<std::string> DiffusersFolder::missing() const {
    std::vector<std::string> out;
    for (const ModelPart* p : parts())
        if (!p->found()) {
            std::string names;
            for (const std::string& n : p->looked_for) names += (names.empty() ? "" : " and ") + n;
            out.push_back(cat(p->role, " (", names, ")"));
        }
    return out;
}

DiffusersFolder scan_diffusers_folder(const std::string& dir) {
    std::error_code ec;
    WANRT_CHECK(fs::is_directory(dir, ec), "diffusers", "model folder ", dir, " does not exist or is not a folder");
    DiffusersFolder f;
    f.dir = dir;
    const fs::path d(dir);
    const json index = read_json(d / "model_index.json", "diffusers pipeline index");
    WANRT_CHECK(index.is_object() && index.contains("_class_name") && index["_class_name"].is_string(), "diffusers",
                dir, "/model_index.json has no \"_class_name\"; it is not a diffusers pipeline folder");
    f.pipeline = index["_class_name"].get<std::string>();
    WANRT_CHECK(f.pipeline == "WanPipeline" || f.pipeline == "WanImageToVideoPipeline", "diffusers", dir,
                "/model_index.json names pipeline ", f.pipeline,
                "; wanrt reads WanPipeline and WanImageToVideoPipeline folders (text/image/first-last-frame to video)");
    if (index.contains("expand_timesteps") && index["expand_timesteps"].is_boolean())
        f.expand_timesteps = index["expand_timesteps"].get<bool>();
    if (index.contains("boundary_ratio") && index["boundary_ratio"].is_number())
        f.boundary_ratio = index["boundary_ratio"].get<double>();
    f.moe = listed(index, "transformer_2");
    f.transformer = find_component(d, "transformer", "transformer", Component::Transformer);
    f.transformer_2 = find_component(d, "transformer_2 (low-noise expert)", "transformer_2", Component::Transformer);
    f.vae = find_component(d, "VAE", "vae", Component::Vae);
    f.text_encoder = find_component(d, "text encoder", "text_encoder", Component::TextEncoder);
    f.image_encoder = find_component(d, "image encoder", "image_encoder", Component::ImageEncoder);
    f.tokenizer.role = "tokenizer";
    f.tokenizer.looked_for = {"tokenizer/spiece.model"};
    if (fs::is_regular_file(d / "tokenizer/spiece.model", ec)) f.tokenizer.path = (d / "tokenizer").string();
    // The image encoder is needed when the transformer has the image branch (a config that does not
    // parse is reported when the transformer is opened).
    if (fs::is_regular_file(d / "transformer/config.json", ec)) {
        std::ifstream in(d / "transformer/config.json");
        std::stringstream ss;
        ss << in.rdbuf();
        const json j = json::parse(ss.str(), nullptr, false);
        f.image_model = j.is_object() && j.contains("image_dim") && !j["image_dim"].is_null();
    }
    return f;
}

std::shared_ptr<TensorSource> diffusers_view(std::shared_ptr<TensorSource> src, Component c, const NameContext& ctx) {
    return std::make_shared<DiffusersView>(std::move(src), c, ctx);
}

DitCheckpoint open_diffusers_transformer(const DiffusersFolder& f, const std::string& sub) {
    const ModelPart& p = sub == "transformer_2" ? f.transformer_2 : f.transformer;
    DitCheckpoint ck;
    WANRT_CHECK(p.found(), "diffusers", "model folder ", f.dir, " has no ", sub, " (looked for ", p.looked_for[0],
                " and ", p.looked_for[1], ")");
    ck.config_origin = (fs::path(p.path) / "config.json").string();
    ck.config = diffusers::dit_config_from_diffusers(read_json(ck.config_origin, "transformer config"),
                                                     ck.config_origin, f.expand_timesteps);
    ck.weights = open_component(p, Component::Transformer);
    // Every tensor the config implies, at its shape, and nothing else: a config of another size is
    // named here rather than as a loader error on an official name.
    std::map<std::string, Shape> want;
    for (const ParamSpec& s : dit_param_table(ck.config)) want[s.name] = s.shape;
    auto dname = [](const std::string& o) { return (*diffusers::to_diffusers(Component::Transformer, o))[0].name; };
    for (const auto& [name, shape] : want) {
        const StoredTensor* t = ck.weights->find(name);
        if (!t)
            mismatch(p.path, cat("the config implies tensor '", dname(name), "' (num_layers ", ck.config.num_layers,
                                 ", ", ck.config.model_type, ") but the weights lack it"));
        if (t->shape != shape)
            mismatch(p.path,
                     cat("'", dname(name), "' is ", shape_str(t->shape), ", the config implies ", shape_str(shape)));
    }
    for (const std::string& n : ck.weights->names())
        if (!want.count(n))
            mismatch(p.path, cat("tensor '", dname(n), "' is not part of the model the config describes (num_layers ",
                                 ck.config.num_layers, ", ", ck.config.model_type, ")"));
    return ck;
}

VaeConfig diffusers_vae_config(const DiffusersFolder& f) {
    WANRT_CHECK(f.vae.found(), "diffusers", "model folder ", f.dir, " has no VAE (vae/config.json and weights)");
    const std::string cfg_path = (fs::path(f.vae.path) / "config.json").string();
    const json j = read_json(cfg_path, "VAE config");
    VaeConfig c = diffusers::vae_config_from_diffusers(j, cfg_path);
    const VaeConfig w = vae_config_from_weights(*open_component(f.vae, Component::Vae, {c.num_res_blocks}));
    if (w.dim != c.dim || w.z_dim != c.z_dim || w.num_res_blocks != c.num_res_blocks)
        mismatch(f.vae.path, cat("config base_dim ", c.dim, ", z_dim ", c.z_dim, ", num_res_blocks ", c.num_res_blocks,
                                 "; weights dim ", w.dim, ", z_dim ", w.z_dim, ", ", w.num_res_blocks, " blocks"));
    return c;
}

Vae22Config diffusers_vae22_config(const DiffusersFolder& f) {
    WANRT_CHECK(f.vae.found(), "diffusers", "model folder ", f.dir, " has no VAE (vae/config.json and weights)");
    const std::string cfg_path = (fs::path(f.vae.path) / "config.json").string();
    const json j = read_json(cfg_path, "VAE config");
    WANRT_CHECK(diffusers::is_vae22_config(j), "diffusers", cfg_path,
                " is the Wan2.1 VAE (16 latent channels) but the transformer beside it is Wan2.2 TI2V-5B (48 "
                "channels): the folder mixes generations; use the TI2V-5B release's vae/ (is_residual, z_dim 48)");
    const Vae22Config c = diffusers::vae22_config_from_diffusers(j, cfg_path);
    const Vae22Config w = vae22_config_from_weights(*open_component(f.vae, Component::Vae, {c.num_res_blocks, true}));
    if (w.dim != c.dim || w.dec_dim != c.dec_dim || w.z_dim != c.z_dim || w.num_res_blocks != c.num_res_blocks)
        mismatch(f.vae.path, cat("config base_dim ", c.dim, ", decoder_base_dim ", c.dec_dim, ", z_dim ", c.z_dim,
                                 ", num_res_blocks ", c.num_res_blocks, "; weights ", w.dim, ", ", w.dec_dim, ", ",
                                 w.z_dim, ", ", w.num_res_blocks, " blocks"));
    return c;
}

std::shared_ptr<TensorSource> open_diffusers_vae(const DiffusersFolder& f) {
    const std::string cfg_path = (fs::path(f.vae.path) / "config.json").string();
    const json j = read_json(cfg_path, "VAE config");
    if (diffusers::is_vae22_config(j))
        return open_component(f.vae, Component::Vae,
                              {diffusers::vae22_config_from_diffusers(j, cfg_path).num_res_blocks, true});
    const VaeConfig c = diffusers::vae_config_from_diffusers(j, cfg_path);
    return open_component(f.vae, Component::Vae, {c.num_res_blocks});
}

std::shared_ptr<TensorSource> open_diffusers_text_encoder(const DiffusersFolder& f) {
    auto src = open_component(f.text_encoder, Component::TextEncoder);
    const std::string cfg_path = (fs::path(f.text_encoder.path) / "config.json").string();
    const T5Config c = diffusers::t5_config_from_diffusers(read_json(cfg_path, "text encoder config"), cfg_path);
    const T5Config w = t5_config_from_source(*src);
    std::string diff;
    for (auto [key, a, b] : {std::tuple{"vocab_size", c.vocab, w.vocab},
                             {"d_model", c.dim, w.dim},
                             {"d_kv x num_heads", c.dim_attn, w.dim_attn},
                             {"d_ff", c.dim_ffn, w.dim_ffn},
                             {"num_heads", c.num_heads, w.num_heads},
                             {"num_layers", c.num_layers, w.num_layers},
                             {"relative_attention_num_buckets", c.num_buckets, w.num_buckets}})
        if (a != b) diff += cat(diff.empty() ? "" : ", ", key, " ", a, " but the weights have ", b);
    if (!diff.empty()) mismatch(f.text_encoder.path, diff);
    return src;
}

ClipVisionConfig diffusers_clip_config(const DiffusersFolder& f) {
    WANRT_CHECK(f.image_encoder.found(), "diffusers", "model folder ", f.dir,
                " holds an image-to-video transformer but no image_encoder/ (config.json and model.safetensors)");
    const std::string cfg_path = (fs::path(f.image_encoder.path) / "config.json").string();
    const ClipVisionConfig c =
        diffusers::clip_config_from_diffusers(read_json(cfg_path, "image encoder config"), cfg_path);
    const ClipVisionConfig w = clip_config_from_weights(*open_component(f.image_encoder, Component::ImageEncoder));
    if (w.dim != c.dim || w.patch_size != c.patch_size || w.image_size != c.image_size || w.layers != c.layers ||
        w.mlp_dim != c.mlp_dim)
        mismatch(f.image_encoder.path,
                 cat("config hidden_size ", c.dim, ", patch_size ", c.patch_size, ", image_size ", c.image_size,
                     ", num_hidden_layers ", c.layers, ", intermediate_size ", c.mlp_dim, "; weights ", w.dim, ", ",
                     w.patch_size, ", ", w.image_size, ", ", w.layers, ", ", w.mlp_dim));
    return c;
}

std::shared_ptr<TensorSource> open_diffusers_image_encoder(const DiffusersFolder& f) {
    return open_component(f.image_encoder, Component::ImageEncoder);
}

T2VModelParts open_diffusers_folder(const std::string& dir) {
    const DiffusersFolder f = scan_diffusers_folder(dir);
    const std::vector<std::string> miss = f.missing();
    if (!miss.empty()) {
        std::string list;
        for (const std::string& m : miss) list += (list.empty() ? "" : "; ") + m;
        fail("diffusers", "diffusers model folder ", dir, " is incomplete: missing ", list,
             "; download the whole folder (every component of model_index.json)");
    }
    T2VModelParts m;
    m.name = cat("diffusers model folder ", dir);
    // Wan2.2 A14B: transformer/ is the high-noise expert, transformer_2/ the low-noise one, which the
    // parts carry as dit_weights (pipeline/moe.h).
    const std::string main_sub = f.moe ? "transformer_2" : "transformer";
    const DitCheckpoint ck = open_diffusers_transformer(f, main_sub);
    m.dit_config = ck.config;
    m.kind = describe_kind(ck.config) + " (diffusers)";
    if (f.moe) {
        const DitConfig high = open_diffusers_transformer(f, "transformer").config;
        WANRT_CHECK(high.to_json() == ck.config.to_json() && high.clip_branch == ck.config.clip_branch, "diffusers",
                    "the experts of ", dir, " differ (transformer: ", describe_kind(high),
                    "; transformer_2: ", describe_kind(ck.config), "); both must come from one A14B release");
        WANRT_CHECK(!ck.config.has_clip(), "diffusers", "the experts of ", dir,
                    " have the Wan2.1 CLIP image branch "
                    "(image_dim); Wan2.2 A14B experts have none: the folder mixes generations");
        m.kind = describe_moe_kind(ck.config) + " (diffusers)";
        m.high_noise_weights = [f] { return open_diffusers_transformer(f, "transformer").weights; };
    }
    if (m.ti2v()) {  // TI2V-5B: the Wan2.2 VAE (T2VModelParts::vae22_config)
        m.vae22_config = diffusers_vae22_config(f);
        WANRT_CHECK(m.vae22_config.z_dim == m.dit_config.in_dim && m.dit_config.in_dim == m.dit_config.out_dim,
                    "diffusers", "the Wan2.2 VAE of ", dir, " has ", m.vae22_config.z_dim,
                    " latent channels but the transformer takes ", m.dit_config.in_dim,
                    "; the components do not belong together");
    } else {
        m.vae_config = diffusers_vae_config(f);
    }
    (void)open_diffusers_text_encoder(f);  // names and config checked now, before any stage runs
    m.tokenizer = f.tokenizer.path;
    m.dit_weights = [f, main_sub] { return open_diffusers_transformer(f, main_sub).weights; };
    m.vae_weights = [f] { return open_diffusers_vae(f); };
    m.t5_weights = [f] { return open_diffusers_text_encoder(f); };
    if (m.dit_config.has_clip()) {
        m.clip_config = diffusers_clip_config(f);
        m.clip_weights = [f] { return open_diffusers_image_encoder(f); };
    }
    return m;
}

// ---------------------------------------------------------------------------------------- writing

void write_diffusers_weights(const TensorSource& src, Component c, const NameContext& ctx, const std::string& dir,
                             const std::string& stem, uint64_t shard_bytes) {
    WANRT_CHECK(shard_bytes > 0, "diffusers", "the shard size must be positive");
    struct Out {
        std::string name;
        DType dtype;
        Shape shape;
        const void* data;
        size_t nbytes;
    };
    std::vector<Out> outs;
    std::vector<std::vector<uint8_t>> owned;
    owned.reserve(16);
    std::vector<std::string> unknown;
    for (const std::string& n : src.names()) {
        const auto keys = diffusers::to_diffusers(c, n, ctx);
        if (!keys) {
            unknown.push_back(n);
            continue;
        }
        const StoredTensor& st = *src.find(n);
        for (const DiffusersKey& k : *keys) {
            const Shape shape = diffusers::diffusers_shape(k, st.shape);
            const size_t nb = st.nbytes / size_t(k.parts);
            const auto* base = static_cast<const uint8_t*>(st.data);
            if (k.layout == Layout::RowSlice) {
                WANRT_CHECK(!st.shape.empty() && st.shape[0] % k.parts == 0, "diffusers", src.origin(), ": '", n,
                            "' has ", st.shape.empty() ? 0 : st.shape[0], " rows, not a multiple of ", k.parts);
                outs.push_back({k.name, st.dtype, shape, base + nb * size_t(k.part), nb});
            } else if (k.layout == Layout::Transpose) {
                WANRT_CHECK(st.shape.size() == 2, "diffusers", src.origin(), ": '", n, "' must be 2-D");
                const size_t es = dtype_size(st.dtype);
                const int64_t R = st.shape[0], C = st.shape[1];
                std::vector<uint8_t> buf(st.nbytes);
                for (int64_t r = 0; r < R; ++r)
                    for (int64_t col = 0; col < C; ++col)
                        std::memcpy(&buf[size_t(col * R + r) * es], base + size_t(r * C + col) * es, es);
                owned.push_back(std::move(buf));
                outs.push_back({k.name, st.dtype, shape, owned.back().data(), st.nbytes});
            } else {
                outs.push_back({k.name, st.dtype, shape, st.data, st.nbytes});
            }
        }
    }
    if (!unknown.empty())
        fail("diffusers", src.origin(), ": no diffusers name for official ", diffusers::component_name(c), " tensor ",
             some(unknown), "; it is not a Wan2.1 ", diffusers::component_name(c));
    std::sort(outs.begin(), outs.end(), [](const Out& a, const Out& b) { return a.name < b.name; });
    // Shards of at most shard_bytes (a tensor larger than that gets a shard of its own).
    std::vector<std::vector<const Out*>> shards(1);
    uint64_t in_shard = 0, total = 0;
    for (const Out& o : outs) {
        if (!shards.back().empty() && in_shard + o.nbytes > shard_bytes) {
            shards.emplace_back();
            in_shard = 0;
        }
        shards.back().push_back(&o);
        in_shard += o.nbytes;
        total += o.nbytes;
    }
    const fs::path d(dir);
    fs::create_directories(d);
    json weight_map = json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
        char num[64];
        std::snprintf(num, sizeof num, "-%05zu-of-%05zu", s + 1, shards.size());
        const std::string file = shards.size() == 1 ? stem + ".safetensors" : stem + num + ".safetensors";
        std::vector<TensorToWrite> w;
        for (const Out* o : shards[s]) {
            w.push_back({o->name, o->dtype, o->shape, o->data});
            weight_map[o->name] = file;
        }
        write_safetensors((d / file).string(), w, {{"format", "pt"}});
    }
    if (shards.size() > 1) {
        json idx;
        idx["metadata"] = {{"total_size", total}};
        idx["weight_map"] = weight_map;
        std::ofstream((d / (stem + ".safetensors.index.json")).string()) << idx.dump(2) << "\n";
    }
}

void write_diffusers_folder(const std::string& official_dir, const std::string& out_dir, uint64_t shard_bytes) {
    std::error_code ec;
    WANRT_CHECK(!fs::exists(out_dir, ec), "diffusers", out_dir, " already exists; pass a new folder to write");
    const ModelFolder f = scan_model_folder(official_dir);
    require_complete(f);
    // A14B: the high-noise expert becomes transformer/, the low-noise one transformer_2/.
    const DitCheckpoint ck = open_dit_checkpoint(f.moe ? f.high_noise.path : official_dir);
    const DitConfig& dc = ck.config;
    const bool ti2v = dc.model_type == "ti2v";  // the Wan2.2 VAE, expand_timesteps
    const json transformer_cfg =
        diffusers::dit_config_to_diffusers(dc);  // fails early on configs with no diffusers form
    const fs::path tmp = out_dir + ".partial";
    fs::remove_all(tmp, ec);
    try {
        fs::create_directories(tmp);
        auto write_json = [&](const fs::path& p, const json& j) {
            fs::create_directories(p.parent_path());
            std::ofstream(p) << j.dump(2) << "\n";
        };
        write_json(tmp / "transformer/config.json", transformer_cfg);
        write_diffusers_weights(*ck.weights, Component::Transformer, {}, (tmp / "transformer").string(),
                                "diffusion_pytorch_model", shard_bytes);
        if (f.moe) {
            const DitCheckpoint low = open_dit_checkpoint(f.low_noise.path);
            WANRT_CHECK(low.config.to_json() == dc.to_json(), "diffusers", "the experts of ", official_dir,
                        " differ; both must come from one A14B release");
            write_json(tmp / "transformer_2/config.json", transformer_cfg);
            write_diffusers_weights(*low.weights, Component::Transformer, {}, (tmp / "transformer_2").string(),
                                    "diffusion_pytorch_model", shard_bytes);
        }

        if (ti2v) {
            const auto vae = open_weights_file(f.vae22.path);
            const Vae22Config vc = vae22_config_from_weights(*vae);
            write_json(tmp / "vae/config.json", diffusers::vae22_config_to_diffusers(vc));
            write_diffusers_weights(*vae, Component::Vae, {vc.num_res_blocks, true}, (tmp / "vae").string(),
                                    "diffusion_pytorch_model", shard_bytes);
        } else {
            const auto vae = open_weights_file(f.vae.path);
            const VaeConfig vc = vae_config_from_weights(*vae);
            write_json(tmp / "vae/config.json", diffusers::vae_config_to_diffusers(vc));
            write_diffusers_weights(*vae, Component::Vae, {vc.num_res_blocks}, (tmp / "vae").string(),
                                    "diffusion_pytorch_model", shard_bytes);
        }

        const auto t5 = open_weights_file(f.t5.path);
        write_json(tmp / "text_encoder/config.json", diffusers::t5_config_to_diffusers(t5_config_from_source(*t5)));
        write_diffusers_weights(*t5, Component::TextEncoder, {}, (tmp / "text_encoder").string(), "model", shard_bytes);

        fs::create_directories(tmp / "tokenizer");
        for (const auto& e : fs::directory_iterator(f.tokenizer.path))
            if (e.is_regular_file()) fs::copy_file(e.path(), tmp / "tokenizer" / e.path().filename());

        json index;
        index["_class_name"] = dc.is_i2v() ? "WanImageToVideoPipeline" : "WanPipeline";
        index["_diffusers_version"] = "0.35.0";
        index["scheduler"] = {"diffusers", "UniPCMultistepScheduler"};
        index["text_encoder"] = {"transformers", "UMT5EncoderModel"};
        index["tokenizer"] = {"transformers", "T5TokenizerFast"};
        index["transformer"] = {"diffusers", "WanTransformer3DModel"};
        index["transformer_2"] = f.moe ? json{"diffusers", "WanTransformer3DModel"} : json{nullptr, nullptr};
        index["vae"] = {"diffusers", "AutoencoderKLWan"};
        // wan/configs of Wan2.2: the expert switch at t >= boundary * 1000 (t2v 0.875, i2v 0.900).
        index["boundary_ratio"] = f.moe ? json(dc.is_i2v() ? 0.9 : 0.875) : json(nullptr);
        index["expand_timesteps"] = ti2v;  // TI2V-5B: per-token timesteps (WanPipeline's Wan2.2 switch)
        if (dc.has_clip()) {
            const auto clip = open_weights_file(f.clip.path);
            const ClipVisionConfig cc = clip_config_from_weights(*clip);
            const StoredTensor* head = clip->find("visual.head");
            const int64_t proj = head && head->shape.size() == 2 ? head->shape[1] : 0;
            write_json(tmp / "image_encoder/config.json", diffusers::clip_config_to_diffusers(cc, proj));
            write_diffusers_weights(*clip, Component::ImageEncoder, {}, (tmp / "image_encoder").string(), "model",
                                    shard_bytes);
            json pre;
            pre["image_processor_type"] = "CLIPImageProcessor";
            pre["crop_size"] = {{"height", cc.image_size}, {"width", cc.image_size}};
            pre["size"] = {{"shortest_edge", cc.image_size}};
            pre["image_mean"] = cc.mean;
            pre["image_std"] = cc.std;
            pre["do_resize"] = true;
            pre["do_center_crop"] = true;
            pre["do_normalize"] = true;
            pre["resample"] = 3;
            write_json(tmp / "image_processor/preprocessor_config.json", pre);
            index["image_encoder"] = {"transformers", proj ? "CLIPVisionModelWithProjection" : "CLIPVisionModel"};
            index["image_processor"] = {"transformers", "CLIPImageProcessor"};
        }
        json sched;
        sched["_class_name"] = "UniPCMultistepScheduler";
        sched["num_train_timesteps"] = 1000;
        sched["prediction_type"] = "flow_prediction";
        sched["use_flow_sigmas"] = true;
        // generate.py's defaults: Wan2.1 i2v 5, t2v 3; Wan2.2 A14B i2v 5, t2v 12.
        sched["flow_shift"] = dc.is_i2v() || ti2v ? 5.0 : f.moe ? 12.0 : 3.0;
        sched["solver_order"] = 2;
        write_json(tmp / "scheduler/scheduler_config.json", sched);
        write_json(tmp / "model_index.json", index);
        fs::rename(tmp, out_dir);
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

}  // namespace wanrt
