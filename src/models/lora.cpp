// LoRA files mapped onto the DiT's official names, merged or attached as run-time branches (lora.h).
#include "models/lora.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "core/threadpool.h"
#include "io/safetensors.h"
#include "models/dit_weights.h"
#include "ops/ops.h"

// The merge sums in float64 in a fixed order; contracting a·b + c into an FMA would make the result
// depend on the compiler's choice, and the tests compare the merged weights bit for bit.
#pragma GCC optimize("fp-contract=off")

namespace wanrt {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
std::string underscored(std::string s) {
    std::replace(s.begin(), s.end(), '.', '_');
    return s;
}

// diffusers module name → official (../shared/spec/diffusers_names.md); unknown names pass through
// and then fail the lookup with their own name.
std::string from_diffusers(const std::string& m) {
    static const std::map<std::string, std::string> top = {
        {"condition_embedder.text_embedder.linear_1", "text_embedding.0"},
        {"condition_embedder.text_embedder.linear_2", "text_embedding.2"},
        {"condition_embedder.time_embedder.linear_1", "time_embedding.0"},
        {"condition_embedder.time_embedder.linear_2", "time_embedding.2"},
        {"condition_embedder.time_proj", "time_projection.1"},
        {"condition_embedder.image_embedder.norm1", "img_emb.proj.0"},
        {"condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"},
        {"condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"},
        {"condition_embedder.image_embedder.norm2", "img_emb.proj.4"},
        {"proj_out", "head.head"},
        {"scale_shift_table", "head"},  // a modulation difference: head.modulation
    };
    static const std::map<std::string, std::string> block = {
        {"attn1.to_q", "self_attn.q"},           {"attn1.to_k", "self_attn.k"},
        {"attn1.to_v", "self_attn.v"},           {"attn1.to_out.0", "self_attn.o"},
        {"attn1.norm_q", "self_attn.norm_q"},    {"attn1.norm_k", "self_attn.norm_k"},
        {"attn2.to_q", "cross_attn.q"},          {"attn2.to_k", "cross_attn.k"},
        {"attn2.to_v", "cross_attn.v"},          {"attn2.to_out.0", "cross_attn.o"},
        {"attn2.norm_q", "cross_attn.norm_q"},   {"attn2.norm_k", "cross_attn.norm_k"},
        {"attn2.add_k_proj", "cross_attn.k_img"}, {"attn2.add_v_proj", "cross_attn.v_img"},
        {"attn2.norm_added_k", "cross_attn.norm_k_img"},
        {"ffn.net.0.proj", "ffn.0"},             {"ffn.net.2", "ffn.2"},
        {"norm2", "norm3"},  // diffusers' norm2 is the cross-attention norm, official norm3
    };
    if (auto it = top.find(m); it != top.end()) return it->second;
    if (starts_with(m, "blocks.")) {
        const size_t dot = m.find('.', 7);
        if (dot != std::string::npos) {
            const std::string head = m.substr(0, dot + 1), rest = m.substr(dot + 1);  // "blocks.N.", "attn1.to_q"
            if (auto it = block.find(rest); it != block.end()) return head + it->second;
        }
    }
    return m;
}

bool diffusers_named(const std::vector<std::string>& keys) {
    for (const std::string& k : keys)
        for (const char* tok : {".attn1.", ".attn2.", ".ffn.net.", "condition_embedder.", "proj_out.", "scale_shift_table"})
            if (starts_with(k, "transformer.") || k.find(tok) != std::string::npos) return true;
    return false;
}

enum class Part { Down, Up, Alpha, Diff, DiffB, DiffM };
struct Suffix {
    const char* s;
    Part part;
};
// Longest first where one ends another (.diff_b before .diff).
const Suffix kSuffixes[] = {
    {".lora_down.weight", Part::Down}, {".lora_A.weight", Part::Down}, {".lora_up.weight", Part::Up},
    {".lora_B.weight", Part::Up},      {".alpha", Part::Alpha},        {".diff_b", Part::DiffB},
    {".diff_m", Part::DiffM},          {".diff", Part::Diff},
};

std::vector<float> to_f32(const StoredTensor& t) {
    const int64_t n = shape_numel(t.shape);
    if (!dtype_info(t.dtype).is_float)
        fail("lora", t.name, " is ", dtype_name(t.dtype), "; LoRA tensors must be floating point");
    std::vector<float> v(static_cast<size_t>(n));
    convert_elements(t.data, t.dtype, v.data(), DType::F32, n);
    return v;
}

std::string joined(const std::vector<std::string>& v, size_t max = 6) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? ", " : "") + v[i];
    if (v.size() > max) s += ", … (" + std::to_string(v.size()) + " in all)";
    return s;
}

}  // namespace

LoraSpec parse_lora_arg(const std::string& arg) {
    WANRT_CHECK(!arg.empty(), "lora", "empty --lora argument; pass --lora FILE[:STRENGTH]");
    LoraSpec s{arg, 1.0f};
    const size_t colon = arg.rfind(':');
    if (colon != std::string::npos && colon + 1 < arg.size()) {
        const std::string num = arg.substr(colon + 1);
        char* end = nullptr;
        const double v = std::strtod(num.c_str(), &end);
        if (end && *end == '\0') {
            WANRT_CHECK(std::isfinite(v), "lora", "strength ", num, " of --lora ", arg, " is not a finite number");
            s.path = arg.substr(0, colon);
            s.strength = float(v);
        }
    }
    WANRT_CHECK(!s.path.empty(), "lora", "--lora ", arg, " names no file; pass --lora FILE[:STRENGTH]");
    return s;
}

LoraMode parse_lora_mode(const std::string& s) {
    if (s == "auto") return LoraMode::Auto;
    if (s == "merge") return LoraMode::Merge;
    if (s == "runtime") return LoraMode::Runtime;
    fail("lora", "unknown --lora_mode ", s, "; pass auto, merge or runtime");
}

const char* lora_mode_name(LoraMode m) {
    return m == LoraMode::Merge ? "merge" : m == LoraMode::Runtime ? "runtime" : "auto";
}

std::vector<LoraDelta> map_lora(const TensorSource& src, float strength, const DitConfig& cfg, double default_alpha) {
    std::map<std::string, ParamSpec> params;
    for (ParamSpec& p : dit_param_table(cfg)) params[p.name] = p;
    // Module names (a parameter's name less its last part), and their underscored spellings.
    std::map<std::string, std::string> by_underscore;
    for (auto& [name, p] : params) {
        const std::string module = name.substr(0, name.rfind('.'));
        by_underscore[underscored(module)] = module;
    }

    const std::vector<std::string> keys = src.names();
    const bool diffusers = diffusers_named(keys);
    struct Pair {
        const StoredTensor *down = nullptr, *up = nullptr, *alpha = nullptr;
    };
    std::map<std::string, Pair> pairs;  // by official module name, in name order
    std::vector<LoraDelta> out;
    std::vector<std::string> unknown_form, unknown_target;
    for (const std::string& key : keys) {
        std::string body = key;
        bool kohya = false;
        for (const char* p : {"model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.", "lora_unet_"}) {
            if (starts_with(body, p)) {
                body = body.substr(std::string(p).size());
                kohya = std::string(p) == "lora_unet_";
                break;
            }
        }
        const Suffix* suf = nullptr;
        for (const Suffix& s : kSuffixes)
            if (ends_with(body, s.s)) {
                suf = &s;
                break;
            }
        if (!suf) {
            unknown_form.push_back(key);
            continue;
        }
        std::string module = body.substr(0, body.size() - std::string(suf->s).size());
        if (kohya) {
            auto it = by_underscore.find(module);
            module = it != by_underscore.end() ? it->second : module;
        } else if (diffusers) {
            module = from_diffusers(module);
        }
        const std::string target = module + (suf->part == Part::DiffB   ? ".bias"
                                             : suf->part == Part::DiffM ? ".modulation"
                                                                        : ".weight");
        auto pit = params.find(target);
        if (pit == params.end()) {
            unknown_target.push_back(key + " (→ " + target + ")");
            continue;
        }
        const StoredTensor& t = *src.find(key);
        switch (suf->part) {
        case Part::Down: pairs[module].down = &t; break;
        case Part::Up: pairs[module].up = &t; break;
        case Part::Alpha: pairs[module].alpha = &t; break;
        default: {
            LoraDelta d;
            d.target = target;
            d.target_shape = pit->second.shape;
            d.matrix = pit->second.matrix;
            d.diff = to_f32(t);
            WANRT_CHECK(int64_t(d.diff.size()) == shape_numel(d.target_shape), "lora", src.origin(), ": ", key, " has shape ",
                        shape_str(t.shape), " but ", target, " is ", shape_str(d.target_shape),
                        "; the LoRA was made for another model size");
            d.scale = strength;
            d.source = src.origin() + ": " + key;
            out.push_back(std::move(d));
        }
        }
    }
    WANRT_CHECK(unknown_form.empty(), "lora", src.origin(), ": ", unknown_form.size(),
                " keys of no known LoRA form (lora_down/lora_up/lora_A/lora_B/alpha/diff/diff_b/diff_m): ",
                joined(unknown_form), "; this file is not a Wan DiT LoRA wanrt reads");
    WANRT_CHECK(unknown_target.empty(), "lora", src.origin(), ": ", unknown_target.size(), " keys name tensors the ",
                cfg.model_type, " model (dim ", cfg.dim, ", ", cfg.num_layers, " blocks) does not have: ",
                joined(unknown_target), "; the LoRA was made for another model");

    for (auto& [module, p] : pairs) {
        WANRT_CHECK(p.down && p.up, "lora", src.origin(), ": module ", module, " has ",
                    p.down ? "a down (lora_down/lora_A)" : p.up ? "an up (lora_up/lora_B)" : "only an alpha",
                    " but no ", p.down ? "up" : "down", " matrix; the file is incomplete");
        const ParamSpec& ps = params.at(module + ".weight");
        const int64_t numel = shape_numel(ps.shape), n_out = ps.shape[0], n_in = numel / n_out;
        const int64_t r = p.down->shape.empty() ? 0 : p.down->shape[0];
        WANRT_CHECK(r > 0 && shape_numel(p.down->shape) == r * n_in && !p.up->shape.empty() && p.up->shape[0] == n_out &&
                        shape_numel(p.up->shape) == n_out * r,
                    "lora", src.origin(), ": ", module, " has down ", shape_str(p.down->shape), " and up ",
                    shape_str(p.up->shape), " but its weight is ", shape_str(ps.shape), " (down must be [r, ", n_in,
                    "], up [", n_out, ", r]); the LoRA was made for another model size");
        double alpha = default_alpha > 0 ? default_alpha : double(r);
        if (p.alpha) {
            WANRT_CHECK(shape_numel(p.alpha->shape) == 1, "lora", src.origin(), ": ", p.alpha->name,
                        " must be one number, got ", shape_str(p.alpha->shape));
            alpha = double(to_f32(*p.alpha)[0]);
        }
        LoraDelta d;
        d.target = module + ".weight";
        d.target_shape = ps.shape;
        d.matrix = ps.matrix;
        d.rank = r;
        d.down = to_f32(*p.down);
        d.up = to_f32(*p.up);
        d.scale = double(strength) * alpha / double(r);
        d.source = src.origin() + ": " + p.up->name;
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<LoraDelta> load_lora_file(const LoraSpec& spec, const DitConfig& cfg) {
    std::shared_ptr<SafeTensorsFile> f;
    try {
        f = SafeTensorsFile::open(spec.path);
    } catch (const std::exception& e) {
        fail("lora", "cannot read LoRA file ", spec.path, ": ", e.what(), "; pass a .safetensors LoRA");
    }
    // PEFT writers record lora_alpha in the metadata (diffusers: a JSON object per adapter).
    double alpha = 0;
    for (auto& [k, v] : f->metadata()) {
        if (k == "lora_alpha") alpha = std::atof(v.c_str());
        if (k.find("lora_adapter_metadata") != std::string::npos) {
            const nlohmann::json j = nlohmann::json::parse(v, nullptr, false);
            if (j.is_object() && j.contains("lora_alpha") && j["lora_alpha"].is_number()) alpha = j["lora_alpha"].get<double>();
        }
    }
    return map_lora(*f, spec.strength, cfg, alpha);
}

LoraMode resolve_lora_mode(LoraMode m, const TensorSource& base, const std::string& prefix,
                           const std::vector<LoraDelta>& deltas) {
    bool all_f32 = true;
    for (const LoraDelta& d : deltas) {
        const StoredTensor* t = base.find(prefix + d.target);
        WANRT_CHECK(t, "lora", base.origin(), " has no tensor ", prefix + d.target, " that ", d.source, " changes");
        const bool mergeable = t->dtype == DType::F32 || t->dtype == DType::BF16 || t->dtype == DType::F16;
        if (m == LoraMode::Merge || !d.matrix)
            WANRT_CHECK(mergeable, "lora", "cannot merge into ", t->name, " stored ", dtype_name(t->dtype),
                        d.matrix ? "; use --lora_mode runtime" : "; this base cannot take the file's differences");
        if (d.matrix && t->dtype != DType::F32) all_f32 = false;
    }
    if (m != LoraMode::Auto) return m;
    return all_f32 ? LoraMode::Merge : LoraMode::Runtime;
}

namespace {

// Base tensors with some replaced by merged copies.
class MergedSource final : public TensorSource {
public:
    struct Store {
        std::shared_ptr<const void> base_keep;
        std::vector<std::vector<uint8_t>> bufs;
    };
    MergedSource(std::shared_ptr<TensorSource> base, std::shared_ptr<Store> store, std::map<std::string, StoredTensor> repl)
        : base_(std::move(base)), store_(std::move(store)), repl_(std::move(repl)) {}
    std::string origin() const override { return base_->origin() + " + LoRA"; }
    std::vector<std::string> names() const override { return base_->names(); }
    const StoredTensor* find(const std::string& name) const override {
        auto it = repl_.find(name);
        return it != repl_.end() ? &it->second : base_->find(name);
    }
    std::shared_ptr<const void> keepalive() const override { return store_; }

private:
    std::shared_ptr<TensorSource> base_;
    std::shared_ptr<Store> store_;
    std::map<std::string, StoredTensor> repl_;
};

}  // namespace

std::shared_ptr<TensorSource> merge_lora(std::shared_ptr<TensorSource> base, const std::string& prefix,
                                         const std::vector<LoraDelta>& deltas, bool matrices_too) {
    std::map<std::string, std::vector<const LoraDelta*>> by_target;  // in the order given
    for (const LoraDelta& d : deltas)
        if (matrices_too || !d.matrix) by_target[prefix + d.target].push_back(&d);
    if (by_target.empty()) return base;
    auto store = std::make_shared<MergedSource::Store>();
    store->base_keep = base->keepalive();
    std::map<std::string, StoredTensor> repl;
    ThreadPool pool(default_thread_count());
    for (auto& entry : by_target) {
        // Not a structured binding: clang 14 (the sanitizer build's) cannot capture one in the lambda below.
        const std::string& name = entry.first;
        const std::vector<const LoraDelta*>& ds = entry.second;
        const StoredTensor* t = base->find(name);
        WANRT_CHECK(t, "lora", base->origin(), " has no tensor ", name, " that ", ds[0]->source, " changes");
        WANRT_CHECK(t->dtype == DType::F32 || t->dtype == DType::BF16 || t->dtype == DType::F16, "lora",
                    "cannot merge into ", name, " stored ", dtype_name(t->dtype), "; use --lora_mode runtime");
        WANRT_CHECK(shape_numel(t->shape) == shape_numel(ds[0]->target_shape), "lora", name, " is ", shape_str(t->shape),
                    " in ", base->origin(), " but the model expects ", shape_str(ds[0]->target_shape));
        const int64_t numel = shape_numel(t->shape);
        const int64_t n_out = ds[0]->target_shape[0], n_in = numel / n_out;
        std::vector<uint8_t> buf(dtype_bytes(t->dtype, numel));
        const size_t esz = dtype_size(t->dtype);
        // Row o: W[o, :] + Σ_delta scale·(Σ_k up[o, k]·down[k, :]) (or scale·diff[o, :]), in float64.
        pool.parallel_for(n_out, 1, [&](int64_t o0, int64_t o1) {
            std::vector<float> row(static_cast<size_t>(n_in));
            std::vector<double> acc(static_cast<size_t>(n_in)), prod(static_cast<size_t>(n_in));
            for (int64_t o = o0; o < o1; ++o) {
                convert_elements(static_cast<const uint8_t*>(t->data) + size_t(o * n_in) * esz, t->dtype, row.data(),
                                 DType::F32, n_in);
                for (int64_t i = 0; i < n_in; ++i) acc[size_t(i)] = double(row[size_t(i)]);
                for (const LoraDelta* d : ds) {
                    if (d->rank > 0) {
                        std::fill(prod.begin(), prod.end(), 0.0);
                        for (int64_t k = 0; k < d->rank; ++k) {
                            const double u = double(d->up[size_t(o * d->rank + k)]);
                            const float* dn = d->down.data() + k * n_in;
                            for (int64_t i = 0; i < n_in; ++i) prod[size_t(i)] += u * double(dn[i]);
                        }
                        for (int64_t i = 0; i < n_in; ++i) acc[size_t(i)] += d->scale * prod[size_t(i)];
                    } else {
                        const float* df = d->diff.data() + o * n_in;
                        for (int64_t i = 0; i < n_in; ++i) acc[size_t(i)] += d->scale * double(df[i]);
                    }
                }
                for (int64_t i = 0; i < n_in; ++i) row[size_t(i)] = float(acc[size_t(i)]);
                convert_elements(row.data(), DType::F32, buf.data() + size_t(o * n_in) * esz, t->dtype, n_in);
            }
        });
        StoredTensor st = *t;
        st.data = buf.data();
        st.nbytes = buf.size();
        store->bufs.push_back(std::move(buf));  // the vector's heap block does not move
        repl[name] = st;
    }
    return std::make_shared<MergedSource>(std::move(base), std::move(store), std::move(repl));
}

std::map<std::string, Linear*> dit_linears(DitWeights& w, const DitConfig& c) {
    std::map<std::string, Linear*> m = {
        {"text_embedding.0", &w.text0},  {"text_embedding.2", &w.text2},     {"time_embedding.0", &w.time0},
        {"time_embedding.2", &w.time2},  {"time_projection.1", &w.time_proj}, {"head.head", &w.head},
    };
    if (c.is_i2v()) {
        m["img_emb.proj.1"] = &w.img1;
        m["img_emb.proj.3"] = &w.img3;
    }
    for (size_t i = 0; i < w.blocks.size(); ++i) {
        DitBlockWeights& b = w.blocks[i];
        const std::string p = "blocks." + std::to_string(i) + ".";
        const std::pair<const char*, Linear*> ls[] = {
            {"self_attn.q", &b.sa_q},  {"self_attn.k", &b.sa_k},  {"self_attn.v", &b.sa_v},  {"self_attn.o", &b.sa_o},
            {"cross_attn.q", &b.ca_q}, {"cross_attn.k", &b.ca_k}, {"cross_attn.v", &b.ca_v}, {"cross_attn.o", &b.ca_o},
            {"ffn.0", &b.ffn0},        {"ffn.2", &b.ffn2},
        };
        for (auto& [n, l] : ls) m[p + n] = l;
        if (c.is_i2v()) {
            m[p + "cross_attn.k_img"] = &b.ca_k_img;
            m[p + "cross_attn.v_img"] = &b.ca_v_img;
        }
    }
    return m;
}

namespace {

Tensor upload(Backend& be, DType dtype, const Shape& shape, const std::vector<float>& v) {
    if (dtype == DType::F32) return ops::from_host(be, DType::F32, shape, v.data());
    std::vector<uint8_t> buf(dtype_bytes(dtype, int64_t(v.size())));
    convert_elements(v.data(), DType::F32, buf.data(), dtype, int64_t(v.size()));
    return ops::from_host(be, dtype, shape, buf.data());
}

}  // namespace

void attach_lora(DitModel& model, const std::vector<LoraDelta>& deltas) {
    auto linears = dit_linears(model.mutable_weights(), model.config());
    Backend& be = model.backend();
    for (const LoraDelta& d : deltas) {
        if (!d.matrix) continue;
        const std::string module = d.target.substr(0, d.target.rfind('.'));
        auto it = linears.find(module);
        WANRT_CHECK(it != linears.end(), "lora", d.source, " changes ", d.target, ", which is no Linear of the model");
        Linear& l = *it->second;
        const DType dt = l.w.dtype() == DType::BF16 || l.w.dtype() == DType::F16 ? l.w.dtype() : DType::F32;
        const int64_t n_out = d.target_shape[0], n_in = shape_numel(d.target_shape) / n_out;
        LoraBranch br;
        br.scale = float(d.scale);
        if (d.rank > 0) {
            br.down = upload(be, dt, {d.rank, n_in}, d.down);   // [r, in]
            br.up = upload(be, dt, {n_out, d.rank}, d.up);      // [out, r]
        } else {
            br.down = upload(be, dt, {n_out, n_in}, d.diff);    // [out, in]
        }
        l.lora.push_back(std::move(br));
    }
}

namespace {

// Patching the weight for one call costs passes over [N, K] (W, the product, the sum, the cast); the
// side path costs passes over [M, N] and [M, K] (two extra GEMM inputs/outputs, the sum, and the
// bias/activation/cast epilogue the fused GEMM can no longer do). Measured before the patch path
// (H100, 1.3B 480p, 32,760 tokens, rank 64 on 300 Linears): side path +28.8 % per forward.
bool patch_weight(const Linear& l, const Tensor& x) {
    const DType wt = l.w.dtype();
    if (wt != DType::F32 && wt != DType::BF16 && wt != DType::F16) return false;  // e.g. block-quantized
    const int64_t N = l.w.size(0), K = l.w.size(1), M = x.numel() / K;
    return N * K <= M * (N + K);
}

// W + Σ scale·up·down (or + scale·diff), summed in f32 and rounded once to W's dtype, as merging at
// load does; the base weight is left untouched. Passes over [N, K]: each product written in f32 (4 bytes
// per element), then one lincomb reading W in its own dtype and writing the patched copy in it: 12 bytes
// per element for one bf16 branch (an f32 copy of W, an f32 sum and a cast back cost 28: H100, 1.3B,
// rank 64 on 300 Linears, +8.4 % per forward).
Tensor patched_weight(const Linear& l) {
    Backend& be = *l.w.backend();
    const Tensor* in[4] = {&l.w, nullptr, nullptr, nullptr};
    float coef[4] = {1.0f, 0, 0, 0};
    std::vector<Tensor> terms;  // [N, K] f32 each
    terms.reserve(l.lora.size());
    for (const LoraBranch& br : l.lora) {
        if (br.up.defined()) {
            // up [N, r] · down [r, K] = linear(up, downᵀ [K, r]); downᵀ is a small copy. up is the GEMM's
            // input: f32, or bf16 where the backend takes bf16 activations.
            const bool keep = br.up.dtype() == DType::F32 ||
                              br.up.dtype() == ops::linear_chain_dtype(be, br.down.dtype());
            terms.push_back(ops::linear(keep ? br.up : ops::to_dtype(br.up, DType::F32),
                                        ops::contiguous(br.down.transpose(0, 1))));
        } else {
            terms.push_back(ops::to_dtype(br.down, DType::F32));
        }
    }
    std::vector<float> scale;
    for (const LoraBranch& br : l.lora) scale.push_back(br.scale);
    // More than three branches on one weight: fold the extra ones into the first term, in a new buffer
    // (an f32 full-difference term is the branch's own tensor, which must stay as loaded).
    if (terms.size() > 3) {
        Tensor sum = be.empty(DType::F32, l.w.shape());  // [N, K]
        for (size_t k = 3; k < terms.size(); ++k) {
            const Tensor* acc[2] = {k == 3 ? &terms[0] : &sum, &terms[k]};
            const float c[2] = {k == 3 ? scale[0] : 1.0f, scale[k]};
            ops::lincomb(acc, c, 2, sum);
        }
        terms[0] = sum;
        scale[0] = 1.0f;
    }
    const int n = 1 + int(std::min<size_t>(terms.size(), 3));
    for (int k = 1; k < n; ++k) {
        in[k] = &terms[size_t(k - 1)];
        coef[k] = scale[size_t(k - 1)];
    }
    const DType wt = l.w.dtype();
    if (be.supports(LinCombArgs::kName, wt, wt)) {
        Tensor out = be.empty(wt, l.w.shape());  // [N, K], a new buffer: W itself stays
        ops::lincomb(in, coef, n, out);
        return out;
    }
    const Tensor wf = ops::to_dtype(l.w, DType::F32);  // a backend without the half lincomb
    in[0] = &wf;
    Tensor out = be.empty(DType::F32, l.w.shape());
    ops::lincomb(in, coef, n, out);
    return ops::to_dtype(out, wt);
}

}  // namespace

Tensor lora_patched_weight(const Linear& l, const Tensor& x) {
    return !l.lora.empty() && patch_weight(l, x) ? patched_weight(l) : Tensor();
}

Tensor linear_with_lora(const Linear& l, const Tensor& x, Activation act, DType out, LoraApply how) {
    // Many tokens: one GEMM on the patched weight keeps the fused bias/activation/cast epilogue.
    if (how == LoraApply::Patch || (how == LoraApply::Auto && patch_weight(l, x)))
        return ops::linear(x, patched_weight(l), &l.b, act, out);
    Tensor y = l.plain(x);  // [..., out] f32, the activation after the branches
    // The branches take f32 where the backend has no linear for x's dtype (a bf16 FFN hidden
    // state feeding an FP8 ffn.2 on the CPU).
    const bool x_ok = x.dtype() == DType::F32 || l.lora.empty() ||
                      x.backend()->supports(LinearArgs::kName, x.dtype(), l.lora.front().down.dtype());
    const Tensor xb = x_ok ? x : ops::to_dtype(x, DType::F32);
    for (const LoraBranch& br : l.lora) {
        Tensor d = ops::linear(xb, br.down);              // [..., r] (a full difference: [..., out])
        if (br.up.defined()) d = ops::linear(d, br.up);   // [..., out]
        const Tensor* in[2] = {&y, &d};
        const float coef[2] = {1.0f, br.scale};
        ops::lincomb(in, coef, 2, y);
    }
    if (act != Activation::None) y = ops::unary(act, y);
    return out == DType::F32 ? y : ops::to_dtype(y, out);
}

std::shared_ptr<DitModel> load_dit_with_lora(const DitConfig& cfg, std::shared_ptr<TensorSource> base, Backend& be,
                                             const std::string& prefix, const LoraOptions& opt, std::string* summary,
                                             const DitOffloadOptions& offload) {
    if (opt.files.empty()) return std::make_shared<DitModel>(cfg, std::move(base), be, prefix, offload);
    std::vector<LoraDelta> all;
    for (const LoraSpec& s : opt.files) {
        std::vector<LoraDelta> d = load_lora_file(s, cfg);
        all.insert(all.end(), std::make_move_iterator(d.begin()), std::make_move_iterator(d.end()));
    }
    const LoraMode mode = resolve_lora_mode(opt.mode, *base, prefix, all);
    auto model =
        std::make_shared<DitModel>(cfg, merge_lora(base, prefix, all, mode == LoraMode::Merge), be, prefix, offload);
    if (mode == LoraMode::Runtime) attach_lora(*model, all);
    if (summary) {
        std::set<std::string> targets;
        for (const LoraDelta& d : all) targets.insert(d.target);
        *summary = std::to_string(opt.files.size()) + " LoRA file" + (opt.files.size() == 1 ? "" : "s") + ", " +
                   std::to_string(targets.size()) + " tensors changed, " +
                   (mode == LoraMode::Merge ? "merged" : "run-time branches");
    }
    return model;
}

}  // namespace wanrt
