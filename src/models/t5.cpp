// umT5 encoder: weight table (official and Hugging Face names), config, relative position bias,
// forward. Contract in t5.h; reference wan/modules/t5.py (T5Encoder, T5SelfAttention,
// T5Attention, T5FeedForward, T5LayerNorm, T5RelativeEmbedding).
#include "models/t5.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "core/error.h"
#include "io/comfy_source.h"
#include "io/gguf.h"
#include "io/json_config.h"
#include "io/pth.h"
#include "io/safetensors.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

namespace fs = std::filesystem;

// Per-block tensors: official suffix (after "blocks.i.") ↔ Hugging Face UMT5 suffix (after
// "encoder.block.i."). HF's T5DenseGatedActDense computes wo(act(wi_0(x)) * wi_1(x)), so wi_0 is
// the GELU branch (official ffn.gate.0) and wi_1 the linear branch (official ffn.fc1).
// The third column is llama.cpp's T5 naming (GGUF files of city96 / stable-diffusion.cpp, after
// "enc.blk.i."; ComfyUI-GGUF loader.py T5_SD_MAP maps it back to HF): ffn_gate = wi_0, ffn_up = wi_1,
// ffn_down = wo, attn_rel_b = relative_attention_bias.
struct BlockName {
    const char* official;
    const char* hf;
    const char* gguf;
};
constexpr BlockName kBlockNames[] = {
    {"norm1.weight", "layer.0.layer_norm.weight", "attn_norm.weight"},
    {"attn.q.weight", "layer.0.SelfAttention.q.weight", "attn_q.weight"},
    {"attn.k.weight", "layer.0.SelfAttention.k.weight", "attn_k.weight"},
    {"attn.v.weight", "layer.0.SelfAttention.v.weight", "attn_v.weight"},
    {"attn.o.weight", "layer.0.SelfAttention.o.weight", "attn_o.weight"},
    {"pos_embedding.embedding.weight", "layer.0.SelfAttention.relative_attention_bias.weight", "attn_rel_b.weight"},
    {"norm2.weight", "layer.1.layer_norm.weight", "ffn_norm.weight"},
    {"ffn.gate.0.weight", "layer.1.DenseReluDense.wi_0.weight", "ffn_gate.weight"},
    {"ffn.fc1.weight", "layer.1.DenseReluDense.wi_1.weight", "ffn_up.weight"},
    {"ffn.fc2.weight", "layer.1.DenseReluDense.wo.weight", "ffn_down.weight"},
};
// Whole-model tensors: official name ↔ HF names (the first present wins; HF files often hold the
// tied embedding twice).
struct GlobalName {
    const char* official;
    const char* hf[2];
    const char* gguf;
};
constexpr GlobalName kGlobalNames[] = {
    {"token_embedding.weight", {"shared.weight", "encoder.embed_tokens.weight"}, "token_embd.weight"},
    {"norm.weight", {"encoder.final_layer_norm.weight", nullptr}, "enc.output_norm.weight"},
};

enum class Layout { Official, HuggingFace, Gguf };

// The tensors of a combined file under one prefix ("t5." in the pipeline fixture), prefix removed.
class PrefixView final : public TensorSource {
public:
    PrefixView(std::shared_ptr<TensorSource> src, std::string prefix) : src_(std::move(src)), prefix_(std::move(prefix)) {}
    std::string origin() const override { return cat(src_->origin(), " (tensors ", prefix_, "*)"); }
    std::vector<std::string> names() const override {
        std::vector<std::string> out;
        for (const auto& n : src_->names())
            if (n.rfind(prefix_, 0) == 0) out.push_back(n.substr(prefix_.size()));
        return out;
    }
    const StoredTensor* find(const std::string& name) const override { return src_->find(prefix_ + name); }
    std::shared_ptr<const void> keepalive() const override { return src_->keepalive(); }

private:
    std::shared_ptr<TensorSource> src_;
    std::string prefix_;
};

// Parses "<prefix><int>.<rest>"; returns false if name does not have that form.
bool parse_indexed(const std::string& name, const std::string& prefix, int64_t* index, std::string* rest) {
    if (name.rfind(prefix, 0) != 0) return false;
    size_t p = prefix.size(), q = p;
    while (q < name.size() && std::isdigit(static_cast<unsigned char>(name[q]))) ++q;
    if (q == p || q - p > 6 || q >= name.size() || name[q] != '.') return false;
    *index = std::stoll(name.substr(p, q - p));
    *rest = name.substr(q + 1);
    return true;
}

std::string list_some(const std::vector<std::string>& names, size_t n = 5) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < n; ++i) s += (i ? ", " : "") + names[i];
    if (names.size() > n) s += cat(", … (", names.size(), " in all)");
    return s;
}

// Resolves the source's keys to official names: official name → stored tensor.
struct Resolved {
    Layout layout = Layout::Official;
    std::map<std::string, const StoredTensor*> tensors;
    int64_t num_layers = 0;
};

Resolved resolve(const TensorSource& src) {
    const std::vector<std::string> names = src.names();
    auto has = [&](const char* n) { return src.find(n) != nullptr; };
    bool official = has("token_embedding.weight");
    bool hf = has("shared.weight") || has("encoder.embed_tokens.weight");
    bool gguf = has("token_embd.weight");
    // blocks.* alone proves nothing (the DiT has them too): the official layout needs its embedding.
    for (const auto& n : names) {
        if (n.rfind("encoder.block.", 0) == 0) hf = true;
        if (n.rfind("enc.blk.", 0) == 0) gguf = true;
    }
    if (!official && !hf && !gguf) {
        std::string hint;
        if (has("patch_embedding.weight")) hint = " (it looks like a Wan DiT checkpoint)";
        else if (has("conv1.weight") || has("encoder.conv1.weight")) hint = " (it looks like a Wan VAE checkpoint)";
        fail("t5", src.origin(), " is not a umT5 encoder checkpoint", hint,
             ": it has neither token_embedding.weight (official layout) nor shared.weight / encoder.block.* "
             "(Hugging Face layout) nor token_embd.weight / enc.blk.* (llama.cpp GGUF layout); its tensors start "
             "with ", list_some(names, 4),
             "; pass models_t5_umt5-xxl-enc-bf16.pth");
    }
    if (int(official) + int(hf) + int(gguf) > 1)
        fail("t5", src.origin(), " mixes official (token_embedding, blocks.*), Hugging Face (shared, encoder.*) and "
             "llama.cpp (token_embd, enc.blk.*) tensor names; convert it to one layout");

    Resolved r;
    r.layout = official ? Layout::Official : hf ? Layout::HuggingFace : Layout::Gguf;
    std::vector<std::string> unexpected;
    int64_t max_block = -1;
    for (const auto& n : names) {
        std::string off;
        int64_t idx = 0;
        std::string rest;
        if (r.layout == Layout::Official) {
            if (n == "token_embedding.weight" || n == "norm.weight") off = n;
            else if (parse_indexed(n, "blocks.", &idx, &rest)) {
                for (const auto& b : kBlockNames)
                    if (rest == b.official) off = n;
            }
        } else if (r.layout == Layout::Gguf) {
            if (n.rfind("dec.", 0) == 0 || n == "output.weight") continue;  // seq2seq parts of a full T5 GGUF
            for (const auto& g : kGlobalNames)
                if (n == g.gguf) off = g.official;
            if (parse_indexed(n, "enc.blk.", &idx, &rest)) {
                for (const auto& b : kBlockNames)
                    if (rest == b.gguf) off = cat("blocks.", idx, ".", b.official);
            }
        } else {
            if (n.rfind("decoder.", 0) == 0 || n == "lm_head.weight") continue;  // seq2seq parts
            for (const auto& g : kGlobalNames)
                for (const char* h : g.hf)
                    if (h && n == h) off = g.official;
            if (off == "token_embedding.weight" && n == "encoder.embed_tokens.weight" && has("shared.weight"))
                continue;  // tied copy of shared.weight
            if (parse_indexed(n, "encoder.block.", &idx, &rest)) {
                for (const auto& b : kBlockNames)
                    if (rest == b.hf) off = cat("blocks.", idx, ".", b.official);
            }
        }
        if (off.empty()) {
            unexpected.push_back(n);
            continue;
        }
        if (off.rfind("blocks.", 0) == 0) max_block = std::max(max_block, idx);
        r.tensors[off] = src.find(n);
    }
    if (!unexpected.empty())
        fail("t5", src.origin(), ": ", unexpected.size(), " unexpected tensor(s) for the ",
             r.layout == Layout::Official ? "official" : r.layout == Layout::Gguf ? "llama.cpp GGUF" : "Hugging Face",
             " umT5 encoder layout: ",
             list_some(unexpected), "; this is not a supported umT5 encoder checkpoint");
    r.num_layers = max_block + 1;
    std::vector<std::string> missing;
    auto need = [&](const std::string& off, const std::string& shown) {
        if (!r.tensors.count(off)) missing.push_back(shown);
    };
    // Missing tensors are named as this file would spell them.
    const Layout L = r.layout;
    for (const auto& g : kGlobalNames)
        need(g.official, L == Layout::Official ? g.official : L == Layout::Gguf ? g.gguf : g.hf[0]);
    for (int64_t i = 0; i < r.num_layers; ++i)
        for (const auto& b : kBlockNames)
            need(cat("blocks.", i, ".", b.official), L == Layout::Official ? cat("blocks.", i, ".", b.official)
                                                     : L == Layout::Gguf   ? cat("enc.blk.", i, ".", b.gguf)
                                                                           : cat("encoder.block.", i, ".", b.hf));
    if (r.num_layers == 0)
        missing.push_back(L == Layout::Official ? "blocks.0.*" : L == Layout::Gguf ? "enc.blk.0.*" : "encoder.block.0.*");
    if (!missing.empty())
        fail("t5", src.origin(), ": missing ", missing.size(), " tensor(s): ", list_some(missing),
             "; the checkpoint is incomplete or not a umT5 encoder");
    return r;
}

const StoredTensor& get(const Resolved& r, const std::string& official) {
    auto it = r.tensors.find(official);
    WANRT_ASSERT(it != r.tensors.end());
    return *it->second;
}

bool is_fp8(DType t) { return t == DType::F8E4M3 || t == DType::F8E5M2; }

void check_shape(const TensorSource& src, const StoredTensor& st, const Shape& want) {
    WANRT_CHECK(st.shape == want, "t5", src.origin(), ": tensor ", st.name, " has shape ", shape_str(st.shape),
                ", expected ", shape_str(want), " from the model config; the checkpoint is inconsistent");
    WANRT_CHECK(st.dtype == DType::BF16 || st.dtype == DType::F16 || st.dtype == DType::F32 || is_fp8(st.dtype),
                "t5", src.origin(), ": tensor ", st.name, " has dtype ", dtype_name(st.dtype),
                "; umT5 weights must be bf16, f16, f32 or fp8 (e4m3fn, e5m2)");
}

// A weight used in place: on a host-visible backend the tensor views the source's bytes. fp8 (an
// unscaled ComfyUI file; scaled weights arrive decoded to f32) has no kernels: it is widened to bf16,
// which holds every e4m3fn / e5m2 value exactly, at half the memory of f32.
Tensor view_weight(Backend& be, const TensorSource& src, const StoredTensor& st) {
    if (is_fp8(st.dtype)) {
        const int64_t n = shape_numel(st.shape);
        std::vector<uint16_t> tmp(static_cast<size_t>(n));
        convert_elements(st.data, st.dtype, tmp.data(), DType::BF16, n);
        Tensor t = be.empty(DType::BF16, st.shape);
        be.upload(t, tmp.data());
        return t;
    }
    if (be.host_visible()) {
        auto buf = std::make_shared<ForeignBuffer>(&be, const_cast<void*>(st.data), st.nbytes, src.keepalive());
        return Tensor(buf, st.dtype, st.shape);
    }
    Tensor t = be.empty(st.dtype, st.shape);
    be.upload(t, st.data);
    return t;
}

// A small weight converted to f32 (norm scales).
Tensor f32_weight(Backend& be, const StoredTensor& st) {
    const int64_t n = shape_numel(st.shape);
    std::vector<float> tmp(static_cast<size_t>(n));
    convert_elements(st.data, st.dtype, tmp.data(), DType::F32, n);
    Tensor t = be.empty(DType::F32, st.shape);
    be.upload(t, tmp.data());
    return t;
}

T5Config config_from_resolved(const TensorSource& src, const Resolved& r) {
    T5Config c;
    const StoredTensor& emb = get(r, "token_embedding.weight");
    WANRT_CHECK(emb.shape.size() == 2, "t5", src.origin(), ": ", emb.name, " must be [vocab, dim], got ",
                shape_str(emb.shape));
    c.vocab = emb.shape[0];
    c.dim = emb.shape[1];
    const StoredTensor& q = get(r, "blocks.0.attn.q.weight");
    const StoredTensor& gate = get(r, "blocks.0.ffn.gate.0.weight");
    const StoredTensor& pos = get(r, "blocks.0.pos_embedding.embedding.weight");
    WANRT_CHECK(q.shape.size() == 2 && gate.shape.size() == 2 && pos.shape.size() == 2, "t5", src.origin(),
                ": block 0 attention, FFN and position tables must be 2-D, got ", shape_str(q.shape), ", ",
                shape_str(gate.shape), ", ", shape_str(pos.shape));
    c.dim_attn = q.shape[0];
    c.dim_ffn = gate.shape[0];
    // The only tensor that tells the head count: Embedding(num_buckets, num_heads).
    c.num_buckets = pos.shape[0];
    c.num_heads = pos.shape[1];
    c.num_layers = r.num_layers;
    WANRT_CHECK(c.num_heads > 0 && c.dim_attn % c.num_heads == 0, "t5", src.origin(), ": dim_attn ", c.dim_attn,
                " is not divisible by the ", c.num_heads, " heads of ", pos.name);
    WANRT_CHECK(c.num_buckets >= 4 && c.num_buckets % 4 == 0, "t5", src.origin(), ": ", c.num_buckets,
                " relative position buckets (", pos.name, "); expected a multiple of 4 (umT5: 32)");
    // llama.cpp T5 GGUFs state the block count (<arch>.block_count): a file that lost its last blocks
    // would otherwise read as a smaller model.
    if (auto* g = dynamic_cast<const GgufTensorSource*>(&src)) {
        const std::string arch = g->file().architecture();
        if (const GgufValue* v = g->file().find_kv(arch + ".block_count")) {
            const int64_t want = v->type == GgufValueType::INT32 || v->type == GgufValueType::INT64 ? v->i : int64_t(v->u);
            WANRT_CHECK(want == c.num_layers, "t5", src.origin(), ": ", arch, ".block_count is ", want, " but the file holds ",
                        c.num_layers, " encoder blocks (enc.blk.0 .. enc.blk.", c.num_layers - 1,
                        "); the file is incomplete, re-download or re-convert it");
        }
    }
    // The fixtures (and our synthetic files) also state the config in the metadata: it must agree.
    if (auto* st = dynamic_cast<const SafeTensorsFile*>(&src)) {
        auto it = st->metadata().find("config");
        if (it != st->metadata().end()) {
            T5Config m = T5Config::from_json(it->second);
            WANRT_CHECK(m.vocab == c.vocab && m.dim == c.dim && m.dim_attn == c.dim_attn && m.dim_ffn == c.dim_ffn &&
                            m.num_heads == c.num_heads && m.num_layers == c.num_layers &&
                            m.num_buckets == c.num_buckets,
                        "t5", src.origin(), ": metadata config ", m.to_json(),
                        " disagrees with the tensor shapes ", c.to_json(), "; the file is inconsistent");
        }
    }
    return c;
}

void check_shapes(const TensorSource& src, const Resolved& r, const T5Config& c) {
    const int64_t D = c.dim, A = c.dim_attn, F = c.dim_ffn;
    check_shape(src, get(r, "token_embedding.weight"), {c.vocab, D});
    check_shape(src, get(r, "norm.weight"), {D});
    for (int64_t i = 0; i < c.num_layers; ++i) {
        auto g = [&](const char* s) -> const StoredTensor& { return get(r, cat("blocks.", i, ".", s)); };
        check_shape(src, g("norm1.weight"), {D});
        check_shape(src, g("norm2.weight"), {D});
        check_shape(src, g("attn.q.weight"), {A, D});
        check_shape(src, g("attn.k.weight"), {A, D});
        check_shape(src, g("attn.v.weight"), {A, D});
        check_shape(src, g("attn.o.weight"), {D, A});
        check_shape(src, g("ffn.gate.0.weight"), {F, D});
        check_shape(src, g("ffn.fc1.weight"), {F, D});
        check_shape(src, g("ffn.fc2.weight"), {D, F});
        check_shape(src, g("pos_embedding.embedding.weight"), {c.num_buckets, c.num_heads});
    }
}

}  // namespace

// ---------------------------------------------------------------- config

int64_t T5Config::num_params() const {
    // Sizes may come from a file's metadata: overflow-checked arithmetic, never a wrapped count.
    auto mul = [](int64_t a, int64_t b) { return checked_mul(a, b, "t5", "the parameter count"); };
    auto add = [](int64_t a, int64_t b) { return checked_add(a, b, "t5", "the parameter count"); };
    const int64_t per_block =
        add(add(mul(2, dim), mul(4, mul(dim, dim_attn))), add(mul(3, mul(dim, dim_ffn)), mul(num_buckets, num_heads)));
    return add(add(mul(vocab, dim), mul(num_layers, per_block)), dim);
}

std::string T5Config::to_json() const {
    nlohmann::json j = {{"vocab", vocab},         {"dim", dim},           {"dim_attn", dim_attn},
                        {"dim_ffn", dim_ffn},     {"num_heads", num_heads}, {"num_layers", num_layers},
                        {"num_buckets", num_buckets}, {"shared_pos", false}};
    return j.dump();
}

T5Config T5Config::from_json(const std::string& text) {
    // Bounds: about ten times umT5-XXL (vocab 256384, dim 4096, ffn 10240, 64 heads, 24 layers).
    const JsonConfig j(text, "t5", "config metadata", "the encoder file is corrupt: re-download it");
    T5Config c;
    for (auto [k, v, hi] : {std::tuple{"vocab", &c.vocab, int64_t(1) << 22}, {"dim", &c.dim, int64_t(65536)},
                            {"dim_attn", &c.dim_attn, int64_t(65536)}, {"dim_ffn", &c.dim_ffn, int64_t(262144)},
                            {"num_heads", &c.num_heads, int64_t(1024)}, {"num_layers", &c.num_layers, int64_t(1024)},
                            {"num_buckets", &c.num_buckets, int64_t(4096)}}) {
        if (!j.has(k)) j.bad(cat("lacks the integer \"", k, "\""));
        j.integer(k, *v, 1, hi);
    }
    bool shared_pos = false;
    j.boolean("shared_pos", shared_pos);
    WANRT_CHECK(!shared_pos, "t5",
                "config has shared_pos = true (one position table for all layers); umT5 uses per-layer tables");
    return c;
}

// ---------------------------------------------------------------- relative position bias

int t5_relative_bucket(int64_t rel, int64_t num_buckets, int64_t max_distance) {
    // T5RelativeEmbedding._relative_position_bucket, bidirectional: half the buckets per direction,
    // key after query (rel > 0) in the upper half.
    const int64_t nb = num_buckets / 2;
    int64_t bucket = rel > 0 ? nb : 0;
    const int64_t n = rel < 0 ? -rel : rel;
    const int64_t max_exact = nb / 2;
    if (n < max_exact) return int(bucket + n);
    // torch: max_exact + (log(n.float() / max_exact) / math.log(max_dist / max_exact)
    //                     * (nb − max_exact)).long(): fp32 tensor ops with the double divisor rounded
    // to fp32, truncation toward zero. The order of the fp32 operations matters at bucket edges.
    const float ratio = float(n) / float(max_exact);
    const float denom = float(std::log(double(max_distance) / double(max_exact)));
    const float scaled = std::log(ratio) / denom * float(nb - max_exact);
    const int64_t large = std::min<int64_t>(max_exact + int64_t(scaled), nb - 1);
    return int(bucket + large);
}

Tensor t5_rel_bias(Backend& be, const StoredTensor& pos, int64_t lq, int64_t lk, int64_t max_distance) {
    WANRT_CHECK(pos.shape.size() == 2, "t5", "position table ", pos.name, " must be [num_buckets, heads], got ",
                shape_str(pos.shape));
    const int64_t nb = pos.shape[0], H = pos.shape[1], W = lq + lk - 1;
    std::vector<float> table(size_t(nb * H));
    convert_elements(pos.data, pos.dtype, table.data(), DType::F32, nb * H);
    std::vector<float> bias(size_t(H * W));
    // Column idx holds rel = j − i = idx − (Lq − 1).
    for (int64_t idx = 0; idx < W; ++idx) {
        const int b = t5_relative_bucket(idx - (lq - 1), nb, max_distance);
        for (int64_t h = 0; h < H; ++h) bias[size_t(h * W + idx)] = table[size_t(b * H + h)];
    }
    Tensor t = be.empty(DType::F32, {H, W});
    be.upload(t, bias.data());
    return t;
}

// ---------------------------------------------------------------- loading

T5Config t5_config_from_source(const TensorSource& src) {
    Resolved r = resolve(src);
    T5Config c = config_from_resolved(src, r);
    check_shapes(src, r, c);
    return c;
}

T5Encoder T5Encoder::load(std::shared_ptr<TensorSource> source, Backend& be, const std::string& prefix) {
    WANRT_CHECK(source != nullptr, "t5", "no tensor source given");
    if (!prefix.empty()) source = std::make_shared<PrefixView>(source, prefix);
    const TensorSource& src = *source;
    Resolved r = resolve(src);
    T5Encoder m;
    m.config = config_from_resolved(src, r);
    check_shapes(src, r, m.config);
    m.source = source;
    m.backend = &be;
    m.token_embedding = view_weight(be, src, get(r, "token_embedding.weight"));
    m.norm = f32_weight(be, get(r, "norm.weight"));
    for (int64_t i = 0; i < m.config.num_layers; ++i) {
        auto g = [&](const char* s) -> const StoredTensor& { return get(r, cat("blocks.", i, ".", s)); };
        T5Block b;
        b.norm1 = f32_weight(be, g("norm1.weight"));
        b.norm2 = f32_weight(be, g("norm2.weight"));
        b.q = view_weight(be, src, g("attn.q.weight"));
        b.k = view_weight(be, src, g("attn.k.weight"));
        b.v = view_weight(be, src, g("attn.v.weight"));
        b.o = view_weight(be, src, g("attn.o.weight"));
        b.gate = view_weight(be, src, g("ffn.gate.0.weight"));
        b.fc1 = view_weight(be, src, g("ffn.fc1.weight"));
        b.fc2 = view_weight(be, src, g("ffn.fc2.weight"));
        b.pos = &g("pos_embedding.embedding.weight");
        m.blocks.push_back(std::move(b));
    }
    return m;
}

T5Encoder T5Encoder::load_file(const std::string& path, Backend& be) {
    std::string file = path;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        // A checkpoint folder: the release's .pth, else our safetensors copy of it.
        const char* candidates[] = {"models_t5_umt5-xxl-enc-bf16.pth", "models_t5_umt5-xxl-enc-bf16.safetensors"};
        file.clear();
        for (const char* c : candidates)
            if (fs::exists(fs::path(path) / c, ec)) {
                file = (fs::path(path) / c).string();
                break;
            }
        WANRT_CHECK(!file.empty(), "t5", "no umT5 checkpoint in folder ", path,
                    ": looked for models_t5_umt5-xxl-enc-bf16.pth and models_t5_umt5-xxl-enc-bf16.safetensors");
    }
    WANRT_CHECK(fs::exists(file, ec), "t5", "umT5 checkpoint ", file, " does not exist; pass the path of "
                "models_t5_umt5-xxl-enc-bf16.pth or its folder");
    auto ends = [&](const char* x) {
        const size_t k = std::char_traits<char>::length(x);
        return file.size() >= k && file.compare(file.size() - k, k, x) == 0;
    };
    if (ends(".pth")) return load(open_pth(file), be);
    if (ends(".gguf")) return load(GgufTensorSource::open(file), be);  // llama.cpp names, quantized types decoded
    return load(wrap_if_comfy(open_safetensors(file)), be);           // ComfyUI fp8 (scaled) files decoded
}

// ---------------------------------------------------------------- forward

Tensor T5Encoder::forward(const Tensor& ids_in, const std::vector<int32_t>& lens, const DumpFn& dump) const {
    WANRT_CHECK(backend != nullptr, "t5", "encoder used before T5Encoder::load");
    WANRT_CHECK(ids_in.defined() && ids_in.ndim() == 2 && ids_in.dtype() == DType::I32, "t5",
                "ids must be i32 [B, L], got ", ids_in.defined() ? ids_in.describe() : "undefined");
    const int64_t B = ids_in.size(0), L = ids_in.size(1);
    const int64_t D = config.dim, H = config.num_heads, dh = config.head_dim();
    WANRT_CHECK(B >= 1 && L >= 1, "t5", "empty batch ", ids_in.describe(), "; a prompt has at least its EOS token");
    WANRT_CHECK(int64_t(lens.size()) == B, "t5", lens.size(), " lengths for a batch of ", B);
    for (int32_t n : lens)
        WANRT_CHECK(n >= 1 && n <= L, "t5", "sample length ", n, " outside [1, ", L, "]");
    auto named = [&](const std::string& name, const Tensor& t) {
        if (dump) dump(name, t);
    };

    Tensor ids = ops::contiguous(ids_in);
    // x = token_embedding(ids): [B·L] → [B·L, D] → [B, L, D]
    Tensor x = ops::embedding(token_embedding, ids.reshape({B * L})).reshape({B, L, D});
    named("t5.embed", x);

    AttentionParams ap;
    ap.k_lens = lens;
    ap.softmax_scale = 1.0f;  // T5: no 1/√d
    for (size_t i = 0; i < blocks.size(); ++i) {
        const T5Block& b = blocks[i];
        // attention: x + o(attn(norm1(x)))
        Tensor h = ops::rms_norm(x, b.norm1, config.eps);
        Tensor q = ops::linear(h, b.q).reshape({B, L, H, dh});  // [B, L, A] → [B, L, H, dh]
        Tensor k = ops::linear(h, b.k).reshape({B, L, H, dh});
        Tensor v = ops::linear(h, b.v).reshape({B, L, H, dh});
        ap.rel_bias = t5_rel_bias(*backend, *b.pos, L, L, config.max_distance);  // [H, 2L − 1]
        Tensor a = ops::attention(q, k, v, ap).reshape({B, L, H * dh});          // [B, L, H, dh] → [B, L, A]
        x = ops::add(x, ops::linear(a, b.o));
        named(cat("t5.block", i, ".attn"), x);
        // feed-forward: x + fc2(fc1(norm2(x)) ⊙ gelu_tanh(gate(norm2(x))))
        h = ops::rms_norm(x, b.norm2, config.eps);
        Tensor g = ops::linear(h, b.gate, nullptr, Activation::GeluTanh);  // [B, L, F]
        Tensor f = ops::linear(h, b.fc1);                                  // [B, L, F]
        x = ops::add(x, ops::linear(ops::mul(f, g), b.fc2));
        named(cat("t5.block", i, ".out"), x);
    }
    x = ops::rms_norm(x, norm, config.eps);
    named("t5.out", x);
    return x;
}

Tensor T5Encoder::encode(const std::vector<int32_t>& ids, const DumpFn& dump) const {
    WANRT_CHECK(backend != nullptr, "t5", "encoder used before T5Encoder::load");
    WANRT_CHECK(!ids.empty(), "t5", "no tokens to encode; a tokenized prompt has at least its EOS token");
    const int64_t L = int64_t(ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
        WANRT_CHECK(ids[i] >= 0 && ids[i] < config.vocab, "t5", "token id ", ids[i], " at position ", i,
                    " is outside the vocabulary of ", config.vocab, "; the tokenizer does not match this encoder");
    Tensor t = backend->empty(DType::I32, {1, L});
    backend->upload(t, ids.data());
    return forward(t, {int32_t(L)}, dump).reshape({L, config.dim});  // [1, L, D] → [L, D]
}

}  // namespace wanrt
