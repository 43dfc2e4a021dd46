#include "io/comfy_source.h"

#include <algorithm>
#include <cmath>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"

namespace wanrt {

namespace {

const char* const kPrefixes[] = {"model.diffusion_model.", "diffusion_model."};
const char* const kMarker = "scaled_fp8";
// Weight-scale spellings: the legacy "scaled fp8" one, then newer ComfyUI's (convert_old_quants).
const char* const kWeightScale[] = {".scale_weight", ".weight_scale"};
const char* const kInputScale[] = {".scale_input", ".input_scale"};
const char* const kComfyQuant = ".comfy_quant";

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& x) {
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}
// "<layer><suffix>" → layer, for the first suffix that matches; "" when none does.
std::string strip_suffix(const std::string& s, const char* const* suffixes, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (ends_with(s, suffixes[i])) return s.substr(0, s.size() - std::string(suffixes[i]).size());
    return "";
}

// One-element float scale, read exactly as f32 (f16/bf16 widen exactly, f64 rounds once).
float read_scale(const TensorSource& src, const StoredTensor& st) {
    const bool float_dtype =
        st.dtype == DType::F32 || st.dtype == DType::F16 || st.dtype == DType::BF16 || st.dtype == DType::F64;
    WANRT_CHECK(float_dtype, "comfy", src.origin(), ": scale '", st.name, "' is ", dtype_name(st.dtype),
                ", expected f32 (f16/bf16/f64 accepted); the file was converted wrongly, re-export it");
    WANRT_CHECK(shape_numel(st.shape) == 1 && st.shape.size() <= 1, "comfy", src.origin(), ": scale '", st.name,
                "' has shape ", shape_str(st.shape),
                ", expected one element ([] or [1]): only per-tensor scaled fp8 is supported (per-channel and "
                "block scales are other formats)");
    float v = 0;
    convert_elements(st.data, st.dtype, &v, DType::F32, 1);
    WANRT_CHECK(std::isfinite(v), "comfy", src.origin(), ": scale '", st.name, "' is ", v,
                "; a scale must be finite, the file is corrupt");
    return v;
}

}  // namespace

struct ComfyTensorSource::Store {
    std::shared_ptr<const void> base;  // the file mapping the plain tensors view
    std::mutex mu;
    struct Decoded {
        StoredTensor st;
        std::vector<float> values;
    };
    std::map<std::string, Decoded> decoded;  // scaled weights decoded so far, by stripped name
};

bool is_comfy_layout(const TensorSource& src) {
    for (const std::string& n : src.names()) {
        for (const char* p : kPrefixes)
            if (starts_with(n, p)) return true;
        if (n == kMarker || ends_with(n, kComfyQuant) || !strip_suffix(n, kWeightScale, 2).empty() ||
            !strip_suffix(n, kInputScale, 2).empty())
            return true;
    }
    return false;
}

ComfyTensorSource::ComfyTensorSource(std::shared_ptr<TensorSource> src) : src_(std::move(src)) {
    WANRT_ASSERT(src_ != nullptr);
    const std::vector<std::string> names = src_->names();
    // The prefix is the first one any key carries; then every key must carry it (the marker may
    // also stand unprefixed).
    for (const char* p : kPrefixes) {
        for (const std::string& n : names)
            if (starts_with(n, p)) {
                prefix_ = p;
                break;
            }
        if (!prefix_.empty()) break;
    }
    std::map<std::string, const StoredTensor*> weight_scales, input_scales;
    std::map<std::string, std::string> weight_scale_key;  // layer → the key that gave its scale
    for (const std::string& n : names) {
        const StoredTensor* st = src_->find(n);
        WANRT_ASSERT(st != nullptr);
        if (n == kMarker || n == prefix_ + kMarker) {
            // torch.empty((), dtype) or 2 elements ("full precision matmul"): ComfyUI's op choice.
            WANRT_CHECK(shape_numel(st->shape) <= 2, "comfy", src_->origin(), ": marker '", n, "' has shape ",
                        shape_str(st->shape), "; ComfyUI writes 1 or 2 elements, the file is not a ComfyUI checkpoint");
            marker_ = st;
            continue;
        }
        if (!starts_with(n, prefix_))
            fail("comfy", src_->origin(), ": tensor '", n, "' lacks the prefix '", prefix_,
                 "' the other tensors carry; a full ComfyUI checkpoint (diffusion model, VAE and text encoder in one "
                 "file) or a mix of files is not supported: pass the diffusion model file alone");
        const std::string s = n.substr(prefix_.size());
        if (std::string layer = strip_suffix(s, kWeightScale, 2); !layer.empty()) {
            const std::string w = layer + ".weight";
            WANRT_CHECK(!weight_scales.count(w), "comfy", src_->origin(), ": layer '", prefix_ + layer,
                        "' has two weight scales ('", weight_scale_key[w], "' and '", n,
                        "'); the file was converted wrongly, keep one");
            weight_scales[w] = st;
            weight_scale_key[w] = n;
        } else if (std::string layer = strip_suffix(s, kInputScale, 2); !layer.empty()) {
            input_scales[layer + ".weight"] = st;
        } else if (ends_with(s, kComfyQuant)) {
            const std::string layer = s.substr(0, s.size() - std::string(kComfyQuant).size());
            WANRT_CHECK(st->dtype == DType::U8 && st->shape.size() == 1, "comfy", src_->origin(), ": '", n,
                        "' is ", dtype_name(st->dtype), " ", shape_str(st->shape),
                        ", expected ComfyUI's u8 JSON layer description");
            const std::string text(static_cast<const char*>(st->data), st->nbytes);
            const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
            std::string format;
            if (j.is_object() && j.contains("format") && j["format"].is_string()) format = j["format"].get<std::string>();
            WANRT_CHECK(format == "float8_e4m3fn" || format == "float8_e5m2", "comfy", src_->origin(), ": layer '",
                        prefix_ + layer, "' is quantized as '", format.empty() ? text : format,
                        "'; wanrt reads ComfyUI's per-tensor scaled fp8 (float8_e4m3fn, float8_e5m2) only: convert the "
                        "file to fp8, GGUF or bf16");
        } else {
            StoredTensor t = *st;
            t.name = s;
            plain_[s] = t;
        }
    }
    for (const auto& [w, st] : weight_scales) {
        auto it = plain_.find(w);
        WANRT_CHECK(it != plain_.end(), "comfy", src_->origin(), ": scale '", st->name, "' has no weight '",
                    prefix_ + w, "'; the file is incomplete or was converted wrongly");
        WANRT_CHECK(dtype_info(it->second.dtype).is_float, "comfy", src_->origin(), ": weight '", prefix_ + w,
                    "' of scale '", st->name, "' is ", dtype_name(it->second.dtype), ", expected fp8 or another float");
        scales_[w] = read_scale(*src_, *st);
        plain_.erase(it);  // read through the decoded cache from now on
    }
    for (const auto& [w, st] : input_scales) {
        WANRT_CHECK(plain_.count(w) || scales_.count(w), "comfy", src_->origin(), ": input scale '", st->name,
                    "' has no weight '", prefix_ + w, "'; the file is incomplete or was converted wrongly");
        read_scale(*src_, *st);  // checked, unused by the dequantized path (see the header)
        inputs_[w] = st;
    }
    store_ = std::make_shared<Store>();
    store_->base = src_->keepalive();
}

std::vector<std::string> ComfyTensorSource::names() const {
    std::vector<std::string> out;
    out.reserve(plain_.size() + scales_.size());
    for (const auto& kv : plain_) out.push_back(kv.first);
    for (const auto& kv : scales_) out.push_back(kv.first);
    std::sort(out.begin(), out.end());
    return out;
}

const StoredTensor* ComfyTensorSource::find(const std::string& name) const {
    if (auto it = plain_.find(name); it != plain_.end()) return &it->second;
    auto sc = scales_.find(name);
    if (sc == scales_.end()) return nullptr;
    std::lock_guard<std::mutex> lock(store_->mu);
    auto& cache = store_->decoded;
    if (auto it = cache.find(name); it != cache.end()) return &it->second.st;
    const StoredTensor* w = src_->find(prefix_ + name);
    WANRT_ASSERT(w != nullptr);
    const int64_t n = shape_numel(w->shape);
    Store::Decoded& d = cache[name];
    d.values.resize(size_t(n));
    convert_elements(w->data, w->dtype, d.values.data(), DType::F32, n);
    const float s = sc->second;
    for (float& v : d.values) v *= s;  // f32 product, one rounding
    d.st.name = name;
    d.st.dtype = DType::F32;
    d.st.shape = w->shape;
    d.st.data = d.values.data();
    d.st.nbytes = size_t(n) * sizeof(float);
    return &d.st;
}

ComfyTensorSource::Raw ComfyTensorSource::raw(const std::string& name) const {
    Raw r;
    r.data = src_->find(prefix_ + name);
    if (!r.data || (!plain_.count(name) && !scales_.count(name))) return Raw{};
    if (auto it = scales_.find(name); it != scales_.end()) {
        r.scale = it->second;
        r.scaled = true;
    }
    if (auto it = inputs_.find(name); it != inputs_.end()) r.input_scale = it->second;
    return r;
}

namespace {
class StoredView final : public TensorSource {
public:
    StoredView(std::string origin, std::map<std::string, StoredTensor> t, std::shared_ptr<const void> keep)
        : origin_(std::move(origin)), t_(std::move(t)), keep_(std::move(keep)) {}
    std::string origin() const override { return origin_; }
    std::vector<std::string> names() const override {
        std::vector<std::string> out;
        for (const auto& kv : t_) out.push_back(kv.first);
        return out;
    }
    const StoredTensor* find(const std::string& name) const override {
        auto it = t_.find(name);
        return it == t_.end() ? nullptr : &it->second;
    }
    std::shared_ptr<const void> keepalive() const override { return keep_; }

private:
    std::string origin_;
    std::map<std::string, StoredTensor> t_;
    std::shared_ptr<const void> keep_;
};
}  // namespace

std::shared_ptr<TensorSource> ComfyTensorSource::stored_view() const {
    std::map<std::string, StoredTensor> t = plain_;
    for (const auto& kv : scales_) {
        StoredTensor st = *src_->find(prefix_ + kv.first);
        st.name = kv.first;
        t[kv.first] = st;
    }
    return std::make_shared<StoredView>(src_->origin() + " (as stored)", std::move(t), store_);
}

std::shared_ptr<TensorSource> wrap_if_comfy(std::shared_ptr<TensorSource> src) {
    if (!src || !is_comfy_layout(*src)) return src;
    return std::make_shared<ComfyTensorSource>(std::move(src));
}

std::shared_ptr<ComfyTensorSource> open_comfy_safetensors(const std::string& path) {
    return std::make_shared<ComfyTensorSource>(open_safetensors(path));
}

}  // namespace wanrt
