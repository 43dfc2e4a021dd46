// LoRA training pieces (train/lora_train.h): target selection, trainable branches, the file written.
#include "train/lora_train.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "models/dit_weights.h"
#include "models/lora.h"
#include "ops/ops.h"

namespace wanrt {

namespace {

// A block's Linears in the order the block applies them.
const char* const kBlockModules[] = {"self_attn.q",  "self_attn.k",  "self_attn.v",  "self_attn.o", "cross_attn.q",
                                     "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0",       "ffn.2"};

std::string trimmed(const std::string& s) {
    const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
    return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

std::vector<std::string> lora_target_modules(const std::string& targets) {
    std::vector<bool> on(std::size(kBlockModules), false);
    std::stringstream ss(targets);
    std::string t;
    int n = 0;
    while (std::getline(ss, t, ',')) {
        t = trimmed(t);
        bool hit = false;
        for (size_t i = 0; i < std::size(kBlockModules); ++i) {
            const std::string m = kBlockModules[i];
            const std::string leaf = m.substr(m.find('.') + 1);  // "q", "0"
            const bool attn = m.rfind("ffn", 0) != 0;
            if (t == m || (attn && t == leaf) || (!attn && t == "ffn")) on[i] = hit = true;
        }
        WANRT_CHECK(hit, "lora", "unknown LoRA target '", t,
                    "'; pass a comma-separated list of q, k, v, o, ffn or block module names such as "
                    "self_attn.q, cross_attn.o, ffn.0, ffn.2");
        ++n;
    }
    WANRT_CHECK(n > 0, "lora", "no LoRA targets given; pass e.g. --lora_targets q,k,v,o,ffn");
    std::vector<std::string> out;
    for (size_t i = 0; i < on.size(); ++i)
        if (on[i]) out.push_back(kBlockModules[i]);
    return out;
}

std::vector<LoraParam> attach_trainable_lora(DitModel& model, const LoraTrainConfig& cfg, uint64_t seed) {
    WANRT_CHECK(cfg.rank >= 1, "lora", "LoRA rank ", cfg.rank, " must be at least 1");
    WANRT_CHECK(cfg.alpha > 0 && std::isfinite(cfg.alpha), "lora", "LoRA alpha ", cfg.alpha, " must be positive");
    const std::vector<std::string> mods = lora_target_modules(cfg.targets);
    auto linears = dit_linears(model.mutable_weights(), model.config());
    for (auto& [name, l] : linears)
        WANRT_CHECK(l->lora.empty(), "lora", name,
                    " already carries a LoRA branch; train on a base without LoRAs (or merge them first)");
    Backend& be = model.backend();
    uint64_t state = seed * 0x2545F4914F6CDD1Dull + 0x5DEECE66Dull;
    for (int64_t blk = 0; blk < model.config().num_layers; ++blk) {
        for (const std::string& m : mods) {
            Linear& l = *linears.at("blocks." + std::to_string(blk) + "." + m);
            const int64_t n_out = l.w.size(0), n_in = l.w.size(1), r = cfg.rank;
            // kaiming_uniform_(a = √5) on [r, in]: bound = gain·√(3/fan_in), gain = √(2/(1 + 5)) → 1/√in
            const double bound = 1.0 / std::sqrt(double(n_in));
            std::vector<float> down(size_t(r * n_in));
            for (float& v : down) v = float((double(splitmix64(state) >> 11) * 0x1.0p-53 * 2 - 1) * bound);
            LoraBranch br;
            br.down = ops::from_host(be, DType::F32, {r, n_in}, down.data());
            br.up = ops::zeros(be, {n_out, r});
            br.scale = float(cfg.alpha / double(r));
            l.lora.push_back(std::move(br));
        }
    }
    return lora_params(model);
}

std::vector<LoraParam> lora_params(DitModel& model) {
    auto linears = dit_linears(model.mutable_weights(), model.config());
    std::vector<LoraParam> out;
    for (int64_t blk = 0; blk < model.config().num_layers; ++blk)
        for (const char* m : kBlockModules) {
            const std::string name = "blocks." + std::to_string(blk) + "." + m;
            for (const LoraBranch& br : linears.at(name)->lora) out.push_back({name, br.down, br.up});
        }
    return out;
}

std::vector<Tensor> lora_param_list(const std::vector<LoraParam>& p) {
    std::vector<Tensor> out;
    for (const LoraParam& x : p) out.push_back(x.down), out.push_back(x.up);
    return out;
}

std::vector<Tensor> lora_grad_list(DitGrads& g, const DitConfig& c, const std::vector<LoraParam>& p) {
    auto linears = dit_linears(g.w, c);
    std::vector<Tensor> out;
    std::map<std::string, size_t> used;  // branches per module taken so far
    for (const LoraParam& x : p) {
        auto it = linears.find(x.module);
        const size_t j = used[x.module]++;
        WANRT_CHECK(it != linears.end() && j < it->second->lora.size(), "lora", "no gradient for the branch on ",
                    x.module, "; make the gradients with dit_grads_zeros after attaching the branches");
        out.push_back(it->second->lora[j].down), out.push_back(it->second->lora[j].up);
    }
    return out;
}

void write_lora_file(const std::string& path, const std::vector<LoraParam>& p, const LoraTrainConfig& cfg,
                     const std::map<std::string, std::string>& metadata) {
    std::vector<std::vector<float>> host;  // keeps the bytes until written
    std::vector<TensorToWrite> ts;
    host.reserve(p.size() * 3);
    const float alpha = float(cfg.alpha);
    for (const LoraParam& x : p) {
        const std::string k = "diffusion_model." + x.module;
        host.push_back(ops::to_host_f32(x.down));
        ts.push_back({k + ".lora_down.weight", DType::F32, x.down.shape(), host.back().data()});
        host.push_back(ops::to_host_f32(x.up));
        ts.push_back({k + ".lora_up.weight", DType::F32, x.up.shape(), host.back().data()});
        host.push_back({alpha});
        ts.push_back({k + ".alpha", DType::F32, Shape{}, host.back().data()});
    }
    std::map<std::string, std::string> md = metadata;
    md["ss_network_dim"] = std::to_string(cfg.rank);
    std::ostringstream a;
    a << cfg.alpha;
    md["ss_network_alpha"] = a.str();
    md["wanrt_lora_targets"] = cfg.targets;
    write_safetensors(path, ts, md);
}

}  // namespace wanrt
