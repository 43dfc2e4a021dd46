#include "io/convert_rules.h"

#include <algorithm>
#include <cstdlib>
#include <map>

namespace wanrt {

namespace {

// llama.cpp's LlamaFileType ids (gguf-py constants.py), the label general.file_type carries.
constexpr uint32_t kFtAllF32 = 0, kFtF16 = 1, kFtQ4_0 = 2, kFtQ4_1 = 3, kFtQ8_0 = 7, kFtQ5_0 = 8, kFtQ5_1 = 9,
                   kFtQ2_K = 10, kFtQ3_K_S = 11, kFtQ3_K_M = 12, kFtQ4_K_S = 14, kFtQ4_K_M = 15, kFtQ5_K_S = 16,
                   kFtQ5_K_M = 17, kFtQ6_K = 18, kFtBF16 = 32;

const std::vector<ConvertTarget>& targets() {
    using F = ConvertFormat;
    static const std::vector<ConvertTarget> t = {
        {"f32", F::Gguf, GgmlType::F32, kFtAllF32, DType::F32},
        {"f16", F::Gguf, GgmlType::F16, kFtF16, DType::F16},
        {"bf16", F::Gguf, GgmlType::BF16, kFtBF16, DType::BF16},
        {"q8_0", F::Gguf, GgmlType::Q8_0, kFtQ8_0},
        {"q6_k", F::Gguf, GgmlType::Q6_K, kFtQ6_K},
        {"q5_k_m", F::Gguf, GgmlType::Q5_K, kFtQ5_K_M},
        {"q5_k", F::Gguf, GgmlType::Q5_K, kFtQ5_K_S},
        {"q5_1", F::Gguf, GgmlType::Q5_1, kFtQ5_1},
        {"q5_0", F::Gguf, GgmlType::Q5_0, kFtQ5_0},
        {"q4_k_m", F::Gguf, GgmlType::Q4_K, kFtQ4_K_M},
        {"q4_k_s", F::Gguf, GgmlType::Q4_K, kFtQ4_K_S},
        {"q4_k", F::Gguf, GgmlType::Q4_K, kFtQ4_K_S},
        {"q4_1", F::Gguf, GgmlType::Q4_1, kFtQ4_1},
        {"q4_0", F::Gguf, GgmlType::Q4_0, kFtQ4_0},
        {"q3_k_m", F::Gguf, GgmlType::Q3_K, kFtQ3_K_M},
        {"q3_k", F::Gguf, GgmlType::Q3_K, kFtQ3_K_S},
        {"q2_k", F::Gguf, GgmlType::Q2_K, kFtQ2_K},
        {"fp8_e4m3", F::Safetensors, GgmlType::F32, 0, DType::F8E4M3},
        {"fp8_e5m2", F::Safetensors, GgmlType::F32, 0, DType::F8E5M2},
    };
    return t;
}

bool is_k_quant(GgmlType t) {
    return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
           t == GgmlType::Q6_K;
}

bool contains(const std::string& s, const char* part) {
    return s.find(part) != std::string::npos;
}
bool ends_with(const std::string& s, const std::string& e) {
    return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

}  // namespace

std::optional<ConvertTarget> convert_target(const std::string& type) {
    for (const ConvertTarget& t : targets())
        if (t.name == type) return t;
    return std::nullopt;
}

std::string convert_target_list() {
    std::string s;
    for (const ConvertTarget& t : targets()) s += (s.empty() ? "" : "|") + t.name;
    return s;
}

bool is_quantizable_weight(const std::string& name, const Shape& shape) {
    // llama-quantize: names ending in "weight", 2 dims (ggml_n_dims: leading 1s do not count), and for
    // Wan none of the non-block prefixes (lcpp.patch); only block tensors remain.
    size_t lead = 0;
    while (lead + 1 < shape.size() && shape[lead] == 1) ++lead;
    const size_t dims = shape.size() - lead;
    return name.rfind("blocks.", 0) == 0 && ends_with(name, "weight") && dims == 2 && !contains(name, "modulation");
}

TensorType ConvertPlanner::plan(const std::string& name, const Shape& shape, bool source_bf16) {
    TensorType r;
    const int64_t n = shape_numel(shape);
    const bool f32_rule =
        shape.size() <= 1 || n <= 1024 || contains(name, ".modulation") || name == "patch_embedding.weight";
    if (f32_rule || (t_.type == GgmlType::F32 && !t_.fp8())) {
        r.type = GgmlType::F32;
        r.dense = DType::F32;
        r.why = t_.type == GgmlType::F32 && !t_.fp8() ? "target f32"
                : shape.size() <= 1                   ? "1-D"
                : n <= 1024                           ? "<= 1024 elements"
                : name == "patch_embedding.weight"    ? "5-D patch embedding"
                                                      : "modulation";
        return r;
    }
    // The base type: the dense targets' own, else F16 (BF16 from a bf16 tensor) as convert.py writes.
    const bool dense_target = t_.type == GgmlType::F16 || t_.type == GgmlType::BF16;
    GgmlType base = dense_target ? t_.type : source_bf16 ? GgmlType::BF16 : GgmlType::F16;
    r.type = base;
    r.dense = base == GgmlType::BF16 ? DType::BF16 : DType::F16;
    r.why = "base type";
    if (!is_quantizable_weight(name, shape)) {
        if (dense_target) r.why = "target " + t_.name;
        return r;
    }
    r.quantized = true;
    if (dense_target) {
        r.why = "target " + t_.name;
        return r;
    }
    ++n_quantized_;
    if (t_.fp8()) {
        r.dense = t_.dense;
        r.why = "fp8 linear weight";
        return r;
    }
    GgmlType q = t_.type;
    r.why = "target " + t_.name;
    const std::string& ft = t_.name;
    if (contains(name, ".v.weight")) {
        if (ft == "q2_k")
            q = GgmlType::Q3_K;
        else if (ft == "q3_k_m")
            q = i_attention_wv_ < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
        else if (ft == "q4_k_m" || ft == "q5_k_m")
            q = GgmlType::Q6_K;
        else if (ft == "q4_k_s" && i_attention_wv_ < 4)
            q = GgmlType::Q5_K;
        if (q != t_.type) r.why = ft + " rule for attention v";
        ++i_attention_wv_;
    } else if (contains(name, ".ffn.2.weight")) {
        if (ft == "q3_k_m")
            q = GgmlType::Q4_K;
        else if (ft == "q4_k_s")
            q = GgmlType::Q5_K;
        else if (ft == "q4_k_m" || ft == "q5_k_m")
            q = GgmlType::Q6_K;
        else if (ft == "q4_0")
            q = GgmlType::Q4_1;
        else if (ft == "q5_0")
            q = GgmlType::Q5_1;
        if (q != t_.type) r.why = ft + " rule for ffn.2";
    }
    const int64_t row = shape.back();
    const GgmlTypeInfo* qi = ggml_type_info(uint32_t(q));
    if (row % qi->block_elems != 0) {
        GgmlType f = GgmlType::F16;
        if (is_k_quant(q) && fb_ == KFallback::Legacy) {
            f = q == GgmlType::Q5_K ? GgmlType::Q5_1 : q == GgmlType::Q6_K ? GgmlType::Q8_0 : GgmlType::Q5_0;
            if (row % 32 != 0) f = GgmlType::F16;
        }
        r.why = std::string("rows of ") + std::to_string(row) + " not a multiple of " +
                std::to_string(qi->block_elems) + " for " + qi->name + ": fallback";
        r.fallback = true;
        q = f;
        ++n_fallback_;
    }
    r.type = q;
    return r;
}

namespace {

// Rank of a name component inside its parent (unknown names after the known ones).
int component_rank(const std::string& c) {
    static const std::map<std::string, int> r = {
        // top level
        {"patch_embedding", 0},
        {"text_embedding", 1},
        {"time_embedding", 2},
        {"time_projection", 3},
        {"blocks", 4},
        {"head", 5},
        {"img_emb", 6},
        // inside a block, an attention, the head, img_emb
        {"modulation", 0},
        {"self_attn", 1},
        {"norm3", 2},
        {"cross_attn", 3},
        {"ffn", 4},
        {"q", 0},
        {"k", 1},
        {"v", 2},
        {"o", 3},
        {"norm_q", 4},
        {"norm_k", 5},
        {"k_img", 6},
        {"v_img", 7},
        {"norm_k_img", 8},
        {"emb_pos", -1},
        {"proj", 0},
        // leaves
        {"weight", 0},
        {"bias", 1},
    };
    auto it = r.find(c);
    return it == r.end() ? 1000 : it->second;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> v;
    size_t b = 0;
    for (size_t e; (e = s.find('.', b)) != std::string::npos; b = e + 1) v.push_back(s.substr(b, e - b));
    v.push_back(s.substr(b));
    return v;
}

bool is_number(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), ::isdigit);
}

}  // namespace

bool wan_name_less(const std::string& a, const std::string& b) {
    // The tools write the 5-D patch embedding back right after its bias.
    auto fix = [](const std::string& n) {
        return n == "patch_embedding.weight" ? std::string("patch_embedding.~") : n;
    };
    const std::vector<std::string> x = split(fix(a)), y = split(fix(b));
    for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
        if (x[i] == y[i]) continue;
        if (is_number(x[i]) && is_number(y[i])) return std::stoll(x[i]) < std::stoll(y[i]);
        // "head.modulation" before "head.head.weight": a component that is a leaf of its own parent
        // (a Parameter) comes before the submodules, as named_parameters() lists them.
        const int rx = component_rank(x[i]), ry = component_rank(y[i]);
        if (rx != ry) return rx < ry;
        return x[i] < y[i];
    }
    return x.size() < y.size();
}

}  // namespace wanrt
