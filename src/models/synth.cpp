#include "models/synth.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/output_file.h"
#include "core/rng.h"
#include "io/pth_writer.h"
#include "io/safetensors.h"

namespace wanrt {

namespace fs = std::filesystem;

uint64_t synth_seed(const std::string& s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
    return h;
}

namespace {

// splitmix64: fast, good enough for benchmark weights.
struct Rng {
    uint64_t s;
    uint64_t next() { return splitmix64(s); }
    float uniform() { return float(next() >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f; }  // [-1, 1)
};

bool ends_with(const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

void synth_fill(const std::string& name, const Shape& shape, DType dtype, uint64_t seed, void* out) {
    const int64_t n = shape_numel(shape);
    Rng rng{synth_seed(name, seed)};
    float center = 0, amp;
    const bool norm_like = ends_with(name, "norm_q.weight") || ends_with(name, "norm_k.weight") ||
                           ends_with(name, "norm_k_img.weight") || ends_with(name, "norm3.weight") ||
                           ends_with(name, "norm1.weight") || ends_with(name, "norm2.weight") ||  // CLIP blocks
                           ends_with(name, "norm.weight") || ends_with(name, ".gamma") ||
                           (name.find("img_emb.proj.0") != std::string::npos && ends_with(name, "weight")) ||
                           (name.find("img_emb.proj.4") != std::string::npos && ends_with(name, "weight"));
    if (norm_like) {
        center = 1.0f;
        amp = 0.1f;
    } else if (ends_with(name, "modulation")) {
        amp = std::sqrt(3.0f) / std::sqrt(float(shape.back()));
    } else if (ends_with(name, ".bias")) {
        amp = 0.01f;
    } else if (shape.size() >= 2) {
        const int64_t fan_in = n / shape[0];
        amp = std::sqrt(3.0f) / std::sqrt(float(std::max<int64_t>(1, fan_in)));  // std 1/√fan_in
    } else {
        amp = 0.1f;
    }
    std::vector<float> buf(size_t(std::min<int64_t>(n, 1 << 16)));
    for (int64_t i0 = 0; i0 < n; i0 += int64_t(buf.size())) {
        const int64_t m = std::min<int64_t>(int64_t(buf.size()), n - i0);
        for (int64_t i = 0; i < m; ++i) buf[size_t(i)] = center + amp * rng.uniform();
        convert_elements(buf.data(), DType::F32, static_cast<char*>(out) + dtype_bytes(dtype, i0), dtype, m);
    }
}

std::shared_ptr<MemoryTensorSource> synth_dit_memory(const DitConfig& c, DType matrix_dtype, uint64_t seed) {
    auto src = std::make_shared<MemoryTensorSource>(cat("synthetic ", c.dim, "-wide DiT (seed ", seed, ")"));
    for (const ParamSpec& p : dit_param_table(c)) {
        DType t = p.matrix ? matrix_dtype : DType::F32;
        synth_fill(p.name, p.shape, t, seed, src->add_uninitialized(p.name, t, p.shape));
    }
    return src;
}

void write_synth_dit(const std::string& dir, const DitConfig& c, DType matrix_dtype, uint64_t seed,
                     uint64_t shard_bytes, const std::function<void(uint64_t, uint64_t)>& progress) {
    fs::create_directories(dir);
    const std::vector<ParamSpec> table = dit_param_table(c);
    uint64_t total = 0;
    for (auto& p : table) total += dtype_bytes(p.matrix ? matrix_dtype : DType::F32, shape_numel(p.shape));
    // Group tensors into shards in table order.
    std::vector<std::vector<const ParamSpec*>> shards(1);
    uint64_t in_shard = 0;
    for (auto& p : table) {
        uint64_t b = dtype_bytes(p.matrix ? matrix_dtype : DType::F32, shape_numel(p.shape));
        if (in_shard > 0 && in_shard + b > shard_bytes) {
            shards.emplace_back();
            in_shard = 0;
        }
        shards.back().push_back(&p);
        in_shard += b;
    }
    const bool sharded = shards.size() > 1;
    nlohmann::json weight_map = nlohmann::json::object();
    uint64_t done = 0;
    std::vector<uint8_t> buf;
    for (size_t s = 0; s < shards.size(); ++s) {
        char fname[96];
        if (sharded)
            std::snprintf(fname, sizeof fname, "diffusion_pytorch_model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        else
            std::snprintf(fname, sizeof fname, "diffusion_pytorch_model.safetensors");
        SafeTensorsWriter w((fs::path(dir) / fname).string(), {{"format", "pt"}});
        for (const ParamSpec* p : shards[s]) w.declare(p->name, p->matrix ? matrix_dtype : DType::F32, p->shape);
        for (const ParamSpec* p : shards[s]) {
            DType t = p->matrix ? matrix_dtype : DType::F32;
            buf.resize(dtype_bytes(t, shape_numel(p->shape)));
            synth_fill(p->name, p->shape, t, seed, buf.data());
            w.write(buf.data(), buf.size());
            done += buf.size();
            weight_map[p->name] = fname;
            if (progress) progress(done, total);
        }
        w.finish();
    }
    if (sharded) {
        nlohmann::json idx;
        idx["metadata"] = {{"total_size", total}};
        idx["weight_map"] = weight_map;
        std::string path = (fs::path(dir) / "diffusion_pytorch_model.safetensors.index.json").string();
        write_file_atomic(path, idx.dump(2), "synth");
    }
    std::string cpath = (fs::path(dir) / "config.json").string();
    write_file_atomic(cpath, c.to_json(), "synth");
}

std::vector<ParamSpec> clip_param_table(const ClipVisionConfig& c) {
    const int64_t D = c.dim, P = c.patch_size, M = c.mlp_dim;
    std::vector<ParamSpec> t = {
        {"visual.patch_embedding.weight", {D, 3, P, P}, false},
        {"visual.cls_embedding", {1, 1, D}, false},
        {"visual.pos_embedding", {1, c.tokens(), D}, false},
        {"visual.pre_norm.weight", {D}, false},
        {"visual.pre_norm.bias", {D}, false},
    };
    for (int64_t i = 0; i < c.layers; ++i) {
        const std::string p = "visual.transformer." + std::to_string(i) + ".";
        for (const char* n : {"norm1", "norm2"}) {
            t.push_back({p + n + ".weight", {D}, false});
            t.push_back({p + n + ".bias", {D}, false});
        }
        t.push_back({p + "attn.to_qkv.weight", {3 * D, D}, true});
        t.push_back({p + "attn.to_qkv.bias", {3 * D}, false});
        t.push_back({p + "attn.proj.weight", {D, D}, true});
        t.push_back({p + "attn.proj.bias", {D}, false});
        t.push_back({p + "mlp.0.weight", {M, D}, true});
        t.push_back({p + "mlp.0.bias", {M}, false});
        t.push_back({p + "mlp.2.weight", {D, M}, true});
        t.push_back({p + "mlp.2.bias", {D}, false});
    }
    t.push_back({"visual.post_norm.weight", {D}, false});
    t.push_back({"visual.post_norm.bias", {D}, false});
    t.push_back({"visual.head", {D, 1024}, true});  // projection to the joint embedding (ViT-H/14: 1024)
    return t;
}

std::shared_ptr<MemoryTensorSource> synth_clip_memory(const ClipVisionConfig& c, DType dtype, uint64_t seed) {
    auto src = std::make_shared<MemoryTensorSource>(cat("synthetic CLIP ViT (dim ", c.dim, ", seed ", seed, ")"));
    for (const ParamSpec& p : clip_param_table(c))
        synth_fill(p.name, p.shape, dtype, seed, src->add_uninitialized(p.name, dtype, p.shape));
    return src;
}

void write_synth_clip_pth(const std::string& path, const ClipVisionConfig& c, DType dtype, uint64_t seed) {
    PthWriter w(path);
    std::vector<uint8_t> buf;
    for (const ParamSpec& p : clip_param_table(c)) {
        // synth_fill draws a tensor's values in one sequence, so each tensor is made whole (the
        // largest, a block's qkv, is 20 MB in f32).
        buf.resize(dtype_bytes(dtype, shape_numel(p.shape)));
        synth_fill(p.name, p.shape, dtype, seed, buf.data());
        w.add(p.name, dtype, p.shape, buf.data());
    }
    w.finish();
}

}  // namespace wanrt
