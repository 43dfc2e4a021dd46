// Model folders in diffusers format (`save_pretrained` of WanPipeline / WanImageToVideoPipeline; names in
// io/diffusers_names.h): detected, opened as the official loaders expect, and written from an official folder.
//
// Layout read (`--ckpt_dir`):
//   model_index.json                 pipeline class, component classes; Wan2.2: boundary_ratio, expand_timesteps
//   transformer/config.json          + diffusion_pytorch_model.safetensors, or the sharded set with its index
//   transformer_2/                   Wan2.2 A14B: the low-noise expert (transformer/ is the high-noise one)
//   vae/config.json                  + diffusion_pytorch_model.safetensors (AutoencoderKLWan)
//   text_encoder/config.json         + model.safetensors or model-0000k-of-0000K.safetensors + index (UMT5EncoderModel)
//   tokenizer/spiece.model           the umT5 SentencePiece model (the other tokenizer files are not read)
//   image_encoder/config.json        + model.safetensors (CLIPVisionModel[WithProjection]); Wan2.1 I2V / FLF2V only
//   scheduler/, image_processor/     not read: wanrt's samplers and image preprocessing follow the official code
//
// Weights are never copied whole: each component is a TensorSource view of the mmapped files under the
// official names. Only tensors stored in another layout are built, on first use (the CLIP's q, k, v joined
// into to_qkv, ~0.3 GB for ViT-H/14 in f16, and its projection head transposed), so opening a folder and
// checking its configs reads headers only. Every tensor must map: an unknown name is an error
// naming it and the file. Each config.json is checked against the weights it sits beside.
//
// Wan2.2 A14B (model_index lists transformer_2): transformer/ is the high-noise expert (the parts'
// high_noise_weights), transformer_2/ the low-noise one (dit_weights); an I2V-A14B transformer is in_channels
// 36 without image_dim (model_type i2v, no CLIP branch). model_index's boundary_ratio is not read: the task's
// official value applies (t2v 0.875, i2v 0.900, what the diffusers folders hold too).
// Wan2.2 TI2V-5B (model_index expand_timesteps true; Wan-AI/Wan2.2-TI2V-5B-Diffusers): the transformer is
// model_type "ti2v" (48 channels) and vae/ the Wan2.2 VAE (is_residual, patch_size 2, z_dim 48;
// diffusers_names.h), read into T2VModelParts::vae22_config. Generations are not mixed: a Wan2.2 VAE
// beside a Wan2.1 / A14B transformer, or a Wan2.1 VAE beside a TI2V one, is one error.
// Not read (refused with a one-line error): other pipeline classes (VACE, Animate, video-to-video).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/diffusers_names.h"
#include "pipeline/model_folder.h"

namespace wanrt {

// True when dir holds a model_index.json (the mark of a diffusers pipeline folder).
bool is_diffusers_folder(const std::string& dir);

struct DiffusersFolder {
    std::string dir;
    std::string pipeline;           // model_index.json _class_name
    bool expand_timesteps = false;  // Wan2.2 TI2V
    double boundary_ratio = 0;      // Wan2.2 A14B expert switch (0 = none)
    // path = the component's folder when its config.json and weights are both there.
    ModelPart transformer, transformer_2, vae, text_encoder, tokenizer, image_encoder;
    bool image_model = false;  // the transformer has image_dim: the image encoder is required
    bool moe = false;          // model_index lists transformer_2
    std::vector<const ModelPart*> parts() const;
    std::vector<std::string> missing() const;  // "role (looked for ...)" per missing part
};

// Reads model_index.json and looks for every component; missing ones are recorded, not thrown.
// Throws on a model_index.json that does not parse or names another pipeline.
DiffusersFolder scan_diffusers_folder(const std::string& dir);

// A TensorSource with official names over one diffusers-named source (no copy but the CLIP's fused
// tensors). Throws "[diffusers] ORIGIN: unknown COMPONENT tensor 'NAME' ..." for a name the map lacks.
std::shared_ptr<TensorSource> diffusers_view(std::shared_ptr<TensorSource> src, diffusers::Component c,
                                             const diffusers::NameContext& ctx = {});

// One component folder's weights file: the index when there is one, else the single file ("" if neither).
std::string diffusers_weights_file(const std::string& component_dir, diffusers::Component c);

// The transformer in `sub` ("transformer" or "transformer_2"): config (checked against the tensors'
// names and shapes) and its official-named weights.
DitCheckpoint open_diffusers_transformer(const DiffusersFolder& f, const std::string& sub = "transformer");
// The VAE's config (vae/config.json checked against the weights) and its official-named weights.
VaeConfig diffusers_vae_config(const DiffusersFolder& f);
Vae22Config diffusers_vae22_config(const DiffusersFolder& f);  // the Wan2.2 VAE's (TI2V-5B folders)
std::shared_ptr<TensorSource> open_diffusers_vae(const DiffusersFolder& f);
std::shared_ptr<TensorSource> open_diffusers_text_encoder(const DiffusersFolder& f);
ClipVisionConfig diffusers_clip_config(const DiffusersFolder& f);
std::shared_ptr<TensorSource> open_diffusers_image_encoder(const DiffusersFolder& f);

// open_model_folder for a diffusers folder: the same parts, weights opened on demand.
T2VModelParts open_diffusers_folder(const std::string& dir);

// Writes out_dir as a diffusers folder from the official folder official_dir (Wan2.1 t2v / i2v / flf2v,
// Wan2.2 t2v-A14B / i2v-A14B / ti2v-5B),
// each component's weights in shards of at most shard_bytes (one file when they fit) with the index.
// Written under out_dir + ".partial" and renamed at the end: a failure leaves nothing. out_dir must not exist.
void write_diffusers_folder(const std::string& official_dir, const std::string& out_dir, uint64_t shard_bytes);

// One component: the official-named tensors of src (every name must map) written to dir as
// "<stem>.safetensors" or "<stem>-0000k-of-0000K.safetensors" + "<stem>.safetensors.index.json".
// stem: "diffusion_pytorch_model" (diffusers) or "model" (transformers).
void write_diffusers_weights(const TensorSource& src, diffusers::Component c, const diffusers::NameContext& ctx,
                             const std::string& dir, const std::string& stem, uint64_t shard_bytes);

}  // namespace wanrt
