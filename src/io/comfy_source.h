// ComfyUI FP8 checkpoints as a TensorSource (docs/formats.md "ComfyUI FP8 safetensors").
//
// What ComfyUI ships for Wan (Comfy-Org's repackaged files, Kijai's, "fp8_scaled" exports):
//   - one .safetensors, keys under "model.diffusion_model." (or "diffusion_model.", or none) followed
//     by the official names; text encoders (umt5_xxl_fp8_e4m3fn_scaled) carry Hugging Face names;
//   - weights in float8_e4m3fn ("F8_E4M3") or float8_e5m2 ("F8_E5M2"), norms/biases in bf16/f32;
//   - "scaled" files: per-tensor `<layer>.scale_weight` (0-d or [1], f32): the layer's weight is
//     fp8 · scale_weight (comfy/ops.py scaled_fp8_ops). Newer ComfyUI spells it `<layer>.weight_scale`
//     (comfy/utils.py convert_old_quants renames scale_weight to it), with the same meaning;
//   - `<layer>.scale_input` / `.input_scale`: the activation scale of ComfyUI's FP8 matmul path
//     (the input is divided by it before the cast to fp8). It does not change the layer's function,
//     only how the activations are rounded in W8A8, so the dequantized path ignores it; raw() keeps
//     it for FP8 kernels. Validated like scale_weight;
//   - a `scaled_fp8` marker tensor (its dtype names the fp8 format, 2 elements = "full precision
//     matmul"): an instruction to ComfyUI's op selection, not a weight. Checked for shape and ignored;
//   - `<layer>.comfy_quant` (newer files: a u8 JSON {"format": ...}): formats float8_e4m3fn and
//     float8_e5m2 are per-tensor scaled fp8 as above; any other format (int8, nvfp4, rowwise,
//     blockwise ...) is refused naming the layer.
// Every other key passes through with the prefix removed, so the model's strict loader reports keys it
// does not know (nothing is dropped silently).
//
// Reading: find() of an unscaled tensor is a view of the file in its stored dtype (fp8 stays fp8 and
// converts exactly: every fp8 value is a bf16/f32 value). A scaled weight is decoded on its first
// find() to float32, value = decode(fp8) · scale computed in f32 (one rounding, the exact product of
// two floats rounded once: ComfyUI itself multiplies in the compute dtype, bf16 in practice), and
// cached for the life of the source, as GgufTensorSource does for quantized GGUF tensors.
//
// Errors ("[comfy] <file>: what, where, what to do"): a scale of another shape than one element or of
// a non-float dtype, a non-finite scale, a scale without its weight, both scale spellings on one layer,
// a file whose keys mix "model.diffusion_model." with other prefixes or none (a full ComfyUI checkpoint
// with VAE and text encoder is refused: pass the diffusion model file), an unsupported comfy_quant.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/tensor_source.h"

namespace wanrt {

class ComfyTensorSource final : public TensorSource {
public:
    // Wraps a source (the opened .safetensors) and validates every scale; throws on bad input.
    explicit ComfyTensorSource(std::shared_ptr<TensorSource> src);

    std::string origin() const override { return src_->origin(); }
    std::vector<std::string> names() const override;  // prefix removed, scale/marker keys consumed
    const StoredTensor* find(const std::string& name) const override;
    std::shared_ptr<const void> keepalive() const override { return store_; }

    // A tensor as stored, never decoded: for FP8 kernels and converters (weight = data · scale).
    struct Raw {
        const StoredTensor* data = nullptr;         // stored tensor (name as in the file), nullptr if absent
        float scale = 1.0f;                         // per-tensor weight scale, 1 when the file has none
        bool scaled = false;                        // the file has a scale for it
        const StoredTensor* input_scale = nullptr;  // ComfyUI's activation scale, if any
    };
    Raw raw(const std::string& name) const;

    // The same names with every tensor as stored (scaled weights not decoded, scale not applied): for
    // reports that read shapes and dtypes only (`wanrt info`), at no decoding cost.
    std::shared_ptr<TensorSource> stored_view() const;

    const std::string& prefix() const { return prefix_; }  // "model.diffusion_model.", "diffusion_model." or ""
    size_t scaled_count() const { return scales_.size(); }
    bool has_marker() const { return marker_ != nullptr; }

private:
    struct Store;
    std::shared_ptr<TensorSource> src_;
    std::string prefix_;
    const StoredTensor* marker_ = nullptr;
    std::map<std::string, StoredTensor> plain_;           // stripped name → stored tensor renamed
    std::map<std::string, float> scales_;                 // stripped weight name → scale
    std::map<std::string, const StoredTensor*> inputs_;   // stripped weight name → input scale
    std::shared_ptr<Store> store_;
};

// Whether a source is in ComfyUI's layout: a "model.diffusion_model." / "diffusion_model." prefix, a
// `scaled_fp8` marker or scale keys. Official and Hugging Face files are not.
bool is_comfy_layout(const TensorSource& src);
// src wrapped in a ComfyTensorSource when is_comfy_layout(src), else src itself.
std::shared_ptr<TensorSource> wrap_if_comfy(std::shared_ptr<TensorSource> src);
// Opens a ComfyUI .safetensors file (any layout above; plain files open too, as themselves).
std::shared_ptr<ComfyTensorSource> open_comfy_safetensors(const std::string& path);

}  // namespace wanrt
