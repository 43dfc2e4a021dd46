// The CLIP ViT-H/14 image encoder of the Wan I2V / FLF2V pipelines (wan/modules/clip.py,
// `CLIPModel.visual` with use_31_block=True), the visual tower of
// models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth.
//
// Computation, per image [3, H, W] in [−1, 1]:
//   pixels = normalise(bicubic(image, S×S) · 0.5 + 0.5)   torch's bicubic (a = −0.75, half-pixel
//            centres, edge taps clamped), no antialias, no clamp; OpenAI CLIP mean/std per channel
//   x = [cls; patch_embedding(pixels)] + pos_embedding    [1 + g², D], g = S/patch, conv without bias
//   x = pre_norm(x)                                       LayerNorm, eps 1e-5
//   for each block but the last:  x += proj(attn(qkv(norm1(x))));  x += mlp.2(gelu_erf(mlp.0(norm2(x))))
// and the result [B, 1 + g², D] (class token first, then patches row-major) is what the DiT's
// img_emb receives. The last block, post_norm and head are in the checkpoint but never run
// (use_31_block): they are skipped at load (the last block may be absent), like the text tower
// (`textual.*`) and `log_scale`.
//
// Weights: the official names under "visual." (a fixture may prefix them further); F32/F16/BF16.
// Dump points: pixels, embed, prenorm, block{k}_out — the names of the golden fixture's mid.* keys.
// Errors ([clip] one line): config values that do not fit the weights, images that are not
// [B, 3, H, W] f32.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "io/tensor_source.h"

namespace wanrt {

struct ClipVisionConfig {
    int64_t image_size = 224, patch_size = 14, dim = 1280, mlp_dim = 5120, heads = 16, layers = 32;
    float eps = 1e-5f;
    // The OpenAI CLIP normalisation the pipelines apply after the resize.
    std::array<double, 3> mean{0.48145466, 0.4578275, 0.40821073};
    std::array<double, 3> std{0.26862954, 0.26130258, 0.27577711};

    int64_t grid() const { return image_size / patch_size; }
    int64_t tokens() const { return 1 + grid() * grid(); }
    int64_t head_dim() const { return dim / heads; }
    void validate(const std::string& origin) const;
    // clip.py's config names: image_size, patch_size, vision_dim, vision_mlp_ratio or vision_mlp_dim,
    // vision_heads, vision_layers, norm_eps; activation must be "gelu", vision_pre_norm true and
    // vision_post_norm false (the Wan encoder's structure).
    static ClipVisionConfig from_json(const std::string& json_text, const std::string& origin);
    static ClipVisionConfig vit_h_14() { return {}; }  // the released encoder
};

// torch.nn.functional.interpolate(mode='bicubic', align_corners=False) of one [C, H, W] image to
// [C, oh, ow] in float64 (no antialias, no clamp).
std::vector<double> bicubic_resize(const std::vector<double>& img, int64_t C, int64_t H, int64_t W, int64_t oh,
                                   int64_t ow);

class ClipVisionEncoder {
public:
    // prefix: what precedes "visual." in the source ("" for the released .pth).
    ClipVisionEncoder(const ClipVisionConfig& cfg, std::shared_ptr<TensorSource> src, Backend& be,
                      const std::string& prefix = "");
    ~ClipVisionEncoder();

    const ClipVisionConfig& config() const { return cfg_; }
    Backend& backend() const { return be_; }

    // images [B, 3, H, W] f32 (any backend; the resize runs on the host) → [B, 1 + g², D] f32 on
    // this encoder's backend.
    Tensor encode(const Tensor& images, const DumpFn& dump = nullptr) const;

private:
    struct Weights;
    ClipVisionConfig cfg_;
    Backend& be_;
    std::unique_ptr<Weights> w_;
};

}  // namespace wanrt
