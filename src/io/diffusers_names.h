// The official ↔ diffusers name map of every Wan2.1 component (../shared/spec/diffusers_names.md):
// tensor names, the few tensors stored in another layout, and the config keys. Pure functions,
// no files: pipeline/diffusers_folder.h opens and writes the folders with them.
//
// Components and their diffusers-side owners:
//   transformer / transformer_2  diffusers WanTransformer3DModel   (official WanModel names)
//   vae                          diffusers AutoencoderKLWan (official Wan2.1_VAE.pth / Wan2.2_VAE.pth names)
//   text_encoder                 transformers UMT5EncoderModel     (official models_t5_umt5-xxl-enc names)
//   image_encoder                transformers CLIPVisionModel[WithProjection] (official open-clip "visual." names)
// Every name is mapped exactly or rejected: a name a rule does not cover is "unknown" (nullopt), so a
// folder of another model or version is an error naming the tensor, never a silent guess.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/t5.h"
#include "models/vae.h"
#include "models/vae22.h"

namespace wanrt::diffusers {

enum class Component { Transformer, Vae, TextEncoder, ImageEncoder };
const char* component_name(Component c);  // "transformer", "vae", "text_encoder", "image_encoder"

// How one diffusers tensor holds (part of) one official tensor.
enum class Layout {
    Same,       // same shape, same bytes
    Reshape,    // same bytes; the official shape has `ones` more leading 1s (CLIP class/position embeddings)
    Transpose,  // a 2-D matrix transposed (CLIP's projection head: official [D, P], diffusers [P, D])
    RowSlice,   // rows [part·R/parts, (part+1)·R/parts) of the official tensor (CLIP's fused q|k|v)
};

struct DiffusersKey {
    std::string name;
    Layout layout = Layout::Same;
    int part = 0, parts = 1;  // RowSlice
    int ones = 0;             // Reshape
};
struct OfficialKey {
    std::string name;  // "" = a known diffusers tensor with no official counterpart (not needed)
    Layout layout = Layout::Same;
    int part = 0, parts = 1;
    int ones = 0;
};

// The VAE decoder's flat official list regroups into up blocks, so the VAE names depend on the
// residual blocks per stage (2 in Wan2.1; other counts only in synthetic models).
struct NameContext {
    int64_t vae_num_res_blocks = 2;
    // The Wan2.2 VAE (AutoencoderKLWan with is_residual: TI2V-5B): stages are modules of their own
    // (down_blocks.I.resnets.J / downsampler, up_blocks.I.resnets.J / upsampler).
    bool vae22 = false;
};

// official → diffusers: the diffusers tensors holding it (3 for a fused q|k|v), an empty list for
// an official tensor the diffusers component leaves out (CLIP's text tower, log_scale), nullopt if
// the name is not one of the component's.
std::optional<std::vector<DiffusersKey>> to_diffusers(Component c, const std::string& official,
                                                      const NameContext& ctx = {});
// diffusers → official, nullopt for a name that is not one of the component's.
std::optional<OfficialKey> from_diffusers(Component c, const std::string& diffusers, const NameContext& ctx = {});

// Shapes across a layout: the official tensor's shape from one diffusers piece (RowSlice: × parts rows)
// and a diffusers piece's shape from the official one.
Shape official_shape(const OfficialKey& k, const Shape& diffusers_shape);
Shape diffusers_shape(const DiffusersKey& k, const Shape& official_shape);

// Config maps. The *_from_diffusers functions check every key: an unknown key, or a value wanrt does
// not run (windowed attention, another qk norm, the Wan2.2 residual VAE), is a one-line error naming
// the key and origin. The *_to_diffusers functions fail when the config has no diffusers form.
// transformer/config.json. model_index.json's expand_timesteps (Wan2.2 TI2V) selects model_type "ti2v".
nlohmann::json dit_config_to_diffusers(const DitConfig& c);
DitConfig dit_config_from_diffusers(const nlohmann::json& j, const std::string& origin, bool expand_timesteps);
// vae/config.json (AutoencoderKLWan).
nlohmann::json vae_config_to_diffusers(const VaeConfig& c);
VaeConfig vae_config_from_diffusers(const nlohmann::json& j, const std::string& origin);
// vae/config.json of the Wan2.2 VAE (is_residual true, in/out_channels 12, patch_size 2, z_dim 48, its
// latents_mean/std, scale_factor_temporal 4, scale_factor_spatial 16). vae_config_from_diffusers refuses
// such a config (a Wan2.2 VAE beside a Wan2.1 transformer mixes generations).
bool is_vae22_config(const nlohmann::json& j);
nlohmann::json vae22_config_to_diffusers(const Vae22Config& c);
Vae22Config vae22_config_from_diffusers(const nlohmann::json& j, const std::string& origin);
// text_encoder/config.json (transformers UMT5Config).
nlohmann::json t5_config_to_diffusers(const T5Config& c);
T5Config t5_config_from_diffusers(const nlohmann::json& j, const std::string& origin);
// image_encoder/config.json (transformers CLIPVisionConfig); projection_dim 0 = no projection head.
nlohmann::json clip_config_to_diffusers(const ClipVisionConfig& c, int64_t projection_dim);
ClipVisionConfig clip_config_from_diffusers(const nlohmann::json& j, const std::string& origin);

}  // namespace wanrt::diffusers
